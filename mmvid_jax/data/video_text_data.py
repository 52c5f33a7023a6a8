"""A user's own folder of captioned videos: what is in it, which split, and its frames.

Layout of `config.data.manual_dir` (see docs/video_text.md):

- videos: `*.mp4`, `*.avi`, `*.webm`, `*.mov`, `*.mkv`, `*.m4v`, `*.gif` anywhere below the
  root, or folders of frames (`*.png`, `*.jpg`, `*.jpeg`, in name order) with no subfolders
  and no video files; hidden files and folders are ignored;
- captions: `<video stem>.txt` next to the video (next to the frames folder for frames),
  one caption per line; and/or one `*.csv` (columns `file,caption`) or `*.jsonl`
  (`{"file": ..., "caption": ...}`, caption a string or a list) at the root, file paths
  relative to the root (several rows for one file add captions);
- splits: `train/`, `validation/` (or `val/`, `valid/`), `test/` subfolders when any of them
  exists; otherwise a split by the hash of each video's relative path (stable across
  machines and file orders): SHA-1 of the path as a fraction u in [0, 1), train when
  u < f_train, validation when u < f_train + f_validation, else test.
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import json
import os
import re

from absl import logging
import numpy as np
from PIL import Image, ImageSequence

from mmvid_jax.errors import UserError

SPLITS = ("train", "validation", "test")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v", ".gif")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")
CAPTION_TABLE_EXTENSIONS = (".csv", ".jsonl")
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val", "valid"),
                 "test": ("test",)}
LAYOUT = ("videos (mp4/avi/webm/mov/mkv/gif, or folders of png/jpg frames) with captions as a "
          ".txt per video (one caption per line) or one captions .csv/.jsonl (file,caption) "
          "at the root")


@dataclasses.dataclass(frozen=True)
class Item:
  """One video of the folder."""
  relative_path: str  # POSIX path under manual_dir: the example id.
  path: str
  is_frames_folder: bool
  captions: tuple[str, ...]


def _natural_key(name: str):
  """frame2 before frame10."""
  return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def check_folder(manual_dir: str) -> None:
  if not manual_dir:
    raise UserError("config.data.manual_dir is not set. Fix: pass --config.data.manual_dir=<your "
                    f"folder of {LAYOUT}>.")
  if not os.path.isdir(manual_dir):
    raise UserError(f"config.data.manual_dir {manual_dir!r} is not a folder. Fix: point it at "
                    f"the folder of {LAYOUT}.")


def _read_text(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f"caption file {path!r} could not be read ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else 'no details'}). Fix: make it a "
                    "readable UTF-8 text file, or remove it.") from None


def _caption_lines(text: str) -> list[str]:
  return [line.strip() for line in text.splitlines() if line.strip()]


def _table_captions(path: str) -> dict[str, list[str]]:
  """Captions per relative file path from a root-level .csv or .jsonl."""
  content = _read_text(path)
  table: dict[str, list[str]] = {}

  def add(file, caption, where):
    if not isinstance(file, str) or not file.strip():
      raise UserError(f"caption table {path!r} {where}: missing 'file'. Fix: give every row a "
                      "video path relative to the folder.")
    captions = caption if isinstance(caption, list) else [caption]
    if not all(isinstance(c, str) for c in captions):
      raise UserError(f"caption table {path!r} {where}: 'caption' must be text (or a list of "
                      "texts). Fix: correct that row.")
    key = os.path.normpath(file.strip()).replace(os.sep, "/")
    table.setdefault(key, []).extend(c.strip() for c in captions if c.strip())

  if path.endswith(".jsonl"):
    for number, line in enumerate(content.splitlines(), start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise UserError(f"caption table {path!r} line {number}: not valid JSON ({e.msg}). Fix: "
                        'write one {"file": ..., "caption": ...} object per line.') from None
      if not isinstance(row, dict):
        raise UserError(f"caption table {path!r} line {number}: not a JSON object. Fix: write "
                        'one {"file": ..., "caption": ...} object per line.')
      add(row.get("file"), row.get("caption", ""), f"line {number}")
    return table
  rows = list(csv.reader(io.StringIO(content)))
  if rows and [c.strip().lower() for c in rows[0][:2]] == ["file", "caption"]:
    rows = rows[1:]
  for number, row in enumerate(rows, start=1):
    if not row or not "".join(row).strip():
      continue
    if len(row) < 2:
      raise UserError(f"caption table {path!r} row {number}: expected 'file,caption', got "
                      f"{','.join(row)!r:.80}. Fix: quote captions that contain commas.")
    add(row[0], ",".join(row[1:]), f"row {number}")
  return table


def caption_table_path(manual_dir: str, captions_file: str = "") -> str:
  """The root-level caption table, or "" when the folder uses .txt files only."""
  if captions_file:
    path = captions_file if os.path.isabs(captions_file) else os.path.join(manual_dir,
                                                                           captions_file)
    if not os.path.isfile(path):
      raise UserError(f"config.data.captions_file {captions_file!r} not found in "
                      f"{manual_dir!r}. Fix: name a .csv/.jsonl there, or leave it empty.")
    return path
  tables = sorted(n for n in os.listdir(manual_dir)
                  if n.lower().endswith(CAPTION_TABLE_EXTENSIONS)
                  and os.path.isfile(os.path.join(manual_dir, n)))
  if len(tables) > 1:
    raise UserError(f"manual_dir {manual_dir!r} holds several caption tables {tables}. Fix: set "
                    "--config.data.captions_file to the one to use.")
  return os.path.join(manual_dir, tables[0]) if tables else ""


def _find_videos(manual_dir: str) -> list[tuple[str, bool]]:
  """(path, is_frames_folder) of every video below manual_dir, in sorted order."""
  found = []
  for directory, subdirs, files in os.walk(manual_dir):
    # Hidden entries (.git, macOS "._name" files, editor folders) are never data.
    subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    files = [f for f in files if not f.startswith(".")]
    videos = [f for f in sorted(files) if f.lower().endswith(VIDEO_EXTENSIONS)]
    if (directory != manual_dir and not subdirs and not videos
        and any(f.lower().endswith(FRAME_EXTENSIONS) for f in files)):
      found.append((directory, True))
    else:
      found += [(os.path.join(directory, f), False) for f in videos]
  return sorted(found)


def scan(manual_dir: str, captions_file: str = "") -> tuple[list[Item], int]:
  """Every video with its captions, and the number of videos without any caption.

  Raises a UserError when the folder is missing or holds no video.
  """
  check_folder(manual_dir)
  table_path = caption_table_path(manual_dir, captions_file)
  table = _table_captions(table_path) if table_path else {}
  videos = _find_videos(manual_dir)
  if not videos:
    raise UserError(f"config.data.manual_dir {manual_dir!r} holds no videos. Fix: fill it with "
                    f"{LAYOUT}.")
  items, uncaptioned = [], 0
  for path, is_frames in videos:
    relative = os.path.relpath(path, manual_dir).replace(os.sep, "/")
    captions = list(table.get(relative, []))
    stem = path if is_frames else os.path.splitext(path)[0]
    if os.path.isfile(stem + ".txt"):
      captions += _caption_lines(_read_text(stem + ".txt"))
    if captions:
      items.append(Item(relative, path, is_frames, tuple(captions)))
    else:
      uncaptioned += 1
  return items, uncaptioned


def split_folders_used(manual_dir: str) -> bool:
  return any(os.path.isdir(os.path.join(manual_dir, name))
             for names in SPLIT_FOLDERS.values() for name in names)


def hash_fraction(relative_path: str) -> float:
  """A stable number in [0, 1) from the path (first 8 bytes of its SHA-1)."""
  digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(relative_path: str, fractions, by_folder: bool) -> str | None:
  """The split of one video (None: outside the split folders, so unused)."""
  if by_folder:
    top = relative_path.split("/", 1)[0].lower()
    return next((s for s, names in SPLIT_FOLDERS.items() if top in names), None)
  u = hash_fraction(relative_path)
  train, validation = float(fractions[0]), float(fractions[1])
  return "train" if u < train else "validation" if u < train + validation else "test"


def split_items(items: list[Item], manual_dir: str, fractions) -> dict[str, list[Item]]:
  by_folder = split_folders_used(manual_dir)
  out = {split: [] for split in SPLITS}
  outside = 0
  for item in items:
    split = split_of(item.relative_path, fractions, by_folder)
    if split is None:
      outside += 1
    else:
      out[split].append(item)
  if outside:
    logging.warning("video_text: %d videos lie outside the train/validation/test folders and "
                    "are not used.", outside)
  return out


def training_captions(data_config) -> list[str]:
  """Captions of the train split (the SentencePiece corpus)."""
  d = data_config
  items, _ = scan(d.manual_dir, d.get("captions_file", ""))
  train = split_items(items, d.manual_dir, tuple(d.split_fractions))["train"]
  return [caption for item in train for caption in item.captions]


# Frames.


def resize_square(frame: np.ndarray, size: int) -> np.ndarray:
  """Shorter side to `size` (antialiased bicubic), then the centred size x size crop."""
  image = Image.fromarray(frame)
  if image.mode != "RGB":
    image = image.convert("RGB")
  width, height = image.size
  if (width, height) != (size, size):
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
  return np.asarray(image, dtype=np.uint8)


def _iter_source_frames(path: str, is_frames_folder: bool):
  if is_frames_folder:
    names = sorted((n for n in os.listdir(path) if n.lower().endswith(FRAME_EXTENSIONS)),
                   key=_natural_key)
    for name in names:
      with Image.open(os.path.join(path, name)) as image:
        yield np.asarray(image.convert("RGB"))
  elif path.lower().endswith(".gif"):
    with Image.open(path) as image:
      for frame in ImageSequence.Iterator(image):
        yield np.asarray(frame.convert("RGB"))
  else:
    import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
    from mmvid_jax.infra import video_io  # pylint: disable=g-import-not-at-top
    with video_io._spawning_ffmpeg():  # pylint: disable=protected-access
      reader = imageio.get_reader(path, format="FFMPEG")
    try:
      for frame in reader:
        yield np.asarray(frame)[..., :3]
    finally:
      reader.close()


def read_frames(path: str, is_frames_folder: bool, size: int, max_frames: int) -> np.ndarray:
  """The first `max_frames` frames, resized to size x size: uint8 (n, size, size, 3).

  Raises ValueError when the video cannot be decoded (or has no frame).
  """
  frames = []
  try:
    for frame in _iter_source_frames(path, is_frames_folder):
      frames.append(resize_square(frame, size))
      if len(frames) >= max_frames:
        break
  except Exception as e:  # pylint: disable=broad-except  # any decoder failure = unreadable
    raise ValueError(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
  if not frames:
    raise ValueError("no frames")
  return np.stack(frames)


def decode_many(items, size: int, max_frames: int, workers: int):
  """Yields (item, frames or the error text) in order; decodes in `workers` threads.

  Decoding runs in ffmpeg subprocesses and PIL (which releases the GIL), so threads scale.
  At most 2 * workers videos are in flight, so memory stays bounded.
  """
  def decode(item):
    try:
      return read_frames(item.path, item.is_frames_folder, size, max_frames)
    except ValueError as e:
      return str(e)

  pending = []
  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    for item in items:
      pending.append((item, pool.submit(decode, item)))
      if len(pending) >= 2 * max(1, workers):
        first, future = pending.pop(0)
        yield first, future.result()
    for item, future in pending:
      yield item, future.result()


def log_skipped(split: str, total: int, uncaptioned: int, unreadable: list[str],
                too_short: list[str], needed: int) -> None:
  """One log line per kind of skipped video."""
  def examples(paths):
    shown = ", ".join(paths[:3])
    return shown + (", ..." if len(paths) > 3 else "")
  if uncaptioned:
    logging.warning("video_text: skipped %d videos without a caption (no .txt next to them and "
                    "no row in the caption table).", uncaptioned)
  if unreadable:
    logging.warning("video_text %s: skipped %d of %d videos that could not be decoded (%s).",
                    split, len(unreadable), total, examples(unreadable))
  if too_short:
    logging.warning("video_text %s: skipped %d of %d videos shorter than %d frames (%s).",
                    split, len(too_short), total, needed, examples(too_short))
