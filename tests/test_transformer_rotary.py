"""3-D rotary encoding of video queries and keys (transformer.rotary="video_3d")."""

from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmvid_jax.errors import ConfigError
from mmvid_jax.transformer import model as model_lib
from mmvid_jax.transformer import rotary
from mmvid_jax.transformer.model import MMVIDTransformer
from mmvid_jax.transformer.vocab import Layout

LAYOUT = Layout(codebook_size=16, text_vocab_size=10, text_len=3, num_frames=3, latent_height=4,
                latent_width=5)
SPEC = rotary.RotarySpec(video_start=LAYOUT.video_slice.start, grid=(3, 4, 5), head_dim=16)


def test_angles_are_zero_outside_the_video_and_follow_t_y_x_inside():
  angles = SPEC.angles(LAYOUT.seq_len)
  start = LAYOUT.video_slice.start
  assert angles.shape == (LAYOUT.seq_len, 6)  # 16 / 2 pairs: 2 per axis rotated, 2 not
  assert not angles[:start].any()  # [REL], text, [ST1], [VID]
  # Video token (t=2, y=1, x=3): its t, y and x groups are multiples of the same frequencies.
  token = start + 2 * 20 + 1 * 5 + 3
  frequencies = angles[start + 1 * 20, 0:2]  # t = 1, y = x = 0
  np.testing.assert_allclose(angles[token, 0:2], 2 * frequencies, rtol=1e-6)
  np.testing.assert_allclose(angles[token, 2:4], 1 * frequencies, rtol=1e-6)
  np.testing.assert_allclose(angles[token, 4:6], 3 * frequencies, rtol=1e-6)
  assert frequencies[0] == 1.0 and 0 < frequencies[1] < 1


def test_rotated_scores_depend_on_the_offset_between_video_positions_only():
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
  angles = SPEC.angles(LAYOUT.seq_len)
  start = LAYOUT.video_slice.start

  def score(query_pos, key_pos):  # positions as (t, y, x)
    index = lambda t, y, x: start + t * 20 + y * 5 + x
    rq = rotary.rotate(q, jnp.asarray(angles[[index(*query_pos)]]))
    rk = rotary.rotate(k, jnp.asarray(angles[[index(*key_pos)]]))
    return float(jnp.sum(rq * rk))

  # The same offset (one frame later, one row down, two columns right) anywhere in the grid.
  base = score((1, 1, 2), (0, 0, 0))
  assert score((2, 3, 4), (1, 2, 2)) == pytest.approx(base, abs=1e-5)
  assert score((2, 2, 3), (1, 1, 1)) == pytest.approx(base, abs=1e-5)
  # A different offset gives a different score; rotation keeps norms (it is orthogonal).
  assert abs(score((2, 3, 4), (1, 2, 3)) - base) > 1e-3
  rotated = rotary.rotate(q, jnp.asarray(angles[[start + 37]]))
  assert float(jnp.linalg.norm(rotated)) == pytest.approx(float(jnp.linalg.norm(q)), rel=1e-6)
  # The last quarter of the channel pairs is never rotated.
  np.testing.assert_array_equal(np.asarray(rotated)[..., 12:], np.asarray(q)[..., 12:])


def test_rotary_adds_no_parameters_and_changes_the_predictions():
  dims = dict(width=32, depth=2, num_heads=2, mlp_dim=64, dense_init="lecun")
  rng = np.random.default_rng(1)
  text = jnp.asarray(rng.integers(1, 10, (2, 3)))
  video = jnp.asarray(rng.integers(0, 17, (2, LAYOUT.video_len)))
  plain = MMVIDTransformer(LAYOUT, **dims)
  rotated = MMVIDTransformer(LAYOUT, rotary="video_3d", **dims)
  variables = plain.init(jax.random.key(0), text, None, video,
                         method=MMVIDTransformer.tokens_to_logits)
  rot_variables = rotated.init(jax.random.key(0), text, None, video,
                               method=MMVIDTransformer.tokens_to_logits)
  shapes = lambda v: jax.tree_util.tree_map(lambda x: x.shape, nn.unbox(v))
  assert shapes(variables) == shapes(rot_variables)
  out_plain = plain.apply(variables, text, None, video, method=MMVIDTransformer.tokens_to_logits)
  out_rot = rotated.apply(variables, text, None, video, method=MMVIDTransformer.tokens_to_logits)
  assert np.abs(np.asarray(out_plain[0]) - np.asarray(out_rot[0])).max() > 1e-3


def _section(**overrides):
  section = ml_collections.ConfigDict(dict(
      width=32, depth=1, num_heads=2, mlp_dim=64, activation="quick_gelu", dropout=0.0,
      scan_layers=False, remat=False, attention="xla"))
  section.update(overrides)
  return section


def test_bad_rotary_settings_are_config_errors():
  with pytest.raises(ConfigError, match="transformer.rotary.*unknown"):
    model_lib.model_kwargs(_section(rotary="rope"))
  with pytest.raises(ConfigError, match="divisible by 8"):
    model_lib.model_kwargs(_section(rotary="video_3d", width=36, num_heads=3))
  assert model_lib.model_kwargs(_section(rotary="video_3d"))["rotary"] == "video_3d"


@pytest.mark.parametrize("objective", ["mmvid", "artv"])
def test_exports_rebuild_the_rotary_model(objective):
  import dataclasses
  from mmvid_jax.transformer import api
  cls = MMVIDTransformer if objective == "mmvid" else model_lib.ARTVTransformer
  model = cls(LAYOUT, width=32, depth=1, num_heads=2, mlp_dim=64, rotary="video_3d")
  _, rebuilt = api.build_model({"layout": dataclasses.asdict(LAYOUT), "objective": objective,
                                "model": api.module_spec(model)})
  assert rebuilt.rotary == "video_3d" and isinstance(rebuilt, cls)
