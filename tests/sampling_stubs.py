"""Stub `tokens_to_logits` functions for the sampling tests (no trained model needed)."""

import jax
import jax.numpy as jnp

K = 8          # codebook size of the stubs
MASK_ID = K    # [MASK] = K, as in the transformer's Layout


def make_stub(num_tokens: int, seed: int = 0, strength: float = 2.0):
  """tokens (B, N) -> (logits (B, N, K), rel (B,), vid (B,)).

  Logits depend on the position (a fixed random table) and on the visible left neighbour, so
  decoding is input-dependent. REL rewards code 0, VID rewards agreement between neighbours.
  """
  table = strength * jax.random.normal(jax.random.key(seed), (num_tokens, K))

  def tokens_to_logits(tokens):
    visible = tokens != MASK_ID
    left = jnp.roll(jnp.where(visible, tokens, 0), 1, axis=1)
    left_visible = jnp.roll(visible, 1, axis=1)
    logits = table[None] + 1.5 * jax.nn.one_hot(left, K) * left_visible[..., None]
    rel = 8.0 * (jnp.mean((tokens == 0) & visible, axis=1) - 0.2)
    vid = 4.0 * (jnp.mean((tokens == jnp.roll(tokens, 1, axis=1)) & visible, axis=1) - 0.2)
    return logits, rel, vid

  return tokens_to_logits
