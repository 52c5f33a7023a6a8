"""Writes generated videos as MP4 + GIF files, the condition images, `manifest.jsonl` and the
`index.html` gallery. Shared by the sample stage and the sampling command.

`manifest.jsonl` has one JSON object per video: `file` (the MP4, relative to the folder), `gif`,
`text`, `conditions` (control image files), `decoder`, `seed`, `steps`, `cfg`, `candidates`,
`prompt` and `sample` indices, and `score` (the REL/VID score when reranking ran, else null).
It is written last and atomically, so its presence means the folder is complete.
"""

import dataclasses
import json
import math
import os

import numpy as np
from PIL import Image

from mmvid_jax.evaluation import gallery
from mmvid_jax.infra import video_io

MANIFEST = "manifest.jsonl"
INDEX = "index.html"


@dataclasses.dataclass
class PromptResult:
  """All videos generated for one condition."""
  text: str
  videos: np.ndarray                           # uint8 (S, T, H, W, 3)
  controls: np.ndarray | None = None           # uint8 (n_ctrl, H, W, 3) as given (before erasing)
  control_labels: tuple[str, ...] = ()
  scores: np.ndarray | None = None             # (S,) REL/VID scores or NaN


def _score(scores, index):
  if scores is None:
    return None
  value = float(scores[index])
  return None if math.isnan(value) else round(value, 5)


def write_samples(directory: str, results: list[PromptResult], settings: dict, *, fps: float = 8,
                  title: str = "mmvid-jax samples") -> str:
  """Writes every file under `directory`; returns the manifest path.

  `settings` holds decoder, seed, steps, cfg and candidates, copied into every manifest line.
  """
  os.makedirs(directory, exist_ok=True)
  lines, rows = [], []
  for p, result in enumerate(results):
    conditions = []
    if result.controls is not None:
      for k, image in enumerate(np.asarray(result.controls, np.uint8)):
        name = f"prompt{p:03d}_control{k}.png"
        Image.fromarray(image).save(os.path.join(directory, name))
        label = result.control_labels[k] if k < len(result.control_labels) else f"control {k}"
        conditions.append((label, name))
    mp4s, gifs = [], []
    for s, video in enumerate(np.asarray(result.videos, np.uint8)):
      stem = f"prompt{p:03d}_sample{s}"
      video_io.write_video(os.path.join(directory, stem + ".mp4"), video, fps=fps)
      video_io.write_video(os.path.join(directory, stem + ".gif"), video, fps=fps)
      mp4s.append(stem + ".mp4")
      gifs.append(stem + ".gif")
      lines.append({"file": stem + ".mp4", "gif": stem + ".gif", "text": result.text,
                    "conditions": [name for _, name in conditions], **settings,
                    "prompt": p, "sample": s, "score": _score(result.scores, s)})
    scores = [v for v in (_score(result.scores, s) for s in range(len(mp4s))) if v is not None]
    note = f"REL/VID scores: {', '.join(f'{v:.3f}' for v in scores)}" if scores else ""
    rows.append(gallery.GalleryRow(caption=result.text, videos=mp4s, fallbacks=gifs,
                                   conditions=conditions, note=note))
  meta = ", ".join(f"{key}={value}" for key, value in settings.items())
  gallery.write_gallery(directory, rows, title=title, meta=meta, filename=INDEX)
  path = os.path.join(directory, MANIFEST)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    for line in lines:
      f.write(json.dumps(line, sort_keys=True) + "\n")
  os.replace(path + ".tmp", path)
  return path


def read_manifest(directory: str) -> list[dict]:
  """The manifest lines, or [] when the folder has none (or an unreadable one)."""
  path = os.path.join(directory, MANIFEST)
  try:
    with open(path, encoding="utf-8") as f:
      return [json.loads(line) for line in f if line.strip()]
  except (OSError, ValueError):
    return []


def manifest_complete(directory: str, expected_videos: int, settings: dict | None = None) -> bool:
  """True when the manifest lists `expected_videos` videos, all their files exist and (when
  given) every line carries these `settings`."""
  lines = read_manifest(directory)
  if len(lines) != expected_videos:
    return False
  if settings and any(line.get(key) != value for line in lines for key, value in settings.items()):
    return False
  return all(os.path.exists(os.path.join(directory, line[key]))
             for line in lines for key in ("file", "gif"))
