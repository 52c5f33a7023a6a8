"""Training steps (pseudo tokenizer): the loss goes down, 1 and 8 devices agree, stage errors."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.infra import mesh as mesh_lib
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
from mmvid_jax.transformer import api
from mmvid_jax.transformer import stage
from mmvid_jax.transformer import train_step as step_lib
from mmvid_jax.transformer import trainer
from mmvid_jax.transformer.model import make_model
from mmvid_jax.transformer.vocab import Layout

SIZE, FRAMES, BATCH = 16, 4, 8
TOKENIZER = PseudoTokenizer(image_size=SIZE, patch_size=4, levels=3)


def tr_config(**overrides):
  tr = ml_collections.ConfigDict(dict(
      width=32, depth=2, num_heads=2, mlp_dim=64, activation="quick_gelu", dropout=0.0,
      scan_layers=False, remat=False, text_encoder="learned", embed_init_std=0.02,
      controls=("background:shape_4x4",), mask_ratio_schedule="mmvid",
      msm_strategy_prob=(0.7, 0.1, 0.1, 0.1), msm_bernoulli_keep=(0.2, 0.2),
      vid_strategy_prob=(0.25, 0.25, 0.25, 0.25), beta_msm=7.0, beta_rel=0.5, beta_vid=0.5,
      lr_schedule="constant", learning_rate=3e-3, warmup_steps=1, min_learning_rate=1e-6,
      grad_clip_norm=1.0))
  tr.update(overrides)
  return tr


LAYOUT = Layout(TOKENIZER.codebook_size, 12, 6, FRAMES, 4, 4, num_controls=1)


def moving_square_batch(seed=0):
  """A coloured square moving right on a grey background, per sample its own colour/row."""
  rng = np.random.default_rng(seed)
  video = np.full((BATCH, FRAMES, SIZE, SIZE, 3), 128, np.uint8)
  for b in range(BATCH):
    colour = rng.integers(0, 256, 3)
    row = rng.integers(0, SIZE - 4)
    for t in range(FRAMES):
      video[b, t, row:row + 4, 2 * t:2 * t + 4] = colour
  text = rng.integers(1, 12, (BATCH, 6)).astype(np.int32)
  text[:, 4:] = 0
  return {"video": video, "text_ids": text, "controls": video[:, :1].copy()}


def make_state(model, tx, mesh):
  init_fn = trainer.make_init_fn(model, LAYOUT, tx, None)
  return mesh_lib.create_sharded_state(init_fn, mesh, init_args=(jax.random.key(0),))


def jitted_step(model, settings, state, mesh, tr):
  replicated = mesh_lib.replicated_sharding(mesh)
  shardings = mesh_lib.tree_shardings(state)
  return jax.jit(step_lib.make_train_step(model, LAYOUT, settings, jax.random.key(1),
                                          step_lib.build_schedule(tr, 100)),
                 in_shardings=(shardings, mesh_lib.batch_sharding(mesh), replicated),
                 out_shardings=(shardings, replicated))


def test_loss_decreases_and_one_vs_eight_devices_agree():
  tr = tr_config()
  model = make_model(tr, LAYOUT)
  settings = step_lib.settings_from_config(tr)
  tx = step_lib.build_optimizer(tr, 100)
  batch = moving_square_batch()
  results = {}
  for devices in (1, 8):
    mesh = mesh_lib.make_mesh({"data": -1, "fsdp": 1, "model": 1}, jax.devices()[:devices])
    state = make_state(model, tx, mesh)
    step = jitted_step(model, settings, state, mesh, tr)
    losses = []
    for _ in range(2 if devices == 8 else 12):
      state, metrics = step(state, mesh_lib.shard_batch(batch, mesh), (TOKENIZER, None))
      losses.append(jax.device_get(metrics))
    results[devices] = losses
  one, eight = results[1], results[8]
  for a, b in zip(one[:2], eight):
    for key in ("loss", "msm_loss", "rel_loss", "vid_loss", "grad_norm"):
      np.testing.assert_allclose(a[key], b[key], rtol=2e-4, err_msg=key)
  assert one[-1]["loss"] < 0.8 * one[0]["loss"]
  assert one[-1]["msm_loss"] < one[0]["msm_loss"]
  for m in one:
    assert set(m) >= {"loss", "msm_loss", "msm_accuracy", "rel_loss", "rel_accuracy",
                      "vid_loss", "vid_accuracy", "learning_rate", "grad_norm"}
  np.testing.assert_allclose(one[0]["loss"], 7 * one[0]["msm_loss"] + 0.5 * one[0]["rel_loss"]
                             + 0.5 * one[0]["vid_loss"], rtol=1e-5)


def test_split_negatives_step():
  tr = tr_config(negatives="split")
  model = make_model(tr, LAYOUT)
  settings = step_lib.settings_from_config(tr)
  assert settings.negatives == "split"
  tx = step_lib.build_optimizer(tr, 100)
  mesh = mesh_lib.make_mesh({"data": 1}, jax.devices()[:1])
  state = make_state(model, tx, mesh)
  step = jitted_step(model, settings, state, mesh, tr)
  state, metrics = step(state, mesh_lib.shard_batch(moving_square_batch(), mesh),
                        (TOKENIZER, None))
  metrics = jax.device_get(metrics)
  assert np.isfinite(metrics["loss"]) and metrics["rel_loss"] > 0 and metrics["vid_loss"] > 0


def test_artv_step_and_export_roundtrip(tmp_path):
  tr = tr_config(objective="artv", controls=())
  layout = Layout(TOKENIZER.codebook_size, 12, 6, FRAMES, 4, 4)
  model = make_model(tr, layout)
  settings = step_lib.settings_from_config(tr)
  tx = step_lib.build_optimizer(tr, 100)
  state = mesh_lib.create_sharded_state(trainer.make_init_fn(model, layout, tx, None),
                                        mesh_lib.make_mesh({"data": 1}, jax.devices()[:1]),
                                        init_args=(jax.random.key(0),))
  step = jax.jit(step_lib.make_train_step(model, layout, settings, jax.random.key(1)))
  batch = moving_square_batch()
  first = None
  for _ in range(5):
    state, metrics = step(state, {k: jnp.asarray(v) for k, v in batch.items()},
                          (TOKENIZER, None))
    first = first if first is not None else float(metrics["loss"])
  assert float(metrics["loss"]) < first
  bundle = api.TransformerBundle(params=jax.device_get(state.params), text_encoder=None,
                                 layout=layout, model=model, objective="artv")
  api.save_transformer(str(tmp_path / "transformer" / "export"), bundle, 5, "learned")
  loaded = api.load_transformer(str(tmp_path))
  assert loaded.is_causal and loaded.layout == layout
  logits, cache = loaded.prefill(loaded.params, batch["text_ids"][:2])
  assert logits.shape == (2, TOKENIZER.codebook_size)
  logits, _ = loaded.decode_step(loaded.params, cache, jnp.zeros(2, jnp.int32), 0)
  assert logits.shape == (2, TOKENIZER.codebook_size)
  with pytest.raises(UserError, match="ART-V"):
    loaded.condition(loaded.params, batch["text_ids"][:2])


def test_stage_without_tokenizer_is_a_clear_error(tmp_path):
  import importlib.util
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  spec = importlib.util.spec_from_file_location("shapes_cfg", os.path.join(root, "configs",
                                                                           "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  assert not stage.is_complete(config, str(tmp_path))
  with pytest.raises(UserError, match="run --config.stage=tokenizer first"):
    stage.run(config, str(tmp_path))
  with pytest.raises(UserError, match="run --config.stage=transformer first"):
    api.load_transformer(str(tmp_path))


def test_eval_step_scores_complete_videos_too():
  """`<metric>_unmasked` scores REL/VID with every video token visible; with a mask that keeps
  everything they equal the masked-path metrics, with MMVID's masks they differ."""
  batch = moving_square_batch(seed=1)
  results = {}
  for name, overrides in (("default", {}), ("keep_all", dict(msm_strategy_prob=(1.0, 0, 0, 0),
                                                              msm_bernoulli_keep=(1.0, 1.0)))):
    tr = tr_config(**overrides)
    model = make_model(tr, LAYOUT)
    settings = step_lib.settings_from_config(tr)
    tx = step_lib.build_optimizer(tr, 100)
    mesh = mesh_lib.make_mesh({"data": 1}, jax.devices()[:1])
    state = make_state(model, tx, mesh)
    eval_step = jax.jit(step_lib.make_eval_step(model, LAYOUT, settings))
    results[name] = jax.device_get(eval_step(state.params, batch, (TOKENIZER, None),
                                             jax.random.key(3)))
  for metrics in results.values():
    for key in step_lib.UNMASKED_METRICS:
      assert np.isfinite(metrics[f"{key}_unmasked"]), key
    for key in ("vid_ceiling", "vid_ceiling_unmasked"):
      assert 0.5 <= metrics[key] <= 1.0, key
      assert metrics["vid_accuracy" + key[len("vid_ceiling"):]] <= metrics[key] + 1e-6, key
  keep_all, default = results["keep_all"], results["default"]
  for key in step_lib.UNMASKED_METRICS:
    np.testing.assert_allclose(keep_all[f"{key}_unmasked"], keep_all[key], rtol=1e-5)
  # Same parameters (same init key), same complete videos: the unmasked scores agree across
  # configs, while the masked ones see different inputs.
  np.testing.assert_allclose(default["rel_loss_unmasked"], keep_all["rel_loss_unmasked"],
                             rtol=1e-5)
  assert abs(default["rel_loss"] - default["rel_loss_unmasked"]) > 1e-4


