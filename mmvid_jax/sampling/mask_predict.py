"""MMVID's improved mask-predict (spec §5.2), with usable REL/VID candidate reranking.

Step 0 samples every free token. Step k (1..T-1) keeps `N_free - n[k-1]` tokens chosen without
replacement with probability ∝ their confidence, masks the rest and re-samples only those. Kept
tokens keep their token and their old confidence (never re-scored), as in the official code.

Reranking (our deviation, see docs/sampling.md): each step draws `num_candidates` keep-masks from
the same pre-step state; every candidate is completed independently (no cumulative merge) and,
with `score_on="completed"`, scored by 0.5·σ(REL) + 0.5·σ(VID) on its *completed* video (one
extra forward per candidate, whose vocabulary head XLA drops because it is unused). The official
behaviour, scores from the masked-input pass, is `score_on="masked"`. `dynamic_stop` returns the
best-scoring video seen and stops a sample after `patience` steps without improvement.
"""

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.sampling import common
from mmvid_jax.sampling import schedules

SCORE_ON = ("completed", "masked")


@dataclasses.dataclass(frozen=True)
class MaskPredictConfig:
  steps: int = 20
  num_candidates: int = 1
  dynamic_stop: bool = False
  patience: int = 5
  score_on: str = "completed"
  count_schedule: schedules.ThreePhase = schedules.MMVID_COUNT_SCHEDULE
  noise_schedule: schedules.ThreePhase = schedules.MMVID_NOISE_SCHEDULE
  # Softmax temperature of the token draws (1 = MMVID).
  temperature: float = 1.0

  def __post_init__(self):
    if not self.temperature > 0:
      raise ValueError(f"temperature must be > 0, got {self.temperature}")
    if self.score_on not in SCORE_ON:
      raise ValueError(f"score_on must be one of {SCORE_ON}, got {self.score_on!r}")
    if self.num_candidates < 1 or self.steps < 1 or self.patience < 1:
      raise ValueError("steps, num_candidates and patience must be positive")

  @property
  def needs_scores(self) -> bool:
    return self.num_candidates > 1 or self.dynamic_stop


@flax.struct.dataclass
class MaskPredictState:
  step: jax.Array         # scalar int32: the next step to run
  tokens: jax.Array       # (B, N) current video tokens (all filled)
  confidence: jax.Array   # (B, N) probability each token had when it was last drawn
  best_tokens: jax.Array  # (B, N) what is returned
  best_score: jax.Array   # (B,) score of best_tokens (-inf before any scoring)
  best_step: jax.Array    # (B,) step that produced best_tokens
  done: jax.Array         # (B,) bool: early-stopped samples are frozen


def _vmapped(logits_fn: common.LogitsFn, inputs: jax.Array):
  """logits_fn over a leading candidate axis; a single candidate skips the vmap."""
  if inputs.shape[0] == 1:
    return jax.tree.map(lambda x: x[None], logits_fn(inputs[0]))
  return jax.vmap(logits_fn)(inputs)


