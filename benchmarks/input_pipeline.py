"""Input pipeline throughput: raw Moving Shapes generator and make_dataset (tfds, stream).

    python benchmarks/input_pipeline.py                    # tiny and default configs
    python benchmarks/input_pipeline.py --configs=tiny --clips=512

Builds the TFDS dataset it reads into a temporary workdir (with --num_train clips, so the
build stays short; read speed does not depend on the split size) unless --workdir is given.
Prints one line per measurement after a warm-up: wall-clock clips/s and clips per CPU-second
(process CPU time over all threads). On a shared, loaded machine the second figure is the
steadier one: for the single-threaded generator it is the one-core rate.
"""

import argparse
import importlib.util
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmvid_jax.data import pipeline  # noqa: E402
from mmvid_jax.data import shapes_generator  # noqa: E402
from mmvid_jax.data import stage  # noqa: E402


def load_config(variant: str):
  spec = importlib.util.spec_from_file_location("shapes_config", os.path.join(ROOT, "configs", "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


class Timer:
  """Wall-clock and process CPU time of a block of work."""

  def __enter__(self):
    self.wall, self.cpu = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc):
    self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

  def rates(self, clips: int) -> str:
    return f"{clips / self.wall:8.0f} clips/s  {clips / max(self.cpu, 1e-9):8.0f} clips/CPU-s"


def generator_rate(config, blocks: int) -> str:
  spec = shapes_generator.ShapesSpec.from_config(config.data)
  shapes_generator.generate_block(spec, "train", 0)  # Warm-up.
  with Timer() as timer:
    for b in range(1, blocks + 1):
      shapes_generator.generate_block(spec, "train", b)
  return timer.rates(blocks * shapes_generator.BLOCK_SIZE)


def pipeline_rate(config, workdir: str, batch_size: int, clips: int, warmup: int) -> str:
  """Clips/s over at least `clips` clips, after `warmup` clips (start-up, first blocks)."""
  it = pipeline.make_dataset(config, "train", workdir, batch_size=batch_size, deterministic=False,
                             process_index=0, process_count=1)
  for _ in range(-(-warmup // batch_size)):
    next(it)
  batches = -(-clips // batch_size)
  with Timer() as timer:
    for _ in range(batches):
      next(it)
  return timer.rates(batches * batch_size)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="tiny,default")
  parser.add_argument("--sources", default="tfds,stream")
  parser.add_argument("--backgrounds", default="plain,random")
  parser.add_argument("--num_train", type=int, default=1024)
  parser.add_argument("--clips", type=int, default=1024, help="clips timed per pipeline run")
  parser.add_argument("--warmup", type=int, default=256, help="clips read before timing")
  parser.add_argument("--generator_blocks", type=int, default=8)
  parser.add_argument("--workdir", default="")
  args = parser.parse_args()
  workdir = args.workdir or tempfile.mkdtemp(prefix="mmvid_bench_")
  print(f"workdir {workdir}; {os.cpu_count()} CPU cores visible")
  for variant in args.configs.split(","):
    for background in args.backgrounds.split(","):
      config = load_config(variant)
      config.data.background = background
      config.data.num_train = args.num_train
      d = config.data
      label = f"{variant:8s} {d.image_size}px {d.clip_frames}f {background:6s}"
      print(f"{label} generator       {generator_rate(config, args.generator_blocks)}")
      batch = config.transformer.batch_size
      for source in args.sources.split(","):
        config.data.source = source
        if not stage.is_complete(config, workdir):
          start = time.perf_counter()
          stage.run(config, workdir)
          print(f"{label} data stage ({source}) built in {time.perf_counter() - start:.1f} s")
        rate = pipeline_rate(config, workdir, batch, args.clips, args.warmup)
        print(f"{label} pipeline {source:6s} {rate}  (batch {batch}, "
              f"{d.num_frames} frames of {d.image_size}px)")


if __name__ == "__main__":
  main()
