"""The shared train loop on a tiny linear regression: learning, logging, resume, SIGTERM, NaN."""

import glob
import io
import logging
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.infra import checkpoint as checkpoint_lib
from mmvid_jax.infra import train_loop
from mmvid_jax.infra.logging_utils import Progress, format_duration

TRUE_W = np.array([1.0, -2.0, 3.0], np.float32)
BATCH = 8
OPTIMIZER = optax.sgd(0.1, momentum=0.5)
BASE_KEY = jax.random.key(42)


def batches(start: int):
  """Deterministic stream: batch i depends only on i, so it can start anywhere."""
  i = start
  while True:
    rng = np.random.default_rng(i)
    x = rng.normal(size=(BATCH, 3)).astype(np.float32)
    yield {"x": x, "y": x @ TRUE_W, "caption": np.array([b"host only"] * BATCH)}
    i += 1


def init_state():
  w = jnp.zeros(3)
  return {"w": w, "opt": OPTIMIZER.init(w), "step": jnp.int32(0)}


def _step_fn(state, x, y, step):
  # Per-step noise from fold_in(base, step): a resumed run must draw the same noise.
  noise = 0.01 * jax.random.normal(jax.random.fold_in(BASE_KEY, step), y.shape)

  def loss_fn(w):
    return jnp.mean((x @ w - (y + noise)) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state["w"])
  updates, opt = OPTIMIZER.update(grads, state["opt"])
  new_state = {"w": optax.apply_updates(state["w"], updates), "opt": opt,
               "step": state["step"] + 1}
  return new_state, {"loss": loss, "learning_rate": jnp.float32(0.1)}


_step = jax.jit(_step_fn)


def make_train_step(record=None, hook=None):
  def train_step(state, batch, step):
    if hook is not None:
      hook(step)
    state, metrics = _step(state, batch["x"], batch["y"], step)
    if record is not None:
      record[step + 1] = float(metrics["loss"])
    return state, metrics
  return train_step


def run(workdir, num_steps, start_step=0, state=None, **kwargs):
  checkpointer = kwargs.pop("checkpointer", None) or checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), max_to_keep=3)
  args = dict(name="toy", workdir=str(workdir), train_step=make_train_step(),
              batches=batches(start_step), num_steps=num_steps, start_step=start_step,
              checkpointer=checkpointer, log_every=4, checkpoint_every=4,
              examples_per_step=BATCH)
  args.update(kwargs)
  return train_loop.run_loop(state=init_state() if state is None else state, **args), checkpointer


def read_scalars(workdir):
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  files = glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  assert files, "no TensorBoard event file written"
  accumulator = event_accumulator.EventAccumulator(files[0], size_guidance={"tensors": 0})
  accumulator.Reload()
  scalars = {}
  for tag in accumulator.Tags()["tensors"]:
    for event in accumulator.Tensors(tag):
      value = tensor_util.make_ndarray(event.tensor_proto)
      if value.ndim == 0 and value.dtype.kind == "f":  # Images are encoded PNG strings.
        scalars.setdefault(tag, {})[event.step] = float(value)
  return scalars, accumulator


def test_loss_decreases_and_metrics_reach_tensorboard(tmp_path):
  losses = {}
  state, checkpointer = run(tmp_path, num_steps=40, train_step=make_train_step(losses))
  checkpointer.close()
  assert losses[40] < 0.1 * losses[1]
  np.testing.assert_allclose(np.asarray(state["w"]), TRUE_W, atol=0.2)
  scalars, _ = read_scalars(str(tmp_path))
  assert sorted(scalars["train/loss"]) == list(range(4, 41, 4))
  # Logged loss is the mean over the window of 4 steps.
  np.testing.assert_allclose(scalars["train/loss"][8], np.mean([losses[s] for s in range(5, 9)]),
                             rtol=1e-5)
  assert scalars["train/learning_rate"][40] == pytest.approx(0.1)
  assert scalars["train/steps_per_sec"][40] > 0
  assert scalars["train/examples_per_sec"][40] == pytest.approx(
      BATCH * scalars["train/steps_per_sec"][40], rel=1e-4)
  assert checkpoint_lib.Checkpointer(str(tmp_path / "checkpoints")).all_steps() == [32, 36, 40]


