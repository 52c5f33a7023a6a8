"""benchmarks/text_sensitivity.py: caption swaps and the divergence it reports."""

import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax.errors import UserError
import script_loader

probe = script_loader.load_script("benchmarks/text_sensitivity.py", "text_sensitivity")


def test_swaps_replace_one_whole_word_and_keep_punctuation():
  variants = probe.swapped_captions("A big red circle is moving left.",
                                    ["big:small", "left:up", "red:blue"])
  assert variants == [("big -> small", "A small red circle is moving left."),
                      ("left -> up", "A big red circle is moving up."),
                      ("red -> blue", "A big blue circle is moving left."),
                      ("null caption", "")]


@pytest.mark.parametrize("swap, message", [("red", "write OLD:NEW"), (":blue", "write OLD:NEW"),
                                           ("purple:blue", "is not a word")])
def test_bad_swaps_are_user_errors(swap, message):
  with pytest.raises(UserError, match=message):
    probe.swapped_captions("A big red circle.", [swap])


def test_jensen_shannon():
  p = jnp.asarray([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
  q = jnp.asarray([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
  js = np.asarray(probe.jensen_shannon(p, q))
  np.testing.assert_allclose(js, [0.0, np.log(2.0)], atol=1e-6)  # equal; disjoint = ln 2
