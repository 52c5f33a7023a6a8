"""MUGEN renderer speed (frames/s on one core), its profile, and TFDS disk per clip.

    python benchmarks/mugen_render.py --asset_dir=PATH/coinrun/assets
    python benchmarks/mugen_render.py            # generated placeholder sprites
    python benchmarks/mugen_render.py --asset_dir=... --profile --tfds_size

Renders 96-frame clips of a 64 x 13 maze (the release's size; lava, coins, crates, ladder,
a walking monster, the agent walking right then left) with the three painters, which give
identical pixels (checked here too), and MUGEN's own per-frame procedure:
  mugen      the reference painter run the way MUGEN's dataset loader runs it: sprites scaled
             once (the loader scales them when it starts), but the lava halves cropped and
             rescaled, a dying monster rescaled and the dying agent faded on every frame;
  reference  Pillow paste of every visible tile every frame (MUGEN's reference algorithm),
             every sprite variant cached;
  direct     the same per-tile painting in numpy;
  fast       the reference's Pillow pastes with the per-tile Python work done once per clip;
  compiled   the default: every paste of a clip in one numba call, straight into the output.
Per frame, sprites are scaled once per resolution (as in a build or input worker); each
figure is the best of `--repeats` CPU-time runs, the painters interleaved, so a loaded
machine disturbs them alike. `--no_lava` also times the same clips with the lava pool
turned into ground. Per clip (the configured frame sampling, JSON parsing included), the
fast painter is compared with MUGEN's procedure, both with their sprites already scaled.
`--profile` prints cProfile's top functions for the compiled painter at each size;
`--breakdown` the CPU time per frame of the fast painter's parts (painting, with and without
classes of maze cells, the conversion to numpy, a fresh output array) and of the compiled
painter's (whole, and its numba kernel alone).
`--tfds_size` builds the real `mugen` TFDS dataset from a generated tree of 96-frame clips
(5 clips, these sprites) per resolution and sampling, and reports the bytes on disk per clip
and the estimate for the full release (375K clips).
"""

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmvid_jax.data import mugen_game  # noqa: E402
from mmvid_jax.data import mugen_render  # noqa: E402
from mmvid_jax.data import mugen_sprites  # noqa: E402
from tests import fixtures_mugen  # noqa: E402

RELEASE_CLIPS = 375_000
METHODS = ("mugen", "reference", "direct", "fast", "compiled")


class _Painted:
  """What the reference painter reads from a sprite: its Pillow image and size."""

  __slots__ = ("image", "size")

  def __init__(self, image):
    self.image, self.size = image, image.size


class PerFrameSprites(mugen_sprites.SpriteCache):
  """MUGEN's loader's sprite work: each asset scaled (and mirrored) once, when the loader
  starts; a lava half's crop, a rescale to a rectangle of another size (a dying monster) and
  the dying agent's fade redone on every frame, with the same Pillow and numpy calls."""

  def get(self, relative_path, load_size, flip=False, paint_size=None, fade=0, fallback=None,
          crop=None, opaque=False):
    loaded = super().get(relative_path, load_size, flip=flip, fallback=fallback, opaque=opaque)
    if crop is None and not fade and (paint_size is None or loaded.size == tuple(paint_size)):
      return loaded
    image = loaded.image
    if crop is not None:
      image = image.crop(crop)
    if paint_size is not None and image.size != tuple(paint_size):
      image = image.resize(paint_size)
    if fade:
      image = mugen_sprites.faded(image, fade)
    return _Painted(image)


def _renderers(asset_dir, size):
  """{method: renderer}: MUGEN's procedure is the reference painter with per-frame sprites."""
  cached = mugen_render.MugenRenderer(asset_dir, size)
  per_frame = mugen_render.MugenRenderer(asset_dir, size)
  per_frame.sprites = PerFrameSprites(asset_dir)
  return {"mugen": per_frame, "reference": cached, "direct": cached, "fast": cached,
          "compiled": cached}


def _render(renderers, method, game, indices):
  painter = "reference" if method == "mugen" else method
  return renderers[method].render(game, indices, painter)


def _games(num_clips: int, num_frames: int, lava: bool = True):
  games = [fixtures_mugen.make_game(num_frames=num_frames, maze_w=64, world=i % 2,
                                    speed=0.2 + 0.05 * i, seed=i) for i in range(num_clips)]
  if not lava:
    for game in games:
      game["maze"] = [row.replace("^", "S").replace("|", "A") for row in game["maze"]]
  return games


def _frame_rates(asset_dir, size, games, repeats):
  """frames/s per painter (best CPU time over repeats, painters interleaved) and outputs."""
  parsed = [mugen_game.parse_game(data) for data in games]
  renderers = _renderers(asset_dir, size)
  for game in parsed:  # Warm-up: sprite scaling for this resolution.
    for method in METHODS:
      _render(renderers, method, game, range(game.num_frames))
  best, outputs = {}, {}
  for _ in range(repeats):
    for method in METHODS:
      start = time.process_time()
      outputs[method] = [_render(renderers, method, game, range(game.num_frames))
                         for game in parsed]
      best[method] = min(best.get(method, float("inf")), time.process_time() - start)
  frames = sum(game.num_frames for game in parsed)
  return {m: frames / t for m, t in best.items()}, outputs


