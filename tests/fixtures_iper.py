"""A tiny copy of iPER in every layout the reader accepts (written under tmp_path).

Frame t of a video is a flat grey of value `frame_value(t)`, so tests read back which source
frames a clip holds (the values survive H.264). Videos are 30 frames: cut into 12-frame clips
(the tiny config) they give clips at 0 and 12 and a 6-frame rest at 24 that is too short.
"""

import os

import numpy as np
from PIL import Image

from mmvid_jax.infra import video_io

SIZE = 16
VIDEO_FRAMES = 30


def frame_value(t: int) -> int:
  return 10 + 8 * t


def frames(num_frames: int, first: int = 0) -> np.ndarray:
  out = np.zeros((num_frames, SIZE, SIZE, 3), np.uint8)
  for t in range(num_frames):
    out[t] = frame_value(first + t)
  return out


def write_mp4(path: str, num_frames: int = VIDEO_FRAMES) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  video_io.write_video(path, frames(num_frames), fps=30, min_size=16)


def write_frame_folder(path: str, num_frames: int = VIDEO_FRAMES, first: int = 0,
                       extension: str = ".png") -> None:
  os.makedirs(path, exist_ok=True)
  for t, frame in enumerate(frames(num_frames, first)):
    Image.fromarray(frame).save(os.path.join(path, f"{first + t:04d}{extension}"))


def write_tree(root: str) -> dict:
  """Persons 001-006 in the release, images_HD and MMVID clip layouts, plus the bad cases.

  Returns {"root", "videos": {key name: number of 12-frame clips kept}, "skipped": {kind:
  count}}.
  """
  release = os.path.join(root, "iPER_256_video_release")
  for name in ("001_1_1", "001_1_2", "001_2_1", "001_2_2", "002_1_1", "002_1_2"):
    write_mp4(os.path.join(release, name + ".mp4"))
  # The release's frame folders: images_HD/<person>/<outfit>/<type>/.
  for person, outfit, kind in (("003", "1", "1"), ("003", "1", "2"), ("003", "10", "1")):
    write_frame_folder(os.path.join(root, "images_HD", person, outfit, kind), extension=".jpg")
  # Nested release videos.
  write_mp4(os.path.join(root, "nested", "004", "1", "2.mp4"))
  # MMVID's cut clip folders (whole 12-frame clips at 0 and 12 of video 005_1_1).
  clips = os.path.join(root, "clips_100_256")
  write_frame_folder(os.path.join(clips, "005_1_1#0"), 12, 0)
  write_frame_folder(os.path.join(clips, "005_1_1#12"), 12, 12)
  write_frame_folder(os.path.join(clips, "005_1_2#0"), 12, 0)
  with open(os.path.join(clips, "005_1_2#0", "Thumbs.db"), "wb") as f:
    f.write(b"not a frame")
  write_frame_folder(os.path.join(clips, "005_1_2#12"), 5, 12)  # too short
  os.makedirs(os.path.join(clips, "006_1_1#0"))  # empty frame folder
  write_frame_folder(os.path.join(clips, "006_1_2#0"), 12, 0)
  with open(os.path.join(clips, "006_1_2#0", "0003.png"), "wb") as f:
    f.write(b"\x89PNG corrupt")  # a corrupt frame: the clip is skipped
  # A second copy of 001_1_1 (MMVID's frames_256 folder) and an unnamed folder.
  write_frame_folder(os.path.join(root, "frames_256", "001_1_1"), 14)
  write_frame_folder(os.path.join(root, "extras", "preview"), 3)
  with open(os.path.join(root, "README.txt"), "w", encoding="utf-8") as f:
    f.write("iPER\n")
  # 001_1_1 is read from frames_256/ (first in path order): one clip and a 2-frame rest.
  whole = {"001_1_1": 1, "001_1_2": 2, "001_2_1": 2, "001_2_2": 2, "002_1_1": 2, "002_1_2": 2,
           "003_1_1": 2, "003_1_2": 2, "003_10_1": 2, "004_1_2": 2}
  videos = dict(whole, **{"005_1_1": 2, "005_1_2": 1})
  skipped = {"too_short": 10 + 1, "unreadable": 1, "empty_folder": 1, "duplicate": 1,
             "unnamed": 1, "other_file": 1}
  return {"root": root, "videos": videos, "skipped": skipped}
