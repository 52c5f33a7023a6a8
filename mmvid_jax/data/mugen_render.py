"""Renders MUGEN game states into `[T, R, R, 3] uint8` frames at any square resolution R.

Geometry, poses and rounding follow MUGEN's reference renderer: tile size
`k = zoom * R / maze_w`, a camera that follows the agent horizontally only, a parallax
background, scrolling lava, eaten coins left out, shrinking dead monsters, a fading killed
agent and the power-up shield. Three painters give identical pixels:

- `reference`: the reference algorithm (Pillow `paste` of every visible tile, every frame);
- `direct`: the same per-tile painting with numpy (exact Pillow blending, `mugen_sprites`);
- `fast` (default): the clip's static maze is painted once per horizontal sub-pixel phase into
  a wide canvas (opaque pixels plus, per pixel, the few semi-transparent layers to blend over
  the background), and each frame is a crop of it over the scrolled background. Only cells
  that change (coins, lava) and the characters are painted per frame.
"""

import math

import numpy as np
from PIL import Image

from mmvid_jax.data import mugen_game as mg
from mmvid_jax.data.mugen_sprites import (SpriteCache, integer_rect, intersect, out_of_bounds,
                                          paste)

METHODS = ("fast", "direct", "reference")


class _Canvas:
  """The static maze at one horizontal phase: frame column u is canvas column u + shift."""

  def __init__(self, height, width):
    self.base = np.zeros((height, width, 3), np.uint8)
    self.covered = np.zeros((height, width), bool)
    self.count = np.zeros((height, width), np.int16)
    self.layer_rgb = np.zeros((0, height, width, 3), np.uint8)
    self.layer_alpha = np.zeros((0, height, width), np.uint8)

  def paint(self, sprite, left, top):
    """Records a paste: opaque pixels replace, semi-transparent ones stack as layers."""
    height, width = sprite.rgb.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, self.base.shape[0]), min(left + width, self.base.shape[1])
    if y0 >= y1 or x0 >= x1:
      return
    rgb = sprite.rgb[y0 - top:y1 - top, x0 - left:x1 - left]
    if sprite.alpha is None:
      alpha = np.full(rgb.shape[:2], 255, np.uint8)
    else:
      alpha = sprite.alpha[y0 - top:y1 - top, x0 - left:x1 - left]
    full = alpha == 255
    ys, xs = np.nonzero(full)
    ys, xs = ys + y0, xs + x0
    self.base[ys, xs] = rgb[full]
    self.covered[ys, xs] = True
    self.count[ys, xs] = 0
    self.layer_alpha[:, ys, xs] = 0
    part = (alpha > 0) & ~full
    if part.any():
      ys, xs = np.nonzero(part)
      ys, xs = ys + y0, xs + x0
      index = self.count[ys, xs]
      if index.max() >= self.layer_rgb.shape[0]:
        self.layer_rgb = np.concatenate([self.layer_rgb, np.zeros_like(self.base)[None]])
        self.layer_alpha = np.concatenate([self.layer_alpha, np.zeros_like(self.covered,
                                                                           np.uint8)[None]])
      self.layer_rgb[index, ys, xs] = rgb[part]
      self.layer_alpha[index, ys, xs] = alpha[part]
      self.count[ys, xs] += 1

  def finish(self):
    """Keeps the semi-transparent pixels as a column-sorted sparse list."""
    cols, rows = np.nonzero(self.count.T)
    self.rows, self.cols = rows.astype(np.int32), cols.astype(np.int32)
    self.sparse_rgb = self.layer_rgb[:, rows, cols]
    self.sparse_alpha = self.layer_alpha[:, rows, cols]
    del self.count, self.layer_rgb, self.layer_alpha

  def composite(self, out, shift):
    """Lays the canvas columns [shift, shift + R) over `out` (holding the background)."""
    size = out.shape[1]
    np.copyto(out, self.base[:, shift:shift + size], where=self.covered[:, shift:shift + size,
                                                                          None])
    i0, i1 = np.searchsorted(self.cols, (shift, shift + size))
    if i0 == i1:
      return
    rows, cols = self.rows[i0:i1], self.cols[i0:i1] - shift
    values = out[rows, cols]
    for rgb, alpha in zip(self.sparse_rgb[:, i0:i1], self.sparse_alpha[:, i0:i1]):
      a = alpha.astype(np.uint16)[:, None]
      tmp = values.astype(np.uint16) * (255 - a) + rgb.astype(np.uint16) * a + 128
      values = ((tmp + (tmp >> 8)) >> 8).astype(np.uint8)
    out[rows, cols] = values


