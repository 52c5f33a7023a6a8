"""benchmarks/rel_of_generated.py: how the best-of-N pick is scored."""

import numpy as np

import script_loader

probe = script_loader.load_script("benchmarks/rel_of_generated.py", "rel_of_generated")


def test_best_of_picks_each_captions_highest_scoring_candidate():
  correct = np.array([[True, False, False], [False, False, True]])  # (candidates, captions)
  scores = np.array([[0.1, 5.0, -1.0], [2.0, 1.0, 3.0]])
  result = probe.best_of(correct, scores)
  # Caption 0 picks candidate 1 (wrong), caption 1 candidate 0 (wrong), caption 2 candidate 1.
  assert result["best_score"] == 1 / 3
  assert result["first"] == 1 / 3 and result["mean"] == 2 / 6 and result["any"] == 2 / 3
