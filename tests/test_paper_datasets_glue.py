"""Glue for the paper datasets (iPER, MUG, Multimodal VoxCeleb): SentencePiece corpora from
the readers, `manual_dir` checked before any work, and batch sizes that do not split over the
devices named with their fix."""

import os
import subprocess
import sys

import pytest

from mmvid_jax import configuration
from mmvid_jax.data import iper_data
from mmvid_jax.data import mug_data
from mmvid_jax.data import text
from mmvid_jax.errors import ConfigError, UserError
from tests import fixtures_iper
from tests import fixtures_mug

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name, variant="tiny", **data):
  import importlib
  config = importlib.import_module(f"configs.{name}").get_config(variant)
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def iper_root(tmp_path_factory):
  """One-frame folders of 7 iPER videos (the corpus needs names only, no frames decoded)."""
  root = str(tmp_path_factory.mktemp("iper"))
  for name in ("001_1_1", "001_1_2", "001_2_1", "002_1_1", "002_1_2", "003_10_2", "004_1_1"):
    fixtures_iper.write_frame_folder(os.path.join(root, "frames_256", name), 1)
  return root


@pytest.fixture(scope="module")
def mug_root(tmp_path_factory):
  return fixtures_mug.write_subjects(str(tmp_path_factory.mktemp("mug")), num_subjects=4,
                                     takes_per_expression=1)


def _assert_sentencepiece_learns(config, lines, workdir):
  tok = text.get_text_tokenizer(config, workdir)
  name = f"{config.data.name}_bpe{config.data.sentencepiece_vocab_size}.model"
  assert tok.model_path == os.path.join(workdir, "text", name) and os.path.exists(tok.model_path)
  assert 0 < tok.vocab_size <= config.data.sentencepiece_vocab_size
  ids = tok.encode(lines, 64)
  assert (ids >= 0).all() and ids.max() < tok.vocab_size and (ids[:, 0] > 0).all()
  # Every training caption survives the round trip (lower-cased, like the model's input).
  assert tok.decode(ids) == [line.lower() for line in lines]


def test_sentencepiece_trains_on_iper_captions(iper_root, tmp_path):
  config = _config("iper", manual_dir=iper_root, text_tokenizer="sentencepiece")
  lines = iper_data.training_captions(config.data)
  assert lines == text.training_captions(config)
  # The held-out A-pose videos of the drawn persons are not in the corpus.
  held_out = iper_data.validation_keys(
      [v.key for v in iper_data.scan(iper_root)[0]], config.data.validation_persons,
      config.data.split_seed)
  assert held_out and not {iper_data.caption(k) for k in held_out} & set(lines)
  assert any(line.endswith("is performing random pose. fast speed.") for line in lines)
  _assert_sentencepiece_learns(config, sorted(set(lines)), str(tmp_path))


def test_sentencepiece_trains_on_mug_captions(mug_root, tmp_path):
  config = _config("mug", manual_dir=mug_root, text_tokenizer="sentencepiece")
  lines = mug_data.training_captions(config.data)
  assert lines == text.training_captions(config)
  assert {f"A person shows {noun}." for noun in ("anger", "happiness", "no emotion")} <= set(lines)
  _assert_sentencepiece_learns(config, sorted(set(lines)), str(tmp_path))


def test_datasets_without_a_corpus_name_the_ones_with_one():
  config = _config("iper", text_tokenizer="sentencepiece")
  config.data.name = "kinetics"
  with pytest.raises(UserError, match=r"no caption corpus for dataset 'kinetics'.*'iper'.*'mug'"):
    text.training_captions(config)


@pytest.mark.parametrize("name, layout", [("iper", iper_data.LAYOUT), ("mug", mug_data.LAYOUT)])
def test_manual_dir_is_checked_before_work(name, layout, tmp_path, iper_root, mug_root):
  config = _config(name)
  with pytest.raises(ConfigError, match="config.data.manual_dir: is not set") as info:
    configuration.validate(config)
  assert layout in str(info.value) and "Fix: pass --config.data.manual_dir=" in str(info.value)
  config.data.manual_dir = str(tmp_path / "missing")
  with pytest.raises(ConfigError, match="does not exist.*Fix: point it at your copy"):
    configuration.validate(config)
  config.data.manual_dir = str(tmp_path)
  with pytest.raises(ConfigError, match=f"folder '{tmp_path}' is empty"):
    configuration.validate(config)
  config.data.manual_dir = iper_root if name == "iper" else mug_root
  configuration.validate(config)
  config.data.text_tokenizer = "clip"
  with pytest.raises(ConfigError, match="config.data.text_tokenizer: unknown value 'clip'"):
    configuration.validate(config)


def test_dataset_settings_are_checked_before_work(iper_root, mug_root):
  with pytest.raises(UserError, match="config.data.eval_speed: 'quick' is unknown"):
    configuration.validate(_config("iper", manual_dir=iper_root, eval_speed="quick"))
  with pytest.raises(UserError, match="config.data.split_fractions"):
    configuration.validate(_config("mug", manual_dir=mug_root, split_fractions=(0.5, 0.1, 0.1)))


@pytest.mark.parametrize("name", ["iper", "mug"])
def test_main_without_manual_dir_stops_with_one_line(name, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "mmvid_jax.main", f"--config=configs/{name}.py",
       f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, result.stderr
  assert "config.data.manual_dir: is not set" in errors[0]
  assert "Fix: pass --config.data.manual_dir=<a folder of" in errors[0]
  assert not os.listdir(tmp_path)  # Nothing was written before the check.


def test_mmvoxceleb_batch_20_on_8_devices_names_the_fix():
  """MMVID's batch 20 (kept as the default) does not split over 8 devices; the error says how."""
  config = _config("mmvoxceleb", "text_mask")
  assert config.transformer.batch_size == 20
  with pytest.raises(ConfigError) as info:
    configuration.validate(config, num_devices=8)
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith("config.transformer.batch_size: 20 is not divisible by the 8 devices")
  assert "--config.transformer.batch_size=24" in message
  assert "--config.mesh.model=2 (data = 4)" in message
  # Either fix passes the batch check (and then stops at the unset manual_dir).
  for fix in (dict(batch_size=24), None):
    fixed = _config("mmvoxceleb", "text_mask")
    if fix:
      fixed.transformer.update(fix)
    else:
      fixed.mesh.model = 2
    with pytest.raises(ConfigError, match="config.data.manual_dir: is not set"):
      configuration.validate(fixed, num_devices=8)
  # 4 devices split 20 as they are.
  with pytest.raises(ConfigError, match="config.data.manual_dir"):
    configuration.validate(_config("mmvoxceleb", "text_mask"), num_devices=4)


def test_batch_message_without_a_mesh_fix():
  """An explicit data axis gets only the batch-size fix (no model axis to suggest)."""
  config = _config("shapes", "tiny")
  config.transformer.batch_size = 6
  config.mesh.data = 4
  with pytest.raises(ConfigError, match=r"6 is not divisible by the 4 devices.*batch_size=8 "
                                        r"\(a multiple of 4\)\.$"):
    configuration.validate(config, num_devices=4)
