"""What the shared train loop costs on top of a bare `for` loop, and what a checkpoint costs.

    python benchmarks/train_loop_overhead.py                      # CPU-sized defaults
    python benchmarks/train_loop_overhead.py --state_mb=1024 --width=4096 --steps=300

The train step is a jitted, donated update of a `state_mb` state plus `width`^3 matmul work.
Reports the best of `repeats` runs, in steps/s, of (a) a bare `for` loop over the step,
(b) `run_loop` with checkpoints stubbed out (logging, NaN checks, progress: the loop's own
cost) and (c) `run_loop` saving real async orbax checkpoints every `checkpoint_every` steps and
at the end (the loop waits for the last one). Then, for one checkpoint of the state: how long
`Checkpointer.save` blocks the caller, the full write, and a restore. Results: docs/training.md.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mmvid_jax.infra import checkpoint as checkpoint_lib  # noqa: E402
from mmvid_jax.infra import train_loop  # noqa: E402


class _NoWriter:
  """Keeps TensorBoard (TensorFlow) out of the measurement."""

  def write_scalars(self, step, scalars):
    pass

  def write_images(self, step, images):
    pass

  def flush(self):
    pass

  def close(self):
    pass


class _NoSave:
  """A checkpointer that saves nothing, to time the loop alone."""

  directory = "(none)"

  def save(self, step, state, extra, force=False):
    return True

  def wait_until_finished(self):
    pass

  def latest_step(self):
    return None


def make_state(state_mb: int, width: int):
  leaves = max(1, state_mb // 64)
  per_leaf = state_mb * 2**20 // 4 // leaves
  return {"w": jnp.eye(width, dtype=jnp.float32) * 0.5,
          "big": [jnp.full((per_leaf,), float(i), jnp.float32) for i in range(leaves)]}


def make_step(width: int):
  @jax.jit
  def step(state, batch, index):
    w = state["w"]
    y = jnp.tanh(batch @ w) @ w.T  # ~4 width^3 flops of work.
    loss = jnp.mean(y ** 2) + 0.0 * index
    big = [leaf * 0.999 for leaf in state["big"]]
    return {"w": w * 0.9999, "big": big}, {"loss": loss}
  return step


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--state_mb", type=int, default=64)
  parser.add_argument("--width", type=int, default=512)
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--checkpoint_every", type=int, default=20)
  parser.add_argument("--log_every", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  step = make_step(args.width)
  jitted = jax.jit(step, donate_argnums=0)
  batch = jnp.ones((args.width, args.width), jnp.float32)

  def batches():
    while True:
      yield batch

  def loop_step(state, b, index):
    return jitted(state, b, index)

  results = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__, **vars(args)}
  # Warm-up (compilation) outside every measurement.
  state = make_state(args.state_mb, args.width)
  state, m = jitted(state, batch, 0)
  jax.block_until_ready((state, m))

  def bare():
    nonlocal state
    for index in range(args.steps):
      state, metrics = jitted(state, batch, index)
    jax.block_until_ready((state, metrics))

  def loop(checkpointer, every):
    nonlocal state
    state = train_loop.run_loop(
        name="bench", workdir=workdir, state=state, train_step=loop_step, batches=batches(),
        num_steps=args.steps, start_step=0, checkpointer=checkpointer, log_every=args.log_every,
        checkpoint_every=every, writer=_NoWriter())
    jax.block_until_ready(state)

  def best_steps_per_sec(fn, *fn_args) -> float:
    times = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      fn(*fn_args)
      times.append(time.perf_counter() - start)
    return args.steps / min(times)

  with tempfile.TemporaryDirectory() as workdir:
    results["bare_steps_per_sec"] = best_steps_per_sec(bare)
    # (b) The loop alone: logging, NaN checks, progress; checkpoints stubbed out.
    results["loop_no_save_steps_per_sec"] = best_steps_per_sec(loop, _NoSave(), 10**9)

    # (c) Real async checkpoints every `checkpoint_every` steps (and at the end).
    def loop_with_saves():
      with checkpoint_lib.Checkpointer(tempfile.mkdtemp(dir=workdir), max_to_keep=2) as ckpt:
        loop(ckpt, args.checkpoint_every)
    loop_with_saves()  # First-use costs of orbax (thread pools) are not measured.
    results["loop_with_saves_steps_per_sec"] = best_steps_per_sec(loop_with_saves)
    results["saves_per_run"] = -(-args.steps // args.checkpoint_every)

    # One checkpoint: time save() blocks, then the full write.
    ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "single"))
    jax.block_until_ready(state)
    start = time.perf_counter()
    ckpt.save(1, state, {"step": 1})
    results["save_blocking_sec"] = time.perf_counter() - start
    ckpt.wait_until_finished()
    results["save_total_sec"] = time.perf_counter() - start
    start = time.perf_counter()
    restored, _ = ckpt.restore(checkpoint_lib.abstract_like(state))
    jax.block_until_ready(restored)
    results["restore_sec"] = time.perf_counter() - start
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.asarray(state["w"]))
    ckpt.close()
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
