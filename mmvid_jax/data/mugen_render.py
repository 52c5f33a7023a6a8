"""Renders MUGEN game states into `[T, R, R, 3] uint8` frames at any square resolution R.

Geometry, poses and rounding follow MUGEN's reference renderer: tile size
`k = zoom * R / maze_w`, a camera that follows the agent horizontally only, a parallax
background, scrolling lava, eaten coins left out, shrinking dead monsters, a fading killed
agent and the power-up shield. Four painters give identical pixels:

- `reference`: the reference algorithm (Pillow `paste` of every visible tile, every frame);
- `direct`: the same per-tile painting with numpy (exact Pillow blending, `mugen_sprites`);
- `fast`: the same Pillow pastes in the same order, with the per-tile Python work moved out
  of the frame loop: sprites scaled once per resolution and looked up per cell once per clip,
  the maze's rows pre-sorted so a frame only walks the cells on screen, the lava halves' float
  geometry and the background tiling recomputed without the generic rectangle helpers,
  Pillow's C paste called directly, frames written into one preallocated array;
- `compiled` (default): the fast painter's tables, but the camera, the visible cells and
  every pixel of a clip's frames done by one numba call (`mugen_compiled.paint_clip`) that
  paints straight into the output with Pillow's integer blend; no Pillow image, no copy out
  of it. Python keeps the characters and the lava halves (a few items per frame).

Why not a pre-drawn maze cropped per frame (built, exact, and measured: docs/mugen.md): the
background scrolls at 0.4x the maze's speed, so the pre-drawn maze has to be composited over
it on every frame, and that full-frame composite plus the lava cells repainted per frame cost
as much as pasting the ~40 visible tiles in C.
"""

import math

import numpy as np
from PIL import Image

import bisect

from mmvid_jax.data import mugen_game as mg
from mmvid_jax.errors import UserError
from mmvid_jax.data.mugen_sprites import (SpriteCache, int64_array, integer_rect, intersect,
                                          out_of_bounds, paste)

METHODS = ("compiled", "fast", "direct", "reference")


def _numba_available() -> bool:
  try:
    import numba  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


# `compiled` needs numba (requirements.txt); where it cannot be installed, the Pillow painter.
DEFAULT_METHOD = "compiled" if _numba_available() else "fast"


