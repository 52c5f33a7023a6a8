"""The `compiled` MUGEN painter's pixel work: every paste of a clip's frames in one numba call.

The fast painter's floor is Pillow itself: each paste is a C call behind Python, and every
frame must be copied out of Pillow's 4-byte pixels into the `[R, R, 3]` output
(docs/mugen.md, "Where the time goes"). Here the frames are painted straight into the output
array by compiled loops that reproduce Pillow's `paste` bit for bit:

- an opaque sprite (no alpha, or alpha 255 everywhere) is copied;
- an RGBA sprite is blended with its own alpha as the mask, Pillow's integer
  `DIV255(dst * (255 - a) + src * a)` with `DIV255(v) = (((v + 128) >> 8) + v + 128) >> 8`,
  run by run: alpha-255 runs copied and alpha-0 runs skipped, where that blend returns the
  sprite's or the frame's pixel exactly;
- boxes are clipped to the frame as Pillow clips them.

The kernel finds each frame's camera, visible columns and background tiles itself, with the
reference's float expressions. Python keeps the few items per frame that need the sprite
cache (the characters, the lava halves): `mugen_render.ClipRenderer._render_compiled` gathers
them for the whole clip and calls `paint_clip` once. Sprites live in one `SpriteAtlas` per
sprite cache: their pixels flattened into one RGB and one alpha array, and their rows cut into
runs (`sprite_segments`), all indexed by sprite id.
"""

import numba
import numpy as np

from mmvid_jax.data.mugen_sprites import int64_array

# numba compiles on first use (~1.3 s); `cache=True` keeps the machine code next
# to this file, so later processes (build workers, input workers) load it instead.
_JIT = dict(nogil=True, cache=True)


COPY, BLEND = 0, 1  # Segment kinds: a run of opaque pixels, a run of partly transparent ones.


@numba.njit(**_JIT)
def _copy(dst, dst_start, src, src_start, n):
  """dst[dst_start:dst_start + n] = src[src_start:src_start + n] for 1-D byte rows. Unsigned
  indices: no negative-index wraparound in the loop, so LLVM vectorises it (numba's slice
  assignment runs ~10x slower here)."""
  d, s = np.uint64(dst_start), np.uint64(src_start)
  for j in range(np.uint64(n)):
    dst[d + j] = src[s + j]


@numba.njit(**_JIT)
def _paste(frame, rgb, alpha, offsets, widths, segment_start, segments, sprite, left, top):
  """Pillow's `frame.paste(sprite, (left, top), sprite-if-RGBA)` on a flat `[R, R * 3]` frame,
  run by run: opaque runs are copied, runs with 0 < alpha < 255 blended, transparent ones
  (alpha 0, where Pillow's blend returns the frame's pixel) skipped."""
  size_y, size_x = frame.shape[0], frame.shape[1] // 3
  offset, width = offsets[sprite], widths[sprite]
  for i in range(segment_start[sprite], segment_start[sprite + 1]):
    row = segments[i, 0]
    y = top + row
    if y < 0 or y >= size_y:
      continue
    xa, xb = max(left + segments[i, 1], 0), min(left + segments[i, 2], size_x)
    if xa >= xb:
      continue
    source = offset + row * width + xa - left  # Pixel index of xa in the sprite.
    out = frame[y]
    if segments[i, 3] == COPY:
      _copy(out, 3 * xa, rgb, 3 * source, 3 * (xb - xa))
    else:
      for x in range(np.uint64(xa), np.uint64(xb)):
        p = np.uint64(source) + x - np.uint64(xa)
        a = np.uint32(alpha[p])
        inv = np.uint32(255) - a
        for c in range(np.uint64(3)):
          q = np.uint64(3) * x + c
          t = np.uint32(out[q]) * inv + np.uint32(rgb[np.uint64(3) * p + c]) * a + np.uint32(128)
          out[q] = np.uint8(((t >> 8) + t) >> 8)


