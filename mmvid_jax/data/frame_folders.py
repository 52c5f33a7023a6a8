"""Shared by the iPER and MUG readers: finding videos and frame folders, cutting clips,
counting what is skipped.

A *source* is a video file (`video_text_data.VIDEO_EXTENSIONS`) or a *frame folder*: a
folder holding image files (`.png`, `.jpg`, `.jpeg`, any case) and no subfolder. Frames are
decoded (in natural name order, frame2 before frame10) and resized by `video_text_data`,
whose readers are reused here unchanged.
"""

import collections
import dataclasses
import os

from absl import logging
import numpy as np

from mmvid_jax.data import video_text_data
from mmvid_jax.errors import UserError

FRAME_EXTENSIONS = video_text_data.FRAME_EXTENSIONS
VIDEO_EXTENSIONS = video_text_data.VIDEO_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Source:
  """One video file or frame folder below the dataset root."""
  relative_path: str  # POSIX path under the root.
  path: str
  is_frames_folder: bool

  @property
  def name(self) -> str:
    """File stem or folder name."""
    base = os.path.basename(self.path)
    return base if self.is_frames_folder else os.path.splitext(base)[0]

  @property
  def parts(self) -> tuple[str, ...]:
    """Folders between the root and the source (outermost first)."""
    return tuple(self.relative_path.split("/")[:-1])


class Skipped:
  """Counts skipped things per kind, with a few examples, for one log line per kind."""

  def __init__(self, dataset: str):
    self.dataset = dataset
    self._items: dict[str, list[str]] = collections.defaultdict(list)
    self._why: dict[str, str] = {}

  def add(self, kind: str, why: str, example: str) -> None:
    self._items[kind].append(example)
    self._why[kind] = why

  def counts(self) -> dict[str, int]:
    return {kind: len(items) for kind, items in self._items.items()}

  def merge(self, other: "Skipped") -> None:
    for kind, items in other._items.items():  # pylint: disable=protected-access
      self._items[kind].extend(items)
      self._why[kind] = other._why[kind]  # pylint: disable=protected-access

  def log(self, where: str = "") -> None:
    """One warning per kind: how many, why, and up to three examples."""
    for kind, items in sorted(self._items.items()):
      shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
      logging.warning("%s%s: skipped %d %s (%s).", self.dataset, f" {where}" if where else "",
                      len(items), self._why[kind], shown)


def check_root(dataset: str, manual_dir: str, layout: str) -> None:
  if not manual_dir:
    raise UserError(f"config.data.manual_dir is not set; {dataset} is read from your copy of "
                    f"the dataset. Fix: pass --config.data.manual_dir=<a folder of {layout}>.")
  if not os.path.isdir(manual_dir):
    raise UserError(f"config.data.manual_dir {manual_dir!r} is not a folder. Fix: point it "
                    f"at the folder of {layout}.")


def find_sources(root: str, skipped: Skipped) -> list[Source]:
  """Every video file and frame folder below `root`, sorted by path.

  Hidden entries are ignored. Folders with no image, no video and no subfolder are counted
  as `empty_folder`; other files (text, thumbnails' metadata, ...) as `other_file`.
  """
  found = []
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    files = sorted(f for f in files if not f.startswith("."))
    videos = [f for f in files if f.lower().endswith(VIDEO_EXTENSIONS)]
    images = [f for f in files if f.lower().endswith(FRAME_EXTENSIONS)]
    relative = os.path.relpath(directory, root).replace(os.sep, "/")
    used = set(videos) | (set(images) if not subdirs and not videos else set())
    for name in files:
      # .txt files are caption or split lists, expected beside the data.
      if name not in used and not name.lower().endswith(".txt"):
        skipped.add("other_file", "files that are neither a video nor a frame of a frame "
                    "folder", _join(relative, name))
    if directory != root and not subdirs and images and not videos:
      found.append(Source(relative, directory, True))
    elif directory != root and not subdirs and not files:
      skipped.add("empty_folder", "empty folders (no frame, no video)", relative)
    found += [Source(_join(relative, f), os.path.join(directory, f), False) for f in videos]
  return sorted(found, key=lambda s: s.relative_path)


def _join(relative: str, name: str) -> str:
  return name if relative == "." else f"{relative}/{name}"


def cut_clips(frames: np.ndarray, clip_frames: int, first_start: int = 0):
  """Consecutive clips of `clip_frames` frames: [(start, frames)], the last one shorter."""
  return [(first_start + start, frames[start:start + clip_frames])
          for start in range(0, len(frames), clip_frames)]


def decode_many(sources, size: int, max_frames: int, workers: int):
  """Yields (source, uint8 frames (n, size, size, 3) or the error text), in order."""
  return video_text_data.decode_many(sources, size, max_frames, workers)


def default_workers(requested: int) -> int:
  if requested > 0:
    return requested
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:
    return max(1, os.cpu_count() or 1)
