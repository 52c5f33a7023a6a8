"""MUGEN split files: clip records, caption choice (`text_source`) and frame sampling.

`manual_dir` holds `train.json`, `val.json` (or `valid.json`), `test.json` and optionally
`train_downsampled.json`. Per-clip `json_file` paths are relative to a root: `config.data.
root_dir` when set, else the split file's `metadata.data_folder` when that folder exists on
this machine, else `manual_dir`'s parent.

Caption rules (MUGEN's reference loader): annotation 0 is the auto-generated text, the others
are human-written. `auto`: index 0. `manual`: a random index >= 1 in training, index 1 in
evaluation (clips without manual text are skipped). `both`: a random index over all (seeded
per clip in evaluation, so evaluation is deterministic).
"""

import dataclasses
import json
import os

from absl import logging
import numpy as np

from mmvid_jax.data import mugen_game
from mmvid_jax.errors import UserError

SPLITS = ("train", "validation", "test")
TEXT_SOURCES = ("auto", "manual", "both")
OBTAIN = ("MUGEN is obtained from https://mugen-org.github.io/download (coinrun_dataset_jsons "
          "for the split files, the per-clip game-state JSONs, and the coinrun assets)")


@dataclasses.dataclass(frozen=True)
class Clip:
  id: str
  json_path: str
  num_frames: int
  captions: tuple[str, ...]  # Index 0: auto text; then the manual texts.
  characters: tuple[str, ...]
  game_events: tuple[str, ...]
  world_theme: int


def split_file(manual_dir: str, split: str, use_downsampled_train: bool = False) -> str:
  """Path of a split's file, or a UserError naming what is missing."""
  if not manual_dir or not mugen_game.is_dir(manual_dir):
    raise UserError(f"config.data.manual_dir {manual_dir!r} is not a folder. Fix: point it at "
                    "MUGEN's coinrun_dataset_jsons/release folder (train.json, val.json, "
                    f"test.json); {OBTAIN}.")
  if split not in SPLITS:
    raise UserError(f"unknown MUGEN split {split!r}. Fix: use one of {', '.join(SPLITS)}.")
  names = {"train": ("train_downsampled.json",) if use_downsampled_train else ("train.json",),
           "validation": ("val.json", "valid.json"), "test": ("test.json",)}[split]
  for name in names:
    path = os.path.join(manual_dir, name)
    if mugen_game.is_file(path):
      return path
  hint = (" or set config.data.use_downsampled_train=False" if use_downsampled_train else "")
  raise UserError(f"MUGEN split file {' / '.join(names)} not found in manual_dir "
                  f"{manual_dir!r}. Fix: point config.data.manual_dir at the folder that holds "
                  f"the split files{hint}; {OBTAIN}.")


def _field(path: str, field: str, problem: str):
  raise UserError(f"malformed MUGEN split file {path!r}: field {field!r} {problem}. Fix: "
                  "re-extract the split file from the MUGEN release.")


def _strings(path, value, field) -> tuple[str, ...]:
  if value is None:
    return ()
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    _field(path, field, f"should be a list of strings, got {value!r:.60}")
  return tuple(value)


def read_split(path: str, root_dir: str = "", manual_dir: str = "") -> tuple[list[Clip], str]:
  """All clips of a split file (unfiltered) and the root their json paths resolve against."""
  try:
    with mugen_game.open_file(path) as f:
      content = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"malformed MUGEN split file {path!r}: not valid JSON ({e}). Fix: "
                    "re-extract it from the MUGEN release.") from None
  if not isinstance(content, dict) or not isinstance(content.get("data"), list):
    _field(path, "data", "is missing or not a list")
  metadata = content.get("metadata") or {}
  stored = metadata.get("data_folder", "") if isinstance(metadata, dict) else ""
  if root_dir:
    root = root_dir
  elif isinstance(stored, str) and stored and mugen_game.is_dir(stored):
    root = stored
  else:
    root = os.path.dirname(os.path.normpath(manual_dir or os.path.dirname(path)))
  clips = []
  for i, entry in enumerate(content["data"]):
    video = entry.get("video") if isinstance(entry, dict) else None
    if not isinstance(video, dict):
      _field(path, f"data[{i}].video", "is missing or not an object")
    for key, kind in (("json_file", str), ("num_frames", int)):
      if not isinstance(video.get(key), kind) or isinstance(video.get(key), bool):
        _field(path, f"data[{i}].video.{key}", f"should be {kind.__name__}, got "
               f"{video.get(key)!r:.60}")
    annotations = entry.get("annotations")
    if not isinstance(annotations, list) or not annotations:
      _field(path, f"data[{i}].annotations", "is missing or empty")
    captions = []
    for j, a in enumerate(annotations):
      if not isinstance(a, dict) or not isinstance(a.get("text"), str):
        _field(path, f"data[{i}].annotations[{j}].text", "is missing or not a string")
      captions.append(a["text"])
    clips.append(Clip(
        id=str(video.get("id", i)), json_path=os.path.join(root, video["json_file"]),
        num_frames=video["num_frames"], captions=tuple(captions),
        characters=_strings(path, video.get("gt_characters"), f"data[{i}].video.gt_characters"),
        game_events=_strings(path, video.get("game_events"), f"data[{i}].video.game_events"),
        world_theme=int(video.get("world_theme_n", -1))))
  return clips, root


