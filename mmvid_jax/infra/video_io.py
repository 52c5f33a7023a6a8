"""Video files: write `.mp4` (H.264, plays in browsers) and `.gif`, read them back, tile grids.

MP4 uses the static ffmpeg that ships in the `imageio-ffmpeg` wheel, so no system ffmpeg is
needed. Browsers only play H.264 in yuv420p with even sizes, and tiny videos look like a blur,
so small frames are upscaled (nearest neighbour, whole factors) and odd sizes padded.
Paths may be local or remote (gs://...); remote files pass through a local temporary file.
"""

import contextlib
import os
import tempfile
import warnings

from etils import epath
import numpy as np
from PIL import Image, ImageSequence

from mmvid_jax.errors import UserError

WRITE_EXTENSIONS = (".mp4", ".gif")
# Containers the bundled ffmpeg reads besides mp4.
FFMPEG_READ_EXTENSIONS = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v")


def _is_remote(path: str) -> bool:
  """gs://, s3:// and similar paths (handled through etils.epath)."""
  return "://" in str(path)


def to_uint8(video) -> np.ndarray:
  """Floats in [-1, 1] (any shape) -> uint8 in [0, 255], rounded and clipped."""
  video = np.asarray(video, dtype=np.float32)
  return np.clip(np.round((video + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _check_frames(frames, path: str) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.shape[0] < 1:
    raise UserError(f"write_video({path!r}): expected frames of shape (T, H, W, 3), got "
                    f"{frames.shape}. Fix: pass one video at a time (tile several with "
                    "tile_videos).")
  if frames.dtype != np.uint8:
    raise UserError(f"write_video({path!r}): frames are {frames.dtype}, expected uint8. Fix: "
                    "convert videos in [-1, 1] with video_io.to_uint8.")
  if frames.shape[-1] == 1:
    frames = np.repeat(frames, 3, axis=-1)
  return frames


def _browser_friendly(frames: np.ndarray, min_size: int) -> np.ndarray:
  """Nearest-neighbour upscale so the short side reaches `min_size`; pad to even sizes."""
  _, height, width, _ = frames.shape
  factor = -(-min_size // min(height, width)) if min(height, width) < min_size else 1
  if factor > 1:
    frames = frames.repeat(factor, axis=1).repeat(factor, axis=2)
  pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
  if pad_h or pad_w:
    frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
  return frames


@contextlib.contextmanager
def _spawning_ffmpeg():
  """imageio starts ffmpeg with fork+exec; JAX warns about any fork, but the child only execs
  ffmpeg and runs no Python or JAX code, so that warning does not apply here."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    yield


def _write_mp4(path: str, frames: np.ndarray, fps: float) -> None:
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  with _spawning_ffmpeg():
    writer = imageio.get_writer(
        path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
        quality=None, macro_block_size=1,
        output_params=["-crf", "17", "-preset", "medium", "-movflags", "+faststart"])
    try:
      for frame in frames:
        writer.append_data(frame)
    finally:
      writer.close()


def _write_gif(path: str, frames: np.ndarray, fps: float) -> None:
  images = [Image.fromarray(frame) for frame in frames]
  images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                 duration=max(20, int(round(1000.0 / fps))), loop=0, optimize=False)


def write_video(path: str, frames, fps: float = 8, min_size: int = 128) -> str:
  """Writes uint8 frames (T, H, W, 3) to `.mp4` or `.gif`; returns `path`.

  MP4 frames are upscaled to at least `min_size` pixels on the short side (nearest neighbour,
  whole factors) and padded to even sizes. GIFs keep the frame size and loop forever; pillow
  merges identical consecutive frames into one longer frame.
  The file appears complete or not at all (written under a temporary name, then renamed).
  """
  extension = os.path.splitext(path)[1].lower()
  if extension not in WRITE_EXTENSIONS:
    raise UserError(f"write_video({path!r}): unknown extension {extension or '(none)'!r}. "
                    f"Fix: use one of {', '.join(WRITE_EXTENSIONS)}.")
  frames = _check_frames(frames, path)
  remote = _is_remote(path)
  # ffmpeg and pillow write local files: a remote video is made locally, then copied.
  directory = tempfile.mkdtemp() if remote else os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  temporary = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(path)}")
  try:
    if extension == ".mp4":
      _write_mp4(temporary, _browser_friendly(frames, min_size), fps)
    else:
      _write_gif(temporary, frames, fps)
    if remote:
      with open(temporary, "rb") as f:
        data = f.read()
      target = epath.Path(path)
      target.parent.mkdir(parents=True, exist_ok=True)
      target.write_bytes(data)
    else:
      os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)
    if remote:
      os.rmdir(directory)
  return path


def _read_gif(path: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])


def _read_ffmpeg(path: str) -> np.ndarray:
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  with _spawning_ffmpeg():
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
      frames = [np.asarray(frame)[..., :3] for frame in reader]
    finally:
      reader.close()
  if not frames:
    raise ValueError("no frames")
  return np.stack(frames)


def read_video(path: str) -> np.ndarray:
  """Reads a `.gif` or an ffmpeg-readable video (`.mp4`, `.webm`, ...) as uint8 (T, H, W, 3)."""
  extension = os.path.splitext(path)[1].lower()
  if extension != ".gif" and extension not in FFMPEG_READ_EXTENSIONS:
    raise UserError(f"read_video({path!r}): unknown extension {extension or '(none)'!r}. Fix: "
                    f"use a .gif or one of {', '.join(FFMPEG_READ_EXTENSIONS)}.")
  if not epath.Path(path).is_file():
    raise UserError(f"read_video: file {path!r} does not exist. Fix: check the path.")
  local = path
  if _is_remote(path):  # Readers need a local file.
    handle, local = tempfile.mkstemp(suffix=extension)
    with os.fdopen(handle, "wb") as f:
      f.write(epath.Path(path).read_bytes())
  try:
    frames = _read_gif(local) if extension == ".gif" else _read_ffmpeg(local)
  except (OSError, ValueError, RuntimeError) as e:
    raise UserError(f"read_video: could not read {path!r} as a video ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else 'no details'}). Fix: check that "
                    "the file is a complete, valid video.") from None
  finally:
    if local != path:
      os.remove(local)
  return frames.astype(np.uint8)


def tile_videos(videos, columns: int, padding: int = 2, pad_value: int = 255) -> np.ndarray:
  """Lays videos (each (T, H, W, 3), same shape) out in a grid -> (T, H', W', 3).

  Cells are separated by `padding` pixels of `pad_value`; missing cells in the last row are
  left blank.
  """
  videos = [np.asarray(video) for video in videos]
  if not videos:
    raise ValueError("tile_videos needs at least one video.")
  shape = videos[0].shape
  if any(video.shape != shape for video in videos) or len(shape) != 4:
    raise ValueError("tile_videos: every video must have the same (T, H, W, C) shape, got "
                     f"{sorted({video.shape for video in videos})}.")
  columns = max(1, min(columns, len(videos)))
  rows = -(-len(videos) // columns)
  frames, height, width, channels = shape
  grid = np.full((frames, rows * height + (rows - 1) * padding,
                  columns * width + (columns - 1) * padding, channels), pad_value,
                 dtype=videos[0].dtype)
  for index, video in enumerate(videos):
    row, column = divmod(index, columns)
    top, left = row * (height + padding), column * (width + padding)
    grid[:, top:top + height, left:left + width] = video
  return grid
