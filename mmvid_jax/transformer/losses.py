"""Losses and the learning-rate schedule of the transformer stage (spec §4.3-4.6), pure functions.

- MSM: cross-entropy on masked video tokens only, mean over all masked tokens of the batch.
- REL / VID: `sum_i w_i [BCE(s+_i, 1) + BCE(s-_i, 0)] / max(1, sum_i w_i)` with
  w_i = 0 for fully masked samples. MMVID leaves those samples in the VID numerator (a bug,
  spec §10.6); here both REL and VID exclude them from numerator and denominator.
- Total: beta_msm * MSM + beta_rel * REL + beta_vid * VID (7 / 0.5 / 0.5).
- ART-V: (CE_text + CE_control + 7 CE_video) / 9, each a mean over its positions.
"""

import math

import jax
import jax.numpy as jnp
import optax


def msm_loss(logits: jax.Array, targets: jax.Array, keep: jax.Array) -> tuple[jax.Array, ...]:
  """(loss, accuracy, number of masked tokens); logits (B, N, K), targets/keep (B, N)."""
  masked = (~keep).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  count = masked.sum()
  denom = jnp.maximum(count, 1.0)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return (ce * masked).sum() / denom, (correct * masked).sum() / denom, count


def pair_bce_loss(positive: jax.Array, negative: jax.Array,
                  weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(loss, accuracy) of a binary task with positives labelled 1 and negatives 0."""
  weights = weights.astype(jnp.float32)
  per_sample = (optax.sigmoid_binary_cross_entropy(positive, jnp.ones_like(positive))
                + optax.sigmoid_binary_cross_entropy(negative, jnp.zeros_like(negative)))
  denom = jnp.maximum(weights.sum(), 1.0)
  correct = 0.5 * ((positive > 0).astype(jnp.float32) + (negative < 0).astype(jnp.float32))
  return (weights * per_sample).sum() / denom, (weights * correct).sum() / denom


def pair_accuracy_ceiling(positive_tokens: jax.Array, negative_tokens: jax.Array,
                          weights: jax.Array) -> jax.Array:
  """The best accuracy `pair_bce_loss` can report when some negatives are the same input as
  their positive: an identical pair gets at most one of its two answers right."""
  identical = ~jnp.any(positive_tokens != negative_tokens, axis=-1)
  weights = weights.astype(jnp.float32)
  return 1.0 - 0.5 * (weights * identical).sum() / jnp.maximum(weights.sum(), 1.0)


def artv_loss(logits: dict, text_targets: jax.Array, control_targets: jax.Array | None,
              video_targets: jax.Array, video_weight: float = 7.0) -> tuple[jax.Array, dict]:
  """ART-V next-token loss; returns (loss, per-part metrics)."""
  def ce(part, targets):
    return optax.softmax_cross_entropy_with_integer_labels(
        logits[part].astype(jnp.float32), targets).mean()
  text = ce("text", text_targets)
  control = ce("control", control_targets) if "control" in logits else jnp.zeros(())
  video = ce("video", video_targets)
  accuracy = (jnp.argmax(logits["video"], -1) == video_targets).astype(jnp.float32).mean()
  loss = (text + control + video_weight * video) / (2.0 + video_weight)
  return loss, {"ce_text": text, "ce_control": control, "ce_video": video,
                "video_accuracy": accuracy}


def log_warmup_schedule(peak: float, warmup_steps: int, minimum: float = 1e-6):
  """DeepSpeed WarmupLR(log): lr(i) = min + (peak - min) ln(i) / ln(W) for update i in [1, W],
  then constant `peak`; the first update (count 0) uses `minimum` (MMVID, spec §4.6)."""
  def schedule(count):
    i = jnp.asarray(count, jnp.float32)
    frac = jnp.log(jnp.maximum(i, 1.0)) / math.log(max(warmup_steps, 2))
    return minimum + (peak - minimum) * jnp.clip(frac, 0.0, 1.0)
  return schedule


def make_schedule(kind: str, peak: float, warmup_steps: int, total_steps: int,
                  minimum: float = 1e-6):
  if kind == "log_warmup":
    return log_warmup_schedule(peak, warmup_steps, minimum)
  if kind == "cosine":
    return optax.warmup_cosine_decay_schedule(minimum, peak, max(warmup_steps, 1),
                                              max(total_steps, warmup_steps + 1), minimum)
  if kind == "constant":
    return optax.constant_schedule(peak)
  raise ValueError(f"unknown lr schedule {kind!r}")
