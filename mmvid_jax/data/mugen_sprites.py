"""Sprite loading, scaling and exact alpha compositing for the MUGEN renderer.

Sprites are scaled with the same Pillow calls as MUGEN's reference renderer (`Image.resize`
with its default filter, bicubic on premultiplied alpha; mirroring after scaling), once per
resolution, and kept both as Pillow images (for the reference painter) and as numpy arrays
(for the fast painter). `blend` reproduces Pillow's `Image.paste(src, box, mask=src)` integer
arithmetic bit for bit, so both painters give identical pixels.
"""

import math
import os

import numpy as np
from PIL import Image

from mmvid_jax.data.mugen_game import is_file, open_file
from mmvid_jax.errors import UserError


class Sprite:
  """A scaled sprite: Pillow image, its RGB pixels and its alpha (None when opaque)."""

  __slots__ = ("image", "rgb", "alpha", "inverse", "premultiplied", "core", "mask",
               "atlas_index")

  def __init__(self, image: Image.Image):
    self.image = image
    if image.mode == "RGBA":
      pixels = np.asarray(image)
      self.rgb = np.ascontiguousarray(pixels[..., :3])
      self.alpha = np.ascontiguousarray(pixels[..., 3])
      # `blend`'s terms that depend on the sprite only, computed once.
      alpha = self.alpha.astype(np.uint16)[..., None]
      self.inverse = np.ascontiguousarray(np.broadcast_to(255 - alpha, self.rgb.shape))
      self.premultiplied = self.rgb.astype(np.uint16) * alpha + 128
    else:
      # The reference pastes non-RGBA sprites without a mask (fully opaque).
      self.rgb = np.asarray(image.convert("RGB"))
      self.alpha = self.inverse = self.premultiplied = None
    # For Pillow's C paste: the image core and its mask, None when the sprite is opaque (no
    # alpha, or alpha 255 everywhere, where the masked blend returns the source exactly).
    self.core = image.im
    opaque = self.alpha is None or bool(self.alpha.min() == 255)
    self.mask = None if opaque else self.core
    self.atlas_index = -1  # Its id in the compiled painter's `SpriteAtlas`, once it has one.

  @property
  def size(self) -> tuple[int, int]:
    """(width, height), as Pillow reports it."""
    return self.image.size


