"""The Python API (`mmvid_jax.Pipeline`, `mmvid_jax.export_video`) on a tiny exported workdir
(untrained weights, one background control slot), and its clear errors."""

import logging
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import mmvid_jax
from mmvid_jax import configuration
from mmvid_jax import pipeline
from mmvid_jax.errors import UserError
from mmvid_jax.infra import video_io
from tests import test_sampling_command as sampling_fixtures

CAPTIONS = ["A small red circle is moving north.", "A large blue square is moving west."]
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("api_workdir"))
  config = sampling_fixtures.tiny_config()
  configuration.validate(config)
  pipeline.save_resolved_config(config, workdir)
  sampling_fixtures._export_initial_tokenizer(config, workdir)  # pylint: disable=protected-access
  sampling_fixtures._export_initial_transformer(config, workdir)  # pylint: disable=protected-access
  return workdir


@pytest.fixture(scope="module")
def pipe(workdir):
  return mmvid_jax.Pipeline.from_workdir(workdir)


def test_pipeline_describes_the_model(pipe, workdir):
  assert pipe.control_slots == ["background"]
  assert (pipe.num_frames, pipe.image_size) == (8, 32)
  assert pipe.workdir == workdir and pipe.config.data.image_size == 32
  assert "background" in repr(pipe)


def test_text_and_image_give_uint8_videos_per_caption(pipe, tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="mmvid_jax.sample")
  path = tmp_path / "background.png"
  background = np.full((20, 24, 3), 90, np.uint8)  # not 32x32: resized like the command does
  Image.fromarray(background).save(path)
  videos, scores = pipe(text=CAPTIONS, images=[str(path)], num_samples=2, steps=2, candidates=2,
                        cfg=1.0, seed=3, return_scores=True)
  assert videos.shape == (4, 8, 32, 32, 3) and videos.dtype == np.uint8
  assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
  assert "resized" in caplog.text
  # The same seed and the same image given as a PIL image or an array: the same videos.
  again = pipe(text=CAPTIONS, images=[Image.fromarray(background)], num_samples=2, steps=2,
               candidates=2, cfg=1.0, seed=3)
  np.testing.assert_array_equal(videos, again)
  as_array = pipe(text=CAPTIONS, images=[background], num_samples=2, steps=2, candidates=2,
                  cfg=1.0, seed=3)
  np.testing.assert_array_equal(videos, as_array)
  other_seed = pipe(text=CAPTIONS, images=[background], num_samples=2, steps=2, candidates=2,
                    cfg=1.0, seed=4)
  assert not np.array_equal(videos, other_seed)


def test_missing_and_per_caption_controls_and_config_defaults(pipe, caplog):
  caplog.set_level(logging.INFO, logger="mmvid_jax.sample")
  # No image: the background slot is a missing control; defaults from the workdir's config.
  videos = pipe(text="", num_samples=1, decoder="maskgit", steps=2)
  assert videos.shape == (1, 8, 32, 32, 3)
  assert "missing" in caplog.text
  black, white = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
  per_caption = pipe(text=CAPTIONS, images=[[black], [white]], num_samples=1, decoder="maskgit",
                     steps=2, seed=1)
  shared = pipe(text=CAPTIONS, images=[black], num_samples=1, decoder="maskgit", steps=2, seed=1)
  assert per_caption.shape == shared.shape == (2, 8, 32, 32, 3)
  np.testing.assert_array_equal(per_caption[0], shared[0])  # same caption, image and key


def test_export_video_writes_mp4_and_gif(tmp_path):
  video = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
  gif = mmvid_jax.export_video(video, tmp_path / "clip.gif", fps=4)
  mp4 = mmvid_jax.export_video(video[None], str(tmp_path / "clip.mp4"))
  assert video_io.read_video(gif).shape[1:] == (16, 16, 3)
  assert os.path.getsize(mp4) > 0 and video_io.read_video(mp4).shape[0] == 4
  with pytest.raises(UserError, match="extension"):
    mmvid_jax.export_video(video, tmp_path / "clip.avi")
  with pytest.raises(UserError, match="uint8"):
    mmvid_jax.export_video(video.astype(np.float32), tmp_path / "clip.gif")


def test_clear_errors(pipe, workdir, tmp_path):
  cases = [
      (dict(text=["x"], images=[np.zeros((32, 32, 3))]), "uint8"),
      (dict(text=["x"], images=["nope.png", "nope.png"]), "control slot"),
      (dict(text=["x"], images=[str(tmp_path / "nope.png")]), "does not exist"),
      (dict(text=["x"], images=[[None], [None]]), "lists for 1 caption"),
      (dict(text=[1]), "list of captions"),
      (dict(text=[]), "no caption"),
      (dict(text=["x"], steps=0), ">= 1"),
      (dict(text=["x"], batch_size=0), ">= 1"),
      (dict(text=["x"], decoder="ar"), "needs an ART-V"),
      (dict(text=["x"], decoder="maskgit", candidates=3), "candidates"),
      (dict(text=["x"], decoder="beam"), "unknown decoder"),
  ]
  for kwargs, message in cases:
    with pytest.raises(UserError, match=message):
      pipe(**kwargs)
  bad = tmp_path / "bad.png"
  bad.write_text("not an image")
  with pytest.raises(UserError, match="cannot read image"):
    pipe(text=["x"], images=[str(bad)])
  with pytest.raises(UserError, match="does not exist"):
    mmvid_jax.Pipeline.from_workdir(tmp_path / "nowhere")
  with pytest.raises(UserError, match="no config.json"):
    mmvid_jax.Pipeline.from_workdir(tmp_path)
  untrained = tmp_path / "untrained"
  pipeline.save_resolved_config(sampling_fixtures.tiny_config(controls=()), str(untrained))
  with pytest.raises(UserError, match="no trained transformer"):
    mmvid_jax.Pipeline.from_workdir(untrained)
  with pytest.raises(UserError, match="compute dtype"):
    mmvid_jax.Pipeline.from_workdir(workdir, dtype="float16")


def test_import_is_light():
  code = ("import sys, mmvid_jax; assert 'jax' not in sys.modules, 'jax imported'; "
          "assert callable(mmvid_jax.export_video) and 'Pipeline' in dir(mmvid_jax)")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=_ROOT, timeout=120)
  assert result.returncode == 0, result.stderr
