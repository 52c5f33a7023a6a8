"""Procedural "Moving Shapes": vocabularies, trajectories and anti-aliased rendering.

One object per clip (shape, colour, size) moves in one of eight compass directions and
bounces off the walls. Everything is vectorised numpy, deterministic given its inputs.
The evaluation oracle imports the constants and `render_clips` from here, so the
attribute vocabularies below are the single source of truth.

Coordinates are pixels with (y, x) order, y pointing down: "north" is up in the image.
A pixel (i, j) covers [i, i+1) x [j, j+1); its centre is (i + 0.5, j + 0.5).
"""

import numpy as np

SHAPE_NAMES = ("circle", "square", "triangle", "diamond", "cross")
COLOR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")
# Bright, saturated and far apart; backgrounds stay dim (<= BACKGROUND_MAX) so objects stand out.
COLOR_RGB = np.array([
    [235, 40, 40],
    [40, 205, 60],
    [50, 90, 245],
    [240, 225, 40],
    [225, 50, 225],
    [40, 225, 235],
], dtype=np.uint8)
SIZE_NAMES = ("small", "large")
# Object "radius" as a fraction of the image side (64 px: 7.7 / 12.8 px; 32 px: 3.8 / 6.4 px).
SIZE_RADIUS_FRACTION = np.array([0.12, 0.2], dtype=np.float32)
DIRECTION_NAMES = ("north", "northeast", "east", "southeast",
                   "south", "southwest", "west", "northwest")
_DIAG = np.float32(np.sqrt(0.5))
# Unit vectors (dy, dx) in image coordinates: north is up, i.e. dy < 0.
DIRECTION_VECTORS = np.array([
    [-1, 0], [-_DIAG, _DIAG], [0, 1], [_DIAG, _DIAG],
    [1, 0], [_DIAG, -_DIAG], [0, -1], [-_DIAG, -_DIAG],
], dtype=np.float32)
# Pixels per frame as a fraction of the image side (64 px: 2.56 px/frame; 32 px: 1.28 px/frame).
SPEED_FRACTION = np.float32(0.04)
# Starting positions lie in the first START_SPAN of the travel range (measured from the wall
# behind the object), so the first bounce comes after >= 65% of the range: the direction
# is visible for roughly the first 8-12 frames.
START_SPAN = 0.35
BACKGROUND_MAX = 90
BACKGROUND_MODES = ("plain", "random")
# Attribute columns of the `attributes` arrays.
ATTRIBUTE_NAMES = ("shape", "color", "size", "direction")
# (shape, colour) pairs that appear only in the test split (every size and direction):
# one per colour, every shape at least once. Compositional generalisation probe.
HELD_OUT_PAIRS = ((0, 3), (1, 4), (2, 0), (3, 1), (4, 2), (2, 5))  # yellow circle, magenta square,
# red triangle, green diamond, blue cross, cyan triangle.

# Shape geometry relative to the radius r: square half side, diamond L1 radius,
# triangle circumradius (centre = centroid), cross half length and half width.
_SQUARE_HALF = 0.85
_DIAMOND_RADIUS = 1.15
_TRIANGLE_CIRCUMRADIUS = 1.25
_CROSS_HALF_LENGTH = 1.05
_CROSS_HALF_WIDTH = 0.38
# Keep the number of float32 values per rendering chunk bounded (memory and cache).
_MAX_CHUNK_VALUES = 1 << 22


def radius(size_index, image_size: int) -> np.ndarray:
  return SIZE_RADIUS_FRACTION[np.asarray(size_index)] * np.float32(image_size)


def shape_extents(shape_index, size_index, image_size: int) -> np.ndarray:
  """Distances (up, down, left, right) from the centre to the bounding box, (..., 4) float32."""
  shape_index = np.asarray(shape_index)
  r = radius(size_index, image_size)
  per_shape = np.array([
      [1.0, 1.0, 1.0, 1.0],
      [_SQUARE_HALF] * 4,
      [_TRIANGLE_CIRCUMRADIUS, _TRIANGLE_CIRCUMRADIUS / 2,
       _TRIANGLE_CIRCUMRADIUS * np.sqrt(3) / 2, _TRIANGLE_CIRCUMRADIUS * np.sqrt(3) / 2],
      [_DIAMOND_RADIUS] * 4,
      [_CROSS_HALF_LENGTH] * 4,
  ], dtype=np.float32)
  return per_shape[shape_index] * r[..., None]


