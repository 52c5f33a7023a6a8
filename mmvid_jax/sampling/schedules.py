"""Step schedules for the iterative decoders (static numpy arrays, computed once per shape).

MMVID's improved mask-predict re-predicts `n[k-1]` tokens at step k using a three-phase
schedule (linear, then two constants). MaskGIT masks a cosine-shaped fraction instead.
Both are plain functions of the step count so they can be tested and reused.
"""

import dataclasses
import math

import numpy as np

from mmvid_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class ThreePhase:
  """MMVID's three-phase schedule: linspace(alpha1, beta1, len1), then alpha2 x len2, then alpha3.

  For the remask counts the values are fractions of the free tokens; for the Gumbel-noise
  "temperature" they are the noise scales themselves.
  """
  len1: int
  len2: int
  len3: int
  alpha1: float
  beta1: float
  alpha2: float
  alpha3: float

  @property
  def length(self) -> int:
    return self.len1 + self.len2 + self.len3


# Official `mp_config` defaults (spec §5.2).
MMVID_COUNT_SCHEDULE = ThreePhase(10, 10, 30, 0.9, 0.1, 0.125, 0.0625)
MMVID_NOISE_SCHEDULE = ThreePhase(10, 5, 35, 0.0, 0.0, 0.0, 0.0)


def _phases(schedule: ThreePhase, num_values: int) -> np.ndarray:
  """The schedule's values, the last phase stretched when more values are asked for.

  The official code caps decoding at len1+len2+len3 = 50 steps; we extend the final constant
  phase instead so longer runs stay meaningful (documented in docs/sampling.md).
  """
  len3 = max(schedule.len3, num_values - schedule.len1 - schedule.len2)
  values = np.concatenate([
      np.linspace(schedule.alpha1, schedule.beta1, schedule.len1, dtype=np.float64),
      np.full(schedule.len2, schedule.alpha2, np.float64),
      np.full(len3, schedule.alpha3, np.float64),
  ])
  return values[:num_values]


def mmvid_remask_counts(num_free: int, steps: int,
                        schedule: ThreePhase = MMVID_COUNT_SCHEDULE) -> np.ndarray:
  """Tokens re-predicted at steps 1..steps-1 (int32, length steps-1).

  `n = int(N*linspace(a1, b1, L1)) ++ [max(1, int(N*a2))]*L2 ++ [max(1, int(N*a3))]*L3`,
  computed on the number of free (not preserved) tokens. Every count is clipped to
  [1, num_free] so a tiny video still re-predicts at least one token per step.
  """
  if steps < 1:
    raise UserError(f"mask-predict needs at least 1 step, got {steps}. Fix: pass --steps=20.")
  if num_free < 1:
    return np.zeros((max(steps - 1, 0),), np.int32)
  fractions = _phases(schedule, steps - 1)
  counts = np.empty(steps - 1, np.int64)
  linear = min(schedule.len1, steps - 1)
  counts[:linear] = (num_free * fractions[:linear]).astype(np.int64)
  counts[linear:] = np.maximum(1, (num_free * fractions[linear:]).astype(np.int64))
  return np.clip(counts, 1, num_free).astype(np.int32)


def mmvid_noise_scales(steps: int, schedule: ThreePhase = MMVID_NOISE_SCHEDULE) -> np.ndarray:
  """Gumbel-noise scale tau for steps 0..steps-1 (float32, length steps)."""
  return _phases(schedule, steps).astype(np.float32)


def cosine_mask_ratio(step_fraction):
  """MaskGIT's cosine schedule: fraction of tokens still masked after `step_fraction` of the run."""
  return np.cos(math.pi / 2.0 * np.asarray(step_fraction, np.float64))


def maskgit_masked_counts(num_free: int, steps: int) -> np.ndarray:
  """Tokens left masked after steps 0..steps-1 (int32). The last entry is 0.

  MaskGIT: `floor(N * cos(pi/2 * (t+1)/T))`, kept in [1, previous-1] so every step fixes at
  least one token and some stay masked until the final step.
  """
  if steps < 1:
    raise UserError(f"MaskGIT decoding needs at least 1 step, got {steps}. Fix: pass --steps=12.")
  counts = np.zeros(steps, np.int64)
  if num_free < 1:
    return counts.astype(np.int32)
  remaining = num_free
  for t in range(steps - 1):
    target = int(math.floor(num_free * cosine_mask_ratio((t + 1) / steps)))
    target = max(1, min(remaining - 1, target))
    counts[t] = target
    remaining = target
  counts[-1] = 0
  return counts.astype(np.int32)