def usable(clips: list[Clip], num_frames: int, frame_step: int, text_source: str,
           name: str = "") -> tuple[list[Clip], dict[str, int]]:
  """Drops clips too short for the sampling and, for `manual`, clips without manual text.

  Returns the kept clips and the skipped counts ({"too_short": n, "no_manual_text": m});
  each kind of skipped clip is also counted in one log line.
  """
  if text_source not in TEXT_SOURCES:
    raise UserError(f"config.data.text_source: unknown value {text_source!r}. Fix: use one of "
                    f"{', '.join(TEXT_SOURCES)}.")
  span = (num_frames - 1) * frame_step
  kept, short, no_manual = [], 0, 0
  for clip in clips:
    if clip.num_frames <= span:
      short += 1
    elif text_source == "manual" and len(clip.captions) < 2:
      no_manual += 1
    else:
      kept.append(clip)
  if short:
    logging.info("MUGEN %s: skipped %d of %d clips with <= %d frames (too short for %d frames "
                 "at step %d).", name, short, len(clips), span, num_frames, frame_step)
  if no_manual:
    logging.info("MUGEN %s: skipped %d of %d clips without a manual caption "
                 "(text_source='manual').", name, no_manual, len(clips))
  return kept, {"too_short": short, "no_manual_text": no_manual}


def load_clips(data_config, split: str) -> list[Clip]:
  """The usable clips of a split, per `config.data`."""
  d = data_config
  path = split_file(d.manual_dir, split, bool(d.get("use_downsampled_train", False))
                    and split == "train")
  clips, _ = read_split(path, d.get("root_dir", ""), d.manual_dir)
  return usable(clips, int(d.num_frames), int(d.frame_step), str(d.text_source),
                name=os.path.basename(path))[0]


def caption_index(num_captions: int, text_source: str, training: bool,
                  rng: np.random.Generator) -> int:
  """Which annotation to use (see the module docstring)."""
  if text_source == "auto" or num_captions < 2 and text_source == "both":
    return 0
  if text_source == "manual":
    if num_captions < 2:
      raise UserError("a MUGEN clip without manual captions reached text_source='manual'. "
                      "Fix: filter clips with mugen_data.usable first.")
    return int(rng.integers(1, num_captions)) if training else 1
  return int(rng.integers(0, num_captions))


def frame_indices(clip_frames: int, num_frames: int, frame_step: int, random_start: bool,
                  rng: np.random.Generator) -> np.ndarray:
  """`num_frames` indices `frame_step` apart; start 0, or uniform over the valid starts."""
  span = (num_frames - 1) * frame_step
  if clip_frames <= span:
    raise UserError(f"a MUGEN clip of {clip_frames} frames is too short for {num_frames} frames "
                    f"at step {frame_step}. Fix: lower config.data.num_frames or frame_step.")
  start = int(rng.integers(0, clip_frames - span)) if random_start else 0
  return start + frame_step * np.arange(num_frames)


def clip_rng(seed: int, index: int, salt: int = 0) -> np.random.Generator:
  """The random stream of one element (reproducible, independent across elements)."""
  return np.random.default_rng([int(seed), int(index), int(salt)])


def training_captions(data_config) -> list[str]:
  """The train split's captions allowed by `text_source` (the SentencePiece corpus)."""
  source = str(data_config.text_source)
  lines = []
  for clip in load_clips(data_config, "train"):
    lines += {"auto": clip.captions[:1], "manual": clip.captions[1:],
              "both": clip.captions}[source]
  return list(lines)
