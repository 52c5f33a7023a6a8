"""Visual controls: slot specs, tokenization and erasing in token space (MMVID `vc_mode`, §2.5).

`config.transformer.controls` is a tuple of `"<source>:<erasing mode>"`, one per slot; the data
pipeline supplies the images, `source` only tells it which. Erasing replaces control codes by
[MASK]. MMVID defines its boxes on an 8x8 (or 4x4) grid; here they are scaled to the actual latent
grid (half-open ranges, rows y / cols x). Training draws one pattern per slot per batch (as
MMVID: one draw per call); evaluation uses a fixed pattern.

| mode | training (p) | evaluation |
|---|---|---|
| keep | keep all | keep all |
| mask_8x8 | keep all (.5), keep only [2:6,2:6] (.25), only [1:7,1:7] (.25) | only [1:7,1:7] |
| mask2_8x8 | as mask_8x8, one draw shared by all mask2_8x8 slots (MMVID: one per call) | same |
| face_8x8 | keep only eyes+nose [2:5,1:7] (.5) or mouth [5:7,2:6] (.5) | eyes+nose |
| centre_8x8 | keep only [2:6,2:6] (MMVID face2 motion frames) | same |
| face2_8x8 | slot 0 (appearance) kept whole, every later slot keeps only [2:6,2:6] | same |
| face3_8x8 | MUG: slot 0 whole plus [2:6,2:6] of every slot (in tokens = face2_8x8) | same |
| shape_4x4 | centre [1:3,1:3] of a 4x4 grid masked | same |
| drop | all [MASK] (a missing control) | same |
"""

import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.errors import UserError

MODES = ("keep", "mask_8x8", "mask2_8x8", "face2_8x8", "face3_8x8", "face_8x8", "centre_8x8",
         "shape_4x4", "drop")


def parse_slots(controls) -> tuple[tuple[str, str], ...]:
  """("background:shape_4x4", ...) -> (("background", "shape_4x4"), ...), checked."""
  slots = []
  for spec in controls:
    source, sep, mode = str(spec).partition(":")
    if not sep or not source:
      raise UserError(f"config.transformer.controls: {spec!r} is not '<source>:<erasing mode>'. "
                      "Fix: write e.g. 'background:shape_4x4'.")
    if mode not in MODES:
      raise UserError(f"config.transformer.controls: erasing mode {mode!r} in {spec!r} is "
                      f"unknown. Fix: use one of {', '.join(MODES)}.")
    slots.append((source, mode))
  return tuple(slots)


def _box(h: int, w: int, grid: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
  """Boolean (h, w) box given on a `grid` x `grid` layout, scaled to (h, w)."""
  y0, y1 = (int(round(r * h / grid)) for r in rows)
  x0, x1 = (int(round(c * w / grid)) for c in cols)
  box = np.zeros((h, w), bool)
  box[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = True
  return box


def keep_patterns(mode: str, h: int, w: int, train: bool) -> tuple[np.ndarray, np.ndarray]:
  """(options (n, h, w) bool keep masks, probabilities (n,)) for one slot."""
  full = np.ones((h, w), bool)
  if mode == "keep":
    options, probs = [full], [1.0]
  elif mode in ("mask_8x8", "mask2_8x8"):
    inner, outer = _box(h, w, 8, (2, 6), (2, 6)), _box(h, w, 8, (1, 7), (1, 7))
    options, probs = ([full, inner, outer], [0.5, 0.25, 0.25]) if train else ([outer], [1.0])
  elif mode == "face_8x8":
    eyes, mouth = _box(h, w, 8, (2, 5), (1, 7)), _box(h, w, 8, (5, 7), (2, 6))
    options, probs = ([eyes, mouth], [0.5, 0.5]) if train else ([eyes], [1.0])
  elif mode in ("centre_8x8", "face2_8x8", "face3_8x8"):  # face2/3: later slots (0 is whole)
    options, probs = [_box(h, w, 8, (2, 6), (2, 6))], [1.0]
  elif mode == "shape_4x4":
    options, probs = [~_box(h, w, 4, (1, 3), (1, 3))], [1.0]
  elif mode == "drop":
    options, probs = [np.zeros((h, w), bool)], [1.0]
  else:
    raise UserError(f"unknown control erasing mode {mode!r}; use one of {', '.join(MODES)}.")
  return np.stack(options), np.asarray(probs, np.float32)


def erase_controls(codes: jax.Array, modes: tuple[str, ...], mask_id: int,
                   key: jax.Array | None = None, train: bool = False) -> jax.Array:
  """Control codes (B, n_ctrl, h, w) -> same with erased positions set to `mask_id`.

  In training (`train=True`, needs `key`) one pattern is drawn per slot for the whole batch.
  """
  if codes.shape[1] != len(modes):
    raise UserError(f"got {codes.shape[1]} control images but the config has {len(modes)} "
                    "control slots. Fix: match config.transformer.controls.")
  h, w = codes.shape[2], codes.shape[3]
  out = []
  for slot, mode in enumerate(modes):
    # MMVID face2: appearance (slot 0) whole, motion frames centred. face3 ("for MUG
    # evaluation") keeps slot 0 whole plus every slot's centre: the same per-slot mapping.
    if mode in ("face2_8x8", "face3_8x8"):
      mode = "keep" if slot == 0 else "centre_8x8"
    options, probs = keep_patterns(mode, h, w, train)
    if len(options) == 1:
      keep = jnp.asarray(options[0])
    else:
      # mask2_8x8 slots share one draw (MMVID applies one strategy to every control frame).
      stream = len(modes) if mode == "mask2_8x8" else slot
      choice = jax.random.choice(jax.random.fold_in(key, stream), len(options),
                                 p=jnp.asarray(probs))
      keep = jnp.asarray(options)[choice]
    out.append(jnp.where(keep[None], codes[:, slot], mask_id))
  return jnp.stack(out, axis=1)


def tokenize_controls(tokenizer, controls: jax.Array) -> jax.Array:
  """uint8 images (B, n_ctrl, H, W, 3) -> codes (B, n_ctrl, h, w) with the frozen tokenizer."""
  images = controls.astype(jnp.float32) / 127.5 - 1.0
  return tokenizer.encode_to_codes(images)
