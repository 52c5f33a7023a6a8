"""PRD (Sajjadi et al. 2018): curve definition, mode dropping, argument order."""

import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.evaluation import prd


def test_curve_on_hand_made_distributions():
  # Generated puts all mass on mode 0; the reference splits it over two modes.
  precision, recall = prd.prd_curve(np.array([1.0, 0.0]), np.array([0.5, 0.5]), num_angles=1001)
  assert precision.max() == pytest.approx(1.0, abs=1e-6)  # all generated mass is realistic
  assert recall.max() == pytest.approx(0.5, abs=1e-6)  # only half of the reference is covered
  # Identical distributions reach (1, 1) at lambda = 1 (the middle angle).
  precision, recall = prd.prd_curve(np.array([0.3, 0.7]), np.array([0.3, 0.7]), num_angles=1001)
  assert precision[500] == pytest.approx(1.0, abs=1e-6)
  assert recall[500] == pytest.approx(1.0, abs=1e-6)


def _modes(rng, mode_ids, per_mode, dim=8):
  centres = np.eye(20, dim * 3)[:, :dim * 3] * 20.0
  return np.concatenate([centres[m] + rng.normal(size=(per_mode, dim * 3)) for m in mode_ids])


def test_kmeans_recovers_separated_clusters():
  rng = np.random.default_rng(0)
  points = _modes(rng, range(5), 30)
  labels = prd.kmeans(points, 5, rng, num_init=3)
  for block in range(5):
    assert len(set(labels[block * 30:(block + 1) * 30])) == 1
  assert len(set(labels)) == 5


def test_identical_sets_have_full_precision_and_recall():
  rng = np.random.default_rng(1)
  real = _modes(rng, range(20), 10)
  result = prd.prd_from_features(real, real.copy(), num_runs=2, num_init=2)
  assert result.f_beta == pytest.approx(1.0, abs=1e-3)
  assert result.f_beta_inv == pytest.approx(1.0, abs=1e-3)


def test_dropping_half_the_modes_lowers_recall_not_precision():
  rng = np.random.default_rng(2)
  real = _modes(rng, range(20), 10)
  generated = _modes(rng, range(10), 20)  # same size, covers only modes 0..9
  result = prd.prd_from_features(real, generated, num_runs=3, num_init=2)
  assert result.f_beta_inv > 0.9  # precision-like F_1/8
  assert result.f_beta < 0.6  # recall-like F_8
  # MMVID passes the real set as the evaluated one: the two numbers swap.
  swapped = prd.prd_from_features(generated, real, num_runs=3, num_init=2)
  assert swapped.f_beta == pytest.approx(result.f_beta_inv, abs=0.05)
  assert swapped.f_beta_inv == pytest.approx(result.f_beta, abs=0.05)
  assert result.mmvid_order() == {"mmvid_f8": result.f_beta_inv, "mmvid_f1_8": result.f_beta}


def test_unbalanced_sets_are_rejected():
  with pytest.raises(UserError, match="equal size"):
    prd.prd_from_features(np.zeros((30, 4)), np.zeros((20, 4)))