class ClipRenderer:
  """Renders one game at one resolution; sprites come from a shared `SpriteCache`."""

  def __init__(self, game: mg.Game, image_size: int, sprites: SpriteCache):
    self.game, self.size, self.sprites = game, image_size, sprites
    self.k = game.zoom * image_size / game.maze_w
    self.center = (image_size - 1) // 2
    self.dy = -self.center + game.camera_rows * self.k
    self.tile_load = (math.ceil(self.k + .5), math.ceil(self.k + .5))
    self.radius = int(1 + game.maze_w / game.zoom)
    self._canvases: dict[bytes, _Canvas] = {}
    eaten = set().union(*(f.coins_eaten for f in game.frames))
    # Cells painted per frame: lava scrolls, coins and gems can be eaten.
    self.dynamic = {(x, y) for y, row in enumerate(game.maze) for x, ch in enumerate(row)
                    if ch in mg.LAVA_TILES or ch in (mg.COIN, mg.GEM) or (x, y) in eaten}
    self.dynamic = {(x, y) for x, y in self.dynamic if game.maze[y][x] != mg.SPACE}

  # Geometry shared by every painter.
  def camera_dx(self, frame) -> float:
    return -frame.agent.x * self.k + self.center - 0.5 * self.k

  def tile_rect(self, x, y, dx):
    k = self.k
    return [k * x + dx - 0.1, self.size - k * y + self.dy - 0.1, k + .5 + .2, k + .5 + .2]

  def tile_items(self, x, y, dx, state_time):
    """[(sprite, left, top)] painting maze cell (x, y), or [] when off screen."""
    char = self.game.maze[y][x]
    rect = self.tile_rect(x, y, dx)
    if out_of_bounds(rect, self.size):
      return []
    path = mg.tile_sprite(self.game, char)
    if char not in mg.LAVA_TILES:
      left, top, w, h = integer_rect(rect)
      return [(self.sprites.get(path, self.tile_load, paint_size=(w, h)), left, top)]
    # Lava: the unscaled sprite is cut in two at the scroll phase and the halves swapped.
    asset_w, asset_h = self.sprites.original(path).size
    scroll = state_time * 0.1
    scroll -= int(scroll)
    scroll *= -1
    d1, d2 = rect[:], rect[:]
    source = [0, 0, asset_w, asset_h]
    s1, s2 = source[:], source[:]
    d1[0] += scroll * rect[2]
    d2[0] += rect[2] + scroll * rect[2]
    s1[0] += -scroll * asset_w
    s2[0] += -asset_w - scroll * asset_w
    d1, d2 = intersect(d1, rect), intersect(d2, rect)
    if d1 is not None:
      d1[2] += 0.5
    if d2 is not None:
      d2[0] -= 0.5
      d2[2] += 0.5
    s1, s2 = intersect(s1, source), intersect(s2, source)
    items = []
    for dest, src in ((d1, s1), (d2, s2)):
      if dest is None or src is None:
        continue
      crop = integer_rect([src[0], src[1], src[0] + src[2], src[1] + src[3]])
      left, top, w, h = integer_rect(dest)
      if w > 0 and h > 0:
        items.append((self.sprites.get(path, None, crop=crop, paint_size=(w, h)), left, top))
    return items

  def background_items(self, dx):
    game, size = self.game, self.size
    zoom = size * game.zoom
    bg = self.sprites.get(game.background, (math.ceil(zoom), math.ceil(zoom)), opaque=True)
    items = []
    for tile_x in range(-1, 3):
      for tile_y in range(-1, 2):
        rect = [zoom * tile_x + self.center + game.bgzoom * (dx + self.k * game.maze_h / 2)
                - zoom * 0.5,
                zoom * tile_y + self.center + game.bgzoom * (self.dy - self.k * game.maze_h / 2)
                - zoom * 0.5, zoom, zoom]
        if not out_of_bounds(rect, size):
          left, top, _, _ = integer_rect(rect)
          items.append((bg, left, top))
    return items

  def character_items(self, frame, dx):
    """Monsters, then the agent (always in front), then its shield."""
    game, k, size, dy = self.game, self.k, self.size, self.dy
    items = []
    for m in frame.monsters:
      if m.is_dead:
        shrink = (mg.MONSTER_DEATH_FRAMES - max(0, m.dying_frame_cnt)) * 0.8 / \
            mg.MONSTER_DEATH_FRAMES
        rect = (math.floor(k * m.x + dx), math.floor(size - k * m.y + dy + k * shrink),
                math.ceil(k), math.ceil(k * (1 - shrink)))
      else:
        rect = (math.floor(k * m.x + dx), math.floor(size - k * m.y + dy), math.ceil(k),
                math.ceil(k))
      if rect[2] <= 0 or rect[3] <= 0:
        continue
      path, fallback = mg.monster_sprite(game, m.theme, m.pose)
      sprite = self.sprites.get(path, (math.ceil(k), math.ceil(k)), flip=m.facing_right,
                                paint_size=rect[2:], fallback=fallback)
      items.append((sprite, rect[0], rect[1]))

    agent = frame.agent
    path = mg.agent_sprite(game, agent.pose)
    ratio = self.sprites.aspect_ratio(path)
    rect = (math.floor(k * agent.x + dx), math.floor(size - k * (agent.y + ratio - 1) + dy),
            math.ceil(k), math.ceil(ratio * k))
    fade = 0
    if agent.is_killed:
      fade = (mg.AGENT_DEATH_FRAMES + 1 - agent.killed_frame_cnt) * 12
    if fade <= 255:
      sprite = self.sprites.get(path, (math.ceil(k), math.ceil(ratio * k)),
                                flip=not agent.facing_right, paint_size=rect[2:], fade=max(fade, 0))
      items.append((sprite, rect[0], rect[1]))
    if agent.power_up:
      # The engine's 7 and 8 pixel offsets are for 1024 px frames.
      left = math.floor(k * agent.x + dx - 7 * size / 1024)
      top = math.floor(size - k * (agent.y + 1) + dy + 8 * size / 1024)
      if agent.pose == "duck":
        top += math.floor(8 * size / 1024)
      shield_size = (math.ceil(k * 1.15), math.ceil(k * 2.1))
      items.append((self.sprites.get(mg.SHIELD_SPRITE, shield_size), left, top))
    return items

  def visible_cells(self, frame):
    """Maze cells the reference visits, in its painting order."""
    game = self.game
    ix, iy = int(frame.agent.x + .5), int(frame.agent.y + .5)
    for y in range(max(iy - self.radius, 0), min(iy + self.radius + 1, game.maze_h)):
      row = game.maze[y]
      for x in range(max(ix - self.radius, 0), min(ix + self.radius + 1, game.maze_w)):
        if row[x] != mg.SPACE and (x, y) not in frame.coins_eaten:
          yield x, y

  # Painters.
  def render_reference(self, index: int) -> np.ndarray:
    """The reference algorithm with Pillow: every visible tile pasted every frame."""
    frame = self.game.frames[index]
    dx = self.camera_dx(frame)
    image = Image.new("RGB", (self.size, self.size))
    items = self.background_items(dx)
    for x, y in self.visible_cells(frame):
      items += self.tile_items(x, y, dx, frame.state_time)
    for sprite, left, top in items + self.character_items(frame, dx):
      w, h = sprite.size
      mask = sprite.image if sprite.image.mode == "RGBA" else None
      image.paste(sprite.image, (left, top, left + w, top + h), mask)
    return np.asarray(image)

  def render_direct(self, index: int) -> np.ndarray:
    """Every visible tile painted every frame, with numpy."""
    frame = self.game.frames[index]
    dx = self.camera_dx(frame)
    out = np.zeros((self.size, self.size, 3), np.uint8)
    items = self.background_items(dx)
    for x, y in self.visible_cells(frame):
      items += self.tile_items(x, y, dx, frame.state_time)
    for sprite, left, top in items + self.character_items(frame, dx):
      paste(out, sprite, left, top)
    return out

  def _canvas(self, dx):
    """The static canvas for this camera phase and the crop shift, or None off the canvas."""
    game, k = self.game, self.k
    # The reference's tile lefts (same float operations), for every maze column.
    lefts = np.floor(k * np.arange(game.maze_w) + dx - 0.1).astype(np.int64)
    offsets = lefts - lefts[0]
    pad = self.size + math.ceil(k) + 2
    key = offsets.tobytes()
    canvas = self._canvases.get(key)
    if canvas is None:
      width = int(offsets[-1]) + math.ceil(k + .7) + 2 * pad
      canvas = _Canvas(self.size, width)
      # Same sub-pixel phase as this frame, shifted by whole pixels: column 0 lands on `pad`.
      for y in range(game.maze_h):
        rect = self.tile_rect(0, y, dx)
        if rect[1] + rect[3] < 0 or rect[1] > self.size:
          continue
        _, top, w, h = integer_rect(rect)
        for x in range(game.maze_w):
          char = game.maze[y][x]
          if char != mg.SPACE and (x, y) not in self.dynamic:
            sprite = self.sprites.get(mg.tile_sprite(game, char), self.tile_load,
                                      paint_size=(w, h))
            canvas.paint(sprite, int(offsets[x]) + pad, top)
      canvas.finish()
      self._canvases[key] = canvas
    shift = pad - int(lefts[0])
    if shift < 0 or shift + self.size > canvas.base.shape[1]:
      return None, 0
    return canvas, shift

  def render_fast(self, index: int) -> np.ndarray:
    frame = self.game.frames[index]
    dx = self.camera_dx(frame)
    canvas, shift = self._canvas(dx)
    if canvas is None:
      return self.render_direct(index)
    out = np.zeros((self.size, self.size, 3), np.uint8)
    for sprite, left, top in self.background_items(dx):
      paste(out, sprite, left, top)
    background = out.copy() if self.dynamic else None
    canvas.composite(out, shift)
    if self.dynamic:
      self._repaint_dynamic(out, background, frame, dx)
    for sprite, left, top in self.character_items(frame, dx):
      paste(out, sprite, left, top)
    return out

  def _is_visible(self, x, y, frame) -> bool:
    """Whether the reference paints cell (x, y) in this frame."""
    return (abs(x - int(frame.agent.x + .5)) <= self.radius
            and abs(y - int(frame.agent.y + .5)) <= self.radius
            and 0 <= x < self.game.maze_w and 0 <= y < self.game.maze_h
            and self.game.maze[y][x] != mg.SPACE and (x, y) not in frame.coins_eaten)

  def _repaint_dynamic(self, out, background, frame, dx):
    """Repaints, in reference order, every region touched by a visible changing cell."""
    boxes = []
    cells = sorted((c for c in self.dynamic if self._is_visible(*c, frame)),
                   key=lambda c: (c[1], c[0]))
    for x, y in cells:
      for sprite, left, top in self.tile_items(x, y, dx, frame.state_time):
        w, h = sprite.size
        box = [max(left, 0), max(top, 0), min(left + w, self.size), min(top + h, self.size)]
        if box[0] >= box[2] or box[1] >= box[3]:
          continue
        last = boxes[-1] if boxes else None
        if last is not None and last[1] == box[1] and last[3] == box[3] and box[0] <= last[2]:
          last[2] = max(last[2], box[2])  # Merge neighbours of the same row.
        else:
          boxes.append(box)
    k, margin = self.k, 2 + math.ceil(2 / self.k)
    for x0, y0, x1, y1 in boxes:
      out[y0:y1, x0:x1] = background[y0:y1, x0:x1]
      # Every cell whose tile may reach the box (tiles overlap their neighbours by < 1 px).
      cx0, cx1 = math.floor((x0 - dx) / k) - margin, math.ceil((x1 - dx) / k) + margin
      cy0 = math.floor((self.size + self.dy - y1) / k) - margin
      cy1 = math.ceil((self.size + self.dy - y0) / k) + margin
      for y in range(max(cy0, 0), min(cy1 + 1, self.game.maze_h)):
        for x in range(max(cx0, 0), min(cx1 + 1, self.game.maze_w)):
          if self._is_visible(x, y, frame):
            for sprite, left, top in self.tile_items(x, y, dx, frame.state_time):
              paste(out, sprite, left, top, clip=(x0, y0, x1, y1))

  def render(self, frame_indices, method: str = "fast") -> np.ndarray:
    if method not in METHODS:
      raise ValueError(f"unknown render method {method!r}; choose one of {METHODS}")
    painter = {"fast": self.render_fast, "direct": self.render_direct,
               "reference": self.render_reference}[method]
    frames = [painter(int(i)) for i in frame_indices]
    return np.stack(frames) if frames else np.zeros((0, self.size, self.size, 3), np.uint8)


class MugenRenderer:
  """Renders many clips at one resolution, sharing the scaled sprites between them."""

  def __init__(self, asset_dir: str, image_size: int):
    if not isinstance(image_size, int) or image_size < 8:
      raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    self.image_size = image_size
    self.sprites = SpriteCache(asset_dir)

  def clip(self, game: mg.Game) -> ClipRenderer:
    return ClipRenderer(game, self.image_size, self.sprites)

  def render(self, game: mg.Game, frame_indices, method: str = "fast") -> np.ndarray:
    """uint8 [len(frame_indices), R, R, 3]."""
    return self.clip(game).render(frame_indices, method)
