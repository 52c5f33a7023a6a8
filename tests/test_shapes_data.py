"""Moving Shapes: rendering ground truth, bouncing, captions, splits, controls, TFDS build."""

import importlib.util
import itertools
import os

import numpy as np
import pytest

from mmvid_jax.data import shapes
from mmvid_jax.data import shapes_captions as captions
from mmvid_jax.data import shapes_generator as generator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = generator.ShapesSpec(image_size=32, clip_frames=12, background="plain", seed=7)


def tiny_config():
  spec = importlib.util.spec_from_file_location("shapes_config", os.path.join(ROOT, "configs", "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("tiny")


def test_generator_is_deterministic_and_seed_dependent():
  a = generator.generate_clips(SPEC, "train", 10, 70)
  b = generator.generate_clips(SPEC, "train", 10, 70)
  for key in a:
    np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
  # Clip i is the same however it is reached (block boundaries, iterator).
  whole = generator.generate_clips(SPEC, "train", 0, 80)
  np.testing.assert_array_equal(whole["video"][10:80], a["video"])
  streamed = list(itertools.islice(generator.iter_examples(SPEC, "train", 60), 10))
  np.testing.assert_array_equal(np.stack([e["video"] for e in streamed]), whole["video"][60:70])
  other = generator.generate_clips(generator.ShapesSpec(32, 12, "plain", seed=8), "train", 10, 70)
  assert not np.array_equal(other["video"], a["video"])


@pytest.mark.parametrize("motion_grid", [4, 2])
def test_grid_motion_steps_one_cell_per_frame_and_repeats_the_object(motion_grid):
  spec = generator.ShapesSpec(image_size=32, clip_frames=8, background="plain", seed=3,
                              motion_grid=motion_grid)
  clips = generator.generate_clips(spec, "train", 0, 128)
  centers, attributes = clips["centers"], clips["attributes"]
  np.testing.assert_array_equal(np.mod(centers, motion_grid), 0)
  steps = np.diff(centers, axis=1)
  moving_axes = np.sign(shapes.DIRECTION_VECTORS[attributes[:, 3]]) != 0
  # A moving axis steps one grid cell every frame (bounces included); a still one never moves.
  expected = np.where(moving_axes[:, None], motion_grid, 0)
  np.testing.assert_array_equal(np.abs(steps), np.broadcast_to(expected, steps.shape))
  low, high = shapes.center_range(attributes, 32)
  assert np.all(centers >= low[:, None] - 1e-4) and np.all(centers <= high[:, None] + 1e-4)
  # Start: on the wall side behind the motion (first move is along the caption's direction).
  np.testing.assert_array_equal(np.sign(steps[:, 0]),
                                np.sign(shapes.DIRECTION_VECTORS[attributes[:, 3]]))
  if motion_grid == 4:
    # One token per frame: the object's pixels are the same in every frame, only translated.
    video = clips["video"].astype(np.int32)
    for i in range(8):
      dy, dx = (centers[i, 1] - centers[i, 0]).astype(int)
      shifted = np.roll(video[i, 0], (dy, dx), axis=(0, 1))
      np.testing.assert_array_equal(shifted, video[i, 1])


def test_grid_motion_gets_its_own_tfds_builder_config():
  from mmvid_jax.data import shapes_tfds
  config = tiny_config()
  smooth = shapes_tfds.builder_config(config.data)
  config.data.motion_grid = 4
  grid = shapes_tfds.builder_config(config.data)
  assert grid.name == smooth.name + "_grid4"
  assert grid.spec.motion_grid == 4 and smooth.spec.motion_grid == 0


def test_smooth_motion_is_unchanged_by_the_grid_option():
  smooth = generator.generate_clips(SPEC, "train", 0, 16)
  grid0 = generator.generate_clips(
      generator.ShapesSpec(image_size=32, clip_frames=12, background="plain", seed=7,
                           motion_grid=0), "train", 0, 16)
  np.testing.assert_array_equal(smooth["video"], grid0["video"])
  assert not np.all(np.mod(smooth["centers"], 1) == 0)


@pytest.mark.parametrize("shape", range(len(shapes.SHAPE_NAMES)))
@pytest.mark.parametrize("image_size", [32, 64])
def test_rendered_object_matches_ground_truth(shape, image_size):
  n = len(shapes.COLOR_NAMES) * 2
  attributes = np.array([[shape, c % 6, c // 6, (3 * c) % 8] for c in range(n)])
  rng = np.random.default_rng(0)
  start = shapes.sample_start_positions(rng, attributes, image_size)
  backgrounds = shapes.make_backgrounds(rng, n, image_size, "random")
  video, centers, boxes = shapes.render_clips(attributes, start, 6, image_size, backgrounds)
  assert video.shape == (n, 6, image_size, image_size, 3) and video.dtype == np.uint8
  color = shapes.COLOR_RGB[attributes[:, 1]].astype(np.float32)
  background = backgrounds.astype(np.float32)[:, None]
  # Per-pixel coverage recovered from the composite: alpha = (pixel - bg) / (colour - bg).
  diff = (color[:, None, None, None] - background)
  channel = np.argmax(np.abs(color[:, None] - backgrounds.reshape(n, -1, 3).mean(1)[:, None]), -1)[:, 0]
  pick = lambda x: np.take_along_axis(x, channel[:, None, None, None, None], axis=-1)[..., 0]
  alpha = np.clip(pick(video.astype(np.float32) - background) / pick(diff), 0, 1)
  grid = np.arange(image_size) + 0.5
  mass = alpha.sum(axis=(2, 3))
  cy = (alpha * grid[None, None, :, None]).sum(axis=(2, 3)) / mass
  cx = (alpha * grid[None, None, None, :]).sum(axis=(2, 3)) / mass
  np.testing.assert_allclose(np.stack([cy, cx], -1), centers, atol=0.35)
  # The pixel under the centre is exactly the object's colour.
  iy, ix = np.floor(centers[..., 0]).astype(int), np.floor(centers[..., 1]).astype(int)
  at_center = video[np.arange(n)[:, None], np.arange(6)[None], iy, ix]
  np.testing.assert_array_equal(at_center, np.broadcast_to(shapes.COLOR_RGB[attributes[:, 1]][:, None], at_center.shape))
  # Every covered pixel lies inside the bounding box (one pixel of anti-aliasing slack).
  for i in range(n):
    for t in range(6):
      yy, xx = np.nonzero(alpha[i, t] > 0.02)
      y0, x0, y1, x1 = boxes[i, t]
      assert yy.min() >= np.floor(y0) - 1 and yy.max() + 1 <= np.ceil(y1) + 1
      assert xx.min() >= np.floor(x0) - 1 and xx.max() + 1 <= np.ceil(x1) + 1


def test_motion_starts_in_caption_direction_and_bounces_inside():
  clips = generator.generate_clips(SPEC, "train", 0, 256)
  attributes, centers = clips["attributes"], clips["centers"]
  expected = shapes.DIRECTION_VECTORS[attributes[:, 3]] * shapes.SPEED_FRACTION * SPEC.image_size
  # The start lies far enough from the wall ahead that the first frames move as captioned.
  np.testing.assert_allclose(centers[:, 1] - centers[:, 0], expected, atol=1e-4)
  np.testing.assert_allclose(centers[:, 4] - centers[:, 3], expected, atol=1e-4)
  # Long clips bounce: every box stays inside the image and the motion reverses.
  start = centers[:, 0]
  _, long_centers, boxes = shapes.render_clips(attributes, start, 120, SPEC.image_size)
  assert boxes[..., :2].min() >= -1e-4 and boxes[..., 2:].max() <= SPEC.image_size + 1e-4
  velocity = np.diff(long_centers, axis=1)
  moving = np.abs(expected) > 1e-6
  reversed_ = (np.sign(velocity) == -np.sign(expected)[:, None]).any(axis=1)
  assert reversed_[moving].all()


def test_backgrounds_are_dim_and_plain_is_black():
  rng = np.random.default_rng(1)
  random = shapes.make_backgrounds(rng, 64, 32, "random")
  assert random.max() <= shapes.BACKGROUND_MAX and random.std(axis=(1, 2)).max() > 0
  assert (shapes.make_backgrounds(rng, 3, 32, "plain") == 0).all()
  with pytest.raises(ValueError, match="unknown background"):
    shapes.make_backgrounds(rng, 1, 32, "stars")


def test_caption_grammar_covers_every_attribute_and_parses_back():
  for templates in (captions.TRAIN_TEMPLATES, captions.TEST_TEMPLATES):
    for template in templates:
      for attrs in itertools.product(range(5), range(6), range(2), range(8)):
        for choice in range(3):
          text = captions.fill_template(template, attrs, (choice,) * 4)
          assert captions.parse_caption(text) == attrs, text
  assert captions.canonical_caption((0, 0, 0, 0)) == "A small red circle is moving north."
  assert captions.parse_caption("A red thing moves north.") is None
  clips = generator.generate_clips(SPEC, "validation", 0, 512)
  for column, names in enumerate((shapes.SHAPE_NAMES, shapes.COLOR_NAMES, shapes.SIZE_NAMES,
                                  shapes.DIRECTION_NAMES)):
    assert set(clips["attributes"][:, column]) == set(range(len(names)))
  for caption, attrs in zip(clips["caption"], clips["attributes"]):
    assert captions.parse_caption(caption) == tuple(attrs)


def test_held_out_split_is_disjoint_from_train():
  held_out = set(shapes.HELD_OUT_PAIRS)
  assert {c for _, c in held_out} == set(range(len(shapes.COLOR_NAMES)))
  assert {s for s, _ in held_out} == set(range(len(shapes.SHAPE_NAMES)))
  test_verbs = ("is going", "slides")
  for split in ("train", "validation"):
    clips = generator.generate_clips(SPEC, split, 0, 256)
    assert not {tuple(a[:2]) for a in clips["attributes"]} & held_out
    assert not any(v in c for c in clips["caption"] for v in test_verbs)
  test = generator.generate_clips(SPEC, "test", 0, 256)
  assert {tuple(a[:2]) for a in test["attributes"]} == held_out
  assert all(any(v in c for v in test_verbs) for c in test["caption"])
  train = generator.generate_clips(SPEC, "train", 0, 64)
  validation = generator.generate_clips(SPEC, "validation", 0, 64)
  assert not np.array_equal(train["video"], validation["video"])


def _object_color(image):
  """The brightest pixel's colour index (objects are far brighter than backgrounds)."""
  pixel = image.reshape(-1, 3)[np.argmax(image.reshape(-1, 3).astype(int).sum(1))]
  return int(np.argmin(np.abs(shapes.COLOR_RGB.astype(int) - pixel[None].astype(int)).sum(1)))


def test_control_images():
  spec = generator.ShapesSpec(image_size=32, clip_frames=12, background="random", seed=3)
  clips = generator.generate_clips(spec, "train", 0, 64)
  # The background control is the clip's background without the object.
  assert clips["background"].max() <= shapes.BACKGROUND_MAX
  object_pixels = (clips["video"] != clips["background"][:, None]).any(-1).sum(axis=(2, 3))
  assert (object_pixels > 0).all()
  for i, attrs in enumerate(clips["attributes"]):
    assert _object_color(clips["same_color"][i]) == attrs[1]
    assert _object_color(clips["same_shape"][i]) != attrs[1]
    assert _object_color(clips["video"][i, 0]) == attrs[1]


def test_tfds_builder_tiny_real_build(tmp_path):
  from mmvid_jax.data import shapes_tfds
  config = tiny_config()
  config.data.num_train, config.data.num_validation, config.data.num_test = 24, 8, 8
  workdir = str(tmp_path)
  assert not shapes_tfds.is_built(config, workdir)
  builder = shapes_tfds.build(config, workdir)
  assert shapes_tfds.is_built(config, workdir)
  assert builder.data_dir.startswith(os.path.join(workdir, "tfds"))
  assert builder.builder_config.name == "s32_f12_plain_n24-8-8_seed1234"
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      "train": 24, "validation": 8, "test": 8}
  examples = {int(e["index"]): e for e in builder.as_dataset(split="test").as_numpy_iterator()}
  expected = generator.generate_clips(generator.ShapesSpec.from_config(config.data), "test", 0, 8)
  for i in range(8):
    np.testing.assert_array_equal(examples[i]["video"], expected["video"][i])
    np.testing.assert_array_equal(examples[i]["same_shape"], expected["same_shape"][i])
    np.testing.assert_allclose(examples[i]["centers"], expected["centers"][i])
    assert examples[i]["caption"].decode() == expected["caption"][i]
