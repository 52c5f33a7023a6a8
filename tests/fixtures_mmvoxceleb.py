"""A tiny Multimodal VoxCeleb folder in the release layout (written under tmp_path).

Every image is flat, so resizing keeps its colour exactly and the tests read back which clip,
which modality and which frame a pixel came from: red = the clip's code, green = the frame
value, blue = the modality (video 100, mask 0, drawing 255).
"""

import os

import numpy as np
from PIL import Image

from mmvid_jax.data import mmvoxceleb_captions as captions_lib

HEIGHT, WIDTH = 24, 32
NUM_FRAMES = 10
BLUE = {"video": 100, "mask": 0, "draw": 255}
# pid -> number of clips; the first pid's last clip has no mask/drawing folders.
PIDS = {"id10001#aaaa1111": 3, "id10001#bbbb2222": 2, "id10002#cccc3333": 2,
        "id10003#dddd4444": 2}


def frame_value(t: int) -> int:
  return 20 + 12 * t


def clip_keys() -> list[str]:
  return [f"{pid}#{i:05d}.txt#000.mp4" for pid, n in PIDS.items() for i in range(n)]


def clip_code(index: int) -> int:
  return 10 + 20 * index


def labels_of(index: int) -> np.ndarray:
  """Distinct attributes per clip; even clips are male."""
  labels = np.zeros(captions_lib.NUM_ATTRIBUTES, np.int32)
  for name in ("Big_Nose", "Black_Hair", "Eyeglasses", "Young", "No_Beard"):
    labels[captions_lib.ATTRIBUTES.index(name)] = 1
  labels[(3 * index) % 15] = 1
  labels[captions_lib.MALE] = int(index % 2 == 0)
  return labels


def _write_frames(folder: str, code: int, modality: str, count: int = NUM_FRAMES):
  os.makedirs(folder, exist_ok=True)
  for t in range(count):
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[...] = (code, frame_value(t), BLUE[modality])
    # Unpadded numbers: frame 10 must come after frame 9 (natural order).
    Image.fromarray(image).save(os.path.join(folder, f"{t}.png"))


def write_folder(root: str) -> dict:
  """The release layout plus one clip of each broken kind; returns what was written."""
  good, no_controls = {}, None
  os.makedirs(os.path.join(root, "label"), exist_ok=True)
  for index, key in enumerate(clip_keys()):
    code = clip_code(index)
    _write_frames(os.path.join(root, "video", key), code, "video")
    with open(os.path.join(root, "label", key + ".txt"), "w") as f:
      f.write(",".join(str(v) for v in labels_of(index)) + "\n")
    if key.startswith("id10001#aaaa1111") and key.endswith("00002.txt#000.mp4"):
      no_controls = key  # no mask/ or draw/ folder for this clip
    else:
      _write_frames(os.path.join(root, "mask", key), code, "mask")
      _write_frames(os.path.join(root, "draw", "style1", key), code, "draw")
    good[key] = code
  broken = {"no_label": "id10009#zzzz9999#00000.txt#000.mp4",
            "empty": "id10009#zzzz9999#00001.txt#000.mp4",
            "corrupt": "id10009#zzzz9999#00002.txt#000.mp4",
            "bad_label": "id10009#zzzz9999#00003.txt#000.mp4"}
  _write_frames(os.path.join(root, "video", broken["no_label"]), 250, "video")
  os.makedirs(os.path.join(root, "video", broken["empty"]))
  _write_frames(os.path.join(root, "video", broken["corrupt"]), 240, "video")
  with open(os.path.join(root, "video", broken["corrupt"], "3.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n not really a png")
  _write_frames(os.path.join(root, "video", broken["bad_label"]), 230, "video")
  for kind in ("empty", "corrupt"):
    with open(os.path.join(root, "label", broken[kind] + ".txt"), "w") as f:
      f.write(",".join(["0"] * 40))
  with open(os.path.join(root, "label", broken["bad_label"] + ".txt"), "w") as f:
    f.write(",".join(["1"] * 39))
  return {"root": root, "good": good, "no_controls": no_controls, "broken": broken}

