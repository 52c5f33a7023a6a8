"""benchmarks/context_use.py: which tokens count as object tokens, and the accuracies it reports."""

import numpy as np

import script_loader

probe = script_loader.load_script("benchmarks/context_use.py", "context_use")


def test_background_is_each_clips_most_frequent_code():
  codes = np.array([[3, 3, 3, 7, 3], [5, 1, 1, 1, 5]])
  np.testing.assert_array_equal(probe.background_codes(codes), [3, 1])


def test_hidden_accuracy_splits_object_and_background_tokens():
  codes = np.array([[3, 3, 3, 7, 8], [1, 1, 1, 9, 9]])
  predicted = np.array([[3, 0, 3, 7, 0], [1, 1, 1, 9, 2]])
  hidden = np.array([[True, True, False, True, True], [False, True, True, True, True]])
  result = probe.hidden_accuracy(predicted, codes, hidden)
  # Hidden object tokens: 7 (right), 8 (wrong), 9 (right), 9 (wrong).
  assert result["object_count"] == 4 and result["object"] == 0.5
  # Hidden background tokens: 3 (right), 3 (wrong), 1 (right), 1 (right).
  assert result["background_count"] == 4 and result["background"] == 0.75
  # Shown tokens never count, whatever was predicted there.
  nothing = probe.hidden_accuracy(predicted, codes, np.zeros_like(hidden))
  assert nothing["object_count"] == 0 and np.isnan(nothing["object"])