def test_checkpoint_extra_holds_step_data_position_and_config(tmp_path):
  import ml_collections
  config = ml_collections.ConfigDict({"toy": {"learning_rate": 0.1}})
  _, checkpointer = run(tmp_path, num_steps=6, config=config,
                        extra_fn=lambda step: {"epoch": step // 3})
  _, extra = checkpointer.restore(checkpoint_lib.abstract_like(init_state()))
  assert extra["step"] == 6 and extra["data_position"] == 6 and extra["epoch"] == 2
  assert ml_collections.ConfigDict(__import__("json").loads(extra["config"])) == config
  # Final step 6 plus the periodic one at 4.
  assert checkpointer.all_steps() == [4, 6]
  checkpointer.close()


def test_resume_after_preemption_matches_uninterrupted_run(tmp_path):
  uninterrupted = {}
  reference, checkpointer = run(tmp_path / "a", num_steps=12,
                                train_step=make_train_step(uninterrupted))
  checkpointer.close()

  def preempt_at(step):
    if step == 5:  # During the 6th step: the loop saves at 6 and stops.
      os.kill(os.getpid(), signal.SIGTERM)

  first = {}
  previous_handler = signal.getsignal(signal.SIGTERM)
  with pytest.raises(train_loop.Preempted) as info:
    run(tmp_path / "b", num_steps=12, train_step=make_train_step(first, hook=preempt_at))
  assert info.value.step == 6 and info.value.code == 0
  assert signal.getsignal(signal.SIGTERM) is previous_handler
  assert max(first) == 6  # It stopped right at the step boundary.

  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path / "b" / "checkpoints"), max_to_keep=3)
  assert checkpointer.latest_step() == 6
  assert checkpointer.all_steps() == [4, 6]
  state, extra = checkpointer.restore(checkpoint_lib.abstract_like(init_state()))
  resumed = {}
  final, checkpointer = run(tmp_path / "b", num_steps=12, start_step=extra["step"], state=state,
                            batches=batches(extra["data_position"]),
                            train_step=make_train_step(resumed), checkpointer=checkpointer)
  checkpointer.close()
  assert sorted(resumed) == list(range(7, 13))
  for step in range(7, 13):
    assert resumed[step] == uninterrupted[step]
  np.testing.assert_array_equal(np.asarray(final["w"]), np.asarray(reference["w"]))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  @jax.jit
  def poisoned(state, x, y, step):
    state, metrics = _step(state, x, y, step)
    bad = step >= 6  # The 7th step produces NaN.
    metrics["loss"] = jnp.where(bad, jnp.nan, metrics["loss"])
    state["w"] = jnp.where(bad, jnp.nan, state["w"])
    return state, metrics

  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path / "checkpoints"))
  with pytest.raises(train_loop.NonFiniteLossError) as info:
    # Log at 5 and 10, checkpoint every 4: the save at 8 must notice the NaN at 7.
    run(tmp_path, num_steps=20, log_every=5, checkpointer=checkpointer,
        train_step=lambda s, b, i: poisoned(s, b["x"], b["y"], i))
  error = info.value
  assert isinstance(error, UserError)
  assert error.step == 7 and error.last_good_step == 4
  message = str(error)
  assert "loss became nan at step 7" in message
  assert "last good checkpoint is step 4" in message and checkpointer.directory in message
  assert "learning_rate" in message
  assert checkpointer.all_steps() == [4]
  restored, _ = checkpointer.restore(checkpoint_lib.abstract_like(init_state()))
  assert np.all(np.isfinite(np.asarray(restored["w"])))
  checkpointer.close()


def test_eval_outputs_scalars_images_and_videos(tmp_path):
  calls = []

  def eval_fn(state, step):
    calls.append(step)
    videos = np.zeros((2, 3, 8, 8, 3), np.uint8)
    videos[:, :, 2:5, 2:5] = 255
    return {"w_error": jnp.abs(state["w"] - TRUE_W).sum(),
            "recon": np.zeros((8, 8, 3), np.float32),  # Float images are taken as [-1, 1].
            "samples": videos}

  _, checkpointer = run(tmp_path, num_steps=10, eval_every=4, eval_fn=eval_fn)
  checkpointer.close()
  assert calls == [4, 8, 10]
  scalars, accumulator = read_scalars(str(tmp_path))
  assert sorted(scalars["eval/w_error"]) == [4, 8, 10]
  assert scalars["eval/w_error"][10] < scalars["eval/w_error"][4]
  assert {"eval/recon", "eval/samples"} <= set(accumulator.Tags()["tensors"])
  gifs = sorted(os.listdir(tmp_path / "eval"))
  assert gifs == [f"eval_samples_{s:06d}.gif" for s in (4, 8, 10)]


def test_input_pipeline_running_dry_is_a_user_error(tmp_path):
  short = iter([next(batches(0))] * 3)
  with pytest.raises(UserError, match="ran out of batches at step 3"):
    run(tmp_path, num_steps=8, batches=short)


def test_metrics_without_loss_are_rejected(tmp_path):
  with pytest.raises(ValueError, match="'loss'"):
    run(tmp_path, num_steps=2, train_step=lambda s, b, i: (s, {"acc": jnp.float32(1)}))


def test_already_finished_returns_state_unchanged(tmp_path):
  state = init_state()
  out, checkpointer = run(tmp_path, num_steps=5, start_step=5, state=state)
  assert out is state and checkpointer.all_steps() == []
  checkpointer.close()


def test_progress_on_a_terminal_redraws_one_line():
  stream = io.StringIO()
  progress = Progress(total=4, name="sampling", unit="videos", stream=stream, is_tty=True)
  for _ in range(4):
    progress.update(1, loss=0.5)
  progress.close()
  text = stream.getvalue()
  assert text.startswith("\r[") and "sampling 4/4 videos (100%)" in text
  assert "loss 0.5" in text and "ETA" in text and text.endswith("\n")


