"""The Multimodal VoxCeleb release folder: what is in it, the split, and its frames.

Layout of `config.data.manual_dir` (MMVID's `mm_vox_celeb`, see docs/mmvoxceleb.md):

- `video/<key>/*.png`: the frames of one clip (name order, numbers compared as numbers);
- `label/<key>.txt`: 40 comma-separated CelebA 0/1 attributes in CelebA's standard order;
- `mask/<key>/*.png`: face-parsing masks (optional; needed by the mask modes);
- `draw/style1/<key>/*.png`: portrait drawings (optional; needed by the drawing modes);
- `txt/<key>.txt`: the release's 20 PCFG captions, one per line (read only with
  `data.caption_source="release"`; by default the captions are generated from the labels).

Keys look like `id11248#yDqlBD8m_b8#00004.txt#000.mp4`; the pid (one interview situation)
is the first two '#'-fields. A clip without a label (or with a malformed one), with an empty
frame folder, or with a frame that does not decode is skipped and counted (one log line per
kind). Unreadable mask/drawing frames are skipped and counted too.

Split: the release defines none. Whole pids are held out by a stable hash: u = the first
8 bytes of SHA-1(pid) as a fraction in [0, 1); train when u < f_train, validation when
u < f_train + f_validation, else test. No interview situation is in two splits.
"""

import concurrent.futures
import dataclasses
import hashlib
import os
import re

from absl import logging
import numpy as np
from PIL import Image

from mmvid_jax.data import mmvoxceleb_captions as captions_lib
from mmvid_jax.data import video_text_data
from mmvid_jax.errors import UserError

SPLITS = ("train", "validation", "test")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")
DRAW_STYLE = "style1"
CAPTION_SOURCES = ("generate", "release")
LAYOUT = ("video/<key>/*.png frames, label/<key>.txt (40 comma-separated CelebA 0/1 "
          "attributes), and for the mask/drawing modes mask/<key>/*.png and "
          "draw/style1/<key>/*.png (MMVID's Multimodal VoxCeleb release)")


@dataclasses.dataclass(frozen=True)
class Item:
  """One clip of the folder."""
  key: str
  pid: str
  frame_paths: tuple[str, ...]
  labels: tuple[int, ...]
  mask_paths: tuple[str, ...]
  draw_paths: tuple[str, ...]
  captions: tuple[str, ...] = ()  # the release's txt/<key>.txt; empty: generated from labels

  def all_captions(self) -> list[str]:
    return list(self.captions) or captions_lib.pcfg_captions(self.labels, self.key)


def pid_of(key: str) -> str:
  """VoxCeleb id + YouTube id: 'id11248#yDqlBD8m_b8#00004.txt#000.mp4' -> 'id11248#yDqlBD8m_b8'."""
  return "#".join(key.split("#")[:2])


def _natural_key(name: str):
  return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _frames_in(folder: str) -> tuple[str, ...]:
  if not os.path.isdir(folder):
    return ()
  names = sorted((n for n in os.listdir(folder)
                  if n.lower().endswith(FRAME_EXTENSIONS) and not n.startswith(".")),
                 key=_natural_key)
  return tuple(os.path.join(folder, n) for n in names)


def check_folder(manual_dir: str) -> None:
  """A one-line UserError unless manual_dir has the release's video/ and label/ folders."""
  if not manual_dir:
    raise UserError("config.data.manual_dir is not set. Fix: pass --config.data.manual_dir=<the "
                    f"Multimodal VoxCeleb folder holding {LAYOUT}>.")
  if not os.path.isdir(manual_dir):
    raise UserError(f"config.data.manual_dir {manual_dir!r} is not a folder. Fix: point it at "
                    f"the Multimodal VoxCeleb folder holding {LAYOUT}.")
  missing = [d for d in ("video", "label") if not os.path.isdir(os.path.join(manual_dir, d))]
  if missing:
    raise UserError(f"config.data.manual_dir {manual_dir!r} has no {' or '.join(missing)}/ "
                    f"folder. Fix: point it at the Multimodal VoxCeleb folder holding {LAYOUT}.")


def has_modality(manual_dir: str, modality: str) -> bool:
  folder = {"mask": ("mask",), "draw": ("draw", DRAW_STYLE), "txt": ("txt",)}[modality]
  return os.path.isdir(os.path.join(manual_dir, *folder))


