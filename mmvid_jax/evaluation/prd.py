"""Precision and recall for distributions (PRD; Sajjadi et al., NeurIPS 2018).

Definitions (the paper's): with a reference (real) distribution P and a learned (generated)
distribution Q over the same discrete support (here: k-means clusters of I3D features),

    alpha(lambda) = sum_w min(lambda * P(w), Q(w))      precision: how much of Q is covered by P
    beta(lambda)  = sum_w min(P(w), Q(w) / lambda)      recall: how much of P is covered by Q

for lambda = tan(angle), angles evenly spaced in (0, pi/2). The curve is summarised by
F_8 (weights recall: "recall-like") and F_1/8 (weights precision: "precision-like"), each the
maximum of F_beta over the curve.

The protocol: 20 k-means clusters fitted on the union of both sets, 1001 angles, 10 runs with
different clusterings, curves averaged, equal set sizes enforced.

Argument order: here `generated` is the evaluated distribution Q and `real` the reference P,
the library convention. MMVID passes the real embeddings as the evaluated set and the fakes as
reference, which swaps the two curves, so MMVID's reported (F8, F1/8) equal our (F_1/8, F_8).
`PRDResult.mmvid_order()` gives the figures in MMVID's order for comparison with its tables;
`prd_mmvid_argument_order` recomputes them with MMVID's literal call (the clustering sees the
sets in the other order, so the two agree up to k-means noise).
"""

import dataclasses

import numpy as np

from mmvid_jax.errors import UserError


def _kmeans_plus_plus(points: np.ndarray, num_clusters: int,
                      rng: np.random.Generator) -> np.ndarray:
  """k-means++ seeding: each new centre drawn proportional to squared distance."""
  centres = [points[rng.integers(len(points))]]
  closest = np.sum((points - centres[0]) ** 2, axis=1)
  for _ in range(1, num_clusters):
    total = closest.sum()
    if total <= 0:  # every point coincides with a centre: any draw is as good
      index = rng.integers(len(points))
    else:
      index = rng.choice(len(points), p=closest / total)
    centres.append(points[index])
    closest = np.minimum(closest, np.sum((points - points[index]) ** 2, axis=1))
  return np.stack(centres)


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
  return (np.sum(points ** 2, axis=1, keepdims=True) - 2.0 * points @ centres.T
          + np.sum(centres ** 2, axis=1)[None, :])


def kmeans(points: np.ndarray, num_clusters: int, rng: np.random.Generator,
           num_init: int = 10, max_iterations: int = 100, tolerance: float = 1e-6) -> np.ndarray:
  """Lloyd's k-means with k-means++ seeding, best of `num_init` seedings; returns labels."""
  points = np.asarray(points, np.float64)
  best_labels, best_inertia = None, np.inf
  for _ in range(num_init):
    centres = _kmeans_plus_plus(points, num_clusters, rng)
    previous = np.inf
    for _ in range(max_iterations):
      distances = _squared_distances(points, centres)
      labels = np.argmin(distances, axis=1)
      inertia = float(np.take_along_axis(distances, labels[:, None], axis=1).sum())
      for k in range(num_clusters):
        members = points[labels == k]
        if len(members):  # an empty cluster keeps its centre
          centres[k] = members.mean(axis=0)
      if previous - inertia <= tolerance * max(abs(previous), 1.0):
        break
      previous = inertia
    if inertia < best_inertia:
      best_labels, best_inertia = labels, inertia
  return best_labels


