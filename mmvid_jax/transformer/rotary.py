"""3-D rotary position encoding of the video tokens' queries and keys (not in MMVID).

MMVID gives video tokens only summed absolute axial tables (A_t + A_y + A_x). To carry an object
from frame t to frame t+1 one pixel further on, absolute tables must learn that relation anew for
every position pair. Rotating each head's queries and keys by angles proportional to the token's
(t, y, x) makes the score of a query at p and a key at p' depend on p - p' through those
channels, so "look one row up in the previous frame" is one pattern for every position.

`transformer.rotary="video_3d"` (off by default, MMVID's "none") splits each head's channel pairs
in four equal groups: t, y, x and a quarter left unrotated, so content-only matching (video
against caption words, whose keys are not rotated) keeps channels no position can disturb.
Non-video positions ([REL], text, controls, [ST1], [VID], ART-V's prefix) get angle 0 (identity).
The absolute tables stay; this adds to them.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.errors import ConfigError

Array = jax.Array

ROTARY_CHOICES = ("none", "video_3d")
# Frequencies per axis: base ** (-j / pairs). Video grids are short (8-32 positions per axis),
# so a small base spreads the wavelengths over the axis (at 8 pairs: 1 rad to 0.018 rad per step).
ROTARY_BASE = 100.0


@dataclasses.dataclass(frozen=True)
class RotarySpec:
  """Where the video sits in the sequence and how each head's channels are rotated (hashable)."""
  video_start: int          # sequence index of video token 0
  grid: tuple[int, int, int]  # (T, h, w), frame-major raster
  head_dim: int

  def __post_init__(self):
    check_head_dim(self.head_dim)

  @property
  def pairs_per_axis(self) -> int:
    return self.head_dim // 8  # head_dim / 2 pairs, a quarter per axis, a quarter unrotated

  @property
  def rotated_pairs(self) -> int:
    return 3 * self.pairs_per_axis

  def angles(self, length: int) -> np.ndarray:
    """(length, rotated_pairs) float32 angles for sequence positions [0, length)."""
    t, h, w = self.grid
    pairs = self.pairs_per_axis
    frequencies = ROTARY_BASE ** (-np.arange(pairs, dtype=np.float64) / pairs)
    out = np.zeros((length, 3 * pairs), np.float64)
    index = np.arange(length) - self.video_start
    is_video = (index >= 0) & (index < t * h * w)
    video = index[is_video]
    coords = (video // (h * w), (video // w) % h, video % w)
    for axis, coord in enumerate(coords):
      out[is_video, axis * pairs:(axis + 1) * pairs] = coord[:, None] * frequencies[None]
    return out.astype(np.float32)


def rotate(x: Array, angles: Array) -> Array:
  """x (B, S, heads, head_dim) rotated by angles (S, P): channel pairs (i, P + i), i < P."""
  pairs = angles.shape[-1]
  cos = jnp.cos(angles)[None, :, None, :]
  sin = jnp.sin(angles)[None, :, None, :]
  xf = x.astype(jnp.float32)
  first, second, rest = xf[..., :pairs], xf[..., pairs:2 * pairs], xf[..., 2 * pairs:]
  rotated = jnp.concatenate([first * cos - second * sin, first * sin + second * cos, rest],
                            axis=-1)
  return rotated.astype(x.dtype)


def query_key_angles(spec: RotarySpec, num_queries: int, num_keys: int,
                     query_rows: tuple[int, ...] | None, cache_index: Array | None
                     ) -> tuple[Array, Array]:
  """Angles for the queries and the keys of one attention call.

  Keys are positions [0, num_keys) (the whole cache when decoding). Queries are `query_rows`
  when the block computes only some rows, `cache_index + [0, num_queries)` with a KV cache, and
  [0, num_queries) otherwise.
  """
  table = spec.angles(max(num_keys, num_queries))
  key_angles = jnp.asarray(table[:num_keys])
  if query_rows is not None:
    return jnp.asarray(table[np.asarray(query_rows)]), key_angles
  if cache_index is not None:
    full = jnp.asarray(table)
    return jax.lax.dynamic_slice_in_dim(full, cache_index, num_queries, axis=0), key_angles
  return jnp.asarray(table[:num_queries]), key_angles


def check_head_dim(head_dim: int) -> None:
  """A quarter of the channel pairs per axis needs head_dim divisible by 8: ConfigError."""
  if head_dim % 8:
    raise ConfigError("transformer.rotary",
                      f"video_3d needs width / num_heads divisible by 8, got {head_dim}",
                      "change transformer.width or num_heads, or set transformer.rotary='none'")


def validate(name: str) -> str:
  if name not in ROTARY_CHOICES:
    raise ConfigError("transformer.rotary", f"unknown rotary encoding {name!r}",
                      f"use one of {', '.join(ROTARY_CHOICES)}")
  return name