def parse_labels(text: str) -> tuple[int, ...]:
  """'0,1,...' (40 values) -> ints; ValueError when it is not 40 zeros and ones."""
  values = [v.strip() for v in text.strip().replace("\n", ",").split(",") if v.strip()]
  if len(values) != captions_lib.NUM_ATTRIBUTES or any(v not in ("0", "1") for v in values):
    raise ValueError(f"expected {captions_lib.NUM_ATTRIBUTES} comma-separated 0/1 values")
  return tuple(int(v) for v in values)


@dataclasses.dataclass
class ScanCounts:
  no_label: list = dataclasses.field(default_factory=list)
  bad_label: list = dataclasses.field(default_factory=list)
  no_frames: list = dataclasses.field(default_factory=list)
  no_text: list = dataclasses.field(default_factory=list)


def _release_captions(manual_dir: str, key: str) -> tuple[str, ...]:
  try:
    with open(os.path.join(manual_dir, "txt", key + ".txt"), encoding="utf-8") as f:
      return tuple(line.strip() for line in f if line.strip())
  except (OSError, UnicodeDecodeError):
    return ()


def scan(manual_dir: str, caption_source: str = "generate") -> tuple[list[Item], ScanCounts]:
  """Every clip with frames and a valid label (sorted by key), and what was skipped."""
  check_folder(manual_dir)
  if caption_source == "release" and not os.path.isdir(os.path.join(manual_dir, "txt")):
    raise UserError(f"config.data.caption_source='release' but {manual_dir!r} has no txt/ "
                    "folder. Fix: add the release's txt/<key>.txt captions, or use "
                    "caption_source='generate' (captions from the labels).")
  video_root = os.path.join(manual_dir, "video")
  keys = sorted(k for k in os.listdir(video_root)
                if not k.startswith(".") and os.path.isdir(os.path.join(video_root, k)))
  if not keys:
    raise UserError(f"config.data.manual_dir {manual_dir!r}: video/ holds no clip folders. "
                    f"Fix: point it at the Multimodal VoxCeleb folder holding {LAYOUT}.")
  items, counts = [], ScanCounts()
  for key in keys:
    frames = _frames_in(os.path.join(video_root, key))
    label_path = os.path.join(manual_dir, "label", key + ".txt")
    if not frames:
      counts.no_frames.append(key)
      continue
    if not os.path.isfile(label_path):
      counts.no_label.append(key)
      continue
    try:
      with open(label_path, encoding="utf-8") as f:
        labels = parse_labels(f.read())
    except (OSError, UnicodeDecodeError, ValueError):
      counts.bad_label.append(key)
      continue
    captions = _release_captions(manual_dir, key) if caption_source == "release" else ()
    if caption_source == "release" and not captions:
      counts.no_text.append(key)
      continue
    items.append(Item(key=key, pid=pid_of(key), frame_paths=frames, labels=labels,
                      captions=captions,
                      mask_paths=_frames_in(os.path.join(manual_dir, "mask", key)),
                      draw_paths=_frames_in(os.path.join(manual_dir, "draw", DRAW_STYLE, key))))
  return items, counts


def split_of(pid: str, fractions) -> str:
  digest = hashlib.sha1(pid.encode("utf-8")).digest()
  u = int.from_bytes(digest[:8], "big") / 2.0**64
  train, validation = float(fractions[0]), float(fractions[1])
  return "train" if u < train else "validation" if u < train + validation else "test"


def split_items(items: list[Item], fractions) -> dict[str, list[Item]]:
  out = {split: [] for split in SPLITS}
  for item in items:
    out[split_of(item.pid, fractions)].append(item)
  return out


def training_captions(data_config) -> list[str]:
  """SentencePiece corpus: PCFG captions of the train split, templates, paraphrase prompts."""
  d = data_config
  items, _ = scan(d.manual_dir, d.get("caption_source", "generate"))
  train = split_items(items, tuple(d.split_fractions))["train"]
  pcfg = [c for item in train for c in item.all_captions()]
  return captions_lib.corpus(pcfg)


# Frames.


def read_image(path: str, size: int) -> np.ndarray:
  """One image as uint8 (size, size, 3): shorter side to size, centre crop. ValueError if
  it does not decode."""
  try:
    with Image.open(path) as image:
      return video_text_data.resize_square(np.asarray(image.convert("RGB")), size)
  except Exception as e:  # pylint: disable=broad-except  # any decoder failure = unreadable
    raise ValueError(f"{os.path.basename(path)}: {type(e).__name__}") from None


