"""A tiny copy of the MUG facial expression database (written under tmp_path).

Frame t of a take is a flat grey of value `frame_value(t)`, so tests read back the start
frame and the frame step. `write_tree` has the release layout plus the variations the reader
tolerates and the cases it must skip; `write_subjects` a regular tree of many takes.
"""

import os

import numpy as np
from PIL import Image

from mmvid_jax.data import mug_data

SIZE = 16
TAKE_FRAMES = 10


def frame_value(t: int) -> int:
  return 10 + 20 * t


def write_take(path: str, num_frames: int = TAKE_FRAMES, extension: str = ".jpg") -> str:
  os.makedirs(path, exist_ok=True)
  for t in range(num_frames):
    frame = np.full((SIZE, SIZE, 3), frame_value(t), np.uint8)
    Image.fromarray(frame).save(os.path.join(path, f"img_{t:04d}{extension}"), quality=95)
  return path


def write_tree(root: str) -> dict:
  """Six subjects (each with at least one usable take) in varied layouts, plus bad cases.

  Returns {"root", "takes": {relative path: (subject, expression)} of the usable takes,
  "skipped": {kind: count}} (counts for the tiny config's 7-frame minimum).
  """
  base = os.path.join(root, "subjects3")
  takes = {
      "001/anger/take000": ("001", "anger"),
      "001/happiness/take000": ("001", "happiness"),
      "001/happiness/take001": ("001", "happiness"),
      "002/session1/Happy/take000": ("002", "happiness"),  # extra nesting, alias, case
      "003/SURPRISE/take000": ("003", "surprise"),
      "004/neutral/take001": ("004", "neutral"),
      "005/fear/take000": ("005", "fear"),
      "006/disgust/take000": ("006", "disgust"),
      "006/sadness/take000": ("006", "sadness"),
  }
  for relative in takes:
    write_take(os.path.join(base, relative))
  with open(os.path.join(base, "001", "anger", "take000", "info.xml"), "w") as f:
    f.write("<take/>")  # a non-image file inside a take: ignored, counted
  write_take(os.path.join(base, "004", "neutral", "take000"), 3)  # too few frames
  os.makedirs(os.path.join(base, "005", "sadness", "take000"))  # empty take folder
  corrupt = write_take(os.path.join(base, "005", "sadness", "take001"))
  with open(os.path.join(corrupt, "img_0004.jpg"), "wb") as f:
    f.write(b"\xff\xd8 not a jpeg")
  write_take(os.path.join(base, "006", "calibration", "take000"))  # no expression folder
  write_take(os.path.join(root, "anger", "take000"))  # no subject folder
  takes = {f"subjects3/{k}": v for k, v in takes.items()}
  skipped = {"other_file": 1, "empty_folder": 1, "no_expression": 1, "no_subject": 1,
             "too_short": 1, "unreadable": 1}
  return {"root": root, "takes": takes, "skipped": skipped}


def write_subjects(root: str, num_subjects: int = 10, takes_per_expression: int = 2) -> str:
  """`num_subjects` subjects x every expression x `takes_per_expression` takes."""
  for subject in range(1, num_subjects + 1):
    for expression in mug_data.EXPRESSIONS:
      for take in range(takes_per_expression):
        write_take(os.path.join(root, f"{subject:03d}", expression, f"take{take:03d}"))
  return root
