"""MUGEN split files, caption choice, frame sampling, skipped clips, render command, config."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from mmvid_jax import configuration
from mmvid_jax.data import mugen
from mmvid_jax.data import mugen_data
from mmvid_jax.errors import ConfigError, UserError
from tests import fixtures_mugen as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return fx.write_mugen_tree(str(tmp_path_factory.mktemp("mugen")))


def _data_config(tree, **overrides):
  d = ml_collections.ConfigDict(dict(
      name="mugen", manual_dir=tree["manual_dir"], asset_dir=tree["asset_dir"], root_dir="",
      num_frames=4, frame_step=3, image_size=32, random_start=False,
      use_downsampled_train=False, text_source="both"))
  d.update(overrides)
  return d


def test_split_files_and_clip_paths(tree):
  clips, root = mugen_data.read_split(mugen_data.split_file(tree["manual_dir"], "train"), "",
                                      tree["manual_dir"])
  # The stored data_folder does not exist here: clips resolve under manual_dir's parent.
  assert root == os.path.dirname(tree["manual_dir"])
  assert [c.id for c in clips] == ["walk_0", "fade_1", "shield_2"]
  assert all(os.path.isfile(c.json_path) for c in clips)
  walk = clips[0]
  assert walk.captions[0] == fx.CLIPS["walk"][3] and walk.captions[1:] == tuple(fx.CLIPS["walk"][4])
  assert walk.characters == ("mugen", "monster") and walk.num_frames == 12
  other, _ = mugen_data.read_split(mugen_data.split_file(tree["manual_dir"], "test"), "/elsewhere")
  assert other[0].json_path.startswith("/elsewhere/")


def test_valid_json_is_accepted(tmp_path):
  paths = fx.write_mugen_tree(str(tmp_path), val_name="valid.json")
  assert mugen_data.split_file(paths["manual_dir"], "validation").endswith("valid.json")


def test_missing_manual_dir_and_split_file(tmp_path):
  with pytest.raises(UserError, match="manual_dir.*is not a folder.*mugen-org.github.io"):
    mugen_data.split_file(str(tmp_path / "nowhere"), "train")
  with pytest.raises(UserError, match="val.json / valid.json not found in manual_dir"):
    mugen_data.split_file(str(tmp_path), "validation")
  (tmp_path / "train.json").write_text("{}")
  with pytest.raises(UserError, match="train_downsampled.json.*use_downsampled_train=False"):
    mugen_data.split_file(str(tmp_path), "train", use_downsampled_train=True)


def test_malformed_split_file_names_file_and_field(tmp_path):
  path = tmp_path / "train.json"
  path.write_text(json.dumps({"metadata": {}, "data": [{"video": {"json_file": "a.json"},
                                                         "annotations": [{"text": "x"}]}]}))
  with pytest.raises(UserError, match=r"train.json.*'data\[0\].video.num_frames'"):
    mugen_data.read_split(str(path))
  path.write_text("[")
  with pytest.raises(UserError, match="train.json.*not valid JSON"):
    mugen_data.read_split(str(path))


def test_short_clips_and_clips_without_manual_text_are_skipped_and_counted(tree):
  clips, _ = mugen_data.read_split(mugen_data.split_file(tree["manual_dir"], "train"))
  kept, skipped = mugen_data.usable(clips, 4, 3, "both")  # shield has 4 frames <= 9.
  assert [c.id for c in kept] == ["walk_0", "fade_1"]
  assert skipped == {"too_short": 1, "no_manual_text": 0}
  kept, skipped = mugen_data.usable(clips, 4, 3, "manual")  # fade has no manual caption.
  assert [c.id for c in kept] == ["walk_0"] and skipped == {"too_short": 1, "no_manual_text": 1}
  kept, skipped = mugen_data.usable(clips, 3, 1, "auto")
  assert len(kept) == 3 and skipped == {"too_short": 0, "no_manual_text": 0}
  with pytest.raises(UserError, match="text_source"):
    mugen_data.usable(clips, 4, 3, "human")


def test_caption_choice_per_text_source():
  rng = np.random.default_rng(0)
  draws = lambda source, training: {mugen_data.caption_index(4, source, training, rng)
                                    for _ in range(200)}
  assert draws("auto", True) == {0} and draws("auto", False) == {0}
  assert draws("manual", True) == {1, 2, 3} and draws("manual", False) == {1}
  assert draws("both", True) == {0, 1, 2, 3}
  assert mugen_data.caption_index(1, "both", True, rng) == 0
  with pytest.raises(UserError, match="without manual captions"):
    mugen_data.caption_index(1, "manual", True, rng)


def test_frame_sampling():
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(mugen_data.frame_indices(96, 32, 3, False, rng),
                                np.arange(0, 96, 3))
  starts = {int(mugen_data.frame_indices(12, 4, 3, True, rng)[0]) for _ in range(200)}
  assert starts == {0, 1, 2}  # 12 frames, span 9: the last frame stays <= 11.
  with pytest.raises(UserError, match="too short"):
    mugen_data.frame_indices(9, 4, 3, False, rng)
  same = [mugen_data.frame_indices(96, 4, 3, True, mugen_data.clip_rng(1, 7)) for _ in range(2)]
  np.testing.assert_array_equal(same[0], same[1])


def test_training_captions_follow_text_source(tree):
  assert mugen_data.training_captions(_data_config(tree, text_source="auto")) == [
      fx.CLIPS["walk"][3], fx.CLIPS["fade"][3]]
  assert mugen_data.training_captions(_data_config(tree, text_source="manual")) == \
      fx.CLIPS["walk"][4]


@pytest.mark.parametrize("extension", [".npy", ".gif", ".mp4"])
def test_render_command_writes_each_output_type(tree, tmp_path, extension):
  game_json = os.path.join(os.path.dirname(tree["manual_dir"]), "data", "walk.json")
  out = str(tmp_path / f"clip{extension}")
  assert mugen.main(["render", f"--game_json={game_json}", f"--asset_dir={tree['asset_dir']}",
                     "--image_size=32", "--start=1", "--num_frames=3", "--frame_step=2",
                     f"--out={out}"]) == 0
  expected = mugen.render_clip(game_json, tree["asset_dir"], 32, 1, 3, 2)
  assert expected.shape == (3, 32, 32, 3)
  if extension == ".npy":
    np.testing.assert_array_equal(np.load(out), expected)
  else:
    from mmvid_jax.infra import video_io
    frames = video_io.read_video(out)
    assert frames.shape[1:] == (32, 32, 3) and frames.shape[0] in (1, 2, 3)
    if extension == ".gif":  # Lossless palette of a few flat colours.
      assert np.abs(frames[0].astype(int) - expected[0]).mean() < 8


@pytest.mark.parametrize("args, message", [
    (["--game_json={game}", "--asset_dir={assets}", "--out={tmp}/a.txt"],
     "unknown extension '.txt'"),
    (["--game_json={tmp}/missing.json", "--asset_dir={assets}", "--out={tmp}/a.npy"],
     "missing.json' does not exist"),
    (["--game_json={game}", "--asset_dir={tmp}", "--out={tmp}/a.npy"],
     "sprite 'kenney/.*' not found under asset_dir"),
    (["--game_json={bad}", "--asset_dir={assets}", "--out={tmp}/a.npy"],
     "bad.json': field 'frames\\[0\\].agent' is missing"),
    (["--game_json={game}", "--asset_dir={assets}", "--out={tmp}/a.npy", "--image_size=big"],
     "bad arguments: argument --image_size"),
    (["--game_json={game}", "--asset_dir={assets}", "--out={tmp}/a.npy", "--frame_step=0"],
     "--frame_step must be an integer >= 1"),
    (["--game_json={game}", "--asset_dir={assets}", "--out={tmp}/a.npy", "--num_frames=20"],
     "has 12 frames but"),
    (["--asset_dir={assets}", "--out={tmp}/a.npy"], "bad arguments: .*--game_json"),
])
def test_render_command_errors_are_one_line(tree, tmp_path, capsys, args, message):
  bad = tmp_path / "bad.json"
  data = fx.make_game(num_frames=2)
  del data["frames"][0]["agent"]
  bad.write_text(json.dumps(data))
  values = {"game": os.path.join(os.path.dirname(tree["manual_dir"]), "data", "walk.json"),
            "assets": tree["asset_dir"], "tmp": str(tmp_path), "bad": str(bad)}
  assert mugen.main(["render"] + [a.format(**values) for a in args]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "\n" not in err and "Fix" in err
  assert __import__("re").search(message, err), err


def _config(arg="tiny", **data):
  sys.path.insert(0, ROOT)
  from configs import mugen as mugen_config
  config = mugen_config.get_config(arg)
  config.data.update(data)
  return config


def test_config_sections_match_shapes():
  from configs import shapes as shapes_config
  mugen_cfg, shapes_cfg = _config("default"), shapes_config.get_config()
  for section in ("tokenizer", "transformer", "sample", "evaluate", "mesh"):
    missing = set(shapes_cfg[section].keys()) - set(mugen_cfg[section].keys())
    assert not missing, (section, missing)
  assert mugen_cfg.tokenizer.latent_size == 16 and mugen_cfg.data.num_frames == 16


def test_gpu_variant_changes_only_how_the_model_trains():
  default, gpu = _config("default"), _config("gpu")
  changed = {key for key in default.transformer.keys()
             if default.transformer[key] != gpu.transformer[key]}
  assert changed == {"compute_dtype", "remat", "scan_layers", "batch_size"}
  assert gpu.transformer.compute_dtype == "bfloat16" and not gpu.transformer.remat
  for section in ("data", "tokenizer", "sample", "evaluate", "mesh"):
    assert default[section].to_dict() == gpu[section].to_dict(), section


def test_config_validates_with_the_fixture_and_stops_without_data(tree):
  configuration.validate(_config(manual_dir=tree["manual_dir"], asset_dir=tree["asset_dir"]))
  configuration.validate(_config("default", manual_dir=tree["manual_dir"],
                                 asset_dir=tree["asset_dir"]), num_devices=8)
  with pytest.raises(ConfigError, match="manual_dir: is not set, nor is config.data.asset_dir"):
    configuration.validate(_config())
  with pytest.raises(ConfigError, match="asset_dir: is not set.*mugen-org.github.io"):
    configuration.validate(_config(manual_dir=tree["manual_dir"]))
  with pytest.raises(ConfigError, match="root_dir"):
    configuration.validate(_config(manual_dir=tree["manual_dir"], asset_dir=tree["asset_dir"],
                                   root_dir="/no/such/root"))


def test_main_without_data_stops_with_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "mmvid_jax.main", "--config=configs/mugen.py",
       f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in result.stderr
  for needed in ("manual_dir", "asset_dir", "mugen-org.github.io", "train.json", "kenney"):
    assert needed in errors[0]
