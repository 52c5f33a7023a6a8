"""The sample gallery (`index.html` from `sampling.outputs.write_samples`, rendered by
`evaluation.gallery`) opened as a local file in headless Chromium: the MP4 videos play and the
condition image shows.

Needs a Chromium binary (Debian: `apt-get install chromium`); skipped when there is none. Slow:
it starts a browser.
"""

import os
import shutil
import subprocess

import numpy as np
from PIL import Image
import pytest

from mmvid_jax.sampling import outputs

pytestmark = pytest.mark.slow

GREEN, MAGENTA, BLUE = (0, 200, 0), (200, 0, 200), (0, 0, 230)


def _chromium() -> str | None:
  for name in ("chromium", "chromium-browser", "google-chrome"):
    path = shutil.which(name)
    if path:
      return path
  return None


def _pixels_near(image: np.ndarray, color, tolerance: int = 40) -> int:
  distance = np.abs(image[..., :3].astype(np.int32) - np.asarray(color)).max(axis=-1)
  return int(np.count_nonzero(distance <= tolerance))


def _screenshot(chromium: str, page: str, tmp_path) -> np.ndarray:
  shot = tmp_path / "shot.png"
  command = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             "--autoplay-policy=no-user-gesture-required",
             f"--user-data-dir={tmp_path / 'profile'}",
             f"--screenshot={shot}", "--window-size=800,400", "--virtual-time-budget=4000",
             "file://" + os.path.abspath(page)]
  result = subprocess.run(command, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
  return np.asarray(Image.open(shot).convert("RGB"))


def test_gallery_renders_videos_in_chromium(tmp_path):
  chromium = _chromium()
  if chromium is None:
    pytest.skip("no Chromium binary on PATH (Debian: apt-get install chromium)")
  # Two solid-colour videos and a solid-colour condition image: each colour on the screenshot
  # shows that file was loaded and drawn (a video that fails to play stays black).
  videos = np.zeros((2, 8, 32, 32, 3), np.uint8)
  videos[0], videos[1] = GREEN, MAGENTA
  control = np.zeros((1, 32, 32, 3), np.uint8)
  control[0] = BLUE
  directory = str(tmp_path / "samples")
  outputs.write_samples(directory, [outputs.PromptResult(
      text="A small red circle is moving north.", videos=videos, controls=control,
      control_labels=("background",))], {"decoder": "mask_predict", "seed": 0})
  image = _screenshot(chromium, os.path.join(directory, outputs.INDEX), tmp_path)
  assert image.std() > 10, "blank screenshot"
  # A 128x128 video box is 16384 pixels; its playback controls cover part of the lower half.
  for name, color in (("sample 0 (mp4)", GREEN), ("sample 1 (mp4)", MAGENTA),
                      ("condition image", BLUE)):
    assert _pixels_near(image, color) > 3000, f"{name} is not drawn"
