"""Every configs/mmvoxceleb.py mode (its `_tiny` variant) on the fixture folder: data stage,
the mode's input pipeline and model inputs (control tokens erased per the mode), and one
training step of the MMVID loss (pseudo tokenizer, a 1-layer transformer). Compiling a step
takes ~10-20 s on a busy 2-core CPU even at LLVM -O0, so only text_mask steps by default;
the other modes' steps are `slow` (`pytest -m slow tests/test_mmvoxceleb_train.py`)."""

import dataclasses

import jax
import numpy as np
import pytest

from mmvid_jax import configuration
from mmvid_jax.data import pipeline
from mmvid_jax.data import stage as data_stage
from mmvid_jax.infra import mesh as mesh_lib
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
from mmvid_jax.transformer import train_step as step_lib
from mmvid_jax.transformer import trainer
from tests import fixtures_mmvoxceleb as fx

TOKENIZER = PseudoTokenizer(image_size=32, patch_size=4, levels=4)  # 8 x 8 codes per frame


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return fx.write_folder(str(tmp_path_factory.mktemp("mmvox")))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("run"))


MODES = ("text_video", "text_mask", "text_draw", "text_partial", "draw_mask", "image_mask",
         "image_video", "text_aug")


def _config(mode, folder, workdir):
  from configs import mmvoxceleb as vox_config
  config = vox_config.get_config(mode + "_tiny")
  config.data.update(manual_dir=folder["root"], split_fractions=(1.0, 0.0, 0.0),
                     build_workers=2, prefetch=1)
  config.transformer.update(width=32, depth=1, num_heads=2, mlp_dim=64, batch_size=4)
  configuration.validate(config)
  data_stage.run(config, workdir)  # builds the TFDS dataset (once per builder config)
  assert data_stage.is_complete(config, workdir)
  return config


def _kept(mode, slot):
  """Evaluation keep pattern (8 x 8) of a slot under its erasing mode."""
  keep = np.zeros((8, 8), bool)
  if mode == "mask_8x8" or mode == "mask2_8x8":
    keep[1:7, 1:7] = True
  elif mode == "face_8x8":
    keep[2:5, 1:7] = True
  elif mode == "face2_8x8":
    keep[...] = slot == 0
    keep[2:6, 2:6] = True
  return keep


@pytest.mark.parametrize("mode", MODES)
def test_mode_gives_the_model_its_inputs(mode, folder, workdir):
  config = _config(mode, folder, workdir)
  tr = config.transformer
  layout, _, text_encoder, settings = trainer.build(config, workdir, TOKENIZER)
  assert layout.num_controls == len(tr.controls)
  assert layout.pooled_text == (mode == "text_aug")
  batch = next(iter(pipeline.make_dataset(config, "train", workdir, batch_size=4,
                                          deterministic=True, process_index=0,
                                          process_count=1)))
  layout.check_ids(text_ids=batch["text_ids"])
  # Codes and control tokens are made before the objective's masks and VID negatives, which
  # depend on the video only and run in test_one_training_step; skipping them here saves
  # ~10 s of op-by-op compiles.
  settings = dataclasses.replace(settings, objective="artv")
  inputs = step_lib.prepare_inputs(layout, settings, TOKENIZER, text_encoder,
                                   {k: v for k, v in batch.items() if k != "caption"},
                                   jax.random.key(0), train=False)
  assert inputs["codes"].shape == (4, layout.video_len)
  if not tr.controls:
    assert inputs["control_codes"] is None
    return
  codes = np.asarray(inputs["control_codes"])
  assert codes.shape == (4, len(tr.controls), 8, 8)
  for slot, entry in enumerate(tr.controls):
    erased = codes[:, slot] == layout.mask_id
    np.testing.assert_array_equal(erased, np.broadcast_to(~_kept(entry.split(":")[1], slot),
                                                          erased.shape))


@pytest.mark.parametrize("mode", [pytest.param(m, marks=() if m == "text_mask" else
                                               pytest.mark.slow) for m in MODES])
def test_one_training_step(mode, folder, workdir):
  config = _config(mode, folder, workdir)
  tr = config.transformer
  layout, model, text_encoder, settings = trainer.build(config, workdir, TOKENIZER)
  mesh = mesh_lib.make_mesh(config.mesh, jax.devices()[:1])
  tx = step_lib.build_optimizer(tr, 10)
  state = mesh_lib.create_sharded_state(trainer.make_init_fn(model, layout, tx, text_encoder),
                                        mesh, init_args=(jax.random.key(0),))
  batch = next(iter(pipeline.make_dataset(config, "train", workdir, batch_size=4,
                                          deterministic=False, process_index=0,
                                          process_count=1)))
  layout.check_ids(text_ids=batch["text_ids"])
  args = (state, mesh_lib.shard_batch(batch, mesh), (TOKENIZER, text_encoder))
  # LLVM's optimisation level 0 halves the CPU compile (~15 s -> ~7.5 s); XLA's graph passes
  # and the step's numerics are unchanged.
  step = jax.jit(step_lib.make_train_step(model, layout, settings, jax.random.key(1))).lower(
      *args).compile(compiler_options={"xla_backend_optimization_level": 0})
  state, metrics = step(*args)
  metrics = jax.device_get(metrics)
  assert int(state.step) == 1
  for key in ("loss", "msm_loss", "rel_loss", "vid_loss", "grad_norm"):
    assert np.isfinite(metrics[key]), (key, metrics[key])
  assert metrics["grad_norm"] > 0
