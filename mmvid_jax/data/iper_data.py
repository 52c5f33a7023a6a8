"""iPER (Impersonator) as MMVID uses it: which videos are there, their captions, the split.

Layouts of `config.data.manual_dir` (docs/iper.md), mixed freely, anywhere below the root:

- the release videos: `<person>_<outfit>_<type>.mp4` (e.g. `iPER_256_video_release/001_1_1.mp4`)
  or nested `<person>/<outfit>/<type>.mp4`;
- frame folders of whole videos: `<person>_<outfit>_<type>/` (MMVID's `frames_256`, 30 fps) or
  nested `<person>/<outfit>/<type>/` (the release's `images_HD/001/1/1/`);
- MMVID's 100-frame clip folders `<person>_<outfit>_<type>#<start>/` (`clips_100_256`).

Every video is cut into consecutive `clip_frames` (100) frame clips named
`<person>_<outfit>_<type>#<start>`; clips shorter than the frames training needs are skipped
and counted. When one video is present in several forms, its clip folders win, otherwise its
first whole-video source in path order; the others are skipped as duplicates.

Captions (MMVID `scripts/iPER/make_text_clip.py`): "Person {person} dressed in {outfit} is
performing {'A' pose | random pose}." (type 1 is the A-pose).

Split (MMVID `scripts/iPER/split_train_val.py`): the person ids in natural order are shuffled
by `random.seed(42); random.shuffle(ids)`; the first 10 are validation persons. For each of
them, in that shuffled order, `random.choice` (same generator, continuing) picks one of the
person's outfits (natural order, among outfits that have a type-1 video) and that outfit's
type-1 video goes to validation. Every other clip, including the other videos of those
persons, is training data.
"""

import dataclasses
import random
import re

from mmvid_jax.data import frame_folders
from mmvid_jax.errors import UserError

SPLITS = ("train", "validation")
A_POSE_TYPE = "1"
LAYOUT = ("iPER videos named <person>_<outfit>_<type>.mp4 (or <person>/<outfit>/<type>.mp4), "
          "their frame folders (<person>_<outfit>_<type>/ or <person>/<outfit>/<type>/), or "
          "MMVID's clip folders <person>_<outfit>_<type>#<start>/")
SPEEDS = ("slow", "normal", "fast")

