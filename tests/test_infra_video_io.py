"""Video files: mp4/gif round trips, browser-friendly sizes, tiling, clear errors."""

import os

import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.infra import video_io


def moving_square(frames=6, height=32, width=32):
  """A white square moving right over a coloured background that changes per frame."""
  video = np.zeros((frames, height, width, 3), np.uint8)
  for t in range(frames):
    video[t, ..., t % 3] = 160
    video[t, 8:20, 2 + 2 * t:14 + 2 * t] = 255
  return video


def test_mp4_round_trip_upscales_small_frames(tmp_path):
  video = moving_square(height=32, width=48)
  path = video_io.write_video(str(tmp_path / "clip.mp4"), video, fps=8)
  assert os.listdir(tmp_path) == ["clip.mp4"]  # No temporary file left behind.
  frames = video_io.read_video(path)
  # Short side 32 -> at least 128 with a whole factor of 4.
  assert frames.shape == (6, 128, 192, 3) and frames.dtype == np.uint8
  downsampled = frames[:, 2::4, 2::4].astype(np.int32)  # Centre pixel of each 4x4 block.
  assert np.abs(downsampled - video).mean() < 4.0


def test_mp4_odd_sizes_are_padded_to_even(tmp_path):
  video = moving_square(frames=3, height=31, width=33)
  frames = video_io.read_video(video_io.write_video(str(tmp_path / "odd.mp4"), video,
                                                    min_size=16))
  assert frames.shape == (3, 32, 34, 3)
  assert np.abs(frames[:, :31, :33].astype(np.int32) - video).mean() < 6.0


def test_gif_round_trip_is_exact_for_few_colours(tmp_path):
  video = moving_square()
  path = video_io.write_video(str(tmp_path / "clip.gif"), video, fps=4)
  frames = video_io.read_video(path)
  np.testing.assert_array_equal(frames, video)
  from PIL import Image
  with Image.open(path) as image:
    assert image.info["loop"] == 0 and image.info["duration"] == 250


def test_grayscale_frames_are_written_as_rgb(tmp_path):
  video = moving_square()[..., :1]
  frames = video_io.read_video(video_io.write_video(str(tmp_path / "gray.gif"), video))
  assert frames.shape == (6, 32, 32, 3)


def test_to_uint8_maps_minus_one_one_to_bytes():
  out = video_io.to_uint8(np.array([-1.0, -2.0, 0.0, 1.0, 3.0]))
  np.testing.assert_array_equal(out, [0, 0, 128, 255, 255])
  assert out.dtype == np.uint8


def test_tile_videos_lays_out_a_grid():
  videos = [np.full((2, 4, 5, 3), value, np.uint8) for value in (10, 20, 30)]
  grid = video_io.tile_videos(videos, columns=2, padding=1, pad_value=0)
  assert grid.shape == (2, 4 * 2 + 1, 5 * 2 + 1, 3)
  assert grid[0, 0, 0, 0] == 10 and grid[0, 0, 6, 0] == 20 and grid[0, 5, 0, 0] == 30
  assert grid[0, 4, 0, 0] == 0  # Padding row.
  assert grid[0, 5, 6, 0] == 0  # Empty cell.
  with pytest.raises(ValueError, match="same"):
    video_io.tile_videos([videos[0], np.zeros((2, 4, 4, 3), np.uint8)], columns=2)


def test_errors_name_the_cause_and_fix(tmp_path):
  video = moving_square()
  with pytest.raises(UserError, match="unknown extension '.avi'"):
    video_io.write_video(str(tmp_path / "clip.avi"), video)
  with pytest.raises(UserError, match=r"to_uint8"):
    video_io.write_video(str(tmp_path / "clip.mp4"), video.astype(np.float32))
  with pytest.raises(UserError, match=r"\(T, H, W, 3\)"):
    video_io.write_video(str(tmp_path / "clip.mp4"), video[0])
  with pytest.raises(UserError, match="does not exist"):
    video_io.read_video(str(tmp_path / "missing.mp4"))
  with pytest.raises(UserError, match="unknown extension '.txt'"):
    video_io.read_video(str(tmp_path / "notes.txt"))
  for name in ("broken.mp4", "broken.gif"):
    (tmp_path / name).write_bytes(b"not a video")
    with pytest.raises(UserError, match="could not read"):
      video_io.read_video(str(tmp_path / name))


def test_remote_paths_go_through_a_local_temporary_file(tmp_path, monkeypatch):
  # Treat a local path as remote: the epath copy path runs without a bucket.
  monkeypatch.setattr(video_io, "_is_remote", lambda path: True)
  video = moving_square()
  path = str(tmp_path / "bucket" / "clip.gif")
  video_io.write_video(path, video)
  assert os.listdir(tmp_path / "bucket") == ["clip.gif"]
  np.testing.assert_array_equal(video_io.read_video(path), video)
