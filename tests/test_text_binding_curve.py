"""benchmarks/text_binding_curve.py: config overrides (the training loop is the trainer's)."""

import ml_collections
import pytest

from mmvid_jax.errors import UserError
import script_loader

curve = script_loader.load_script("benchmarks/text_binding_curve.py", "text_binding_curve")


def test_overrides_parse_literals_keep_types_and_add_new_keys():
  section = ml_collections.ConfigDict({"learning_rate": 1e-3, "num_heads": 2,
                                       "dense_init": "normal", "text_summary": False})
  section.lock()
  curve.apply_overrides(section, ["learning_rate=3e-4", "num_heads=4", "dense_init=lecun",
                                  "text_summary=True", "msm_strategy_prob=(0.4, 0.4, 0.1, 0.1)",
                                  "position_init=sincos"])
  assert section.learning_rate == 3e-4 and section.num_heads == 4
  assert section.dense_init == "lecun" and section.text_summary is True
  assert tuple(section.msm_strategy_prob) == (0.4, 0.4, 0.1, 0.1)
  assert section.position_init == "sincos"  # a key the section did not have
  curve.apply_overrides(section, ["learning_rate=1"])
  assert isinstance(section.learning_rate, float)


@pytest.mark.parametrize("bad", ["learning_rate", "=3"])
def test_malformed_overrides_are_user_errors(bad):
  with pytest.raises(UserError, match="KEY=VALUE"):
    curve.apply_overrides(ml_collections.ConfigDict({"learning_rate": 1e-3}), [bad])