_FLAT_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)(?:#(\d+))?$")
_NUMBER = re.compile(r"^\d+$")


@dataclasses.dataclass(frozen=True)
class VideoKey:
  person: str
  outfit: str
  type: str

  @property
  def name(self) -> str:
    return f"{self.person}_{self.outfit}_{self.type}"


@dataclasses.dataclass(frozen=True)
class Video:
  """One iPER video: its key and the sources that hold it (one whole video, or clips)."""
  key: VideoKey
  sources: tuple[frame_folders.Source, ...]
  starts: tuple[int, ...]  # first frame of each source in the video (0 for a whole video)


def natural_key(text: str):
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def parse_source(source: frame_folders.Source) -> tuple[VideoKey, int | None] | None:
  """(key, clip start or None for a whole video), or None when the name is not iPER's."""
  match = _FLAT_NAME.match(source.name)
  if match:
    person, outfit, kind, start = match.groups()
    if start is not None and not source.is_frames_folder:
      return None
    return VideoKey(person, outfit, kind), None if start is None else int(start)
  parts = source.parts
  if (_NUMBER.match(source.name) and len(parts) >= 2
      and all(_NUMBER.match(p) for p in parts[-2:])):
    return VideoKey(parts[-2], parts[-1], source.name), None
  return None


def pose_words(kind: str) -> str:
  return "'A' pose" if kind == A_POSE_TYPE else "random pose"


def caption(key: VideoKey) -> str:
  return f"Person {key.person} dressed in {key.outfit} is performing {pose_words(key.type)}."


def rebuild_caption(key: VideoKey, draws) -> str:
  """MMVID's iPER text augmentation (`--drop_sentence`, training) from three U(0,1) draws:
  "a person" vs "person {id}" (50/50), no "dressed in {outfit}" (p=0.1), "is performing some
  pose" vs the pose (50/50), then a trailing ",". (MMVID leaves a double space where the
  outfit was dropped; the parts are joined by single spaces here, which tokenizes the same.)
  Mirrored in the input pipeline by `iper_input.rebuild_caption_tf`.
  """
  who = "a person" if draws[0] < 0.5 else f"person {key.person}"
  dressed = "" if draws[1] < 0.1 else f"dressed in {key.outfit}"
  pose = "is performing some pose" if draws[2] < 0.5 else f"is performing {pose_words(key.type)}"
  return " ".join(part for part in (who, dressed, pose) if part) + ","


def evaluation_caption(key: VideoKey) -> str:
  """MMVID's deterministic form with `--drop_sentence`: caption[:-1] + ","."""
  return caption(key)[:-1] + ","


def speed_steps(frame_step: int) -> tuple[int, int, int]:
  """MMVID `--slow`: slow = step // 2, normal = step, fast = step + step // 2."""
  return (frame_step // 2, frame_step, frame_step + frame_step // 2)


def needed_frames(num_frames: int, frame_step: int, slow: bool) -> int:
  step = speed_steps(frame_step)[2] if slow else frame_step
  return (num_frames - 1) * step + 1


def scan(manual_dir: str) -> tuple[list[Video], frame_folders.Skipped]:
  """Every iPER video found, sorted by key, and what was skipped while looking."""
  frame_folders.check_root("iPER", manual_dir, LAYOUT)
  skipped = frame_folders.Skipped("iper")
  whole: dict[VideoKey, list[frame_folders.Source]] = {}
  clips: dict[VideoKey, list[tuple[int, frame_folders.Source]]] = {}
  for source in frame_folders.find_sources(manual_dir, skipped):
    parsed = parse_source(source)
    if parsed is None:
      skipped.add("unnamed", "videos or frame folders not named <person>_<outfit>_<type>",
                  source.relative_path)
      continue
    key, start = parsed
    if start is None:
      whole.setdefault(key, []).append(source)
    else:
      clips.setdefault(key, []).append((start, source))
  videos = []
  for key in sorted(set(whole) | set(clips), key=lambda k: natural_key(k.name)):
    if key in clips:
      chosen = sorted(clips[key], key=lambda c: c[0])
      duplicates = whole.get(key, [])
    else:
      chosen = [(0, whole[key][0])]
      duplicates = whole[key][1:]
    for source in duplicates:
      skipped.add("duplicate", "duplicate copies of a video already read elsewhere",
                  source.relative_path)
    videos.append(Video(key, tuple(s for _, s in chosen), tuple(start for start, _ in chosen)))
  if not videos:
    raise UserError(f"config.data.manual_dir {manual_dir!r} holds no iPER video. Fix: point "
                    f"it at {LAYOUT}.")
  return videos, skipped


def validation_keys(keys, num_persons: int = 10, seed: int = 42) -> set[VideoKey]:
  """The type-1 videos of one outfit of each of `num_persons` persons drawn with `seed`."""
  persons = sorted({k.person for k in keys}, key=natural_key)
  outfits: dict[str, list[str]] = {}
  for k in sorted(keys, key=lambda k: natural_key(k.outfit)):
    if k.type == A_POSE_TYPE and k.outfit not in outfits.setdefault(k.person, []):
      outfits[k.person].append(k.outfit)
  rng = random.Random(seed)
  rng.shuffle(persons)
  chosen = set()
  for person in persons[:num_persons]:
    if outfits.get(person):
      chosen.add(VideoKey(person, rng.choice(outfits[person]), A_POSE_TYPE))
  return chosen


def split_videos(videos: list[Video], num_persons: int, seed: int) -> dict[str, list[Video]]:
  held_out = validation_keys([v.key for v in videos], num_persons, seed)
  return {"train": [v for v in videos if v.key not in held_out],
          "validation": [v for v in videos if v.key in held_out]}


def training_captions(data_config) -> list[str]:
  """Every caption training can show (a SentencePiece corpus): stored, rebuilt and with speeds."""
  videos, _ = scan(data_config.manual_dir)
  train = split_videos(videos, int(data_config.validation_persons),
                       int(data_config.split_seed))["train"]
  lines = []
  for video in train:
    forms = [caption(video.key), evaluation_caption(video.key)]
    forms += [rebuild_caption(video.key, (a, b, c)) for a in (0, 1) for b in (0, 1)
              for c in (0, 1)]
    lines += [f"{form} {speed} speed." for form in forms for speed in SPEEDS] + forms
  return lines
