"""MSM masking (spec §4.2) as pure per-sample functions; `keep = True` means the token is shown.

MMVID draws one of four strategies per sample (default 0.7/0.1/0.1/0.1):
0. Bernoulli: keep-probability rho ~ U(a, b) (default a = b = 0.2), each token kept i.i.d.;
1. full mask;
2. box inside: one torchvision-RandomErasing box (area 0.2-0.8 of the frame grid, aspect
   0.5-2, up to 10 tries, else no box) shared by all frames, masked inside;
3. box outside: the same box kept, everything else masked.
MMVID's optional preservation control (`pc_prob`, 0 in every released script; here
`msm_preserve_prob`): with that probability a sample also shows t_o ~ U{1..T/2} whole frames,
chosen at random, on top of its mask, so the model practises completing a video from some of
its frames (prediction, interpolation).
`mask_ratio_schedule="cosine"` instead masks ceil(cos(pi/2 * r) * N) random tokens, r ~ U(0, 1)
(MaskGIT). A sample is "fully masked" when no token is kept (REL/VID exclude those samples).
"""

import math

import jax
import jax.numpy as jnp

STRATEGIES = ("bernoulli", "full", "box_inside", "box_outside")


def erasing_box(key: jax.Array, height: int, width: int, scale=(0.2, 0.8), ratio=(0.5, 2.0),
                tries: int = 10) -> jax.Array:
  """torchvision RandomErasing(p=1) box on an (height, width) grid -> bool (h, w), True inside.

  Each try draws an area fraction ~ U(scale) and a log-uniform aspect ratio; the box size is
  round(sqrt(area * aspect)) x round(sqrt(area / aspect)) and is accepted only when strictly
  smaller than the grid. The first accepted try wins; if none is, nothing is erased.
  """
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = height * width * jax.random.uniform(k_area, (tries,), minval=scale[0], maxval=scale[1])
  aspect = jnp.exp(jax.random.uniform(k_ratio, (tries,), minval=math.log(ratio[0]),
                                      maxval=math.log(ratio[1])))
  box_h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
  box_w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
  valid = (box_h < height) & (box_w < width)
  first = jnp.argmax(valid)
  box_h, box_w, found = box_h[first], box_w[first], valid[first]
  # Top-left uniform in [0, H - h] x [0, W - w].
  top = jnp.floor(jax.random.uniform(k_y) * (height - box_h + 1)).astype(jnp.int32)
  left = jnp.floor(jax.random.uniform(k_x) * (width - box_w + 1)).astype(jnp.int32)
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  inside = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
  return inside & found


def mmvid_keep_mask(key: jax.Array, num_frames: int, height: int, width: int,
                    strategy_prob=(0.7, 0.1, 0.1, 0.1), bernoulli_keep=(0.2, 0.2)
                    ) -> tuple[jax.Array, jax.Array]:
  """One sample's keep mask (T*h*w,) and its strategy index, MMVID's 4-way mixture."""
  k_strategy, k_rho, k_tokens, k_box = jax.random.split(key, 4)
  n = num_frames * height * width
  strategy = jax.random.choice(k_strategy, 4, p=jnp.asarray(strategy_prob, jnp.float32))
  rho = jax.random.uniform(k_rho, minval=bernoulli_keep[0], maxval=bernoulli_keep[1])
  bernoulli = jax.random.uniform(k_tokens, (n,)) < rho
  box = jnp.broadcast_to(erasing_box(k_box, height, width), (num_frames, height, width))
  box = box.reshape(n)
  options = jnp.stack([bernoulli, jnp.zeros((n,), bool), ~box, box])
  return options[strategy], strategy


def cosine_keep_mask(key: jax.Array, num_tokens: int) -> jax.Array:
  """MaskGIT: mask ceil(cos(pi/2 * r) * N) uniformly chosen tokens, r ~ U(0, 1)."""
  k_ratio, k_order = jax.random.split(key)
  ratio = jnp.cos(0.5 * jnp.pi * jax.random.uniform(k_ratio))
  num_masked = jnp.clip(jnp.ceil(ratio * num_tokens), 1, num_tokens)
  rank = jnp.argsort(jnp.argsort(jax.random.uniform(k_order, (num_tokens,))))
  return rank >= num_masked


def preserved_frames(key: jax.Array, num_frames: int, preserve_prob: float) -> jax.Array:
  """(T,) bool: with probability `preserve_prob`, t_o ~ U{1..T/2} frames chosen at random
  (MMVID's `pc_prob`); otherwise none."""
  k_use, k_count, k_order = jax.random.split(key, 3)
  count = jax.random.randint(k_count, (), 1, max(num_frames // 2, 1) + 1)
  rank = jnp.argsort(jnp.argsort(jax.random.uniform(k_order, (num_frames,))))
  return (rank < count) & (jax.random.uniform(k_use) < preserve_prob)


def batch_keep_mask(key: jax.Array, batch: int, num_frames: int, height: int, width: int,
                    schedule: str = "mmvid", strategy_prob=(0.7, 0.1, 0.1, 0.1),
                    bernoulli_keep=(0.2, 0.2), preserve_prob: float = 0.0) -> jax.Array:
  """(B, T*h*w) keep masks, one independent draw per sample."""
  keys = jax.random.split(key, batch)
  if schedule == "cosine":
    keep = jax.vmap(lambda k: cosine_keep_mask(k, num_frames * height * width))(keys)
  else:
    keep, _ = jax.vmap(lambda k: mmvid_keep_mask(k, num_frames, height, width, strategy_prob,
                                                 bernoulli_keep))(keys)
  if not preserve_prob:
    return keep
  frames = jax.vmap(lambda k: preserved_frames(jax.random.fold_in(k, 7), num_frames,
                                               preserve_prob))(keys)
  shown = jnp.repeat(frames, height * width, axis=1)  # frame-major token order
  return keep | shown


def corrupt_shown_tokens(key: jax.Array, codes: jax.Array, keep: jax.Array, corrupt_prob: float
                         ) -> tuple[jax.Array, jax.Array]:
  """(corrupted (B, N) bool, replacement codes (B, N)): each shown token is corrupted with
  probability `corrupt_prob` and replaced by the code at a random position of the batch, so the
  wrong tokens look like real ones (objects' codes included) rather than uniform noise."""
  k_pick, k_source = jax.random.split(key)
  corrupted = keep & (jax.random.uniform(k_pick, keep.shape) < corrupt_prob)
  source = jax.random.randint(k_source, keep.shape, 0, codes.size)
  return corrupted, codes.reshape(-1)[source]


def fully_masked(keep: jax.Array) -> jax.Array:
  """(B,) True where a sample shows no token (its REL/VID pairs carry no signal)."""
  return ~jnp.any(keep, axis=-1)