def cluster_histograms(generated: np.ndarray, real: np.ndarray, num_clusters: int,
                       rng: np.random.Generator,
                       num_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """Clusters the union and returns each set's normalised histogram over the clusters."""
  labels = kmeans(np.concatenate([generated, real]), num_clusters, rng, num_init=num_init)
  generated_labels, real_labels = labels[:len(generated)], labels[len(generated):]
  generated_dist = np.bincount(generated_labels, minlength=num_clusters) / len(generated)
  real_dist = np.bincount(real_labels, minlength=num_clusters) / len(real)
  return generated_dist, real_dist


def prd_curve(generated_dist: np.ndarray, real_dist: np.ndarray, num_angles: int = 1001,
              epsilon: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
  """(precision, recall) curves of `generated_dist` (Q) against the reference `real_dist` (P)."""
  if not 3 <= num_angles <= 10**6:
    raise UserError(f"PRD needs between 3 and 1e6 angles, got {num_angles}. Fix: use 1001.")
  angles = np.linspace(epsilon, np.pi / 2 - epsilon, num_angles)
  slopes = np.tan(angles)[:, None]
  precision = np.minimum(real_dist[None, :] * slopes, generated_dist[None, :]).sum(axis=1)
  recall = precision / slopes[:, 0]
  # Round-off may push values a hair above 1.
  return np.clip(precision, 0.0, 1.0), np.clip(recall, 0.0, 1.0)


def f_beta(precision: np.ndarray, recall: np.ndarray, beta: float, epsilon: float = 1e-10):
  return (1 + beta ** 2) * precision * recall / (beta ** 2 * precision + recall + epsilon)


@dataclasses.dataclass(frozen=True)
class PRDResult:
  precision: np.ndarray  # (num_angles,) averaged over runs
  recall: np.ndarray
  f_beta: float  # F_8: recall-like
  f_beta_inv: float  # F_1/8: precision-like
  beta: float

  def as_dict(self) -> dict:
    return {"f_8_recall": self.f_beta, "f_1_8_precision": self.f_beta_inv, "beta": self.beta}

  def mmvid_order(self) -> dict:
    """The figures as MMVID reports them (real passed as evaluated set: curves swapped)."""
    return {"mmvid_f8": self.f_beta_inv, "mmvid_f1_8": self.f_beta}


def prd_from_features(real: np.ndarray, generated: np.ndarray, num_clusters: int = 20,
                      num_angles: int = 1001, num_runs: int = 10, beta: float = 8.0,
                      seed: int = 0, num_init: int = 10, enforce_balance: bool = True) -> PRDResult:
  """PRD of `generated` against the reference `real`, both (N, D) feature arrays."""
  real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
  if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
    raise UserError(f"PRD needs two (N, D) feature arrays of the same width, got {real.shape} "
                    f"and {generated.shape}. Fix: extract both with the same network.")
  if enforce_balance and len(real) != len(generated):
    raise UserError(f"PRD compares sets of equal size, got {len(real)} real and "
                    f"{len(generated)} generated. Fix: generate one video per real clip.")
  if len(real) + len(generated) < num_clusters:
    raise UserError(f"PRD with {num_clusters} clusters needs at least {num_clusters} feature "
                    f"vectors, got {len(real) + len(generated)}. "
                    "Fix: evaluate more videos (config.evaluate.num_videos).")
  rng = np.random.default_rng(seed)
  precisions, recalls = [], []
  for _ in range(num_runs):
    generated_dist, real_dist = cluster_histograms(generated, real, num_clusters, rng, num_init)
    precision, recall = prd_curve(generated_dist, real_dist, num_angles)
    precisions.append(precision)
    recalls.append(recall)
  precision, recall = np.mean(precisions, axis=0), np.mean(recalls, axis=0)
  return PRDResult(
      precision=precision, recall=recall, beta=beta,
      f_beta=float(np.max(f_beta(precision, recall, beta))),
      f_beta_inv=float(np.max(f_beta(precision, recall, 1.0 / beta))))


def prd_mmvid_argument_order(real: np.ndarray, generated: np.ndarray, **kwargs) -> PRDResult:
  """PRD computed literally as MMVID does: `compute_prd_from_embedding(real_embs, fake_embs)`.

  The library's first argument is the evaluated set and its second the reference, so MMVID
  evaluates the *real* features against the generated ones. The result's `f_beta` is what
  MMVID reports as F8 and `f_beta_inv` its F1/8; in the conventional reading (generated
  evaluated against real) they are F1/8 and F8. Keyword arguments as `prd_from_features`.
  """
  return prd_from_features(real=generated, generated=real, **kwargs)