def _spread(count: int, wanted: int) -> list[int]:
  """Up to `wanted` indices spread evenly over range(count)."""
  if count <= wanted:
    return list(range(count))
  if wanted <= 1:
    return [count // 2]
  return sorted({int(round(i * (count - 1) / (wanted - 1))) for i in range(wanted)})


def read_controls(paths, size: int, wanted: int) -> tuple[np.ndarray, int]:
  """Up to `wanted` evenly spread frames of a mask/drawing folder, and how many failed."""
  frames, failed = [], 0
  for i in _spread(len(paths), wanted):
    try:
      frames.append(read_image(paths[i], size))
    except ValueError:
      failed += 1
  stacked = np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
  return stacked, failed


def pool_seed(key: str) -> int:
  return int.from_bytes(hashlib.sha1(("mmvoxceleb-pool:" + key).encode()).digest()[:8], "big")


def same_pid_pool(item: Item, group: list[Item], size: int, pool_size: int):
  """`pool_size` frames and drawings, each of a random same-pid clip (this one included,
  as MMVID's `choice(pid2keys[pid])`) and a random frame of it; seeded by the key.

  Returns (frames (n, size, size, 3), drawings (m, ...), failed reads).
  """
  rng = np.random.default_rng(pool_seed(item.key))
  frames, draws, failed = [], [], 0
  with_draws = [g for g in group if g.draw_paths]
  for _ in range(pool_size):
    other = group[int(rng.integers(len(group)))]
    try:
      frames.append(read_image(other.frame_paths[int(rng.integers(len(other.frame_paths)))],
                               size))
    except ValueError:
      failed += 1
    if with_draws:
      other = with_draws[int(rng.integers(len(with_draws)))]
      try:
        draws.append(read_image(other.draw_paths[int(rng.integers(len(other.draw_paths)))],
                                size))
      except ValueError:
        failed += 1
  empty = np.zeros((0, size, size, 3), np.uint8)
  return (np.stack(frames) if frames else empty, np.stack(draws) if draws else empty, failed)


def decode_item(item: Item, group: list[Item], size: int, max_frames: int,
                control_frames: int, pool_size: int):
  """The stored example of one clip, or the error text when a video frame fails."""
  frames = []
  for path in item.frame_paths[:max_frames]:
    try:
      frames.append(read_image(path, size))
    except ValueError as e:
      return str(e)
  masks, bad_masks = read_controls(item.mask_paths, size, control_frames)
  draws, bad_draws = read_controls(item.draw_paths, size, control_frames)
  pid_frames, pid_draws, bad_pool = same_pid_pool(item, group, size, pool_size)
  return {"id": item.key, "pid": item.pid, "video": np.stack(frames),
          "captions": item.all_captions(),
          "labels": np.asarray(item.labels, np.int32), "mask": masks, "draw": draws,
          "pid_frames": pid_frames, "pid_draws": pid_draws,
          "bad_control_frames": bad_masks + bad_draws + bad_pool}


def decode_many(items: list[Item], size: int, max_frames: int, control_frames: int,
                pool_size: int, workers: int):
  """Yields (item, example dict or error text) in order, decoding in `workers` threads."""
  groups: dict[str, list[Item]] = {}
  for item in items:
    groups.setdefault(item.pid, []).append(item)
  pending = []
  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    for item in items:
      pending.append((item, pool.submit(decode_item, item, groups[item.pid], size, max_frames,
                                        control_frames, pool_size)))
      if len(pending) >= 2 * max(1, workers):
        first, future = pending.pop(0)
        yield first, future.result()
    for item, future in pending:
      yield item, future.result()


def log_skipped(counts: ScanCounts) -> None:
  """One log line per kind of clip skipped while scanning."""
  def examples(keys):
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
  if counts.no_label:
    logging.warning("mmvoxceleb: skipped %d clips without label/<key>.txt (%s).",
                    len(counts.no_label), examples(counts.no_label))
  if counts.bad_label:
    logging.warning("mmvoxceleb: skipped %d clips whose label is not 40 comma-separated 0/1 "
                    "values (%s).", len(counts.bad_label), examples(counts.bad_label))
  if counts.no_text:
    logging.warning("mmvoxceleb: skipped %d clips without a readable txt/<key>.txt caption "
                    "file (%s).", len(counts.no_text), examples(counts.no_text))
  if counts.no_frames:
    logging.warning("mmvoxceleb: skipped %d clips with an empty frame folder (%s).",
                    len(counts.no_frames), examples(counts.no_frames))