def _paste_core(core, sprite, left: int, top: int) -> None:
  """`Image.paste(sprite, box, sprite if RGBA)` on an image core, minus the wrapper's cost."""
  w, h = sprite.size
  if sprite.mask is not None:
    core.paste(sprite.core, (left, top, left + w, top + h), sprite.mask)
  else:
    core.paste(sprite.core, (left, top, left + w, top + h))


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
    self._rows = None  # Per screen row, its cells and sprites: loaded on the first fast frame.
    self._compiled = None  # The same as flat arrays, for the compiled painter.
    self._lava_sources = {}
    self._background = None
    self._lava_pieces_cache = {}
    self._lava_paths = {char: mg.tile_sprite(game, char) for char in mg.LAVA_TILES}

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

  def _load_rows(self) -> None:
    """Per maze row on screen: its cells' x, sprite core and mask (None: lava, painted in
    halves), whether they can be eaten, and its top (rows never move on screen)."""
    game, size = self.game, self.size
    w, h = integer_rect(self.tile_rect(0, 0, 0.0))[2:]
    self._tile_size = (w, h)
    self._tile_sprites = {}  # Per maze character but lava: its scaled tile.
    for char in sorted(set(self._cell_chars) - set(mg.LAVA_TILES)):  # Same first error every run.
      self._tile_sprites[char] = self.sprites.get(mg.tile_sprite(game, char), self.tile_load,
                                                  paint_size=(w, h))
    cores = {char: (sprite.core, sprite.mask) for char, sprite in self._tile_sprites.items()}
    eatable = dict(zip(zip(self._cell_x.tolist(), self._cell_y.tolist()), self._cell_eatable))
    self._rows = []
    for y in range(game.maze_h):
      top = size - self.k * y + self.dy - 0.1
      if top + (self.k + .5 + .2) < 0 or top > size:  # The reference's out_of_bounds, in y.
        continue
      cells = [(x, game.maze[y][x]) for x in range(game.maze_w) if game.maze[y][x] != mg.SPACE]
      self._rows.append((y, math.floor(top), [x for x, _ in cells],
                         [(x, char) + cores.get(char, (None, None)) + (eatable[(x, y)],)
                          for x, char in cells]))

  def _render_fast(self, image: Image.Image, index: int) -> None:
    """The reference's painting of frame `index` onto `image`, pixel for pixel (the image is
    reused between frames: whatever the background does not cover is cleared to black)."""
    if self._rows is None:
      self._load_rows()
    frame = self.game.frames[index]
    dx, k, size = self.camera_dx(frame), self.k, self.size
    w, h = self._tile_size
    core = image.im
    if not self._paste_background(core, dx):
      image.paste((0, 0, 0), (0, 0, size, size))
      self._paste_background(core, dx)
    iy = int(frame.agent.y + .5)
    first, last = self._visible_columns(frame, dx)
    eaten, state_time = frame.coins_eaten, frame.state_time
    for y, top, xs, cells in self._rows:
      if abs(y - iy) > self.radius:
        continue
      for x, char, tile, mask, eatable in cells[bisect.bisect_left(xs, first):
                                                bisect.bisect_right(xs, last)]:
        if eatable and (x, y) in eaten:
          continue
        if tile is None:  # Lava.
          for piece, left, piece_top, pw, ph in self._lava_pieces(char, x, y, dx, state_time):
            if piece.mask is None:
              core.paste(piece.core, (left, piece_top, left + pw, piece_top + ph))
            else:
              core.paste(piece.core, (left, piece_top, left + pw, piece_top + ph), piece.mask)
          continue
        left = math.floor(k * x + dx - 0.1)
        if mask is None:
          core.paste(tile, (left, top, left + w, top + h))
        else:
          core.paste(tile, (left, top, left + w, top + h), mask)
    for sprite, left, top in self.character_items(frame, dx):
      _paste_core(core, sprite, left, top)

  def _visible_columns(self, frame, dx) -> tuple[int, int]:
    """The maze columns the reference visits: within the radius of the agent and not out of
    bounds (a cell's left grows with x)."""
    k, size, side = self.k, self.size, self.k + .5 + .2
    ix = int(frame.agent.x + .5)
    first, last = max(ix - self.radius, 0), min(ix + self.radius, self.game.maze_w - 1)
    while first <= last and k * first + dx - 0.1 + side < 0:
      first += 1
    while last >= first and k * last + dx - 0.1 > size:
      last -= 1
    return first, last

  def _load_compiled(self) -> None:
    """The maze on screen as flat arrays for `mugen_compiled.paint_clip`: per row its y, top
    and first cell; per cell its x, sprite id (-1: lava) and column in the eaten table."""
    if self._rows is None:
      self._load_rows()
    atlas = self.sprites.atlas
    ids = {char: atlas.index(sprite) for char, sprite in self._tile_sprites.items()}
    row_y, row_top, row_start, cell_x, cell_sprite, cell_eaten = [], [], [0], [], [], []
    self._eatable_cells = []  # (x, y) per column of the eaten table.
    self._lava_cells = []  # (cell index, x, y, char, eatable).
    for y, top, _, cells in self._rows:
      for x, char, _, _, eatable in cells:
        if char in mg.LAVA_TILES:
          self._lava_cells.append((len(cell_x), x, y, char, eatable))
        cell_eaten.append(len(self._eatable_cells) if eatable else -1)
        if eatable:
          self._eatable_cells.append((x, y))
        cell_x.append(x)
        cell_sprite.append(ids.get(char, -1))
      row_y.append(y)
      row_top.append(top)
      row_start.append(len(cell_x))
    self._compiled = tuple(int64_array(v) for v in (row_y, row_top, row_start, cell_x,
                                                    cell_sprite, cell_eaten))

  def _render_compiled(self, indices, out: np.ndarray) -> None:
    """Frames `indices` painted into `out` ([T, R, R, 3]) by one compiled call, pixel for pixel
    the reference's: `mugen_compiled.paint_clip` does the camera, the visible cells and every
    pixel; Python gathers the characters and, on clips with lava, the lava pieces."""
    from mmvid_jax.data import mugen_compiled  # numba: imported only by this painter.
    if self._compiled is None:  # Tiles first: the same first missing sprite as `fast`.
      self._load_compiled()
    if self._background is None:
      self._prepare_background()
    atlas = self.sprites.atlas
    game, frames = self.game, [self.game.frames[i] for i in indices]
    n = len(frames)
    eaten = np.zeros((n, max(len(self._eatable_cells), 1)), np.bool_)
    lava = ([0], [], [], [], [])  # start per frame; cell, sprite, left, top per piece.
    extra = ([0], [], [], [])  # start per frame; sprite, left, top per item.
    for f, frame in enumerate(frames):
      dx = self.camera_dx(frame)
      if frame.coins_eaten:
        for column, cell in enumerate(self._eatable_cells):
          if cell in frame.coins_eaten:
            eaten[f, column] = True
      if self._lava_cells:
        iy = int(frame.agent.y + .5)
        first, last = self._visible_columns(frame, dx)
        for cell, x, y, char, eatable in self._lava_cells:
          if (abs(y - iy) <= self.radius and first <= x <= last
              and not (eatable and (x, y) in frame.coins_eaten)):
            for sprite, left, top, _, _ in self._lava_pieces(char, x, y, dx, frame.state_time):
              lava[1].append(cell)
              lava[2].append(atlas.index(sprite))
              lava[3].append(left)
              lava[4].append(top)
        lava[0].append(len(lava[1]))
      else:
        lava[0].append(0)
      for sprite, left, top in self.character_items(frame, dx):
        extra[1].append(atlas.index(sprite))
        extra[2].append(left)
        extra[3].append(top)
      extra[0].append(len(extra[1]))
    background = self._background.rgb
    mugen_compiled.paint_clip(
        out.reshape(n, self.size, self.size * 3), *atlas.arrays(),
        background.reshape(background.shape[0], -1), int64_array(self._background_tops),
        float(self.size * game.zoom), self.center, float(game.bgzoom), game.maze_h,
        self._background_rows_covered, *self._compiled,
        np.array([fr.agent.x for fr in frames], np.float64),
        np.array([fr.agent.y for fr in frames], np.float64), self.radius, game.maze_w,
        float(self.k), eaten, *map(int64_array, lava), *map(int64_array, extra))

  def _prepare_background(self) -> None:
    game, size = self.game, self.size
    zoom = size * game.zoom
    self._background = self.sprites.get(game.background, (math.ceil(zoom), math.ceil(zoom)),
                                        opaque=True)
    self._background_tops = []
    for tile_y in range(-1, 2):  # The reference's rect, as it computes it.
      top = (zoom * tile_y + self.center + game.bgzoom * (self.dy - self.k * game.maze_h / 2)
             - zoom * 0.5)
      if not (top + zoom < 0 or top > size):
        self._background_tops.append(math.floor(top))
    rows = 0
    for top in self._background_tops:
      if top <= rows:
        rows = max(rows, top + self._background.size[1])
    self._background_rows_covered = rows >= size

  def _background_lefts(self, dx):
    """The lefts of `background_items`' columns (each pasted at every top in
    `_background_tops`), without its per-tile Python, and whether they cover the frame."""
    game, size, zoom = self.game, self.size, self.size * self.game.zoom
    if self._background is None:
      self._prepare_background()
    width = self._background.size[0]
    lefts = []
    covered = 0  # Columns [0, covered) covered so far (tiles are pasted left to right).
    for tile_x in range(-1, 3):
      left = (zoom * tile_x + self.center + game.bgzoom * (dx + self.k * game.maze_h / 2)
              - zoom * 0.5)
      if left + zoom < 0 or left > size:
        continue
      left = math.floor(left)
      lefts.append(left)
      if left <= covered:
        covered = max(covered, left + width)
    return lefts, self._background_rows_covered and covered >= size

  def _paste_background(self, core, dx) -> bool:
    """`background_items` pasted (opaque) onto an image core. Returns whether they covered
    the whole frame."""
    lefts, covered = self._background_lefts(dx)
    source = self._background.image.im
    width, height = self._background.size
    for left in lefts:
      for top in self._background_tops:
        core.paste(source, (left, top, left + width, top + height))
    return covered

  def _lava_pieces(self, char, x, y, dx, state_time):
    """`tile_items` for a lava cell: the same float geometry, sprites looked up once."""
    k, path = self.k, self._lava_paths.get(char) or mg.tile_sprite(self.game, char)
    r0, r1, side = k * x + dx - 0.1, self.size - k * y + self.dy - 0.1, k + .5 + .2
    scroll, crops = self._lava_source(path, state_time)
    pieces = []
    for shifted, crop, first in ((r0 + scroll * side, crops[0], True),
                                 (r0 + (side + scroll * side), crops[1], False)):
      x0, x1 = max(shifted, r0), min(shifted + side, r0 + side)
      y0, y1 = r1, r1 + side
      if crop is None or not (x1 - x0 > 0 and y1 - y0 > 0):
        continue
      width = x1 - x0 + 0.5
      if not first:
        x0 -= 0.5
      left, top, w, h = math.floor(x0), math.floor(y0), math.ceil(width), math.ceil(y1 - y0)
      if w <= 0 or h <= 0:
        continue
      key = (path, crop, w, h)
      sprite = self._lava_pieces_cache.get(key)
      if sprite is None:
        sprite = self.sprites.get(path, None, crop=crop, paint_size=(w, h))
        self._lava_pieces_cache[key] = sprite
      pieces.append((sprite, left, top, w, h))
    return pieces

  def render(self, frame_indices, method: str | None = None) -> np.ndarray:
    method = method or DEFAULT_METHOD
    if method not in METHODS:
      raise ValueError(f"unknown render method {method!r}; choose one of {METHODS}")
    if method == "compiled" and not _numba_available():
      raise UserError("the compiled MUGEN painter needs numba, which is not installed. Fix: "
                      "`pip install -r requirements.txt` (numba), or render with --method=fast "
                      "(same pixels, 2-3x slower).")
    indices = [int(i) for i in frame_indices]
    out = np.empty((len(indices), self.size, self.size, 3), np.uint8)
    if method == "compiled":
      if indices:
        self._render_compiled(indices, out)
      return out
    image = Image.new("RGB", (self.size, self.size))
    for position, index in enumerate(indices):
      if method == "fast":
        self._render_fast(image, index)
        out[position] = np.frombuffer(image.tobytes(), np.uint8).reshape(out.shape[1:])
      else:
        out[position] = (self.render_direct if method == "direct" else
                         self.render_reference)(index)
    return out


class MugenRenderer:
  """Renders many clips at one resolution, sharing the scaled sprites between them."""

  def __init__(self, asset_dir: str, image_size: int):
    if not isinstance(image_size, int) or image_size < 8:
      raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    self.image_size = image_size
    self.sprites = SpriteCache(asset_dir)

  def clip(self, game: mg.Game) -> ClipRenderer:
    return ClipRenderer(game, self.image_size, self.sprites)

  def render(self, game: mg.Game, frame_indices, method: str | None = None) -> np.ndarray:
    """uint8 [len(frame_indices), R, R, 3]."""
    return self.clip(game).render(frame_indices, method)
