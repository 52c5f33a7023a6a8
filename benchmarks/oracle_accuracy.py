"""Measures the Shapes oracle on real rendered clips, clean and degraded.

    python benchmarks/oracle_accuracy.py --num_clips=512

For each (image size, frames, background) it renders the first `num_clips` test-split and
train-split clips with the data module's own generator and reports the oracle's
per-attribute and all-correct accuracy, then the same under blur + noise (a stand-in for
tokenizer / generator artefacts). Figures are recorded in docs/evaluation.md.
"""

import argparse
import time

import numpy as np
from scipy import ndimage

from mmvid_jax.data import shapes_generator
from mmvid_jax.evaluation import oracle

SETTINGS = ((64, 16, "plain"), (64, 16, "random"), (32, 8, "plain"), (32, 8, "random"))
DEGRADATIONS = ((0.0, 0.0), (0.8, 10.0), (1.2, 25.0))  # (blur sigma px, noise std)


def degrade(videos: np.ndarray, blur: float, noise: float, seed: int = 0) -> np.ndarray:
  if blur == 0 and noise == 0:
    return videos
  out = videos.astype(np.float32)
  if blur:
    out = ndimage.gaussian_filter(out, (0, 0, blur, blur, 0))
  out += np.random.default_rng(seed).normal(0.0, noise, out.shape)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_clips", type=int, default=512)
  args = parser.parse_args()
  print("| size | frames | background | blur, noise | clips | shape | colour | size | direction "
        "| all | clips/s |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for image_size, frames, background in SETTINGS:
    spec = shapes_generator.ShapesSpec(image_size=image_size, clip_frames=frames,
                                       background=background, seed=1234)
    half = args.num_clips // 2
    parts = [shapes_generator.generate_clips(spec, split, 0, half) for split in ("test", "train")]
    videos = np.concatenate([p["video"] for p in parts])
    truth = np.concatenate([p["attributes"] for p in parts])
    for blur, noise in DEGRADATIONS:
      start = time.time()
      result = oracle.evaluate(degrade(videos, blur, noise), truth)
      rate = len(videos) / (time.time() - start)
      print(f"| {image_size} | {frames} | {background} | {blur:g}, {noise:g} | {len(videos)} | "
            f"{result['shape']:.4f} | {result['color']:.4f} | {result['size']:.4f} | "
            f"{result['direction']:.4f} | {result['all']:.4f} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
  main()
