"""Tiny folders of captioned videos in the real `video_text` layout (written under tmp_path).

Frame t of every clip is a flat grey of value `frame_value(t)` with a red band on its left and
a blue band on its right (so a centre crop of the wide frames removes both): the tests read
the start frame and frame step back from pixel values, which survive H.264 and GIF.
"""

import os

import numpy as np
from PIL import Image

from mmvid_jax.infra import video_io

HEIGHT, WIDTH = 24, 40  # Wider than tall: the centre crop drops the side bands.
BAND = 4


def frame_value(t: int) -> int:
  return 20 + 12 * t


def clip(num_frames: int) -> np.ndarray:
  frames = np.zeros((num_frames, HEIGHT, WIDTH, 3), np.uint8)
  for t in range(num_frames):
    frames[t] = frame_value(t)
  frames[:, :, :BAND] = (255, 0, 0)
  frames[:, :, -BAND:] = (0, 0, 255)
  return frames


def write_mp4(path: str, num_frames: int) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return video_io.write_video(path, clip(num_frames), fps=8, min_size=16)


def write_gif(path: str, num_frames: int) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return video_io.write_video(path, clip(num_frames), fps=8)


def write_frames_folder(path: str, num_frames: int, extension: str = ".png") -> str:
  os.makedirs(path, exist_ok=True)
  for t, frame in enumerate(clip(num_frames)):
    # Unpadded numbers: frame_10 must still come after frame_9.
    Image.fromarray(frame).save(os.path.join(path, f"frame_{t}{extension}"))
  return path


def write_captions(video_path: str, captions) -> None:
  stem = video_path if os.path.isdir(video_path) else os.path.splitext(video_path)[0]
  with open(stem + ".txt", "w", encoding="utf-8") as f:
    f.write("\n".join(captions) + "\n")


def caption_of(name: str, k: int) -> str:
  return f"clip {name} caption {k}. it moves slowly"


def write_folder(root: str, captions_as: str = "txt", num_frames: int = 12) -> dict:
  """Hash-split layout: 2 mp4s, 2 gifs, one frames folder (all with 2 captions each), plus a
  corrupt mp4, a video without caption and a too-short gif (2 frames).

  `captions_as`: "txt" (a .txt per video) or "csv" (one captions.csv at the root).
  Returns {"root", "good": {relative path: captions}, "corrupt", "uncaptioned", "short"}.
  """
  good = {}
  paths = {"clips/a.mp4": write_mp4, "clips/b.mp4": write_mp4, "c.gif": write_gif,
           "more/d.gif": write_gif}
  for relative, writer in paths.items():
    writer(os.path.join(root, relative), num_frames)
    good[relative] = [caption_of(relative, 0), caption_of(relative, 1)]
  write_frames_folder(os.path.join(root, "frames", "e"), num_frames)
  good["frames/e"] = [caption_of("frames/e", 0), caption_of("frames/e", 1)]
  # Corrupt: an mp4 name over bytes that are not a video.
  with open(os.path.join(root, "clips", "corrupt.mp4"), "wb") as f:
    f.write(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
  write_gif(os.path.join(root, "short.gif"), 2)
  write_gif(os.path.join(root, "uncaptioned.gif"), num_frames)
  captioned = dict(good)
  captioned["clips/corrupt.mp4"] = ["a corrupt video"]
  captioned["short.gif"] = ["a short video"]
  if captions_as == "txt":
    for relative, captions in captioned.items():
      write_captions(os.path.join(root, relative), captions)
  else:
    with open(os.path.join(root, "captions.csv"), "w", encoding="utf-8") as f:
      f.write("file,caption\n")
      for relative, captions in captioned.items():
        for caption in captions:
          f.write(f'{relative},"{caption}"\n')
  return {"root": root, "good": good, "corrupt": "clips/corrupt.mp4",
          "uncaptioned": "uncaptioned.gif", "short": "short.gif"}


def write_split_folders(root: str, per_split: dict | None = None, num_frames: int = 8) -> dict:
  """train/ validation/ test/ subfolders of captioned gifs; returns {split: [relative paths]}."""
  per_split = per_split or {"train": 8, "validation": 8, "test": 8}
  out = {}
  for split, count in per_split.items():
    out[split] = []
    for i in range(count):
      relative = f"{split}/v{i}.gif"
      write_gif(os.path.join(root, relative), num_frames)
      write_captions(os.path.join(root, relative),
                     [f"a {split} video number {i}. it is grey", f"video {i} of the {split} set"])
      out[split].append(relative)
  return out