def mask_predict(logits_fn: common.LogitsFn, given_tokens: jax.Array, key: jax.Array, *,
                 mask_id: int, preserve_mask=None, config: MaskPredictConfig = MaskPredictConfig()):
  """Decodes (B, N) video tokens. Returns (tokens (B, N) int32, info dict).

  `given_tokens` holds the fixed tokens at `preserve_mask` positions (a static (N,) bool mask or
  None); other entries are ignored. `info` has `score` (B,) (NaN when scores are not computed)
  and `steps` (B,), the number of steps each sample ran.
  """
  batch, num_tokens = given_tokens.shape
  preserve = common.as_preserve_mask(preserve_mask, num_tokens)
  num_free = int((~preserve).sum())
  counts = jnp.asarray(schedules.mmvid_remask_counts(num_free, config.steps, config.count_schedule))
  noise = jnp.asarray(schedules.mmvid_noise_scales(config.steps, config.noise_schedule))
  preserve_j = jnp.asarray(preserve)[None, :]
  given = given_tokens.astype(jnp.int32)

  # Step 0: predict every free token from an all-[MASK] video (given tokens visible).
  inputs = jnp.where(preserve_j, given, mask_id)
  logits, _, _ = logits_fn(inputs)
  drawn, drawn_conf = common.sample_with_confidence(jax.random.fold_in(key, 0), logits, noise[0],
                                                        config.temperature)
  tokens = jnp.where(preserve_j, given, drawn)
  confidence = jnp.where(preserve_j, 1.0, drawn_conf)
  state = MaskPredictState(
      step=jnp.asarray(1, jnp.int32), tokens=tokens, confidence=confidence, best_tokens=tokens,
      best_score=jnp.full((batch,), -jnp.inf, jnp.float32),
      best_step=jnp.zeros((batch,), jnp.int32), done=jnp.zeros((batch,), bool))
  if config.steps == 1 or num_free == 0:
    return tokens, _info(state, config)

  free = ~preserve_j
  num_candidates = config.num_candidates

  def one_step(state: MaskPredictState) -> MaskPredictState:
    step_key = jax.random.fold_in(key, state.step)
    keep_key, draw_key = jax.random.split(step_key)
    num_keep = num_free - counts[state.step - 1]
    keep_keys = jax.random.split(keep_key, num_candidates)
    keep = jax.vmap(lambda k: common.proportional_keep_mask(k, state.confidence, free, num_keep))(
        keep_keys) | preserve_j[None]                                        # (C, B, N)
    inputs = jnp.where(keep, state.tokens[None], mask_id)
    logits, rel, vid = _vmapped(logits_fn, inputs)
    drawn, drawn_conf = common.sample_with_confidence(draw_key, logits, noise[state.step],
                                                          config.temperature)
    cand_tokens = jnp.where(keep, state.tokens[None], drawn)
    cand_conf = jnp.where(keep, state.confidence[None], drawn_conf)

    if config.needs_scores:
      if config.score_on == "completed":
        _, rel, vid = _vmapped(logits_fn, cand_tokens)
      scores = common.combined_score(rel, vid)                               # (C, B)
    else:
      scores = jnp.full((num_candidates, batch), jnp.nan, jnp.float32)
    new_tokens, new_conf, score = select_candidates(cand_tokens, cand_conf, scores)

    if config.dynamic_stop:
      improved = score > state.best_score
      best_tokens = jnp.where(improved[:, None], new_tokens, state.best_tokens)
      best_score = jnp.where(improved, score, state.best_score)
      best_step = jnp.where(improved, state.step, state.best_step)
      stop = state.step - best_step >= config.patience
    else:
      best_tokens, best_score = new_tokens, score
      best_step = jnp.full((batch,), state.step, jnp.int32)
      stop = jnp.zeros((batch,), bool)

    # Samples that already stopped keep their state (the loop runs while any sample is active).
    frozen = state.done
    keep_old = lambda old, new: jnp.where(frozen.reshape(frozen.shape + (1,) * (new.ndim - 1)),
                                          old, new)
    return MaskPredictState(
        step=state.step + 1,
        tokens=keep_old(state.tokens, new_tokens),
        confidence=keep_old(state.confidence, new_conf),
        best_tokens=keep_old(state.best_tokens, best_tokens),
        best_score=keep_old(state.best_score, best_score),
        best_step=keep_old(state.best_step, best_step),
        done=frozen | stop)

  def not_finished(state: MaskPredictState):
    return (state.step < config.steps) & ~jnp.all(state.done)

  state = jax.lax.while_loop(not_finished, one_step, state)
  return state.best_tokens, _info(state, config)


def select_candidates(cand_tokens: jax.Array, cand_conf: jax.Array, scores: jax.Array):
  """Per sample, the candidate with the highest score: (C, B, N), (C, B, N), (C, B) -> (B, N),
  (B, N), (B,). With NaN scores (no scoring) candidate 0 is taken."""
  choice = jnp.argmax(jnp.nan_to_num(scores, nan=-jnp.inf), axis=0)
  pick = lambda x: jnp.take_along_axis(x, choice[None, :, None], axis=0)[0]
  return pick(cand_tokens), pick(cand_conf), jnp.take_along_axis(scores, choice[None], axis=0)[0]


def _info(state: MaskPredictState, config: MaskPredictConfig) -> dict:
  score = state.best_score if config.needs_scores else jnp.full_like(state.best_score, jnp.nan)
  # A sample that stopped early ran best_step + patience steps (+1 for step 0).
  ran = jnp.where(state.done, state.best_step + config.patience, state.step - 1) + 1
  return {"score": score, "steps": jnp.minimum(ran, config.steps).astype(jnp.int32)}


def remask_counts_for(num_tokens: int, steps: int, preserve_mask=None) -> np.ndarray:
  """The re-predicted count per step for a video of `num_tokens` with `preserve_mask` given."""
  preserve = common.as_preserve_mask(preserve_mask, num_tokens)
  return schedules.mmvid_remask_counts(int((~preserve).sum()), steps)
