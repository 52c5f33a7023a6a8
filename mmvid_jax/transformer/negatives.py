"""Negatives for the [REL] and [VID] tasks (spec §4.4-4.5), as pure functions.

REL: the condition block (text + controls) is swapped between batch halves: sample i gets the
condition of sample (i + B/2) mod B. Done over the global batch (see docs/transformer.md).

VID: per sample, one of four pixel-space corruptions of the video (each p = 1/4 by default),
made on frames in [-1, 1] and then re-tokenized by the frozen tokenizer:
0. frame swap: frame j1 becomes frame j2 of another sample of the batch;
1. shuffle: a random non-identity frame permutation;
2. colour: one frame gets c ~ U(-0.5, 0.5) (in [0, 1] units) added to all channels or to one
   channel (4 choices, p = 1/4 each), clamped;
3. affine: one frame warped (rotation +-30 deg, translation +-0.1, scale 0.9-1.1; bilinear,
   reflection padding, align_corners=False, as torch affine_grid/grid_sample).
"""

import math

import jax
import jax.numpy as jnp

from mmvid_jax.errors import ConfigError

VID_STRATEGIES = ("frame_swap", "shuffle", "colour", "affine")


def rel_swap_permutation(batch: int) -> jax.Array:
  """Index of the condition each sample gets in the REL negative: (i + B/2) mod B."""
  if batch % 2:
    raise ConfigError("transformer.batch_size", f"the REL negative swaps batch halves but the "
                      f"batch has {batch} samples", "use an even batch size")
  return (jnp.arange(batch) + batch // 2) % batch


def non_identity_permutation(key: jax.Array, length: int, tries: int = 16) -> jax.Array:
  """A uniformly random permutation that is not the identity (rejection sampling).

  If all `tries` draws are the identity (probability (1/T!)^tries), a cyclic shift is used.
  """
  if length < 2:
    return jnp.arange(length)
  keys = jax.random.split(key, tries)
  perms = jax.vmap(lambda k: jax.random.permutation(k, length))(keys)
  moved = jnp.any(perms != jnp.arange(length)[None], axis=1)
  fallback = (jnp.arange(length) + 1) % length
  return jnp.where(jnp.any(moved), perms[jnp.argmax(moved)], fallback)


def _reflect(coord: jax.Array, size: int) -> jax.Array:
  """torch grid_sample reflection padding (align_corners=False): reflect over [-0.5, size-0.5]."""
  low, span = -0.5, float(size)
  distance = jnp.abs(coord - low)
  flips = jnp.floor(distance / span)
  extra = distance - flips * span
  reflected = jnp.where(jnp.mod(flips, 2) == 0, extra + low, span - extra + low)
  return jnp.clip(reflected, 0, size - 1)


def affine_warp(frame: jax.Array, theta: jax.Array) -> jax.Array:
  """grid_sample(frame, affine_grid(theta)), bilinear, reflection padding; frame (H, W, C)."""
  height, width = frame.shape[0], frame.shape[1]
  xs = (2.0 * jnp.arange(width) + 1.0) / width - 1.0
  ys = (2.0 * jnp.arange(height) + 1.0) / height - 1.0
  grid_x, grid_y = jnp.meshgrid(xs, ys)
  src_x = theta[0, 0] * grid_x + theta[0, 1] * grid_y + theta[0, 2]
  src_y = theta[1, 0] * grid_x + theta[1, 1] * grid_y + theta[1, 2]
  px = _reflect(((src_x + 1.0) * width - 1.0) / 2.0, width)
  py = _reflect(((src_y + 1.0) * height - 1.0) / 2.0, height)
  x0, y0 = jnp.floor(px), jnp.floor(py)
  wx, wy = (px - x0)[..., None], (py - y0)[..., None]
  x0i, y0i = x0.astype(jnp.int32), y0.astype(jnp.int32)
  x1i, y1i = jnp.minimum(x0i + 1, width - 1), jnp.minimum(y0i + 1, height - 1)
  top = frame[y0i, x0i] * (1 - wx) + frame[y0i, x1i] * wx
  bottom = frame[y1i, x0i] * (1 - wx) + frame[y1i, x1i] * wx
  return top * (1 - wy) + bottom * wy


def random_affine_theta(key: jax.Array) -> jax.Array:
  k_angle, k_shift, k_scale = jax.random.split(key, 3)
  angle = jax.random.uniform(k_angle, minval=-math.pi / 6, maxval=math.pi / 6)
  tx, ty = jax.random.uniform(k_shift, (2,), minval=-0.1, maxval=0.1)
  scale = jax.random.uniform(k_scale, minval=0.9, maxval=1.1)
  return scale * jnp.array([[jnp.cos(angle), -jnp.sin(angle), tx],
                            [jnp.sin(angle), jnp.cos(angle), ty]])


def colour_shift(key: jax.Array, frame: jax.Array) -> jax.Array:
  """MMVID's shift c ~ U(-0.5, 0.5) of [0, 1] pixels on all or one channel; frame in [-1, 1]."""
  k_value, k_channel = jax.random.split(key)
  shift = 2.0 * jax.random.uniform(k_value, minval=-0.5, maxval=0.5)  # [0,1] units -> [-1,1]
  choice = jax.random.randint(k_channel, (), 0, 4)  # 0 = all channels, 1..3 = that channel
  channels = jnp.where(choice == 0, jnp.ones(3), jax.nn.one_hot(choice - 1, 3))
  return jnp.clip(frame + shift * channels, -1.0, 1.0)


def vid_negative_plan(key: jax.Array, index: jax.Array, batch: int, num_frames: int,
                      strategy_prob=(0.25, 0.25, 0.25, 0.25)) -> dict:
  """One sample's random choices (shared by the pixel and the code-space construction)."""
  keys = jax.random.split(key, 7)
  return {
      "strategy": jax.random.choice(keys[0], 4, p=jnp.asarray(strategy_prob, jnp.float32)),
      "target": jax.random.randint(keys[1], (), 0, num_frames),
      # 0: a frame (any) of another sample.
      "other": (index + jax.random.randint(keys[2], (), 1, max(batch, 2))) % batch,
      "source_frame": jax.random.randint(keys[3], (), 0, num_frames),
      # 1: a non-identity shuffle.
      "permutation": non_identity_permutation(keys[4], num_frames),
      # 2 / 3: colour shift / affine warp of the target frame.
      "colour_key": keys[5],
      "theta": random_affine_theta(keys[6]),
  }


def _changed_frame(plan: dict, frame: jax.Array) -> jax.Array:
  """The colour-shifted (strategy 2) or warped (otherwise) version of one frame."""
  return jnp.where(plan["strategy"] == 2, colour_shift(plan["colour_key"], frame),
                   affine_warp(frame, plan["theta"]))


def vid_negative(key: jax.Array, video: jax.Array, index: jax.Array, batch_video: jax.Array,
                 strategy_prob=(0.25, 0.25, 0.25, 0.25)) -> tuple[jax.Array, jax.Array]:
  """One sample's negative video (T, H, W, C) in [-1, 1] and its strategy index."""
  plan = vid_negative_plan(key, index, batch_video.shape[0], video.shape[0], strategy_prob)
  target = plan["target"]
  swapped = video.at[target].set(batch_video[plan["other"], plan["source_frame"]])
  shuffled = video[plan["permutation"]]
  edited = video.at[target].set(_changed_frame(plan, video[target]))
  strategy = plan["strategy"]
  out = jnp.where(strategy == 0, swapped, jnp.where(strategy == 1, shuffled, edited))
  return out, strategy


def batch_vid_negatives(key: jax.Array, video: jax.Array,
                        strategy_prob=(0.25, 0.25, 0.25, 0.25)) -> tuple[jax.Array, jax.Array]:
  """(B, T, H, W, C) -> negatives of the same shape, and (B,) strategy indices."""
  keys = jax.random.split(key, video.shape[0])
  return jax.vmap(lambda k, v, i: vid_negative(k, v, i, video, strategy_prob))(
      keys, video, jnp.arange(video.shape[0]))


def batch_vid_negative_codes(key: jax.Array, video: jax.Array, codes: jax.Array, encode_frames,
                             strategy_prob=(0.25, 0.25, 0.25, 0.25)
                             ) -> tuple[jax.Array, jax.Array]:
  """Codes of `batch_vid_negatives(key, video)` without re-encoding whole videos.

  The tokenizer works frame by frame, so a negative's codes are the positive's codes with the
  swapped frame taken from the other sample's codes, the frames permuted, or one edited frame
  re-encoded: B frames go through the encoder instead of B*T. Same key -> same negatives.
  video (B, T, H, W, C) in [-1, 1], codes (B, T, h, w), encode_frames: (B, 1, H, W, C) -> codes.
  """
  batch, num_frames = video.shape[0], video.shape[1]
  keys = jax.random.split(key, batch)
  plans = jax.vmap(lambda k, i: vid_negative_plan(k, i, batch, num_frames, strategy_prob))(
      keys, jnp.arange(batch))
  rows = jnp.arange(batch)
  edited_frames = jax.vmap(_changed_frame)(plans, video[rows, plans["target"]])
  edited_codes = encode_frames(edited_frames[:, None])[:, 0]

  def one(plan, own_codes, edited):
    target = plan["target"]
    swapped = own_codes.at[target].set(codes[plan["other"], plan["source_frame"]])
    shuffled = own_codes[plan["permutation"]]
    edited = own_codes.at[target].set(edited)
    strategy = plan["strategy"]
    return jnp.where(strategy == 0, swapped, jnp.where(strategy == 1, shuffled, edited))

  return jax.vmap(one)(plans, codes, edited_codes), plans["strategy"]
