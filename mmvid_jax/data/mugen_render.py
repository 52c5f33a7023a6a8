"""Renders MUGEN game states into `[T, R, R, 3] uint8` frames at any square resolution R.

Geometry, poses and rounding follow MUGEN's reference renderer: tile size
`k = zoom * R / maze_w`, a camera that follows the agent horizontally only, a parallax
background, scrolling lava, eaten coins left out, shrinking dead monsters, a fading killed
agent and the power-up shield. Three painters give identical pixels:

- `reference`: the reference algorithm (Pillow `paste` of every visible tile, every frame);
- `direct`: the same per-tile painting with numpy (exact Pillow blending, `mugen_sprites`);
- `fast` (default): the same Pillow pastes in the same order, with the per-tile Python work
  moved out of the frame loop: sprites scaled once per resolution and looked up per cell once
  per clip, every cell's position and visibility computed for a frame in one numpy pass, and
  Pillow's C paste called directly.

Why not a pre-drawn maze cropped per frame: the background scrolls at 0.4x the maze's speed
(parallax), so a pre-drawn maze must be alpha-composited over it on every frame; measured,
that full-frame masked composite (plus the lava and coin cells repainted per frame) costs
more than pasting the ~40 visible tiles (0.2-0.6x the reference's speed; docs/mugen.md).
"""

import math

import numpy as np
from PIL import Image

from mmvid_jax.data import mugen_game as mg
from mmvid_jax.data.mugen_sprites import (SpriteCache, integer_rect, intersect, out_of_bounds,
                                          paste)

METHODS = ("fast", "direct", "reference")


def _paste_core(core, sprite, left: int, top: int) -> None:
  """`Image.paste(sprite, box, sprite if RGBA)` on an image core, minus the wrapper's cost."""
  w, h = sprite.size
  source = sprite.image.im
  if sprite.image.mode == "RGBA":
    core.paste(source, (left, top, left + w, top + h), source)
  else:
    core.paste(source, (left, top, left + w, top + h))


