"""The data preview command: HTML page + GIF grid for Shapes (with controls) and video_text."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mmvid_jax.data import preview
from mmvid_jax.errors import UserError
from mmvid_jax.infra import video_io
from tests import fixtures_video_text as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cards(page: str) -> list[str]:
  return re.findall(r'<div class="card">(.*?)</div>', page, flags=re.S)


def test_shapes_page_shows_videos_captions_and_controls(tmp_path):
  from configs import shapes as shapes_config
  config = shapes_config.get_config("tiny")
  config.data.update(source="stream", background="random")
  config.transformer.controls = ("background:shape_4x4",)
  out = str(tmp_path / "preview")
  path = preview.preview(config, out=out, num=4, split="test", workdir=str(tmp_path / "run"))
  page = open(path, encoding="utf-8").read()
  cards = _cards(page)
  assert len(cards) == 4
  examples = preview.collect(config, str(tmp_path / "run"), "test", 4)
  for card, example in zip(cards, examples):
    assert example["caption"] and example["caption"] in card
    assert "background:shape_4x4" in card and "attributes: " in card
  control = np.asarray(video_io.Image.open(os.path.join(out, "control_00_0.png")))
  np.testing.assert_array_equal(control, examples[0]["controls"][0])
  np.testing.assert_array_equal(video_io.read_video(os.path.join(out, "example_00.gif")),
                                examples[0]["video"])
  grid = video_io.read_video(os.path.join(out, "grid.gif"))
  assert grid.shape == (8, 32, 4 * 32 + 3 * 2, 3)
  assert "control slots: background:shape_4x4" in page


def test_video_text_page_builds_the_data_in_the_default_workdir(tmp_path):
  from configs import video_text as video_text_config
  folder = fx.write_folder(str(tmp_path / "videos"))
  config = video_text_config.get_config("tiny")
  config.data.update(manual_dir=folder["root"], split_fractions=(1.0, 0.0, 0.0),
                     build_workers=2)
  out = str(tmp_path / "preview")
  path = preview.preview(config, out=out, num=16, split="train")
  assert os.path.isdir(os.path.join(out, "workdir", "tfds", "video_text"))
  page = open(path, encoding="utf-8").read()
  cards = _cards(page)
  assert len(cards) == len(folder["good"])  # fewer videos than --num: all of them
  # Deterministic pass: the first caption's first sentence (tiny config drops sentences).
  shown = {re.search(r'<p class="t">(.*?)</p>', c).group(1) for c in cards}
  assert shown == {caps[0].split(". ")[0] + "." for caps in folder["good"].values()}
  assert "control slots: none" in page and "control_" not in page
  video = video_io.read_video(os.path.join(out, "example_00.gif"))
  assert video.shape == (4, 32, 32, 3)
  assert os.path.isfile(os.path.join(out, "grid.gif"))


def test_clear_errors(tmp_path):
  from configs import video_text as video_text_config
  config = video_text_config.get_config("tiny")
  with pytest.raises(UserError, match="config.data.manual_dir: is not set"):
    preview.preview(config, out=str(tmp_path / "p"))
  with pytest.raises(UserError, match="--num=0"):
    preview.collect(config, str(tmp_path), "train", 0)


def test_command_prints_one_line_without_traceback(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "mmvid_jax.data.preview", "--config=configs/video_text.py:tiny",
       f"--out={tmp_path / 'p'}"],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "manual_dir" in errors[0]
