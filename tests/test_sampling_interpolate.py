"""Long videos from the sampling command: `--interpolate` (real frames kept, the frames between
generated), the config's `num_clips` / `t_overlap` defaults, and their clear errors."""

import shutil

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from mmvid_jax import configuration
from mmvid_jax import pipeline
from mmvid_jax import sample as sample_cli
from mmvid_jax.errors import ConfigError
from mmvid_jax.infra import video_io
from mmvid_jax.sampling import generate
from mmvid_jax.sampling import inputs
from mmvid_jax.sampling import outputs
from test_sampling_command import CAPTION, exported_workdir, tiny_config  # noqa: F401

NUM_FRAMES = 8  # the tiny Shapes model's clip


def _frames(count: int, size: int = 32) -> np.ndarray:
  """A bright square moving right over a dark background: distinct frames."""
  frames = np.full((count, size, size, 3), 30, np.uint8)
  for t in range(count):
    frames[t, 8:18, 2 + 2 * t:12 + 2 * t] = (220, 60, 40)
  return frames


def _frame_folder(path, frames):
  path.mkdir()
  for t, frame in enumerate(frames):
    Image.fromarray(frame).save(path / f"frame{t:02d}.png")
  return str(path)


@pytest.fixture
def written(monkeypatch):
  """Records the videos the command hands to the writer (the MP4s are lossy)."""
  calls = []
  original = outputs.write_samples

  def spy(directory, results, settings, **kwargs):
    calls.append((results, settings))
    return original(directory, results, settings, **kwargs)

  monkeypatch.setattr(outputs, "write_samples", spy)
  return calls


def test_interpolate_keeps_the_real_frames_at_4x(exported_workdir, tmp_path, written,
                                                 caplog):
  real = _frames(NUM_FRAMES + 2)  # only the model's 8 frames are used
  folder = _frame_folder(tmp_path / "clip", real)
  out = tmp_path / "interp"
  assert sample_cli.main([f"--workdir={exported_workdir}", f"--text={CAPTION}",
                          "--num_samples=1", "--steps=1", f"--interpolate={folder}",
                          f"--out={out}"]) == 0
  assert "first 8 real frame(s)" in caplog.text
  (results, settings), = written
  video = results[0].videos[0]
  assert video.shape == (4 * NUM_FRAMES, 32, 32, 3)  # interp_levels 2 from the config
  # Frame 4i is real frame i through the tokenizer (its tokens are preserved).
  tokenizer = inputs.load_run(exported_workdir).tokenizer
  codes = generate._uint8_to_codes(tokenizer, jnp.asarray(real[None, :NUM_FRAMES]))
  reconstructed = np.asarray(generate._codes_to_uint8(tokenizer, codes))[0]
  diff = np.abs(video[0::4].astype(int) - reconstructed.astype(int))
  assert diff.max() <= 1, diff.max()
  lines = outputs.read_manifest(str(out))
  assert len(lines) == 1
  assert (lines[0]["mode"], lines[0]["interp_levels"], lines[0]["source"]) == (
      "interpolate", 2, folder)
  assert (out / lines[0]["file"]).stat().st_size > 0 and (out / "index.html").is_file()


def test_interpolate_reads_a_video_file_with_one_level(exported_workdir, tmp_path, written):
  path = str(tmp_path / "clip.gif")
  video_io.write_video(path, np.repeat(np.repeat(_frames(NUM_FRAMES), 2, 1), 2, 2), fps=8)
  assert sample_cli.main([f"--workdir={exported_workdir}", "--text=", "--num_samples=1",
                          "--steps=1", f"--interpolate={path}", "--interp_levels=1",
                          f"--out={tmp_path / 'gif'}"]) == 0  # 64 px frames: resized
  (results, settings), = written
  assert results[0].videos.shape == (1, 2 * NUM_FRAMES, 32, 32, 3)
  assert settings["interp_levels"] == 1