class ClipRenderer:
  """Renders one game at one resolution; sprites come from a shared `SpriteCache`."""

  def __init__(self, game: mg.Game, image_size: int, sprites: SpriteCache):
    self.game, self.size, self.sprites = game, image_size, sprites
    self.k = game.zoom * image_size / game.maze_w
    self.center = (image_size - 1) // 2
    self.dy = -self.center + game.camera_rows * self.k
    self.tile_load = (math.ceil(self.k + .5), math.ceil(self.k + .5))
    self.radius = int(1 + game.maze_w / game.zoom)
    # The maze's non-empty cells in the reference's painting order (rows, then columns).
    cells = [(x, y) for y in range(game.maze_h) for x in range(game.maze_w)
             if game.maze[y][x] != mg.SPACE]
    self._cell_x = np.array([c[0] for c in cells], np.int64)
    self._cell_y = np.array([c[1] for c in cells], np.int64)
    self._cell_chars = [game.maze[y][x] for x, y in cells]
    # Cells that can disappear (coins, gems, anything listed as eaten) are checked per frame.
    eaten = set().union(*(f.coins_eaten for f in game.frames))
    self._cell_eatable = [c in eaten or game.maze[c[1]][c[0]] in (mg.COIN, mg.GEM)
                          for c in cells]
    self._cell_sprites = None  # Loaded on the first fast frame.
    self._lava_sources = {}

  # Geometry shared by every painter.
  def camera_dx(self, frame) -> float:
    return -frame.agent.x * self.k + self.center - 0.5 * self.k

  def tile_rect(self, x, y, dx):
    k = self.k
    return [k * x + dx - 0.1, self.size - k * y + self.dy - 0.1, k + .5 + .2, k + .5 + .2]

  def tile_items(self, x, y, dx, state_time, check_bounds=True):
    """[(sprite, left, top)] painting maze cell (x, y), or [] when off screen."""
    char = self.game.maze[y][x]
    rect = self.tile_rect(x, y, dx)
    if check_bounds and out_of_bounds(rect, self.size):
      return []
    path = mg.tile_sprite(self.game, char)
    if char not in mg.LAVA_TILES:
      left, top, w, h = integer_rect(rect)
      return [(self.sprites.get(path, self.tile_load, paint_size=(w, h)), left, top)]
    # Lava: the unscaled sprite is cut in two at the scroll phase and the halves swapped.
    scroll, crops = self._lava_source(path, state_time)
    d1, d2 = rect[:], rect[:]
    d1[0] += scroll * rect[2]
    d2[0] += rect[2] + scroll * rect[2]
    d1, d2 = intersect(d1, rect), intersect(d2, rect)
    if d1 is not None:
      d1[2] += 0.5
    if d2 is not None:
      d2[0] -= 0.5
      d2[2] += 0.5
    items = []
    for dest, crop in zip((d1, d2), crops):
      if dest is None or crop is None:
        continue
      left, top, w, h = integer_rect(dest)
      if w > 0 and h > 0:
        items.append((self.sprites.get(path, None, crop=crop, paint_size=(w, h)), left, top))
    return items

  def _lava_source(self, path, state_time):
    """The scroll phase and the two crop boxes of the unscaled lava sprite (cached)."""
    key = (path, state_time)
    if key not in self._lava_sources:
      asset_w, asset_h = self.sprites.original(path).size
      scroll = state_time * 0.1
      scroll -= int(scroll)
      scroll *= -1
      source = [0, 0, asset_w, asset_h]
      s1, s2 = source[:], source[:]
      s1[0] += -scroll * asset_w
      s2[0] += -asset_w - scroll * asset_w
      crops = tuple(None if s is None else integer_rect([s[0], s[1], s[0] + s[2], s[1] + s[3]])
                    for s in (intersect(s1, source), intersect(s2, source)))
      self._lava_sources[key] = (scroll, crops)
    return self._lava_sources[key]

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

  def _load_cell_sprites(self):
    """Per cell: its Pillow image core and alpha mask (None for lava, painted in halves)."""
    size = integer_rect(self.tile_rect(0, 0, 0.0))[2:]
    by_char = {}
    for char in sorted(set(self._cell_chars) - set(mg.LAVA_TILES)):  # Same first error every run.
      sprite = self.sprites.get(mg.tile_sprite(self.game, char), self.tile_load,
                                paint_size=tuple(size))
      core = sprite.image.im
      by_char[char] = (core, core if sprite.image.mode == "RGBA" else None)
    self._cell_sprites = [by_char.get(char) for char in self._cell_chars]
    self._cell_size = size
    # Rows are fixed on screen (the camera never moves vertically).
    tops = self.size - self.k * self._cell_y + self.dy - 0.1
    self._cell_top = np.floor(tops).astype(np.int64)
    self._cell_row_visible = ~((tops + size[1] < 0) | (tops > self.size))

  def _render_fast(self, index: int) -> np.ndarray:
    """The reference's painting, pixel for pixel, with the per-tile Python work precomputed:
    positions for all cells at once (numpy) and Pillow's C paste per visible tile."""
    if self._cell_sprites is None:
      self._load_cell_sprites()
    frame = self.game.frames[index]
    dx = self.camera_dx(frame)
    image = Image.new("RGB", (self.size, self.size))
    core = image.im
    for sprite, left, top in self.background_items(dx):
      _paste_core(core, sprite, left, top)
    lefts_float = self.k * self._cell_x + dx - 0.1
    w, h = self._cell_size
    ix, iy = int(frame.agent.x + .5), int(frame.agent.y + .5)
    shown = (self._cell_row_visible & (np.abs(self._cell_x - ix) <= self.radius)
             & (np.abs(self._cell_y - iy) <= self.radius)
             & (lefts_float + (self.k + .5 + .2) >= 0) & (lefts_float <= self.size))
    lefts = np.floor(lefts_float).astype(np.int64)
    tops = self._cell_top
    eaten = frame.coins_eaten
    for i in np.flatnonzero(shown).tolist():
      if self._cell_eatable[i] and (int(self._cell_x[i]), int(self._cell_y[i])) in eaten:
        continue
      entry = self._cell_sprites[i]
      if entry is None:  # Lava.
        for sprite, left, top in self.tile_items(int(self._cell_x[i]), int(self._cell_y[i]), dx,
                                                 frame.state_time):
          _paste_core(core, sprite, left, top)
        continue
      left, top = int(lefts[i]), int(tops[i])
      if entry[1] is None:
        core.paste(entry[0], (left, top, left + w, top + h))
      else:
        core.paste(entry[0], (left, top, left + w, top + h), entry[1])
    for sprite, left, top in self.character_items(frame, dx):
      _paste_core(core, sprite, left, top)
    return np.asarray(image)

  def render(self, frame_indices, method: str = "fast") -> np.ndarray:
    if method not in METHODS:
      raise ValueError(f"unknown render method {method!r}; choose one of {METHODS}")
    painter = {"fast": self._render_fast, "direct": self.render_direct,
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
