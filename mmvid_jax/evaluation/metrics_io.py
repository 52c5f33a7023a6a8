"""Writing evaluation results: `metrics.json`, per-video records, TensorBoard, comparison grids.

`metrics.json` is written atomically (temp file + rename), so a crash never leaves a half
file; a previous `metrics.json` from a different evaluation config is kept, renamed with its
time stamp, never overwritten.
"""

import datetime
import json
import math
import os
from typing import Any, Mapping

from absl import logging
import jax
import numpy as np

from mmvid_jax.infra import video_io

EVALUATION_DIR = "evaluation"
METRICS_FILE = "metrics.json"
PER_VIDEO_FILE = "per_video.jsonl"
FORMAT_VERSION = 1


def evaluation_dir(workdir: str) -> str:
  return os.path.join(workdir, EVALUATION_DIR)


def metrics_path(workdir: str) -> str:
  return os.path.join(evaluation_dir(workdir), METRICS_FILE)


def _jsonable(value: Any) -> Any:
  """numpy scalars/arrays -> Python; non-finite floats -> None (JSON has no NaN)."""
  if isinstance(value, Mapping):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return _jsonable(value.tolist())
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    value = float(value)
    return value if math.isfinite(value) else None
  if isinstance(value, bytes):
    return value.decode("utf-8", "replace")
  return value


def _atomic_write(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def read_metrics(workdir: str) -> dict | None:
  """The stored metrics, or None when absent or unreadable."""
  try:
    with open(metrics_path(workdir)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def archive_previous(workdir: str) -> str | None:
  """Renames an existing metrics.json to metrics-<UTC time>.json; returns the new path."""
  path = metrics_path(workdir)
  if not os.path.exists(path):
    return None
  stamp = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
  target = os.path.join(evaluation_dir(workdir), f"metrics-{stamp:%Y%m%dT%H%M%SZ}.json")
  os.replace(path, target)
  logging.info("Kept the previous evaluation as %s.", target)
  return target


def write_metrics(workdir: str, record: Mapping[str, Any]) -> str:
  path = metrics_path(workdir)
  record = {"format_version": FORMAT_VERSION, **record}
  _atomic_write(path, json.dumps(_jsonable(record), indent=2, sort_keys=True) + "\n")
  return path


def write_per_video(workdir: str, rows: list[Mapping[str, Any]]) -> str:
  path = os.path.join(evaluation_dir(workdir), PER_VIDEO_FILE)
  _atomic_write(path, "".join(json.dumps(_jsonable(row), sort_keys=True) + "\n" for row in rows))
  return path


def flatten_scalars(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
  """{"a": {"b": 1.0}} -> {"a/b": 1.0}; keeps finite numbers only (for TensorBoard)."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}/{key}" if prefix else str(key)
    if isinstance(value, Mapping):
      out.update(flatten_scalars(value, name))
    elif isinstance(value, (bool, np.bool_)):
      continue
    elif isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
      out[name] = float(value)
  return out


def frames_in_a_row(videos: np.ndarray) -> np.ndarray:
  """(N, T, H, W, C) -> (N, H, T*W, C): one image strip per video for TensorBoard."""
  n, t, h, w, c = videos.shape
  return videos.transpose(0, 2, 1, 3, 4).reshape(n, h, t * w, c)


def write_comparison_grid(workdir: str, name: str, real: np.ndarray, generated: np.ndarray,
                          fps: float = 8) -> str:
  """A GIF with real clips on the top row and the generated ones below."""
  grid = video_io.tile_videos(list(real) + list(generated), columns=len(real))
  path = os.path.join(evaluation_dir(workdir), f"{name}_vs_real.gif")
  return video_io.write_video(path, grid, fps=fps)


def write_tensorboard(workdir: str, step: int, scalars: Mapping[str, float],
                      videos: Mapping[str, np.ndarray]) -> None:
  """Scalars and frame strips under <workdir>/evaluation (process 0 only)."""
  if jax.process_index() != 0:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  from clu import metric_writers  # TensorFlow only in logging code
  writer = metric_writers.SummaryWriter(evaluation_dir(workdir))
  try:
    if scalars:
      writer.write_scalars(step, dict(scalars))
    images = {f"videos/{k}": frames_in_a_row(np.asarray(v)) for k, v in videos.items() if len(v)}
    if images:
      writer.write_images(step, images)
    writer.flush()
  finally:
    writer.close()