def test_corrupted_tokens_are_inputs_and_targets_in_training_only():
  """`msm_corrupt_prob`: some shown tokens enter the trunk as other codes and are scored like
  masked ones; the VID negative carries the same wrong tokens; evaluation never corrupts."""
  plain = step_lib.settings_from_config(tr_config())
  corrupting = step_lib.settings_from_config(tr_config(msm_corrupt_prob=0.5))
  assert plain.corrupt_prob == 0.0 and corrupting.corrupt_prob == 0.5
  batch = moving_square_batch(seed=2)
  key = jax.random.key(5)
  clean = step_lib.prepare_inputs(LAYOUT, plain, TOKENIZER, None, batch, key)
  noisy = step_lib.prepare_inputs(LAYOUT, corrupting, TOKENIZER, None, batch, key)
  codes, shown = np.asarray(clean["codes"]), np.asarray(clean["keep"])
  np.testing.assert_array_equal(np.asarray(noisy["codes"]), codes)
  still_shown = np.asarray(noisy["keep"])
  assert np.all(still_shown <= shown) and still_shown.sum() < 0.8 * shown.sum()
  corrupted = shown & ~still_shown
  masked = np.asarray(noisy["masked"])
  np.testing.assert_array_equal(masked[still_shown], codes[still_shown])
  assert np.all(masked[~shown] == LAYOUT.mask_id)
  assert np.all(masked[corrupted] != LAYOUT.mask_id)  # a code, not [MASK]
  np.testing.assert_array_equal(np.asarray(noisy["masked_negative"])[corrupted], masked[corrupted])
  # Not in evaluation (train=False) nor in the evaluation settings.
  evaluated = step_lib.prepare_inputs(LAYOUT, corrupting, TOKENIZER, None, batch, key, train=False)
  np.testing.assert_array_equal(np.asarray(evaluated["keep"]), shown)
  np.testing.assert_array_equal(np.asarray(evaluated["masked"]), np.asarray(clean["masked"]))
  assert step_lib.evaluation_settings(corrupting).corrupt_prob == 0.0


