"""Training: the loss goes down, SIGTERM → checkpoint → resume repeats the same next loss,
the stage completes, exports, and `load_tokenizer` serves the result."""

import os
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.shapes import get_config
from mmvid_jax import configuration
from mmvid_jax.errors import UserError
from mmvid_jax.evaluation import image_metrics
from mmvid_jax.tokenizer import api, stage
from mmvid_jax.tokenizer import train_step as ts
from mmvid_jax.tokenizer import trainer as trainer_lib
from mmvid_jax.tokenizer.model import build_tokenizer


def tiny_config():
  config = get_config("tiny")
  config.data.source = "stream"  # no dataset build
  config.data.text_tokenizer = "bert"  # packaged vocabulary, nothing to train
  tok = config.tokenizer
  tok.channels, tok.channel_mult, tok.embed_dim, tok.codebook_size = 8, (1, 2), 8, 32
  tok.downsample_factor, tok.latent_size = 2, config.data.image_size // 2
  tok.batch_size, tok.frames_per_clip, tok.num_steps, tok.warmup_steps = 8, 1, 4, 1
  tok.log_every, tok.checkpoint_every, tok.eval_every = 1, 2, 0
  tok.num_eval_batches, tok.eval_batch_size = 1, 8
  tok.perceptual_weight = 0.0
  tok.disc_start, tok.disc_channels, tok.disc_layers = 2, 8, 2
  return config


def shapes_like_video(batch=4, frames=2, size=16):
  """A coloured square on black, moving one pixel per frame."""
  video = np.zeros((batch, frames, size, size, 3), np.uint8)
  for b in range(batch):
    for t in range(frames):
      y, x = 2 + b + t, 3 + t
      video[b, t, y:y + 5, x:x + 5] = (255, 40 * b, 200)
  return video


def test_a_few_steps_reduce_the_loss_and_start_the_gan():
  tok = tiny_config().tokenizer
  tok.learning_rate, tok.num_steps, tok.warmup_steps = 3e-3, 40, 1
  tok.disc_start = 3
  model = build_tokenizer(tok)
  disc = ts.build_discriminator(tok)
  late = tok.copy_and_resolve_references()
  late.disc_start = late.num_steps  # a discriminator that would never train is not built
  assert ts.gan_enabled(tok) and not ts.gan_enabled(late)
  gen_tx, disc_tx = ts.build_optimizer(tok, 3e-3), ts.build_optimizer(tok, 3e-3)
  state = ts.init_state(model, disc, gen_tx, disc_tx, jax.random.key(0), 16)
  lpips_module, _ = image_metrics.load_lpips("alexnet")
  step = jax.jit(ts.make_train_step(tok, model, disc, gen_tx, disc_tx, lpips_module,
                                    jax.random.key(1)))
  batch = {"video": jnp.asarray(shapes_like_video())}
  history = []
  for i in range(12):
    state, metrics = step(state, batch, i, {})
    history.append(jax.device_get(metrics))
  assert history[-1]["rec_loss"] < 0.7 * history[0]["rec_loss"]
  assert all(np.isfinite(m["loss"]) for m in history)
  # Before disc_start the discriminator is idle; after it, it trains and weighs in adaptively.
  assert history[1]["d_loss"] == 0 and history[1]["adaptive_weight"] == 0
  assert history[-1]["d_loss"] > 0 and history[-1]["adaptive_weight"] > 0
  assert not np.allclose(jax.tree_util.tree_leaves(state.disc_params)[0],
                         jax.tree_util.tree_leaves(ts.init_state(
                             model, disc, gen_tx, disc_tx, jax.random.key(0), 16).disc_params)[0])


def _recording(trainer, losses, sigterm_at=None):
  original = trainer.train_step

  def step(state, batch, i):
    state, metrics = original(state, batch, i)
    losses[i] = float(metrics["loss"])
    if i == sigterm_at:
      os.kill(os.getpid(), signal.SIGTERM)
    return state, metrics

  trainer.train_step = step


@pytest.mark.slow  # two trainer compilations: ~3 minutes on the 2-core CPU
def test_resume_after_a_kill_repeats_the_next_loss_and_the_stage_completes(tmp_path):
  config = tiny_config()
  configuration.validate(config, num_devices=jax.device_count())
  workdir = str(tmp_path / "run")
  first, first_losses = trainer_lib.TokenizerTrainer(config, workdir), {}
  _recording(first, first_losses)
  first.train()
  first.checkpointer.close()
  assert sorted(first_losses) == [0, 1, 2, 3]
  # A kill after the step-2 checkpoint: the step-4 checkpoint and final outputs never existed.
  checkpoints = os.path.join(workdir, "tokenizer", "checkpoints")
  shutil.rmtree(os.path.join(checkpoints, "4"))
  os.remove(trainer_lib.metrics_path(workdir))
  assert not stage.is_complete(config, workdir)

  resumed, resumed_losses = trainer_lib.TokenizerTrainer(config, workdir), {}
  _recording(resumed, resumed_losses)
  resumed.train()
  resumed.finish()
  assert sorted(resumed_losses) == [2, 3]
  np.testing.assert_allclose([resumed_losses[2], resumed_losses[3]],
                             [first_losses[2], first_losses[3]], rtol=1e-6)
  assert stage.is_complete(config, workdir)
  metrics = trainer_lib.read_metrics(workdir)
  assert metrics["step"] == 4 and np.isfinite(metrics["psnr"]) and 0 < metrics["code_usage"] <= 1
  tokenizer = api.load_tokenizer(workdir, expected_codebook_size=32,
                                 expected_config=config.tokenizer, expected_image_size=32)
  assert tokenizer.encode_to_codes(jnp.zeros((1, 2, 32, 32, 3))).shape == (1, 2, 16, 16)
  with pytest.raises(UserError, match="has 32 codes but 512 are expected"):
    api.load_tokenizer(workdir, expected_codebook_size=512)