def test_progress_without_terminal_writes_log_lines(caplog):
  stream = io.StringIO()
  progress = Progress(total=10, name="build", stream=stream, is_tty=False, log_every_seconds=0)
  with caplog.at_level(logging.INFO):
    progress.update(5)
    progress.close()
  assert stream.getvalue() == ""
  assert any("build 5/10 steps (50%)" in r.getMessage() for r in caplog.records)
  assert format_duration(3725) == "1h02m" and format_duration(75) == "1m15s"


_CHILD = r'''
import os, sys, time
from absl import app, logging
import jax, numpy as np
sys.path.insert(0, os.environ["TEST_DIR"])
import test_infra_train_loop as t
from mmvid_jax.infra import checkpoint as checkpoint_lib, train_loop


class NoWriter:  # Keeps TensorFlow out of the child process.
  def write_scalars(self, step, scalars): pass
  def write_images(self, step, images): pass
  def flush(self): pass
  def close(self): pass


def main(argv):
  logging.set_verbosity(logging.INFO)
  workdir = argv[1]
  def slow_step(state, batch, step):
    if step == 3:
      open(os.path.join(workdir, "running"), "w").close()
    time.sleep(0.05)
    return t.make_train_step()(state, batch, step)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"))
  train_loop.run_loop(name="toy", workdir=workdir, state=t.init_state(), train_step=slow_step,
                      batches=t.batches(0), num_steps=100000, start_step=0, checkpointer=ckpt,
                      log_every=50, checkpoint_every=1000, writer=NoWriter())
  print("finished without preemption")


app.run(main)
'''


def test_sigterm_from_outside_saves_and_exits_zero(tmp_path):
  import subprocess
  import sys
  import time
  script = tmp_path / "child.py"
  script.write_text(_CHILD)
  env = dict(os.environ, TEST_DIR=os.path.dirname(__file__), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  child = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 60
  while not (tmp_path / "running").exists():
    assert child.poll() is None, child.communicate()
    assert time.monotonic() < deadline, "child never started training"
    time.sleep(0.1)
  child.send_signal(signal.SIGTERM)
  stdout, stderr = child.communicate(timeout=60)
  assert child.returncode == 0, stderr
  assert "finished without preemption" not in stdout
  assert "stopped by SIGTERM" in stderr and "To resume, rerun the same command" in stderr
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path / "checkpoints"))
  step = checkpointer.latest_step()
  assert step is not None and step >= 4
  _, extra = checkpointer.restore(checkpoint_lib.abstract_like(init_state()))
  assert extra["step"] == step
  checkpointer.close()


@pytest.mark.parametrize("key, value", [("log_every", 0), ("checkpoint_every", -1),
                                        ("num_steps", 0), ("eval_every", -5)])
def test_bad_intervals_are_config_errors(tmp_path, key, value):
  from mmvid_jax.errors import ConfigError
  with pytest.raises(ConfigError) as info:
    run(tmp_path, **{"num_steps": 4, key: value})
  assert info.value.key == f"toy.{key}"


def test_sharded_run_matches_single_device_run(tmp_path):
  from jax.sharding import NamedSharding, PartitionSpec as P
  from mmvid_jax.infra import mesh as mesh_lib
  mesh = mesh_lib.make_mesh({"data": -1, "fsdp": 1, "model": 1})
  replicated = NamedSharding(mesh, P())
  split = mesh_lib.batch_sharding(mesh)
  sharded_step = jax.jit(_step_fn, in_shardings=(replicated, split, split, None),
                         out_shardings=(replicated, replicated))

  def mesh_step(state, batch, step):
    batch = mesh_lib.shard_batch(batch, mesh)
    assert len(batch["x"].sharding.device_set) == 8
    return sharded_step(state, batch["x"], batch["y"], step)

  single, sharded = {}, {}
  run(tmp_path / "single", num_steps=8, train_step=make_train_step(single))

  def recording(state, batch, step):
    state, metrics = mesh_step(state, batch, step)
    sharded[step + 1] = float(metrics["loss"])
    return state, metrics

  state = jax.device_put(init_state(), replicated)
  run(tmp_path / "sharded", num_steps=8, state=state, train_step=recording)
  np.testing.assert_allclose([sharded[s] for s in range(1, 9)],
                             [single[s] for s in range(1, 9)], rtol=1e-5)


def test_hyperparameters_reach_tensorboard(tmp_path):
  import ml_collections
  config = ml_collections.ConfigDict(
      {"toy": {"learning_rate": 0.1, "sizes": (1, 2), "name": "toy", "off": None}})
  assert train_loop.hparams_from_config(config) == {
      "toy.learning_rate": 0.1, "toy.sizes": "(1, 2)", "toy.name": "toy", "toy.off": "None"}
  _, checkpointer = run(tmp_path, num_steps=4, config=config)
  checkpointer.close()
  _, accumulator = read_scalars(str(tmp_path))
  assert "_hparams_/session_start_info" in accumulator.Tags()["tensors"]