def center_range(attributes: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Lowest and highest centre (y, x) that keep the whole object inside, each (N, 2)."""
  ext = shape_extents(attributes[:, 0], attributes[:, 2], image_size)
  low = np.stack([ext[:, 0], ext[:, 2]], axis=-1)
  high = np.float32(image_size) - np.stack([ext[:, 1], ext[:, 3]], axis=-1)
  return low, high


def motion_range(attributes: np.ndarray, image_size: int, motion_grid: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Lowest and highest centre (y, x) the motion may reach, each (N, 2).

  Smooth motion (`motion_grid` 0): `center_range`. Grid motion: the multiples of `motion_grid`
  inside it, so a centre on the grid stays on it after any number of steps and bounces."""
  low, high = center_range(attributes, image_size)
  if not motion_grid:
    return low, high
  grid = np.float32(motion_grid)
  low_on_grid = np.ceil(low / grid) * grid
  high_on_grid = np.floor(high / grid) * grid
  # An object too large for two grid positions stays put on that axis.
  return low_on_grid, np.maximum(high_on_grid, low_on_grid)


def grid_travel_steps(image_size: int, motion_grid: int) -> np.ndarray:
  """Grid steps of travel (y, x) for every (shape, size), (shapes * sizes, 2) float32."""
  shape_ids, size_ids = np.meshgrid(np.arange(len(SHAPE_NAMES)), np.arange(len(SIZE_NAMES)),
                                    indexing="ij")
  attributes = np.stack([shape_ids.ravel(), np.zeros(shape_ids.size, np.int64), size_ids.ravel(),
                         np.ones(shape_ids.size, np.int64)], axis=1)
  low, high = motion_range(attributes, image_size, motion_grid)
  return np.round((high - low) / np.float32(motion_grid))


def velocities(attributes: np.ndarray, image_size: int, motion_grid: int = 0) -> np.ndarray:
  """Initial velocity (dy, dx) in pixels per frame, (N, 2).

  Smooth motion: SPEED_FRACTION of the side along the unit direction. Grid motion: one grid
  step per frame on each axis the direction moves along (diagonals are sqrt(2) faster)."""
  if motion_grid:
    return np.sign(DIRECTION_VECTORS[attributes[:, 3]]) * np.float32(motion_grid)
  return DIRECTION_VECTORS[attributes[:, 3]] * SPEED_FRACTION * np.float32(image_size)


def trajectories(attributes: np.ndarray, start_positions: np.ndarray, num_frames: int,
                 image_size: int, motion_grid: int = 0) -> np.ndarray:
  """Per-frame centres (N, T, 2) float32: straight motion reflected at the walls."""
  low, high = motion_range(attributes, image_size, motion_grid)
  span = np.maximum(high - low, 1e-6)[:, None]
  t = np.arange(num_frames, dtype=np.float32)[None, :, None]
  velocity = velocities(attributes, image_size, motion_grid)[:, None]
  free = start_positions[:, None].astype(np.float32) + velocity * t
  # Unfold the bounces: position along a line of period 2*span, mirrored in its second half.
  phase = np.mod(free - low[:, None], 2 * span)
  folded = np.where(phase <= span, phase, 2 * span - phase)
  return (low[:, None] + folded).astype(np.float32)


def boxes_from_centers(attributes: np.ndarray, centers: np.ndarray, image_size: int) -> np.ndarray:
  """Bounding boxes (N, T, 4) as (y0, x0, y1, x1) in pixels."""
  ext = shape_extents(attributes[:, 0], attributes[:, 2], image_size)[:, None]
  return np.stack([centers[..., 0] - ext[..., 0], centers[..., 1] - ext[..., 2],
                   centers[..., 0] + ext[..., 1], centers[..., 1] + ext[..., 3]], axis=-1)


def sample_start_positions(rng: np.random.Generator, attributes: np.ndarray,
                           image_size: int, motion_grid: int = 0) -> np.ndarray:
  """Start centres (N, 2): near the wall behind the motion, anywhere across it (on the grid
  for grid motion)."""
  low, high = motion_range(attributes, image_size, motion_grid)
  vel = velocities(attributes, image_size, motion_grid)
  u = rng.random(low.shape, dtype=np.float32)
  span = high - low
  behind = np.where(vel > 0, low + START_SPAN * span * u, high - START_SPAN * span * u)
  start = np.where(np.abs(vel) > 1e-6, behind, low + span * u)
  if motion_grid:
    grid = np.float32(motion_grid)
    # Round towards the wall behind (or down, across), staying within [low, high].
    steps = np.where(vel < 0, np.ceil((start - low) / grid), np.floor((start - low) / grid))
    start = np.minimum(low + steps * grid, high)
  return start.astype(np.float32)


def _signed_distance(shape_index: int, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
  """Signed distance in pixels (negative inside) of one shape type; r broadcasts like dy."""
  ay, ax = np.abs(dy), np.abs(dx)
  if shape_index == 0:
    return np.sqrt(dy * dy + dx * dx) - r
  if shape_index == 1:
    return _box_distance(ay, ax, _SQUARE_HALF * r, _SQUARE_HALF * r)
  if shape_index == 2:
    big_r = _TRIANGLE_CIRCUMRADIUS * r
    # Upward-pointing equilateral triangle: bottom edge normal (1, 0), sides (-1/2, +-sqrt3/2).
    side = -0.5 * dy + np.float32(np.sqrt(3) / 2) * ax
    return np.maximum(dy, side) - big_r / 2
  if shape_index == 3:
    return (ay + ax - _DIAMOND_RADIUS * r) * _DIAG
  if shape_index == 4:
    long, wide = _CROSS_HALF_LENGTH * r, _CROSS_HALF_WIDTH * r
    return np.minimum(_box_distance(ay, ax, long, wide), _box_distance(ay, ax, wide, long))
  raise ValueError(f"unknown shape index {shape_index}")


def _box_distance(ay, ax, half_y, half_x):
  qy, qx = ay - half_y, ax - half_x
  outside = np.sqrt(np.maximum(qy, 0) ** 2 + np.maximum(qx, 0) ** 2)
  return outside + np.minimum(np.maximum(qy, qx), 0)


def coverage(attributes: np.ndarray, centers: np.ndarray, image_size: int) -> np.ndarray:
  """Anti-aliased object coverage in [0, 1], (N, T, H, W) float32.

  Analytic approximation: coverage = clip(0.5 - signed distance, 0, 1), i.e. a one-pixel
  linear ramp across the edge (exact for straight edges at axis-aligned angles).
  """
  n, t = centers.shape[:2]
  grid = np.arange(image_size, dtype=np.float32) + 0.5
  out = np.zeros((n, t, image_size, image_size), np.float32)
  r_all = radius(attributes[:, 2], image_size)
  for shape_index in range(len(SHAPE_NAMES)):
    rows = np.nonzero(attributes[:, 0] == shape_index)[0]
    step = max(1, _MAX_CHUNK_VALUES // (t * image_size * image_size))
    for begin in range(0, len(rows), step):
      idx = rows[begin:begin + step]
      dy = grid[None, None, :, None] - centers[idx, :, 0, None, None]
      dx = grid[None, None, None, :] - centers[idx, :, 1, None, None]
      r = r_all[idx, None, None, None]
      sdf = _signed_distance(shape_index, dy, dx, r)
      out[idx] = np.clip(0.5 - sdf, 0.0, 1.0)
  return out


def render_clips(attributes, start_positions, num_frames: int, image_size: int,
                 backgrounds: np.ndarray | None = None, motion_grid: int = 0):
  """Renders clips from ground truth.

  Args:
    attributes: int (N, 4) indices (shape, colour, size, direction), see ATTRIBUTE_NAMES.
    start_positions: float (N, 2) centre (y, x) at frame 0, inside `center_range`.
    num_frames: frames per clip.
    image_size: side in pixels.
    backgrounds: optional uint8 (N, H, W, 3) static backgrounds; black when None.
    motion_grid: 0 for smooth motion; G > 0 moves the object one G-pixel step per frame per
      axis, from a start on the grid (see `sample_start_positions`).

  Returns:
    video uint8 (N, T, H, W, 3), centers float32 (N, T, 2), boxes float32 (N, T, 4).
  """
  attributes = np.asarray(attributes, np.int64).reshape(-1, 4)
  start_positions = np.asarray(start_positions, np.float32).reshape(-1, 2)
  n = attributes.shape[0]
  if backgrounds is None:
    backgrounds = np.zeros((n, image_size, image_size, 3), np.uint8)
  centers = trajectories(attributes, start_positions, num_frames, image_size, motion_grid)
  alpha = coverage(attributes, centers, image_size)
  # background + alpha * (colour - background), rounded; one colour plane at a time keeps
  # the inner loops long (broadcasting over a trailing axis of 3 is several times slower).
  video = np.empty(alpha.shape + (3,), np.uint8)
  background = backgrounds.astype(np.float32)
  color = COLOR_RGB[attributes[:, 1]].astype(np.float32)
  for c in range(3):
    plane_bg = background[:, None, :, :, c]
    plane = alpha * (color[:, c, None, None, None] - plane_bg)
    plane += plane_bg + np.float32(0.5)
    video[..., c] = plane
  return video, centers, boxes_from_centers(attributes, centers, image_size)


def make_backgrounds(rng: np.random.Generator, n: int, image_size: int, mode: str) -> np.ndarray:
  """Static backgrounds (N, H, W, 3) uint8.

  "plain": black. "random": a quarter each of plain colour, checkerboard, smooth stripes
  and a linear gradient, every colour dim (channels <= BACKGROUND_MAX) so objects stand out.
  """
  if mode == "plain":
    return np.zeros((n, image_size, image_size, 3), np.uint8)
  if mode != "random":
    raise ValueError(f"unknown background mode {mode!r}; use one of {BACKGROUND_MODES}")
  size = np.float32(image_size)
  kind = rng.integers(0, 4, n)
  colors = rng.integers(0, BACKGROUND_MAX + 1, (n, 2, 3)).astype(np.float32)
  angle = rng.uniform(0, np.pi, n).astype(np.float32)
  period = rng.uniform(size / 8, size / 2.5, n).astype(np.float32)
  cell = rng.integers(max(2, image_size // 10), max(3, image_size // 3) + 1, n)
  grid = np.arange(image_size, dtype=np.float32) + 0.5
  y, x = grid[None, :, None], grid[None, None, :]
  # Pattern weight in [0, 1] between the two colours, computed only for the rows of each kind.
  weight = np.zeros((n, image_size, image_size), np.float32)
  rows = np.nonzero(kind == 1)[0]
  c = cell[rows, None, None].astype(np.float32)
  weight[rows] = (np.floor(y / c) + np.floor(x / c)) % 2
  for k in (2, 3):
    rows = np.nonzero(kind == k)[0]
    proj = y * np.cos(angle[rows])[:, None, None] + x * np.sin(angle[rows])[:, None, None]
    if k == 2:  # Smooth stripes.
      weight[rows] = 0.5 + 0.5 * np.sin(np.float32(2 * np.pi) * proj / period[rows, None, None])
    else:  # Linear gradient.
      weight[rows] = (proj - proj.min(axis=(1, 2), keepdims=True)) / np.float32(image_size * 1.5)
  image = np.empty((n, image_size, image_size, 3), np.uint8)
  for channel in range(3):
    low, high = colors[:, 0, channel, None, None], colors[:, 1, channel, None, None]
    image[..., channel] = low + weight * (high - low) + np.float32(0.5)
  return image
