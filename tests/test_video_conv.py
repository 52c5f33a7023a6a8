"""The per-block depthwise video convolution (transformer.video_conv; not in MMVID)."""

import dataclasses

from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmvid_jax.errors import ConfigError
from mmvid_jax.transformer import api
from mmvid_jax.transformer import model as model_lib
from mmvid_jax.transformer.model import MMVIDTransformer
from mmvid_jax.transformer.video_conv import VideoConv, VideoConvSpec, separable_conv3d, validate
from mmvid_jax.transformer.vocab import Layout

LAYOUT = Layout(codebook_size=16, text_vocab_size=10, text_len=5, num_frames=3, latent_height=4,
                latent_width=4, num_controls=1)
DIMS = dict(width=32, depth=2, num_heads=2, mlp_dim=64)


def _inputs(batch=2):
  rng = np.random.default_rng(0)
  text = jnp.asarray(rng.integers(1, 10, (batch, 5)))
  controls = jnp.asarray(rng.integers(0, 17, (batch, 1, 4, 4)))
  video = jnp.asarray(rng.integers(0, 17, (batch, LAYOUT.video_len)))
  return text, controls, video


def _apply(model, params, text, controls, video):
  return model.apply({"params": params}, text, controls, video,
                     method=MMVIDTransformer.tokens_to_logits)


@pytest.mark.parametrize("k", [3, 5])
def test_separable_sums_equal_a_grouped_convolution_with_the_outer_product_kernel(k):
  x = jax.random.normal(jax.random.key(0), (2, 3, 5, 4, 6))
  kernels = jax.random.normal(jax.random.key(1), (3, k, 6))
  full = jnp.einsum("ic,jc,kc->ijkc", kernels[0], kernels[1], kernels[2])
  reference = jax.lax.conv_general_dilated(
      x, full.reshape(k, k, k, 1, 6), (1, 1, 1), "SAME",
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"), feature_group_count=6)
  np.testing.assert_allclose(separable_conv3d(x, kernels), reference, atol=1e-4)


def test_only_video_rows_change_and_only_near_the_changed_token():
  spec = VideoConvSpec(video_start=3, grid=(3, 4, 4), kernel=3)
  conv = VideoConv(spec)
  x = jax.random.normal(jax.random.key(0), (1, 3 + 48 + 2, 8))
  params = conv.init(jax.random.key(1), x)
  out = np.asarray(conv.apply(params, x))
  assert not out[:, :3].any() and not out[:, 51:].any() and np.abs(out[:, 3:51]).min() > 0
  # Perturb one channel of video token (t=1, y=0, x=2) (a shift of all channels would vanish in
  # the LayerNorm): only its 3x3x3 neighbourhood moves.
  index = 1 * 16 + 0 * 4 + 2
  moved = np.abs(np.asarray(conv.apply(params, x.at[0, 3 + index, 0].add(1.0))) - out)[0, 3:51]
  changed = {(i // 16, (i // 4) % 4, i % 4) for i in np.flatnonzero(moved.max(-1) > 1e-6)}
  assert changed == {(t, y, xx) for t in (0, 1, 2) for y in (0, 1) for xx in (1, 2, 3)}


def test_a_zero_convolution_is_exactly_the_mmvid_model():
  plain = MMVIDTransformer(LAYOUT, **DIMS)
  conv = MMVIDTransformer(LAYOUT, video_conv=3, **DIMS)
  text, controls, video = _inputs()
  params = nn.unbox(conv.init(jax.random.key(0), text, controls, video,
                              method=MMVIDTransformer.tokens_to_logits)["params"])
  assert params["trunk"]["block_0"]["video_conv"]["kernel"].shape == (3, 3, 32)
  zeroed = jax.tree.map(lambda x: x, params)
  without = jax.tree.map(lambda x: x, params)
  for i in range(2):
    block = dict(params["trunk"][f"block_{i}"])
    zeroed["trunk"][f"block_{i}"] = dict(block, video_conv=jax.tree.map(jnp.zeros_like,
                                                                         block["video_conv"]))
    without["trunk"][f"block_{i}"] = {k: v for k, v in block.items() if k != "video_conv"}
  for a, b in zip(_apply(conv, zeroed, text, controls, video),
                  _apply(plain, without, text, controls, video)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  # The trained-looking (random) convolution does change the predictions.
  assert float(jnp.abs(_apply(conv, params, text, controls, video)[0]
                       - _apply(plain, without, text, controls, video)[0]).max()) > 1e-3


@pytest.mark.parametrize("scan", [False, True])
def test_scan_remat_and_pruning_agree_with_the_plain_forward(scan):
  model = MMVIDTransformer(LAYOUT, video_conv=3, scan_layers=scan, remat=scan, **DIMS)
  text, controls, video = _inputs()
  params = nn.unbox(model.init(jax.random.key(0), text, controls, video,
                               method=MMVIDTransformer.tokens_to_logits)["params"])
  logits, rel, vid = _apply(model, params, text, controls, video)
  cond = model.apply({"params": params}, text, controls, method=MMVIDTransformer.embed_condition)
  pruned = model.apply({"params": params}, cond, video, vocab_passes=0,
                       prune_last_layer=not scan)
  np.testing.assert_allclose(pruned[1], rel, atol=1e-5)
  np.testing.assert_allclose(pruned[2], vid, atol=1e-5)
  assert np.isfinite(np.asarray(logits)).all()


def test_config_validation_and_export():
  assert validate(0) == 0 and validate(3) == 3
  with pytest.raises(ConfigError, match="odd"):
    validate(2)
  with pytest.raises(ConfigError, match="artv"):
    validate(3, "artv")
  with pytest.raises(ConfigError, match="not a kernel size"):
    validate("three")
  tr = ml_collections.ConfigDict(dict(objective="artv", video_conv=3, text_encoder="learned",
                                      activation="gelu", dropout=0.0, scan_layers=False,
                                      remat=False, **DIMS))
  with pytest.raises(ConfigError, match="video_conv"):
    model_lib.make_model(tr, LAYOUT)
  tr.objective = "mmvid"
  model = model_lib.make_model(tr, LAYOUT)
  assert model.video_conv == 3
  _, rebuilt = api.build_model({"layout": dataclasses.asdict(LAYOUT), "objective": "mmvid",
                                "model": api.module_spec(model)})
  assert rebuilt.video_conv == 3
