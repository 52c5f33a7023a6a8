"""Shapes oracle: reads shape, colour, size and direction back from a video.

It checks whether a generated Moving Shapes video does what its caption says. Every rule
comes from the data module (`mmvid_jax.data.shapes`), the single source of truth:

- **Detection.** Backgrounds are dim (every channel <= BACKGROUND_MAX) and objects bright
  (their brightest channel >= 205), so a pixel is foreground when its brightest channel is
  above the midpoint. The largest connected blob per frame is the object, which drops specks.
  (A temporal median background fails here: a large object covers some pixels for more than
  half of the frames, most of all at 32 px / 8 frames.)
- **Background.** Per pixel, the median over frames where the pixel is away from the object;
  pixels the object never leaves take the clip's median background colour. Black for "plain".
- **Colour.** Median RGB of the object's brightest half of pixels (the interior, free of
  anti-aliasing blends), nearest named colour.
- **Coverage.** Per pixel, how far it sits on the line from the background to the object
  colour: the soft object mask alpha in [0, 1], as the renderer blends it.
- **Shape and size, jointly.** Each of the 5 shapes x 2 sizes is rendered with the data
  module's own renderer at the detected centre of every frame; the template with the highest
  soft IoU (sum min / sum max of the alphas), averaged over frames, wins.
- **Direction.** Real clips start far enough from the wall ahead that no clip bounces within
  its first `bounce_free_frames(image_size)` frames (9 at every size with smooth motion; 4 at
  32 px with `data.motion_grid=4`). A least-squares
  velocity over those frames of the centre track gives the nearest of the 8 compass
  directions; a video whose object barely moves (< a quarter of the real speed) gets none.

Predictions are -1 where nothing could be read (no object, no motion).
"""

import dataclasses

import numpy as np
from scipy import ndimage

from mmvid_jax.data import shapes
from mmvid_jax.infra.logging_utils import Progress

_OBJECT_MIN_BRIGHTNESS = float(shapes.COLOR_RGB.max(axis=1).min())
FOREGROUND_THRESHOLD = (shapes.BACKGROUND_MAX + _OBJECT_MIN_BRIGHTNESS) / 2.0
# Below this fraction of the real speed an object counts as not moving.
MIN_SPEED_FRACTION = 0.25
# Clips per template-matching chunk (bounds memory: 10 templates x T x H x W floats each).
_CHUNK = 16
# Every (shape, size) template, in a fixed order.
_TEMPLATES = np.array([(s, z) for s in range(len(shapes.SHAPE_NAMES))
                       for z in range(len(shapes.SIZE_NAMES))], np.int64)
ATTRIBUTES = shapes.ATTRIBUTE_NAMES


def bounce_free_frames(image_size: int, motion_grid: int = 0) -> int:
  """Frames from the start of a real clip during which no object has bounced yet."""
  if motion_grid:
    steps = shapes.grid_travel_steps(image_size, motion_grid)
    # sample_start_positions starts within START_SPAN of the steps, rounded towards the wall.
    free_steps = steps - np.floor(shapes.START_SPAN * steps)
    return int(free_steps.min()) + 1
  shape_ids, size_ids = _TEMPLATES[:, 0], _TEMPLATES[:, 1]
  extents = shapes.shape_extents(shape_ids, size_ids, image_size)
  heights, widths = extents[:, 0] + extents[:, 1], extents[:, 2] + extents[:, 3]
  travel = image_size - np.concatenate([heights, widths])
  # The start lies within START_SPAN of the wall behind, so >= (1 - START_SPAN) is free.
  free_distance = (1.0 - shapes.START_SPAN) * float(travel.min())
  fastest_axis_speed = float(shapes.SPEED_FRACTION) * image_size
  return int(np.floor(free_distance / fastest_axis_speed)) + 1


def _slowest_real_speed(image_size: int, motion_grid: int) -> float:
  """Pixels per frame of the slowest real object."""
  return float(motion_grid) if motion_grid else float(shapes.SPEED_FRACTION) * image_size


@dataclasses.dataclass(frozen=True)
class OracleReading:
  attributes: np.ndarray  # int32 (N, 4): shape, colour, size, direction; -1 = unreadable
  centers: np.ndarray  # float32 (N, T, 2): detected (y, x) centre per frame, NaN when absent
  template_score: np.ndarray  # float32 (N,): soft IoU of the best template


def _largest_blobs(foreground: np.ndarray) -> np.ndarray:
  """Keeps the largest 4-connected blob of every frame of a (T, H, W) boolean mask."""
  out = np.zeros_like(foreground)
  for t, frame in enumerate(foreground):
    labels, count = ndimage.label(frame)
    if count:
      sizes = np.bincount(labels.ravel())
      sizes[0] = 0
      out[t] = labels == np.argmax(sizes)
  return out


