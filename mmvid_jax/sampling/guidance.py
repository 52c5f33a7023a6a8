"""Classifier-free guidance from the null caption (an extension: MMVID itself has none, §5.3).

Guided logits are `(1 + s)·cond − s·uncond`: s = 0 is the unguided model exactly, s > 0 pushes
away from what the model predicts without the caption. (This equals `uncond + w·(cond − uncond)`
with w = 1 + s.) The conditional and unconditional passes run as one forward over a doubled
batch. The unconditional condition keeps the visual controls and replaces the caption by the
null caption (all padding), which the model saw through text dropout during training.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mmvid_jax.sampling import common

# (params, video_tokens (B, N), cond) -> (logits (B, N, K), rel (B,), vid (B,)).
TokensToLogits = Callable[[Any, jax.Array, Any], tuple[jax.Array, jax.Array, jax.Array]]


def mix_guidance(cond_logits: jax.Array, uncond_logits: jax.Array, scale) -> jax.Array:
  """(1 + s)·cond − s·uncond."""
  cond_logits = cond_logits.astype(jnp.float32)
  return (1.0 + scale) * cond_logits - scale * uncond_logits.astype(jnp.float32)


def conditional_logits_fn(tokens_to_logits: TokensToLogits, params, cond) -> common.LogitsFn:
  return lambda tokens: tokens_to_logits(params, tokens, cond)


def guided_logits_fn(tokens_to_logits: TokensToLogits, params, cond, null_cond, scale,
                     *, skip_when_zero: bool = True) -> common.LogitsFn:
  """A LogitsFn applying classifier-free guidance with scale `scale`.

  With `skip_when_zero` and a Python scale of 0 the unconditional pass is not run at all.
  REL/VID scores always come from the conditional half.
  """
  if skip_when_zero and isinstance(scale, (int, float)) and scale == 0:
    return conditional_logits_fn(tokens_to_logits, params, cond)
  both_cond = jax.tree.map(lambda c, u: jnp.concatenate([c, u], axis=0), cond, null_cond)

  def logits_fn(tokens):
    batch = tokens.shape[0]
    logits, rel, vid = tokens_to_logits(params, jnp.concatenate([tokens, tokens], axis=0),
                                        both_cond)
    guided = mix_guidance(logits[:batch], logits[batch:], scale)
    return guided, rel[:batch], vid[:batch]

  return logits_fn