@pytest.mark.slow
def test_sigterm_resume_repeats_the_next_loss_and_the_stage_completes(tmp_path):
  config = tiny_config()
  configuration.validate(config, num_devices=jax.device_count())

  reference_losses = {}
  reference = trainer_lib.TokenizerTrainer(config, str(tmp_path / "reference"))
  _recording(reference, reference_losses)
  reference.train()
  reference.checkpointer.close()

  workdir = str(tmp_path / "interrupted")
  first, first_losses = trainer_lib.TokenizerTrainer(config, workdir), {}
  _recording(first, first_losses, sigterm_at=1)
  with pytest.raises(SystemExit) as stopped:
    first.train()
  assert stopped.value.code == 0
  first.checkpointer.close()
  assert first.checkpointer.latest_step() == 2 or sorted(os.listdir(
      os.path.join(workdir, "tokenizer", "checkpoints"))) == ["2"]
  assert not stage.is_complete(config, workdir)

  resumed, resumed_losses = trainer_lib.TokenizerTrainer(config, workdir), {}
  _recording(resumed, resumed_losses)
  resumed.train()
  resumed.finish()
  assert sorted(resumed_losses) == [2, 3]  # continued after the saved step
  np.testing.assert_allclose(resumed_losses[2], reference_losses[2], rtol=1e-6)
  np.testing.assert_allclose(resumed_losses[3], reference_losses[3], rtol=1e-6)

  assert stage.is_complete(config, workdir)
  metrics = trainer_lib.read_metrics(workdir)
  assert metrics["step"] == 4 and np.isfinite(metrics["psnr"]) and 0 < metrics["code_usage"] <= 1
  eval_dir = os.path.join(workdir, "tokenizer", "eval")
  assert any(name.endswith(".mp4") for name in os.listdir(eval_dir))

  tokenizer = api.load_tokenizer(workdir, expected_codebook_size=32,
                                 expected_config=config.tokenizer, expected_image_size=32)
  codes = tokenizer.encode_to_codes(jnp.zeros((1, 2, 32, 32, 3)))
  assert codes.shape == (1, 2, 16, 16)
  with pytest.raises(UserError, match="has 32 codes but 512 are expected"):
    api.load_tokenizer(workdir, expected_codebook_size=512)


@pytest.mark.parametrize("num_steps", [1, 3, 20])
def test_a_run_shorter_than_its_warmup_gets_a_valid_schedule(num_steps):
  tok = get_config("default").tokenizer
  tok.num_steps, tok.warmup_steps = num_steps, 20
  optimizer = ts.build_optimizer(tok, 1e-3)
  params = {"w": jnp.ones((2,))}
  state = optimizer.init(params)
  steps = []
  for _ in range(max(num_steps, 2)):
    updates, state = optimizer.update({"w": jnp.ones((2,))}, state, params)
    steps.append(float(-updates["w"][0]))
  assert all(np.isfinite(steps))
  # Warm-up starts at lr 0 and the schedule still reaches a positive rate within the run.
  assert steps[0] == 0.0 and max(steps) > 0.0


def test_eval_reports_the_share_of_codes_a_reconstruction_changes():
  tok = tiny_config().tokenizer
  model = build_tokenizer(tok)
  video = shapes_like_video(batch=2, frames=2, size=32)
  variables = model.init(jax.random.key(3), ts.video_to_float(jnp.asarray(video)))
  lpips_module, lpips_variables = image_metrics.load_lpips("alexnet")
  metrics, indices, recon = trainer_lib.make_eval_batch_fn(model, lpips_module)(
      variables, jnp.asarray(video), lpips_variables)
  # By hand: the 8-bit reconstruction encoded again, compared code by code, per frame.
  again = model.apply(variables, ts.video_to_float(jnp.asarray(recon)), method=model.encode_indices)
  expected = np.mean(np.asarray(again) != np.asarray(indices), axis=(-2, -1))
  assert metrics["reencode_changed"].shape == metrics["psnr"].shape == (2, 2)
  np.testing.assert_allclose(metrics["reencode_changed"], expected)
  # An untrained tokenizer's reconstruction is far from its input: some codes must change.
  assert 0 < float(np.mean(metrics["reencode_changed"])) <= 1