def _profile(asset_dir, size, games) -> None:
  parsed = [mugen_game.parse_game(data) for data in games]
  renderer = mugen_render.MugenRenderer(asset_dir, size)
  for game in parsed:  # Warm: every sprite variant scaled before profiling.
    renderer.render(game, range(game.num_frames))
  profiler = cProfile.Profile()
  profiler.enable()
  for game in parsed:
    renderer.render(game, range(game.num_frames))
  profiler.disable()
  print(f"  {size:4d} px  cProfile of the compiled painter (tottime, top 8):")
  stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime")
  stats.print_stats(8)


def _best_us_per_frame(fn, frames: int, repeats: int = 5) -> float:
  best = float("inf")
  for _ in range(repeats):
    start = time.process_time()
    fn()
    best = min(best, time.process_time() - start)
  return best / frames * 1e6


def _breakdown(asset_dir, size, games) -> None:
  """CPU microseconds per frame of the fast painter's parts (best of 5 runs)."""
  parsed = [mugen_game.parse_game(data) for data in games]
  renderer = mugen_render.MugenRenderer(asset_dir, size)
  clips = [renderer.clip(game) for game in parsed]
  for clip in clips:  # Warm: sprites scaled, row tables built.
    clip.render(range(clip.game.num_frames))
  frames = sum(clip.game.num_frames for clip in clips)
  image = Image.new("RGB", (size, size))

  def paint():
    for clip in clips:
      for index in range(clip.game.num_frames):
        clip._render_fast(image, index)  # pylint: disable=protected-access

  def paint_with(keep):
    """Paints with only the maze cells `keep(cell)` accepts (the row table filtered)."""
    saved = [clip._rows for clip in clips]  # pylint: disable=protected-access
    for clip, rows in zip(clips, saved):
      filtered = []
      for y, top, _, cells in rows:
        kept = [cell for cell in cells if keep(cell)]
        filtered.append((y, top, [cell[0] for cell in kept], kept))
      clip._rows = filtered  # pylint: disable=protected-access
    try:
      return _best_us_per_frame(paint, frames)
    finally:
      for clip, rows in zip(clips, saved):
        clip._rows = rows  # pylint: disable=protected-access

  out = np.empty((96, size, size, 3), np.uint8)

  def pack():
    for clip in clips:
      for index in range(clip.game.num_frames):
        out[index % 96] = np.frombuffer(image.tobytes(), np.uint8).reshape(out.shape[1:])

  def fresh_output():
    for clip in clips:
      np.empty((clip.game.num_frames, size, size, 3), np.uint8).fill(0)

  def whole():
    for clip in clips:
      clip.render(range(clip.game.num_frames), "fast")

  def whole_compiled():
    for clip in clips:
      clip.render(range(clip.game.num_frames), "compiled")

  from mmvid_jax.data import mugen_compiled
  calls, kernel = [], mugen_compiled.paint_clip
  mugen_compiled.paint_clip = lambda *a: (calls.append(a), kernel(*a))[1]
  try:
    whole_compiled()
  finally:
    mugen_compiled.paint_clip = kernel

  def kernel_only():  # The recorded calls again, into the same (already touched) arrays.
    for a in calls:
      kernel(*a)

  opaque = lambda cell: cell[2] is not None and cell[3] is None  # a tile with no mask
  parts = {
      "whole render": _best_us_per_frame(whole, frames),
      "painting": _best_us_per_frame(paint, frames),
      "painting without maze cells (background, characters)": paint_with(lambda cell: False),
      "... with the opaque tiles only": paint_with(opaque),
      "... with the masked tiles and lava only": paint_with(lambda cell: not opaque(cell)),
      "Pillow -> numpy (tobytes + copy)": _best_us_per_frame(pack, frames),
      "a fresh output array's first fill": _best_us_per_frame(fresh_output, frames),
      "compiled: whole render": _best_us_per_frame(whole_compiled, frames),
      "compiled: its numba kernel alone": _best_us_per_frame(kernel_only, frames),
  }
  print(f"  {size:4d} px  CPU us per frame: " +
        "; ".join(f"{name} {value:.1f}" for name, value in parts.items()))


def _clip_rates(asset_dir, size, games, count, step):
  texts = [json.dumps(data) for data in games]
  indices = step * np.arange(count)
  renderers = _renderers(asset_dir, size)
  rates = {}
  for method in ("mugen", "fast", "compiled"):
    for text in texts:  # A long-running worker has scaled every sprite it needs.
      _render(renderers, method, mugen_game.parse_game(json.loads(text)), indices)
    start = time.process_time()
    for text in texts:
      _render(renderers, method, mugen_game.parse_game(json.loads(text)), indices)
    rates[method] = len(texts) / (time.process_time() - start)
  return rates