def test_vid_skip_identical_drops_pairs_the_model_cannot_tell_apart():
  """A VID negative whose visible tokens equal its positive's is no negative: with
  `vid_skip_identical` it gets no VID loss; evaluation scores every pair either way, and on
  MMVID's masks even when training preserves frames."""
  tr = tr_config()
  model = make_model(tr, LAYOUT)
  plain = step_lib.settings_from_config(tr)
  skipping = step_lib.settings_from_config(tr_config(vid_skip_identical=True))
  assert not plain.vid_skip_identical and skipping.vid_skip_identical
  tx = step_lib.build_optimizer(tr, 100)
  mesh = mesh_lib.make_mesh({"data": 1}, jax.devices()[:1])
  params = make_state(model, tx, mesh).params
  batch = moving_square_batch(seed=2)
  inputs = step_lib.prepare_inputs(LAYOUT, plain, TOKENIZER, None, batch, jax.random.key(5))
  assert inputs["vid_strategy"].shape == (BATCH,)
  assert set(np.asarray(inputs["vid_strategy"]).tolist()) <= {0, 1, 2, 3}
  # Training with preserved frames shows the same mask plus whole frames.
  preserved = step_lib.prepare_inputs(LAYOUT, step_lib.settings_from_config(
      tr_config(msm_preserve_prob=1.0)), TOKENIZER, None, batch, jax.random.key(5))["keep"]
  assert np.all(np.asarray(preserved) >= np.asarray(inputs["keep"]))
  frames = np.asarray(preserved).reshape(BATCH, FRAMES, -1)
  assert np.all(frames.all(axis=2).any(axis=1))  # every sample shows at least one whole frame
  # Every sample shows all its tokens; half the negatives are made identical to the positive.
  keep = jnp.ones_like(inputs["keep"])
  identical = jnp.arange(BATCH) < BATCH // 2
  negative = jnp.where(identical[:, None], inputs["codes"], (inputs["codes"] + 1) % 64)
  inputs = dict(inputs, keep=keep, masked=inputs["codes"], negative_codes=negative,
                masked_negative=negative)
  _, with_all = step_lib.mmvid_loss(model, params, inputs, plain)
  _, skipped = step_lib.mmvid_loss(model, params, inputs, skipping)
  # With every negative identical, nothing is left to score.
  all_same = dict(inputs, masked_negative=inputs["masked"], negative_codes=inputs["codes"])
  _, none_left = step_lib.mmvid_loss(model, params, all_same, skipping)
  _, none_skipped = step_lib.mmvid_loss(model, params, all_same, plain)
  assert float(none_left["vid_loss"]) == 0.0 and float(none_skipped["vid_loss"]) > 0.1
  assert abs(float(skipped["vid_loss"]) - float(with_all["vid_loss"])) > 1e-4
  # MSM and REL are untouched by the flag.
  for key in ("msm_loss", "rel_loss"):
    np.testing.assert_allclose(skipped[key], with_all[key], rtol=1e-6)
  # Evaluation scores every pair on MMVID's masks whatever the training options say.
  preserving = step_lib.settings_from_config(tr_config(msm_preserve_prob=1.0))
  assert preserving.preserve_prob == 1.0
  scores = [jax.device_get(step_lib.make_eval_step(model, LAYOUT, s)(
      params, batch, (TOKENIZER, None), jax.random.key(3))) for s in (plain, skipping, preserving)]
  for other in scores[1:]:
    for key in ("msm_loss", "vid_loss", "rel_loss"):
      np.testing.assert_allclose(scores[0][key], other[key], rtol=1e-6, err_msg=key)


