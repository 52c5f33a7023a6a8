"""benchmarks/vid_ceiling.py: the VID-accuracy ceiling from negatives identical to positives."""

import numpy as np

import script_loader

ceiling = script_loader.load_script("benchmarks/vid_ceiling.py", "vid_ceiling")


def test_identical_pairs_set_the_ceiling_per_kind_and_overall():
  stats = {
      # kinds: frame_swap, frame_swap, colour, colour, colour, affine (fully masked)
      "strategy": np.array([0, 0, 2, 2, 2, 3]),
      "counted": np.array([True, True, True, True, True, False]),
      "changed_visible": np.array([5, 0, 0, 1, 3, 0]),
      "changed_all": np.array([9, 4, 0, 2, 3, 0]),
  }
  table = ceiling.summarise(stats)
  assert set(table) == {"frame_swap", "colour", "all"}  # no counted affine pair, no shuffle
  swap, colour, every = table["frame_swap"], table["colour"], table["all"]
  assert swap["pairs"] == 2 and colour["pairs"] == 3 and every["pairs"] == 5
  assert swap["identical_masked"] == 0.5 and swap["identical_complete"] == 0.0
  assert swap["ceiling_masked"] == 0.75 and swap["ceiling_complete"] == 1.0
  np.testing.assert_allclose(colour["identical_masked"], 1 / 3)
  np.testing.assert_allclose(colour["ceiling_complete"], 1 - (1 / 3) / 2)
  np.testing.assert_allclose(colour["barely_masked"], 2 / 3)  # 0 and 1 changed tokens
  np.testing.assert_allclose(every["ceiling_masked"], 1 - (2 / 5) / 2)
  assert every["median_changed_visible"] == 1.0
