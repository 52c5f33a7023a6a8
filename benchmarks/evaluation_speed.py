"""Speed of the evaluation pieces: I3D features (FVD/PRD), PRD clustering, the Shapes oracle.

    python benchmarks/evaluation_speed.py                 # defaults: a short run
    python benchmarks/evaluation_speed.py --i3d_batches=4 --i3d_batch_size=16
    python benchmarks/evaluation_speed.py --i3d_layers=compare   # the package's layers, the stem
                                                                 # alone, all CPU programs

Prints clips per second after one warm-up call (compilation excluded). Figures are recorded
in docs/evaluation.md with the machine they were measured on.
"""

import argparse
import time

import jax
import numpy as np

from mmvid_jax.data import shapes_generator
from mmvid_jax.evaluation import fvd
from mmvid_jax.evaluation import oracle
from mmvid_jax.evaluation import prd


def time_i3d(batch_size: int, batches: int, frames: int, size: int,
             cpu_ops=None) -> float:
  extractor = fvd.I3DFeatures(batch_size, cpu_ops=cpu_ops)
  videos = np.random.default_rng(0).integers(0, 256, (batch_size * batches, frames, size, size, 3),
                                             dtype=np.uint8)
  extractor(videos[:batch_size])  # compile
  start = time.perf_counter()
  extractor(videos)
  return len(videos) / (time.perf_counter() - start)


def time_prd(num: int, runs: int) -> float:
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(num, 400)), rng.normal(size=(num, 400)) + 0.1
  start = time.perf_counter()
  prd.prd_from_features(real, fake, num_runs=runs)
  return time.perf_counter() - start


def time_oracle(num: int, frames: int, size: int) -> float:
  spec = shapes_generator.ShapesSpec(image_size=size, clip_frames=frames)
  videos = shapes_generator.generate_clips(spec, "test", 0, num)["video"]
  start = time.perf_counter()
  oracle.read_videos(videos)
  return num / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--i3d_batch_size", type=int, default=16)
  parser.add_argument("--i3d_batches", type=int, default=2)
  parser.add_argument("--prd_videos", type=int, default=256)
  parser.add_argument("--oracle_videos", type=int, default=128)
  parser.add_argument("--i3d_layers", choices=("default", "package", "cpu", "compare"),
                      default="default",
                      help="I3D's layers: the backend's default, the package's own, the CPU "
                           "programs (fvd.CPU_OP_KINDS), or those two and the stem alone, "
                           "alternated")
  args = parser.parse_args()
  print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind})")
  choices = {"default": [None], "package": [False], "cpu": [True],
             "compare": [False, ("stem",), True]}[args.i3d_layers]
  names = {None: "", False: ", package layers", ("stem",): ", CPU stem only",
           True: ", CPU programs"}
  for frames, size in ((16, 64), (8, 32)):
    for cpu_ops in choices:
      rate = time_i3d(args.i3d_batch_size, args.i3d_batches, frames, size, cpu_ops)
      print(f"I3D features, {frames} frames at {size} px (-> {fvd.i3d_length(frames)}x224x224), "
            f"batch {args.i3d_batch_size}{names[cpu_ops]}: {rate:.2f} clips/s", flush=True)
  print(f"PRD (20 clusters, 10 runs, 1001 angles), {args.prd_videos} + {args.prd_videos} "
        f"features: {time_prd(args.prd_videos, 10):.1f} s", flush=True)
  for frames, size in ((16, 64), (8, 32)):
    print(f"Shapes oracle, {frames} frames at {size} px: "
          f"{time_oracle(args.oracle_videos, frames, size):.0f} clips/s", flush=True)


if __name__ == "__main__":
  main()
