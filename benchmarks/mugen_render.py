"""MUGEN renderer speed (frames/s on one core) and TFDS size per clip.

    python benchmarks/mugen_render.py --asset_dir=PATH/coinrun/assets
    python benchmarks/mugen_render.py            # generated placeholder sprites

Renders 96-frame clips of a 64 x 13 maze (the release's size; lava, coins, crates, ladder,
a walking monster, the agent walking right then left) with the three painters, which give
identical pixels (checked here too):
  reference  Pillow paste of every visible tile every frame (MUGEN's reference algorithm);
  direct     the same per-tile painting in numpy;
  fast       static maze painted once per clip and sub-pixel phase, cropped per frame.
Per frame, sprites are scaled once per resolution (as in a build or input worker). Per clip
(the configured frame sampling, JSON parsing included), the fast painter with its warm sprite
cache is compared with the reference painter rescaling every sprite for each clip, as MUGEN's
reference script does when it loads a game (its tile size depends on the game's zoom). Also
reports the zlib-compressed bytes per stored clip (the TFDS
`video` feature) for the configured frame sampling, and the full-release (375K clips) size.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmvid_jax.data import mugen_game  # noqa: E402
from mmvid_jax.data import mugen_render  # noqa: E402
from tests import fixtures_mugen  # noqa: E402

RELEASE_CLIPS = 375_000


def _games(num_clips: int, num_frames: int):
  return [fixtures_mugen.make_game(num_frames=num_frames, maze_w=64, world=i % 2,
                                   speed=0.2 + 0.05 * i, seed=i) for i in range(num_clips)]


def _time_method(asset_dir, size, games, method, repeats):
  renderer = mugen_render.MugenRenderer(asset_dir, size)
  start = time.perf_counter()
  for data in games:  # Warm-up: sprite scaling for this resolution.
    renderer.render(mugen_game.parse_game(data), [0, 1], method)
  warmup = time.perf_counter() - start
  parsed = [mugen_game.parse_game(data) for data in games]
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    outputs = [renderer.render(game, range(game.num_frames), method) for game in parsed]
    best = min(best, time.perf_counter() - start)
  frames = sum(game.num_frames for game in parsed)
  return frames / best, warmup, outputs


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--asset_dir", default="", help="MUGEN sprites; empty: placeholders")
  parser.add_argument("--sizes", default="128,256")
  parser.add_argument("--clips", type=int, default=3)
  parser.add_argument("--frames", type=int, default=96)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--sampling", default="32x3,16x6", help="num_frames x frame_step list")
  args = parser.parse_args()
  asset_dir = args.asset_dir
  if not asset_dir:
    asset_dir = fixtures_mugen.write_assets(tempfile.mkdtemp(), size=128)
  games = _games(args.clips, args.frames)
  text = json.dumps(games[0])
  start = time.perf_counter()
  for _ in range(5):
    mugen_game.parse_game(json.loads(text))
  parse_ms = (time.perf_counter() - start) / 5 * 1000
  print(f"sprites: {'placeholders' if not args.asset_dir else args.asset_dir}; "
        f"{args.clips} clips x {args.frames} frames; JSON load+parse {parse_ms:.1f} ms/clip "
        f"({len(text) / 1e3:.0f} kB)")
  for size in (int(s) for s in args.sizes.split(",")):
    results = {}
    for method in ("reference", "direct", "fast"):
      fps, warmup, outputs = _time_method(asset_dir, size, games, method, args.repeats)
      results[method] = (fps, outputs)
      print(f"  {size:4d} px  {method:9s} {fps:8.0f} frames/s  (sprite scaling warm-up "
            f"{warmup:.2f} s)")
    for method in ("direct", "fast"):
      for a, b in zip(results[method][1], results["reference"][1]):
        np.testing.assert_array_equal(a, b)
    speedup = results["fast"][0] / results["reference"][0]
    print(f"  {size:4d} px  fast / reference = {speedup:.1f}x, fast / direct = "
          f"{results['fast'][0] / results['direct'][0]:.1f}x (pixels identical)")
    for sampling in args.sampling.split(","):
      count, step = (int(v) for v in sampling.split("x"))
      texts = [json.dumps(data) for data in games]
      indices = step * np.arange(count)
      per_clip = {}
      for label, method, fresh in (("reference, sprites per clip", "reference", True),
                                   ("fast, cached sprites", "fast", False)):
        renderer = mugen_render.MugenRenderer(asset_dir, size)
        for text in texts:  # A long-running worker has seen every sprite variant.
          renderer.render(mugen_game.parse_game(json.loads(text)), indices, method)
        start = time.perf_counter()
        for text in texts:
          if fresh:
            renderer = mugen_render.MugenRenderer(asset_dir, size)
          renderer.render(mugen_game.parse_game(json.loads(text)), indices, method)
        per_clip[label] = len(texts) / (time.perf_counter() - start)
      print(f"  {size:4d} px  {count} frames at step {step} per clip: " + ", ".join(
          f"{label} {rate:.1f} clips/s" for label, rate in per_clip.items()) +
            f" -> {per_clip['fast, cached sprites'] / per_clip['reference, sprites per clip']:.0f}x")
      sizes = [len(zlib.compress(video[::step][:count].tobytes()))
               for video in results["fast"][1]]
      per_clip = float(np.mean(sizes))
      print(f"  {size:4d} px  {count} frames at step {step}: {per_clip / 1e3:.0f} kB/clip "
            f"stored (zlib) -> {per_clip * RELEASE_CLIPS / 1e9:.0f} GB for {RELEASE_CLIPS} clips")


if __name__ == "__main__":
  main()
