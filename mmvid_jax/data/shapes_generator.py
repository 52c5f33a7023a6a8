"""Deterministic Moving Shapes clip generator (shared by the TFDS builder and the stream).

Clips are made in blocks of BLOCK_SIZE; block b of a split draws from its own
`np.random.default_rng([seed, split_id, b])`, so clip i of a split is the same whichever
way it is reached (TFDS build, stream, any start index). The training stream is the train
split continued past `num_train`: its first `num_train` clips are the TFDS train split.

Splits:
- train: (shape, colour) pairs outside shapes.HELD_OUT_PAIRS, TRAIN_TEMPLATES captions.
- validation: same pairs and templates as train, different seeds.
- test: only the held-out pairs, only the held-out TEST_TEMPLATES captions.

Every clip also carries its control images: its background without the object, a frame of
another object with the same colour (different shape), and a frame of another object with
the same shape and size (different colour). Control objects never show a held-out pair
outside the test split.
"""

import dataclasses
from typing import Iterator

import numpy as np

from mmvid_jax.data import shapes
from mmvid_jax.data import shapes_captions

SPLITS = ("train", "validation", "test")
_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
BLOCK_SIZE = 64
_NUM_SHAPES = len(shapes.SHAPE_NAMES)
_NUM_COLORS = len(shapes.COLOR_NAMES)


@dataclasses.dataclass(frozen=True)
class ShapesSpec:
  """What a stored clip looks like (derived from config.data)."""
  image_size: int = 64
  clip_frames: int = 24
  background: str = "plain"
  seed: int = 1234
  # 0: smooth motion; G > 0: centres on multiples of G pixels, one G step per frame per axis.
  motion_grid: int = 0

  @classmethod
  def from_config(cls, data_config) -> "ShapesSpec":
    return cls(image_size=int(data_config.image_size), clip_frames=int(data_config.clip_frames),
               background=str(data_config.background), seed=int(data_config.generator_seed),
               motion_grid=motion_grid_of(data_config))


def motion_grid_of(data_config) -> int:
  """config.data.motion_grid, 0 (smooth) for configs written before the option existed."""
  return int(data_config.get("motion_grid", 0))


def _pair_table(split: str) -> np.ndarray:
  """allowed[shape, colour] for clips of the split."""
  held_out = np.zeros((_NUM_SHAPES, _NUM_COLORS), bool)
  for shape, color in shapes.HELD_OUT_PAIRS:
    held_out[shape, color] = True
  return held_out if split == "test" else ~held_out


def _check_split(split: str):
  if split not in _SPLIT_IDS:
    raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")


def _sample_attributes(rng: np.random.Generator, n: int, split: str) -> np.ndarray:
  pairs = np.argwhere(_pair_table(split))
  chosen = pairs[rng.integers(0, len(pairs), n)]
  size = rng.integers(0, len(shapes.SIZE_NAMES), n)
  direction = rng.integers(0, len(shapes.DIRECTION_NAMES), n)
  return np.stack([chosen[:, 0], chosen[:, 1], size, direction], axis=1).astype(np.int32)


def _pick(rng: np.random.Generator, allowed: np.ndarray) -> np.ndarray:
  """A uniformly random allowed column per row of a boolean (N, K) table."""
  scores = np.where(allowed, rng.random(allowed.shape), -1.0)
  return np.argmax(scores, axis=1)


def _control_frames(rng, attributes, spec: ShapesSpec, split: str):
  """Same-colour and same-shape frames of other objects, (N, H, W, 3) each."""
  n = len(attributes)
  # Outside the test split control objects avoid held-out pairs; in test anything goes.
  allowed = np.ones((_NUM_SHAPES, _NUM_COLORS), bool) if split == "test" else _pair_table("train")
  shape, color, size = attributes[:, 0], attributes[:, 1], attributes[:, 2]
  other_shape_ok = allowed[:, color].T & (np.arange(_NUM_SHAPES)[None] != shape[:, None])
  other_color_ok = allowed[shape] & (np.arange(_NUM_COLORS)[None] != color[:, None])
  same_color_attrs = np.stack([_pick(rng, other_shape_ok), color,
                               rng.integers(0, len(shapes.SIZE_NAMES), n),
                               rng.integers(0, len(shapes.DIRECTION_NAMES), n)], axis=1)
  same_shape_attrs = np.stack([shape, _pick(rng, other_color_ok), size,
                               rng.integers(0, len(shapes.DIRECTION_NAMES), n)], axis=1)
  frames = []
  for attrs in (same_color_attrs, same_shape_attrs):
    low, high = shapes.motion_range(attrs, spec.image_size, spec.motion_grid)
    start = low + (high - low) * rng.random(low.shape, dtype=np.float32)
    if spec.motion_grid:
      start = low + np.floor((start - low) / spec.motion_grid) * spec.motion_grid
    background = shapes.make_backgrounds(rng, n, spec.image_size, spec.background)
    video, _, _ = shapes.render_clips(attrs, start, 1, spec.image_size, background)
    frames.append(video[:, 0])
  return frames


def generate_block(spec: ShapesSpec, split: str, block_index: int) -> dict:
  """BLOCK_SIZE clips of a split as numpy arrays (and a list of captions)."""
  _check_split(split)
  rng = np.random.default_rng([spec.seed, _SPLIT_IDS[split], block_index])
  n = BLOCK_SIZE
  attributes = _sample_attributes(rng, n, split)
  start = shapes.sample_start_positions(rng, attributes, spec.image_size, spec.motion_grid)
  background = shapes.make_backgrounds(rng, n, spec.image_size, spec.background)
  video, centers, boxes = shapes.render_clips(attributes, start, spec.clip_frames,
                                              spec.image_size, background, spec.motion_grid)
  captions = shapes_captions.sample_captions(rng, attributes, split)
  same_color, same_shape = _control_frames(rng, attributes, spec, split)
  return {
      "index": np.arange(block_index * n, (block_index + 1) * n, dtype=np.int64),
      "video": video,
      "caption": captions,
      "attributes": attributes,
      "centers": centers,
      "boxes": boxes.astype(np.float32),
      "background": background,
      "same_color": same_color,
      "same_shape": same_shape,
  }


def generate_clips(spec: ShapesSpec, split: str, start: int, count: int) -> dict:
  """Clips [start, start + count) of a split, as one dict of arrays."""
  first, last = start // BLOCK_SIZE, (start + count - 1) // BLOCK_SIZE
  blocks = [generate_block(spec, split, b) for b in range(first, last + 1)]
  offset = start - first * BLOCK_SIZE
  out = {}
  for key in blocks[0]:
    if key == "caption":
      joined = [c for block in blocks for c in block[key]]
    else:
      joined = np.concatenate([block[key] for block in blocks])
    out[key] = joined[offset:offset + count]
  return out


def iter_examples(spec: ShapesSpec, split: str, start: int = 0, stop: int | None = None,
                  block_stride: int = 1, block_offset: int = 0) -> Iterator[dict]:
  """Yields one example dict per clip, clip indices in [start, stop) (None: forever).

  With `block_stride`/`block_offset` a process takes every block_stride-th block, starting
  at block `block_offset` (streaming split across processes); `start` then counts clips
  of this process's own sequence.
  """
  local_block, within = divmod(start, BLOCK_SIZE)
  produced = start
  while stop is None or produced < stop:
    block = generate_block(spec, split, block_offset + local_block * block_stride)
    for i in range(within, BLOCK_SIZE):
      if stop is not None and produced >= stop:
        return
      yield {key: value[i] for key, value in block.items()}
      produced += 1
    local_block += 1
    within = 0