@numba.njit(**_JIT)
def paint_clip(out, rgb, alpha, offsets, widths, segment_start, segments,
               background, background_tops, zoom, center, bgzoom, maze_h, background_covers_rows,
               row_y, row_top, row_start, cell_x, cell_sprite, cell_eaten_column,
               agent_x, agent_y, radius, maze_w, k, eaten,
               lava_start, lava_cell, lava_sprite, lava_left, lava_top,
               extra_start, extra_sprite, extra_left, extra_top):
  """Paints frame f of `out` (`[T, R, R * 3]`, flat rows) for every f, in the reference's
  order, with the reference's float expressions for the camera and the visible cells.

  Per frame: the background tiles (the frame cleared to black first unless they cover it),
  then the maze rows within `radius` of the agent, their cells in the columns on screen (not
  eaten; a lava cell by its pieces `lava_start[f]..lava_start[f+1]`, computed in Python), then
  the extra items `extra_start[f]..extra_start[f+1]` (monsters, agent, shield).
  """
  num_frames, size = out.shape[0], out.shape[1]
  side = k + .5 + .2
  bg_height, bg_width = background.shape[0], background.shape[1] // 3
  lefts = np.empty(4, np.int64)
  for f in range(num_frames):
    frame = out[f]
    dx = -agent_x[f] * k + center - 0.5 * k
    ix, iy = np.int64(agent_x[f] + .5), np.int64(agent_y[f] + .5)
    # Background columns, as `ClipRenderer._background_lefts` finds them.
    count, covered = 0, 0
    for tile_x in range(-1, 3):
      left_f = zoom * tile_x + center + bgzoom * (dx + k * maze_h / 2) - zoom * 0.5
      if left_f + zoom < 0 or left_f > size:
        continue
      left = np.int64(np.floor(left_f))
      lefts[count] = left
      count += 1
      if left <= covered:
        covered = max(covered, left + bg_width)
    if not (background_covers_rows and covered >= size):
      frame[:] = 0
    for i in range(count):
      left = lefts[i]
      xa, xb = max(left, 0), min(left + bg_width, size)
      if xa >= xb:
        continue
      for top in background_tops:
        for y in range(max(top, 0), min(top + bg_height, size)):
          _copy(frame[y], 3 * xa, background[y - top], 3 * (xa - left), 3 * (xb - xa))
    # Columns on screen, as `ClipRenderer._visible_columns` finds them.
    first, last = max(ix - radius, 0), min(ix + radius, maze_w - 1)
    while first <= last and k * first + dx - 0.1 + side < 0:
      first += 1
    while last >= first and k * last + dx - 0.1 > size:
      last -= 1
    lava = lava_start[f]
    for r in range(row_y.shape[0]):
      if abs(row_y[r] - iy) > radius:
        continue
      top = row_top[r]
      for c in range(row_start[r], row_start[r + 1]):
        x = cell_x[c]
        if x < first or x > last:
          continue
        column = cell_eaten_column[c]
        if column >= 0 and eaten[f, column]:
          continue
        sprite = cell_sprite[c]
        if sprite < 0:  # Lava: its pieces, computed for this frame in the same order.
          while lava < lava_start[f + 1] and lava_cell[lava] == c:
            _paste(frame, rgb, alpha, offsets, widths, segment_start, segments,
                   lava_sprite[lava], lava_left[lava], lava_top[lava])
            lava += 1
          continue
        left = np.int64(np.floor(k * x + dx - 0.1))
        _paste(frame, rgb, alpha, offsets, widths, segment_start, segments, sprite, left, top)
    for i in range(extra_start[f], extra_start[f + 1]):
      _paste(frame, rgb, alpha, offsets, widths, segment_start, segments, extra_sprite[i],
             extra_left[i], extra_top[i])


def sprite_segments(alpha: np.ndarray | None, width: int, height: int) -> np.ndarray:
  """[n, 4] (row, x0, x1, kind) runs of a sprite as `_paste` paints them: per row, maximal
  runs of alpha 255 (COPY) and of 0 < alpha < 255 (BLEND); alpha 0 is left out. An opaque
  sprite (None) is one COPY run per row."""
  if alpha is None:
    rows = np.arange(height)
    return np.stack([rows, np.zeros_like(rows), np.full_like(rows, width),
                     np.full_like(rows, COPY)], axis=1).astype(np.int64)
  kind = np.where(alpha == 255, 1, np.where(alpha == 0, 0, 2))  # 0: skip, 1: copy, 2: blend.
  runs = []
  for y in range(height):
    line = kind[y]
    edges = np.flatnonzero(np.diff(line)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [width]])
    for x0, x1 in zip(starts.tolist(), ends.tolist()):
      if line[x0]:
        runs.append((y, x0, x1, COPY if line[x0] == 1 else BLEND))
  return np.array(runs, np.int64).reshape(-1, 4)


class SpriteAtlas:
  """Every sprite the compiled painter has used, flattened into arrays it indexes by id.

  Ids are kept on the sprite objects (`Sprite.atlas_index`); the flat arrays are rebuilt
  only after new sprites arrive, which stops once a resolution's poses have all been seen.
  """

  def __init__(self):
    self._sprites = []
    self._arrays = None

  def index(self, sprite) -> int:
    if sprite.atlas_index < 0:
      sprite.atlas_index = len(self._sprites)
      self._sprites.append(sprite)
      self._arrays = None
    return sprite.atlas_index

  def arrays(self):
    """(rgb bytes, alpha bytes, pixel offset, width, first segment per sprite id, segments):
    the sprites' pixels flattened, and the runs `_paste` paints (`sprite_segments`)."""
    if self._arrays is None:
      rgbs, alphas, offsets, widths, starts, segments = [], [], [], [], [0], []
      offset = 0
      for sprite in self._sprites:
        height, width = sprite.rgb.shape[:2]
        rgbs.append(sprite.rgb.reshape(-1))
        # The fast painter's choice: a mask only where alpha is below 255 somewhere.
        alpha = sprite.alpha if sprite.mask is not None else None
        alphas.append(np.full(height * width, 255, np.uint8) if alpha is None
                      else alpha.reshape(-1))
        runs = sprite_segments(alpha, width, height)
        segments.append(runs)
        starts.append(starts[-1] + len(runs))
        offsets.append(offset)
        widths.append(width)
        offset += height * width
      self._arrays = (np.concatenate(rgbs) if rgbs else np.zeros(0, np.uint8),
                      np.concatenate(alphas) if alphas else np.zeros(0, np.uint8),
                      int64_array(offsets), int64_array(widths), int64_array(starts),
                      np.concatenate(segments) if segments else np.zeros((0, 4), np.int64))
    return self._arrays