def _background(clip: np.ndarray, near_object: np.ndarray) -> np.ndarray:
  """(H, W, 3) estimate: per-pixel median over frames away from the object."""
  values = np.where(near_object[..., None], np.nan, clip.astype(np.float32))
  free = ~near_object
  if not free.any():
    return np.zeros(clip.shape[1:], np.float32)
  fallback = np.median(clip[free].astype(np.float32), axis=0)
  # Median over the free frames of each pixel: sorting puts the NaNs last (much faster than
  # np.nanmedian).
  ordered = np.sort(values, axis=0)
  count = free.sum(axis=0)[None, ..., None]
  low = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, axis=0)[0]
  high = np.take_along_axis(ordered, np.minimum(count // 2, len(clip) - 1), axis=0)[0]
  return np.where(count[0] > 0, 0.5 * (low + high), fallback).astype(np.float32)


def _read_clip(clip: np.ndarray):
  """Colour, soft alpha (T, H, W) and centres (T, 2) of one uint8 clip (T, H, W, 3)."""
  brightness = clip.max(axis=-1).astype(np.float32)
  blobs = _largest_blobs(brightness >= FOREGROUND_THRESHOLD)
  present = blobs.any(axis=(1, 2))
  centers = np.full((clip.shape[0], 2), np.nan, np.float32)
  if not present.any():
    return -1, np.zeros(brightness.shape, np.float32), centers
  # Interior pixels: the brighter half of the object's pixels.
  object_pixels = clip[blobs].astype(np.float32)
  object_brightness = brightness[blobs]
  interior = object_pixels[object_brightness >= np.median(object_brightness)]
  color_rgb = np.median(interior, axis=0)
  palette = shapes.COLOR_RGB.astype(np.float32)
  color = int(np.argmin(np.sum((palette - color_rgb) ** 2, axis=1)))
  # Anti-aliased edges extend about a pixel beyond the thresholded blob.
  near_object = ndimage.binary_dilation(blobs, structure=np.ones((1, 5, 5), bool))
  background = _background(clip, near_object)
  direction = palette[color] - background  # (H, W, 3)
  alpha = np.sum((clip.astype(np.float32) - background) * direction, axis=-1)
  alpha /= np.maximum(np.sum(direction ** 2, axis=-1), 1.0)
  alpha = np.where(near_object, np.clip(alpha, 0.0, 1.0), 0.0).astype(np.float32)
  grid = np.arange(clip.shape[1], dtype=np.float32) + 0.5  # pixel centres, as the renderer
  mass = alpha.sum(axis=(1, 2))
  ys = (alpha.sum(axis=2) * grid[None]).sum(axis=1)
  xs = (alpha.sum(axis=1) * grid[None]).sum(axis=1)
  valid = present & (mass > 0)
  centers[valid, 0] = ys[valid] / mass[valid]
  centers[valid, 1] = xs[valid] / mass[valid]
  return color, alpha, centers


def _match_templates(alphas: np.ndarray, centers: np.ndarray, image_size: int):
  """Best (shape, size) per clip by mean soft IoU over frames. alphas (n, T, H, W)."""
  n, num_frames = centers.shape[:2]
  valid = ~np.isnan(centers[..., 0])
  # Frames without an object are rendered anywhere and then ignored.
  filled = np.where(valid[..., None], centers, image_size / 2.0)
  attrs = np.zeros((n * len(_TEMPLATES), 4), np.int64)
  attrs[:, 0] = np.tile(_TEMPLATES[:, 0], n)
  attrs[:, 2] = np.tile(_TEMPLATES[:, 1], n)
  coverage = shapes.coverage(attrs, np.repeat(filled, len(_TEMPLATES), axis=0), image_size)
  coverage = coverage.reshape(n, len(_TEMPLATES), num_frames, image_size, image_size)
  observed = alphas[:, None]
  overlap = np.minimum(observed, coverage).sum(axis=(3, 4))
  union = np.maximum(np.maximum(observed, coverage).sum(axis=(3, 4)), 1e-6)
  iou = overlap / union  # (n, templates, T)
  frames = np.maximum(valid.sum(axis=1), 1)[:, None]
  score = np.where(valid[:, None], iou, 0.0).sum(axis=2) / frames
  best = np.argmax(score, axis=1)
  return _TEMPLATES[best, 0], _TEMPLATES[best, 1], score[np.arange(n), best]


def direction_from_track(centers: np.ndarray, image_size: int, motion_grid: int = 0
                         ) -> np.ndarray:
  """Compass direction index per clip from the first bounce-free frames; -1 if static/unseen."""
  frames = min(centers.shape[1], bounce_free_frames(image_size, motion_grid))
  track = centers[:, :frames].astype(np.float64)
  valid = ~np.isnan(track[..., 0])
  t = np.arange(frames, dtype=np.float64)[None, :]
  count = valid.sum(axis=1)
  weights = valid.astype(np.float64)
  t_mean = (weights * t).sum(axis=1) / np.maximum(count, 1)
  t_centered = np.where(valid, t - t_mean[:, None], 0.0)
  position = np.where(valid[..., None], track, 0.0)
  position_mean = position.sum(axis=1) / np.maximum(count, 1)[:, None]
  covariance = (t_centered[..., None] * (position - position_mean[:, None])
                * weights[..., None]).sum(axis=1)
  variance = np.maximum((t_centered ** 2).sum(axis=1), 1e-12)
  velocity = covariance / variance[:, None]  # (N, 2) pixels per frame, (dy, dx)
  speed = np.linalg.norm(velocity, axis=1)
  direction = np.argmax(velocity @ shapes.DIRECTION_VECTORS.T.astype(np.float64), axis=1)
  moving = (count >= 2) & (speed >= MIN_SPEED_FRACTION * _slowest_real_speed(image_size, motion_grid))
  return np.where(moving, direction, -1).astype(np.int32)


def read_videos(videos: np.ndarray, progress_name: str | None = None,
                motion_grid: int = 0) -> OracleReading:
  """Reads the attributes of uint8 videos (N, T, H, W, 3) with square frames.

  `motion_grid` is the data's (config.data.motion_grid): it sets how many frames are
  bounce-free for the direction fit.

  With `progress_name`, reports rate and ETA (2048 clips at 64 px take about a minute)."""
  videos = np.asarray(videos)
  if videos.ndim != 5 or videos.shape[-1] != 3 or videos.shape[2] != videos.shape[3]:
    raise ValueError(f"oracle expects uint8 videos (N, T, S, S, 3), got {videos.shape}")
  if videos.dtype != np.uint8:
    raise ValueError(f"oracle expects uint8 videos, got {videos.dtype}")
  n, num_frames, image_size = videos.shape[0], videos.shape[1], videos.shape[2]
  predicted = np.full((n, 4), -1, np.int32)
  centers = np.full((n, num_frames, 2), np.nan, np.float32)
  scores = np.zeros((n,), np.float32)
  progress = Progress(total=n, name=progress_name, unit="clips") if progress_name else None
  for begin in range(0, n, _CHUNK):
    chunk = range(begin, min(n, begin + _CHUNK))
    readings = [_read_clip(videos[i]) for i in chunk]
    alphas = np.stack([r[1] for r in readings])
    chunk_centers = np.stack([r[2] for r in readings])
    shape, size, score = _match_templates(alphas, chunk_centers, image_size)
    seen = ~np.all(np.isnan(chunk_centers[..., 0]), axis=1)
    idx = np.arange(begin, chunk.stop)
    predicted[idx, 1] = [r[0] for r in readings]
    predicted[idx, 0] = np.where(seen, shape, -1)
    predicted[idx, 2] = np.where(seen, size, -1)
    centers[idx] = chunk_centers
    scores[idx] = np.where(seen, score, 0.0)
    if progress:
      progress.update(len(idx))
  if progress:
    progress.close()
  predicted[:, 3] = direction_from_track(centers, image_size, motion_grid)
  return OracleReading(attributes=predicted, centers=centers, template_score=scores)


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
  """Per-attribute and all-correct accuracy of (N, 4) predictions against ground truth."""
  predicted, truth = np.asarray(predicted), np.asarray(truth)
  correct = predicted == truth
  result = {name: float(correct[:, i].mean()) for i, name in enumerate(ATTRIBUTES)}
  result["all"] = float(correct.all(axis=1).mean())
  return result


def summarize(reading: OracleReading, attributes: np.ndarray) -> dict[str, float]:
  """Accuracies, plus the fraction of videos with an object and the mean template IoU."""
  result = accuracy(reading.attributes, attributes)
  result["detected"] = float(np.mean(~np.all(np.isnan(reading.centers[..., 0]), axis=1)))
  result["template_iou"] = float(reading.template_score.mean())
  return result


def evaluate(videos: np.ndarray, attributes: np.ndarray, motion_grid: int = 0
             ) -> dict[str, float]:
  """Oracle accuracies of videos against the attributes their captions asked for."""
  return summarize(read_videos(videos, motion_grid=motion_grid), attributes)