def blend(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """Pillow's paste-with-mask: round((dst * (255 - a) + src * a) / 255) via its DIV255."""
  a = alpha.astype(np.uint16)[..., None]
  tmp = dst.astype(np.uint16) * (255 - a) + src.astype(np.uint16) * a + 128
  return ((tmp + (tmp >> 8)) >> 8).astype(np.uint8)


def paste(frame: np.ndarray, sprite: Sprite, left: int, top: int, clip=None) -> None:
  """Pastes `sprite` with its top-left at (left, top), clipped to `clip` = (x0, y0, x1, y1)."""
  height, width = sprite.rgb.shape[:2]
  x0, y0, x1, y1 = clip if clip is not None else (0, 0, frame.shape[1], frame.shape[0])
  fx0, fy0 = max(left, x0), max(top, y0)
  fx1, fy1 = min(left + width, x1), min(top + height, y1)
  if fx0 >= fx1 or fy0 >= fy1:
    return
  rows, cols = slice(fy0 - top, fy1 - top), slice(fx0 - left, fx1 - left)
  region = frame[fy0:fy1, fx0:fx1]
  if sprite.alpha is None:
    region[...] = sprite.rgb[rows, cols]
  else:  # `blend`, with the sprite's terms precomputed.
    t = region * sprite.inverse[rows, cols]
    t += sprite.premultiplied[rows, cols]
    t += t >> 8
    t >>= 8
    region[...] = t


class SpriteCache:
  """Loads sprites under `asset_dir` and caches every scaled variant the renderer asks for."""

  def __init__(self, asset_dir: str):
    self.asset_dir = asset_dir
    self._originals: dict[str, Image.Image] = {}
    self._sprites: dict[tuple, Sprite] = {}
    self._atlas = None

  @property
  def atlas(self):
    """The compiled painter's flattened copy of the sprites it has used (built on demand)."""
    if self._atlas is None:
      from mmvid_jax.data.mugen_compiled import SpriteAtlas  # numba: only when used.
      self._atlas = SpriteAtlas()
    return self._atlas

  def original(self, relative_path: str, fallback: str | None = None) -> Image.Image:
    key = relative_path
    if key not in self._originals:
      path = os.path.join(self.asset_dir, relative_path)
      if not is_file(path) and fallback is not None:
        path = os.path.join(self.asset_dir, fallback)
      if not is_file(path):
        raise UserError(f"MUGEN sprite {relative_path!r} not found under asset_dir "
                        f"{self.asset_dir!r}. Fix: point config.data.asset_dir (or --asset_dir) "
                        "at MUGEN's coinrun assets folder (the one holding kenney/, "
                        "kenneyLarge/, backgrounds/ and bubble_shield.png).")
      try:
        with open_file(path, "rb") as f:
          image = Image.open(f)
          image.load()
      except OSError as e:
        raise UserError(f"MUGEN sprite {path!r} is not a readable image ({e}). Fix: restore "
                        "the file from the MUGEN asset release.") from None
      self._originals[key] = image
    return self._originals[key]

  def aspect_ratio(self, relative_path: str) -> float:
    width, height = self.original(relative_path).size
    return height / width

  def get(self, relative_path: str, load_size, flip: bool = False, paint_size=None,
          fade: int = 0, fallback: str | None = None, crop=None, opaque: bool = False) -> Sprite:
    """A sprite as the reference renderer paints it.

    load_size: the size the reference scales the asset to when loading it (None: unscaled);
    flip: mirrored after loading; crop: a box cut from the loaded asset (lava scrolling);
    paint_size: rescaled again to the painted rectangle when that differs; fade: subtracted
    from alpha (the dying agent); opaque: pasted without a mask (the background).
    """
    key = (relative_path, load_size, flip, crop, paint_size, fade, opaque)
    sprite = self._sprites.get(key)
    if sprite is None:
      image = self.original(relative_path, fallback)
      if load_size is not None:
        image = image.resize(load_size)  # The reference's call: Pillow's default filter.
      if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
      if crop is not None:
        image = image.crop(crop)
      if paint_size is not None and image.size != paint_size:
        image = image.resize(paint_size)
      if fade:
        image = faded(image, fade)
      if opaque:
        image = image.convert("RGB")
      sprite = Sprite(image)
      self._sprites[key] = sprite
    return sprite


def faded(image: Image.Image, fade: int) -> Image.Image:
  """The dying agent's sprite: `fade` subtracted from its alpha (the reference's numpy calls)."""
  if image.mode != "RGBA":
    image = image.convert("RGBA")
  pixels = np.array(image, dtype=np.int16)
  pixels[..., 3] = np.clip(pixels[..., 3] - fade, 0, None)
  return Image.fromarray(pixels.astype(np.uint8))


def int64_array(values) -> np.ndarray:
  """The int64 arrays the compiled painter's tables are made of."""
  return np.array(values, np.int64)


def integer_rect(rect) -> tuple[int, int, int, int]:
  """(x, y, w, h) floats -> floor the corner, ceil the size (the reference's rounding)."""
  return (math.floor(rect[0]), math.floor(rect[1]), math.ceil(rect[2]), math.ceil(rect[3]))


def out_of_bounds(rect, size: int) -> bool:
  return rect[0] + rect[2] < 0 or rect[0] > size or rect[1] + rect[3] < 0 or rect[1] > size


def intersect(a, b):
  """Intersection of two (x, y, w, h) rects, None when empty."""
  x0, y0 = max(a[0], b[0]), max(a[1], b[1])
  x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
  if x1 - x0 > 0 and y1 - y0 > 0:
    return [x0, y0, x1 - x0, y1 - y0]
  return None
