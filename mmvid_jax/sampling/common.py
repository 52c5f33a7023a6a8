"""Pieces shared by the decoders: the logits-function type, token draws and rank-based selection."""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# tokens (B, N) int32 with [MASK] at unknown positions -> (logits (B, N, K), rel (B,), vid (B,)).
LogitsFn = Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array]]

# log(0) guard for confidences; far below any real log-probability.
_TINY = 1e-30


def gumbel(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  return jax.random.gumbel(key, shape, dtype)


def sample_with_confidence(key: jax.Array, logits: jax.Array, noise_scale=0.0,
                           temperature: float = 1.0):
  """MMVID's `sample(logits, tau)`: p = softmax(logits / T + tau*g); x ~ Cat(p); returns (x, p[x]).

  With tau = 0 and T = 1 this is plain ancestral sampling (the official default). T < 1
  sharpens the draws (and the confidences that drive re-masking) toward each token's mode.
  """
  noise_key, draw_key = jax.random.split(key)
  logits = logits.astype(jnp.float32) / temperature
  noisy = logits + noise_scale * gumbel(noise_key, logits.shape)
  tokens = jax.random.categorical(draw_key, noisy, axis=-1).astype(jnp.int32)
  probs = jax.nn.softmax(noisy, axis=-1)
  confidence = jnp.take_along_axis(probs, tokens[..., None], axis=-1)[..., 0]
  return tokens, confidence


def ranks_descending(scores: jax.Array) -> jax.Array:
  """Rank of each entry along the last axis, 0 = largest. Ties broken by position."""
  order = jnp.argsort(-scores, axis=-1, stable=True)
  return jnp.argsort(order, axis=-1, stable=True)


def proportional_keep_mask(key: jax.Array, confidence: jax.Array, free: jax.Array,
                           num_keep) -> jax.Array:
  """Chooses `num_keep` free positions per row without replacement with probability ∝ confidence.

  Gumbel-top-k on log-confidence is distributionally identical to torch.multinomial(conf,
  num_keep, replacement=False) (Plackett-Luce). Positions where `free` is False are never
  chosen. `num_keep` may be a traced scalar.
  """
  scores = jnp.log(jnp.maximum(confidence, _TINY)) + gumbel(key, confidence.shape)
  scores = jnp.where(free, scores, -jnp.inf)
  return (ranks_descending(scores) < num_keep) & free


def lowest_k_mask(scores: jax.Array, k) -> jax.Array:
  """True at the k smallest entries of each row (k may be traced)."""
  return ranks_descending(-scores) < k


def combined_score(rel: jax.Array, vid: jax.Array) -> jax.Array:
  """MMVID's candidate score 0.5*sigmoid(REL) + 0.5*sigmoid(VID)."""
  return 0.5 * jax.nn.sigmoid(rel.astype(jnp.float32)) + 0.5 * jax.nn.sigmoid(vid.astype(jnp.float32))


def as_preserve_mask(preserve_mask, num_tokens: int) -> np.ndarray:
  """A static (N,) bool mask of given positions; None means nothing is given."""
  if preserve_mask is None:
    return np.zeros((num_tokens,), bool)
  mask = np.asarray(preserve_mask, bool)
  if mask.shape != (num_tokens,):
    raise ValueError(f"preserve_mask must have shape ({num_tokens},), got {mask.shape}")
  return mask


def frame_preserve_mask(num_frames: int, tokens_per_frame: int, frames) -> np.ndarray:
  """(T*n_f,) bool mask that is True on every token of the listed frames (frame-major layout)."""
  per_frame = np.zeros((num_frames,), bool)
  per_frame[list(frames)] = True
  return np.repeat(per_frame, tokens_per_frame)
