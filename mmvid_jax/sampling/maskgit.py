"""MaskGIT decoding (Chang et al. 2022): cosine schedule, lowest-confidence re-masking.

Every step samples all still-masked tokens, then re-masks the least confident of the newly
drawn ones (confidence = log p + annealed Gumbel noise). A token that survives a step is fixed
for good: known tokens get infinite confidence, so they are never re-masked. Given (preserved)
tokens are known from the start.
"""

import dataclasses

import flax
import jax
import jax.numpy as jnp

from mmvid_jax.sampling import common
from mmvid_jax.sampling import schedules


@dataclasses.dataclass(frozen=True)
class MaskGitConfig:
  steps: int = 12
  # Scale of the Gumbel noise added to log-confidence, annealed linearly to 0 over the run.
  choice_temperature: float = 4.5
  # Softmax temperature of the token draws.
  sample_temperature: float = 1.0


@flax.struct.dataclass
class MaskGitState:
  step: jax.Array    # scalar int32
  tokens: jax.Array  # (B, N) with [MASK] where still unknown


def maskgit_decode(logits_fn: common.LogitsFn, given_tokens: jax.Array, key: jax.Array, *,
                   mask_id: int, preserve_mask=None, config: MaskGitConfig = MaskGitConfig(),
                   return_trajectory: bool = False):
  """Decodes (B, N) tokens; returns (tokens (B, N) int32, info dict).

  `info["steps"]` (B,) counts the steps run; with `return_trajectory`, `info["trajectory"]`
  (steps, B, N) holds the tokens after every step ([MASK] where still unknown).
  """
  batch, num_tokens = given_tokens.shape
  preserve = common.as_preserve_mask(preserve_mask, num_tokens)
  num_free = int((~preserve).sum())
  masked_after = jnp.asarray(schedules.maskgit_masked_counts(num_free, config.steps))
  preserve_j = jnp.asarray(preserve)[None, :]
  tokens = jnp.where(preserve_j, given_tokens.astype(jnp.int32), mask_id)

  def one_step(state: MaskGitState, _):
    step_key = jax.random.fold_in(key, state.step)
    draw_key, choice_key = jax.random.split(step_key)
    unknown = state.tokens == mask_id
    logits, _, _ = logits_fn(state.tokens)
    logits = logits.astype(jnp.float32) / config.sample_temperature
    drawn = jax.random.categorical(draw_key, logits, axis=-1).astype(jnp.int32)
    drawn = jnp.where(unknown, drawn, state.tokens)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    drawn_log_prob = jnp.take_along_axis(log_probs, drawn[..., None], axis=-1)[..., 0]
    # Noise annealed to 0: early steps explore, the last ones keep the most confident tokens.
    anneal = config.choice_temperature * (1.0 - (state.step + 1) / config.steps)
    confidence = drawn_log_prob + anneal * common.gumbel(choice_key, drawn_log_prob.shape)
    confidence = jnp.where(unknown, confidence, jnp.inf)
    remask = common.lowest_k_mask(confidence, masked_after[state.step]) & unknown
    new_tokens = jnp.where(remask, mask_id, drawn)
    return MaskGitState(step=state.step + 1, tokens=new_tokens), (
        new_tokens if return_trajectory else None)

  state = MaskGitState(step=jnp.asarray(0, jnp.int32), tokens=tokens)
  info = {"score": jnp.full((batch,), jnp.nan, jnp.float32),
          "steps": jnp.full((batch,), config.steps if num_free > 0 else 0, jnp.int32)}
  if num_free == 0:
    if return_trajectory:
      info["trajectory"] = jnp.broadcast_to(tokens, (config.steps,) + tokens.shape)
    return tokens, info
  state, trajectory = jax.lax.scan(one_step, state, None, length=config.steps)
  if return_trajectory:
    info["trajectory"] = trajectory
  return state.tokens, info
