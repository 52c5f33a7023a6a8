"""ART-V autoregressive decoding with a KV cache (spec §5.6), one video token per step.

The official baseline re-runs the full sequence for each of the N tokens (no cache) and its
top-k filter is a no-op; here the condition prefix is run once (`prefill`) and every step feeds
one token through the cached trunk (`decode_step`) inside a `lax.fori_loop`. `top_k = 0` and
`temperature = 1` give the official plain categorical sampling.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mmvid_jax.sampling import common
from mmvid_jax.sampling import guidance

# () -> (logits of video token 0 (B, K), cache)
PrefillFn = Callable[[], tuple[jax.Array, Any]]
# (cache, token (B,), index) -> (logits of token index+1 (B, K), cache)
StepFn = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


@dataclasses.dataclass(frozen=True)
class AutoregressiveConfig:
  top_k: int = 0             # 0 = no filtering
  temperature: float = 1.0


def filter_top_k(logits: jax.Array, top_k: int) -> jax.Array:
  """Keeps the `top_k` largest logits of the last axis, -inf elsewhere (0 = keep all)."""
  if top_k <= 0 or top_k >= logits.shape[-1]:
    return logits
  threshold = jax.lax.top_k(logits, top_k)[0][..., -1:]
  return jnp.where(logits >= threshold, logits, -jnp.inf)


def _draw(key, logits, config: AutoregressiveConfig):
  logits = filter_top_k(logits.astype(jnp.float32) / config.temperature, config.top_k)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def autoregressive_decode(prefill_fn: PrefillFn, step_fn: StepFn, num_tokens: int, key: jax.Array,
                          *, given_tokens: jax.Array | None = None, preserve_mask=None,
                          config: AutoregressiveConfig = AutoregressiveConfig()):
  """Samples (B, N) tokens left to right. Preserved positions take `given_tokens` instead of a
  draw (so a given prefix of frames is continued). Returns (tokens, info with `steps`)."""
  preserve = jnp.asarray(common.as_preserve_mask(preserve_mask, num_tokens))
  logits, cache = prefill_fn()
  batch = logits.shape[0]
  given = (jnp.zeros((batch, num_tokens), jnp.int32) if given_tokens is None
           else given_tokens.astype(jnp.int32))
  first = jnp.where(preserve[0], given[:, 0], _draw(jax.random.fold_in(key, 0), logits, config))
  tokens = jnp.zeros((batch, num_tokens), jnp.int32).at[:, 0].set(first)

  def one_step(index, carry):
    tokens, cache = carry
    logits, cache = step_fn(cache, tokens[:, index], index)
    drawn = _draw(jax.random.fold_in(key, index + 1), logits, config)
    drawn = jnp.where(preserve[index + 1], given[:, index + 1], drawn)
    return jax.lax.dynamic_update_slice_in_dim(tokens, drawn[:, None], index + 1, axis=1), cache

  tokens, _ = jax.lax.fori_loop(0, num_tokens - 1, one_step, (tokens, cache))
  info = {"steps": jnp.full((batch,), num_tokens, jnp.int32),
          "score": jnp.full((batch,), jnp.nan, jnp.float32)}
  return tokens, info


def causal_fns(bundle, params, text_ids, control_codes=None, cfg_scale: float = 0.0):
  """(prefill_fn, step_fn) for a causal TransformerBundle, with optional classifier-free guidance.

  With guidance the caption and the null caption (all padding) run as one doubled batch through
  the cache; each step mixes the two halves' logits as `(1 + s)·cond − s·uncond`.
  """
  if cfg_scale == 0:
    prefill_fn = lambda: bundle.prefill(params, text_ids, control_codes)
    step_fn = lambda cache, token, index: bundle.decode_step(params, cache, token, index)
    return prefill_fn, step_fn
  both_text = jnp.concatenate([text_ids, jnp.zeros_like(text_ids)], axis=0)
  both_controls = (None if control_codes is None
                   else jnp.concatenate([control_codes, control_codes], axis=0))
  batch = text_ids.shape[0]

  def mix(logits):
    return guidance.mix_guidance(logits[:batch], logits[batch:], cfg_scale)

  def prefill_fn():
    logits, cache = bundle.prefill(params, both_text, both_controls)
    return mix(logits), cache

  def step_fn(cache, token, index):
    logits, cache = bundle.decode_step(params, cache, jnp.concatenate([token, token]), index)
    return mix(logits), cache

  return prefill_fn, step_fn