def _tfds_sizes(asset_dir, sizes, samplings) -> None:
  """Builds `mugen` from 96-frame generated clips; bytes on disk per stored clip."""
  import ml_collections
  import tensorflow_datasets as tfds
  from mmvid_jax.data import mugen_tfds
  tfds.disable_progress_bar()
  root = tempfile.mkdtemp()
  tree = fixtures_mugen.write_mugen_tree(os.path.join(root, "tree"), num_frames=96)
  for size in sizes:
    for count, step in samplings:
      data_dir = os.path.join(root, f"tfds_{size}_{count}_{step}")
      config = ml_collections.ConfigDict({"data": dict(
          manual_dir=tree["manual_dir"], asset_dir=asset_dir, root_dir="", data_dir=data_dir,
          image_size=size, num_frames=count, frame_step=step, use_downsampled_train=False,
          build_workers=1, beam_pipeline_options="")})
      builder = mugen_tfds.build(config, root)
      clips = sum(split.num_examples for split in builder.info.splits.values())
      stored = sum(os.path.getsize(os.path.join(builder.data_dir, name))
                   for name in os.listdir(builder.data_dir) if ".tfrecord" in name)
      per_clip = stored / clips
      print(f"  {size:4d} px  {count} frames at step {step}: {per_clip / 1e3:.0f} kB/clip on "
            f"disk ({clips} clips) -> ~{per_clip * RELEASE_CLIPS / 1e9:.0f} GB for "
            f"{RELEASE_CLIPS} clips")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--asset_dir", default="", help="MUGEN sprites; empty: placeholders")
  parser.add_argument("--sizes", default="128,256")
  parser.add_argument("--clips", type=int, default=3)
  parser.add_argument("--frames", type=int, default=96)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--sampling", default="16x6,32x3", help="num_frames x frame_step list")
  parser.add_argument("--no_lava", action="store_true", help="also time lava-free clips")
  parser.add_argument("--profile", action="store_true", help="cProfile the compiled painter")
  parser.add_argument("--breakdown", action="store_true",
                      help="CPU time per frame of the fast and compiled painters' parts")
  parser.add_argument("--tfds_size", action="store_true", help="TFDS bytes on disk per clip")
  args = parser.parse_args()
  asset_dir = args.asset_dir
  if not asset_dir:
    asset_dir = fixtures_mugen.write_assets(tempfile.mkdtemp(), size=128)
  sizes = [int(s) for s in args.sizes.split(",")]
  samplings = [tuple(int(v) for v in s.split("x")) for s in args.sampling.split(",")]
  games = _games(args.clips, args.frames)
  text = json.dumps(games[0])
  start = time.process_time()
  for _ in range(5):
    mugen_game.parse_game(json.loads(text))
  parse_ms = (time.process_time() - start) / 5 * 1000
  print(f"sprites: {'placeholders' if not args.asset_dir else args.asset_dir}; "
        f"{args.clips} clips x {args.frames} frames; JSON load+parse {parse_ms:.1f} ms/clip "
        f"({len(text) / 1e3:.0f} kB)")
  variants = [("lava", games)] + ([("no lava", _games(args.clips, args.frames, False))]
                                  if args.no_lava else [])
  for size in sizes:
    for label, clips in variants:
      rates, outputs = _frame_rates(asset_dir, size, clips, args.repeats)
      for method in ("mugen", "direct", "fast", "compiled"):
        for a, b in zip(outputs[method], outputs["reference"]):
          np.testing.assert_array_equal(a, b)
      print(f"  {size:4d} px  {label:7s} " + ", ".join(
          f"{m} {rates[m]:.0f}" for m in METHODS) + " frames/s; compiled / reference = "
            f"{rates['compiled'] / rates['reference']:.1f}x, compiled / mugen = "
            f"{rates['compiled'] / rates['mugen']:.1f}x, fast / mugen = "
            f"{rates['fast'] / rates['mugen']:.1f}x (pixels identical)")
    if args.profile:
      _profile(asset_dir, size, games)
    if args.breakdown:
      _breakdown(asset_dir, size, games)
    for count, step in samplings:
      rates = _clip_rates(asset_dir, size, games, count, step)
      print(f"  {size:4d} px  {count} frames at step {step} per clip: " + ", ".join(
          f"{label} {rate:.1f} clips/s" for label, rate in rates.items()) +
            f" -> compiled / mugen = {rates['compiled'] / rates['mugen']:.1f}x, fast / mugen = "
            f"{rates['fast'] / rates['mugen']:.1f}x")
  if args.tfds_size:
    _tfds_sizes(asset_dir, sizes, samplings)


if __name__ == "__main__":
  main()
