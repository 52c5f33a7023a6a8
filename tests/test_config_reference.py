"""docs/config_reference.md documents every key of configs/shapes.py and is up to date."""

import importlib.util
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _generator():
  spec = importlib.util.spec_from_file_location(
      "config_reference", os.path.join(_ROOT, "docs", "config_reference.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_default_key_has_a_meaning_and_a_row():
  generator = _generator()
  config, _ = generator.load_shapes("default")
  keys = list(generator.flatten(config.to_dict()))
  assert len(keys) > 100
  without_meaning = [k for k in keys if not generator.MEANINGS.get(k)]
  assert not without_meaning, f"add a meaning in docs/config_reference.py for {without_meaning}"
  with open(generator.OUTPUT, encoding="utf-8") as f:
    reference = f.read()
  missing = [k for k in keys if f"| `{k}` |" not in reference]
  assert not missing, f"docs/config_reference.md lacks {missing}: run docs/config_reference.py"


def test_reference_is_up_to_date():
  generator = _generator()
  with open(generator.OUTPUT, encoding="utf-8") as f:
    assert f.read() == generator.render(), "run python docs/config_reference.py"
