"""Shapes oracle: reads real rendered clips back correctly and is not fooled by wrong ones."""

import numpy as np
import pytest

from mmvid_jax.data import shapes
from mmvid_jax.data import shapes_generator
from mmvid_jax.evaluation import oracle


def _clips(image_size, frames, background, split, count, start=0, motion_grid=0):
  spec = shapes_generator.ShapesSpec(image_size=image_size, clip_frames=frames,
                                     background=background, seed=1234, motion_grid=motion_grid)
  return shapes_generator.generate_clips(spec, split, start, count)


@pytest.mark.parametrize("image_size, frames, background, split, count", [
    (32, 8, "plain", "train", 96),
    (32, 8, "random", "test", 96),
    (64, 16, "plain", "test", 24),
    (64, 16, "random", "train", 24),
])
def test_oracle_reads_real_clips(image_size, frames, background, split, count):
  clips = _clips(image_size, frames, background, split, count)
  result = oracle.evaluate(clips["video"], clips["attributes"])
  assert result["all"] >= 0.98, result
  assert result["detected"] == 1.0
  reading = oracle.read_videos(clips["video"])
  # Detected centres sit on the ground-truth track.
  np.testing.assert_allclose(reading.centers, clips["centers"], atol=0.35)


@pytest.mark.parametrize("image_size", [32, 64])
def test_no_real_clip_bounces_within_the_bounce_free_frames(image_size):
  frames = oracle.bounce_free_frames(image_size)
  assert frames == 9
  clips = _clips(image_size, 16, "plain", "train", 128)
  steps = np.diff(clips["centers"][:, :frames], axis=1)
  first = steps[:, :1]
  # No axis ever reverses its sign of motion before the bounce-free horizon ends.
  assert np.all(steps * first >= -1e-4)


@pytest.mark.parametrize("image_size, motion_grid, background", [
    (32, 4, "plain"), (32, 2, "random"), (64, 4, "random")])
def test_oracle_reads_real_grid_motion_clips(image_size, motion_grid, background):
  clips = _clips(image_size, 8, background, "test", 96, motion_grid=motion_grid)
  result = oracle.evaluate(clips["video"], clips["attributes"], motion_grid=motion_grid)
  assert result["all"] >= 0.98, result
  # The smooth-motion horizon (9 frames) would fit the direction across bounces.
  frames = oracle.bounce_free_frames(image_size, motion_grid)
  assert 2 <= frames < 8
  steps = np.diff(clips["centers"][:, :frames], axis=1)
  assert np.all(steps * steps[:, :1] >= 0)
  # Some clip does bounce right after the horizon, so it is not set needlessly short.
  longer = np.diff(clips["centers"][:, :frames + 1], axis=1)
  assert np.any(longer * longer[:, :1] < 0)


def test_wrong_colour_shape_and_direction_are_caught():
  clips = _clips(32, 8, "plain", "train", 16)
  truth = clips["attributes"].copy()
  lying = truth.copy()
  lying[:, 1] = (truth[:, 1] + 1) % len(shapes.COLOR_NAMES)
  lying[:, 0] = (truth[:, 0] + 2) % len(shapes.SHAPE_NAMES)
  lying[:, 3] = (truth[:, 3] + 4) % len(shapes.DIRECTION_NAMES)  # the opposite direction
  result = oracle.evaluate(clips["video"], lying)
  assert result["color"] == 0.0 and result["shape"] == 0.0 and result["direction"] == 0.0
  assert result["size"] >= 0.98 and result["all"] == 0.0


def test_reversed_video_reads_the_opposite_direction():
  clips = _clips(32, 8, "plain", "train", 32)
  reading = oracle.read_videos(clips["video"][:, ::-1].copy())
  opposite = (clips["attributes"][:, 3] + 4) % 8
  assert np.mean(reading.attributes[:, 3] == opposite) >= 0.98


def test_static_and_empty_videos_get_no_direction():
  clips = _clips(32, 8, "random", "train", 8)
  static = np.repeat(clips["video"][:, :1], 8, axis=1)
  reading = oracle.read_videos(static)
  assert np.all(reading.attributes[:, 3] == -1)
  np.testing.assert_array_equal(reading.attributes[:, :3], clips["attributes"][:, :3])
  empty = oracle.read_videos(np.zeros((2, 8, 32, 32, 3), np.uint8))
  assert np.all(empty.attributes == -1)
  black = np.zeros((2, 8, 32, 32, 3), np.uint8)
  assert oracle.evaluate(black, clips["attributes"][:2])["detected"] == 0


def test_a_stray_speck_does_not_fool_the_oracle():
  clips = _clips(64, 16, "plain", "train", 8)
  video = clips["video"].copy()
  for i, centers in enumerate(clips["centers"]):
    # A 2x2 white speck in the corner farthest from the object's mean position.
    y = 1 if centers[:, 0].mean() > 32 else 61
    x = 1 if centers[:, 1].mean() > 32 else 61
    video[i, :, y:y + 2, x:x + 2] = 255
  result = oracle.evaluate(video, clips["attributes"])
  assert result["all"] == 1.0


def test_direction_from_synthetic_tracks():
  t = np.arange(8, dtype=np.float32)[:, None]
  tracks = np.stack([16.0 + 1.3 * t * shapes.DIRECTION_VECTORS[d] for d in range(8)])
  np.testing.assert_array_equal(oracle.direction_from_track(tracks, 32), np.arange(8))
  tracks[2, 3:] = np.nan  # missing frames are ignored
  assert oracle.direction_from_track(tracks, 32)[2] == 2


def test_background_is_the_median_of_frames_away_from_the_object():
  import warnings
  rng = np.random.default_rng(4)
  for frames in (1, 2, 7, 8):
    clip = rng.integers(0, 256, (frames, 9, 9, 3), dtype=np.uint8)
    near = rng.random((frames, 9, 9)) < 0.5
    near[:, 0, 0] = True  # a pixel the object never leaves
    values = np.where(near[..., None], np.nan, clip.astype(np.float32))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      expected = np.nanmedian(values, axis=0)
    # Pixels never free of the object take the clip's median background colour.
    fallback = np.median(clip[~near].astype(np.float32), axis=0)
    expected = np.where(np.isnan(expected), fallback, expected)
    np.testing.assert_allclose(oracle._background(clip, near), expected)
