"""benchmarks/code_coverage.py: which held-out object tokens training has shown, and with what."""

import numpy as np

import script_loader

probe = script_loader.load_script("benchmarks/code_coverage.py", "code_coverage")


def test_coverage_counts_codes_by_the_shape_and_colour_training_showed_them_with():
  # Background code 0 in every clip; objects use codes 1-4.
  train_codes = np.array([[0, 0, 0, 1, 2], [0, 0, 0, 3, 3]])
  train_attributes = np.array([[0, 0, 1, 2], [1, 1, 0, 4]])  # (shape, colour, size, direction)
  codes = np.array([[0, 0, 0, 1, 3], [0, 0, 0, 4, 2]])
  attributes = np.array([[0, 1, 0, 0], [1, 0, 1, 1]])
  row = probe.coverage(train_codes, train_attributes, codes, attributes, codebook_size=5)
  assert row["object_tokens"] == 4
  # Code 4 never occurs in training; codes 1 and 2 occur once, code 3 twice: all rare.
  assert row["unseen"] == 0.25 and row["rare"] == 1.0
  # Test token 1 (shape 0, colour 1): training met code 1 with shape 0 and colour 0, so its shape
  # only. Token 3 (shape 0, colour 1): met with shape 1 and colour 1, so its colour only.
  # Token 4: never met. Token 2 (shape 1, colour 0): met with shape 0 and colour 0: colour only.
  assert row["seen_with_shape"] == 0.25
  assert row["seen_with_color"] == 0.5
  assert row["seen_with_both"] == 0.0
  assert row["train_codes_used"] == 3


def test_seen_with_both_is_one_when_the_clips_repeat_training():
  codes = np.array([[5, 5, 1, 2], [6, 6, 6, 3]])
  attributes = np.array([[2, 3, 0, 0], [4, 5, 1, 1]])
  row = probe.coverage(codes, attributes, codes, attributes, codebook_size=8)
  assert row["unseen"] == 0.0 and row["seen_with_both"] == 1.0