def _with_sample(workdir, tmp_path, **sample):
  """A copy of the workdir whose config.json has other `sample` defaults."""
  copy = tmp_path / "workdir"
  shutil.copytree(workdir, copy)
  config = tiny_config()
  config.sample.update(sample)
  configuration.validate(config)
  pipeline.save_resolved_config(config, str(copy))
  return str(copy)


def test_config_long_video_defaults_and_flags(exported_workdir, tmp_path, written):
  workdir = _with_sample(exported_workdir, tmp_path, num_clips=2, t_overlap=6)
  base = [f"--workdir={workdir}", f"--text={CAPTION}", "--num_samples=1", "--steps=1"]
  assert sample_cli.main(base + [f"--out={tmp_path / 'config'}"]) == 0
  assert sample_cli.main(base + ["--num_clips=3", "--t_overlap=7",
                                 f"--out={tmp_path / 'flags'}"]) == 0
  (from_config, config_settings), (from_flags, flag_settings) = written
  assert from_config[0].videos.shape[1] == NUM_FRAMES + 2   # 8 + (2 - 1) * (8 - 6)
  assert (config_settings["mode"], config_settings["num_clips"],
          config_settings["t_overlap"]) == ("extrapolate", 2, 6)
  assert from_flags[0].videos.shape[1] == NUM_FRAMES + 2   # 8 + (3 - 1) * (8 - 7)
  assert (flag_settings["num_clips"], flag_settings["t_overlap"]) == (3, 7)
  assert outputs.read_manifest(str(tmp_path / "flags"))[0]["mode"] == "extrapolate"


def test_default_overlap_keeps_half_the_clip(exported_workdir, tmp_path, written):
  base = [f"--workdir={exported_workdir}", f"--text={CAPTION}", "--num_samples=1", "--steps=1"]
  assert sample_cli.main(base + ["--num_clips=2", f"--out={tmp_path / 'half'}"]) == 0
  (videos, settings), = written
  assert settings["t_overlap"] == NUM_FRAMES // 2
  assert videos[0].videos.shape[1] == NUM_FRAMES + NUM_FRAMES // 2


def _error(capsys, argv):
  assert sample_cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.count("\n") == 0 and err.startswith("error: ") and "Traceback" not in err
  return err


def test_interpolate_clear_errors(exported_workdir, tmp_path, capsys):
  base = [f"--workdir={exported_workdir}", "--text=x"]
  assert "does not exist" in _error(capsys, base + [f"--interpolate={tmp_path / 'no.mp4'}"])
  bad = tmp_path / "bad.mp4"
  bad.write_text("not a video")
  assert "cannot read video" in _error(capsys, base + [f"--interpolate={bad}"])
  text = tmp_path / "notes.txt"
  text.write_text("x")
  assert "not a video file" in _error(capsys, base + [f"--interpolate={text}"])
  empty = tmp_path / "empty"
  empty.mkdir()
  assert "no frame images" in _error(capsys, base + [f"--interpolate={empty}"])
  short = _frame_folder(tmp_path / "short", _frames(3))
  assert "needs at least 4" in _error(capsys, base + [f"--interpolate={short}"])
  folder = _frame_folder(tmp_path / "ok", _frames(NUM_FRAMES))
  assert "cannot be combined" in _error(capsys, base + [f"--interpolate={folder}",
                                                        "--num_clips=3"])
  assert "without --interpolate" in _error(capsys, base + ["--interp_levels=3"])
  assert ">= 1" in _error(capsys, base + [f"--interpolate={folder}", "--interp_levels=0"])
  assert "t_overlap" in _error(capsys, base + ["--num_clips=2", "--t_overlap=8"])


@pytest.mark.parametrize("key,value", [("num_clips", 0), ("t_overlap", 8), ("t_overlap", -2),
                                       ("interp_levels", 0)])
def test_config_checks_long_video_keys(key, value):
  config = tiny_config()
  config.sample[key] = value
  with pytest.raises(ConfigError, match=f"sample.{key}"):
    configuration.validate(config)