def test_parameter_average_tracks_the_updates_and_is_what_evaluation_uses():
  tr = tr_config(negatives="split", ema_decay=0.5)
  model = make_model(tr, LAYOUT)
  settings = step_lib.settings_from_config(tr)
  tx = step_lib.build_optimizer(tr, 100)
  mesh = mesh_lib.make_mesh({"data": 1}, jax.devices()[:1])
  state = make_state(model, tx, mesh)
  start = jax.device_get(state.params)
  average = jax.device_get(step_lib.evaluation_params(state))
  jax.tree_util.tree_map(np.testing.assert_array_equal, average, start)  # Starts at the params.
  step = jitted_step(model, settings, state, mesh, tr)
  batch = mesh_lib.shard_batch(moving_square_batch(), mesh)
  expected = start
  for t in range(3):
    state, _ = step(state, batch, (TOKENIZER, None))
    params = jax.device_get(state.params)
    rate = 1 - min(0.5, (1 + t) / (10 + t))  # The decay's warm-up, then 0.5.
    expected = jax.tree_util.tree_map(lambda e, p: e + rate * (p - e), expected, params)
  average = jax.device_get(step_lib.evaluation_params(state))
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                         average, expected)
  changed = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
      lambda a, p, s: bool(np.any(a != p)) and bool(np.any(a != s)), average, params, start))
  assert any(changed)  # Neither the last parameters nor the start.
  # Without the average, evaluation reads the parameters themselves.
  plain = make_state(model, step_lib.build_optimizer(tr_config(), 100), mesh)
  assert step_lib.evaluation_params(plain) is plain.params
