"""The training loop shared by the tokenizer and transformer trainers.

The trainer builds the state, the jitted step and the input iterator; `run_loop` drives them:
metric averaging and TensorBoard scalars, a progress line, periodic evaluation, periodic and
final checkpoints, preemption (SIGTERM -> save at the next step boundary -> exit 0) and a stop
with a clear message when the loss becomes non-finite. See docs/training.md.

Step numbering: `train_step(state, batch, i)` is the (i+1)-th update; after it `i + 1` steps are
done, and logs and checkpoints are labelled with that count. A checkpoint labelled `k` resumes
with `start_step=k` and the input iterator positioned after `k` batches.
"""

from collections.abc import Callable, Iterator, Mapping
import math
import numbers
import os
import signal
import threading
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.errors import ConfigError, UserError
from mmvid_jax.infra import video_io
from mmvid_jax.infra.checkpoint import Checkpointer
from mmvid_jax.infra.logging_utils import Progress

TrainStep = Callable[[Any, Mapping[str, Any], int], tuple[Any, Mapping[str, Any]]]
EvalFn = Callable[[Any, int], Mapping[str, Any] | None]


class Preempted(SystemExit):
  """Raised after a SIGTERM (or Ctrl-C) once the checkpoint at `step` is written.

  It is a `SystemExit` with status 0: stages and the pipeline need not catch it, the process
  ends cleanly (absl's `app.run` re-raises it silently) and a rerun of the same command resumes.
  """

  def __init__(self, step: int, directory: str):
    super().__init__(0)
    self.step = step
    self.directory = directory


class NonFiniteLossError(UserError):
  """The loss became NaN/inf; training stopped without saving the bad state."""

  def __init__(self, name: str, step: int, value: float, last_good: int | None, directory: str):
    self.step = step
    self.last_good_step = last_good
    kept = (f"last good checkpoint is step {last_good} in {directory}" if last_good is not None
            else f"no checkpoint was saved yet in {directory}")
    super().__init__(
        f"{name}: loss became {value} at step {step}; {kept}. Fix: lower the learning rate "
        f"(--config.{name}.learning_rate), add warm-up or gradient clipping, or check the input "
        "data; rerunning resumes from the last good checkpoint.")


_MULTIHOST_STOP_CHECK_EVERY = 10


class _StopRequest:
  """SIGTERM / first Ctrl-C -> a flag read at step boundaries; a second Ctrl-C interrupts."""

  def __init__(self):
    self.requested = False
    self.signal_name = ""
    self._previous: dict[int, Any] = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = True
    self.signal_name = signal.Signals(signum).name
    logging.warning("Received %s: saving a checkpoint at the next step boundary, then "
                    "stopping (Ctrl-C again to abort without saving).", self.signal_name)

  def install(self) -> None:
    if threading.current_thread() is not threading.main_thread():
      logging.warning("run_loop is not on the main thread: SIGTERM will not trigger a save.")
      return
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)

  def uninstall(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def any_process_requested(self, step: int) -> bool:
    """All processes must stop at the same step, so the flag is shared across hosts.

    Sharing it is a collective that waits for the devices, so with several processes it
    happens only every `_MULTIHOST_STOP_CHECK_EVERY` steps (preemption notices give ~30 s).
    """
    if jax.process_count() == 1:
      return self.requested
    if step % _MULTIHOST_STOP_CHECK_EVERY:
      return False
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    flags = multihost_utils.process_allgather(np.int32(self.requested))
    return bool(np.any(flags))


def hparams_from_config(config: Any) -> dict[str, Any]:
  """Flat {"section.key": value} of a config for TensorBoard's HParams tab.

  TensorBoard takes only scalars and strings, so tuples and lists become strings.
  """
  flat = {}

  def visit(prefix: str, node: Any) -> None:
    items = node.items() if hasattr(node, "items") else ()
    for key, value in items:
      name = f"{prefix}{key}"
      if hasattr(value, "items"):
        visit(name + ".", value)
      elif isinstance(value, (bool, int, float, str)):
        flat[name] = value
      elif value is None:
        flat[name] = "None"
      else:
        flat[name] = str(value)

  visit("", config)
  return flat


def _create_writer(logdir: str):
  """TensorBoard writer on process 0 (None elsewhere). Imports TensorFlow, so only here."""
  if jax.process_index() != 0:
    return None
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  # Summary files only: the progress line already reports the numbers on the console.
  return metric_writers.AsyncWriter(metric_writers.SummaryWriter(logdir))


def _as_uint8(array: np.ndarray) -> np.ndarray:
  return array if array.dtype == np.uint8 else video_io.to_uint8(array)


def _write_eval_outputs(writer, workdir: str, step: int, outputs: Mapping[str, Any]) -> None:
  """Scalars -> TensorBoard scalars; (N,)H,W,C -> images; (N,T,H,W,C) -> GIFs + frame strips."""
  scalars, images = {}, {}
  for key, value in outputs.items():
    tag = key if "/" in key else f"eval/{key}"
    value = np.asarray(jax.device_get(value))
    if value.ndim == 0:
      scalars[tag] = float(value)
    elif value.ndim in (3, 4):
      images[tag] = _as_uint8(value if value.ndim == 4 else value[None])
    elif value.ndim == 5:
      videos = _as_uint8(value)
      out_dir = os.path.join(workdir, "eval")  # write_video creates it (local or remote).
      grid = video_io.tile_videos(list(videos), columns=min(len(videos), 4))
      if jax.process_index() == 0:  # One writer per file on a shared filesystem.
        video_io.write_video(os.path.join(out_dir, f"{tag.replace('/', '_')}_{step:06d}.gif"),
                             grid)
      n, t, h, w, c = videos.shape
      images[tag] = videos.transpose(0, 2, 1, 3, 4).reshape(n, h, t * w, c)  # Frames in a row.
    else:
      raise ValueError(f"eval_fn returned {key!r} with shape {value.shape}; expected a scalar, "
                       "an image (H,W,C), images (N,H,W,C) or videos (N,T,H,W,C).")
  if scalars:
    logging.info("step %d eval: %s", step,
                 ", ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items())))
  if writer is not None:
    if scalars:
      writer.write_scalars(step, scalars)
    if images:
      writer.write_images(step, images)
    writer.flush()


@jax.jit
def _stack_metrics(metrics: list[Mapping[str, Any]]) -> dict[str, jax.Array]:
  """[{name: scalar}] per step -> {name: (steps,)}, in one dispatch."""
  return {key: jnp.stack([jnp.asarray(m[key]) for m in metrics]) for key in metrics[0]}


class _MetricWindow:
  """Per-step metrics since the last log line; averaged when logged, checked for NaN."""

  def __init__(self, loss_key: str):
    self.loss_key = loss_key
    self.steps: list[int] = []
    self.metrics: list[Mapping[str, Any]] = []
    self.start_time = time.monotonic()

  def add(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self.metrics and self.loss_key not in metrics:
      raise ValueError(f"train_step metrics must contain {self.loss_key!r}; got "
                       f"{sorted(metrics)}.")
    self.steps.append(step)
    self.metrics.append(metrics)

  def fetch(self) -> None:
    """Copies the metrics to the host (this waits for the steps to finish).

    Each metric is stacked over the window on the device first, so a window costs one
    device-to-host copy per metric name rather than one per step (each copy is a round trip,
    ~0.1 ms on a GPU: as long as a small train step).
    """
    if not any(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(self.metrics)):
      return
    stacked = jax.device_get(_stack_metrics(self.metrics))
    self.metrics = [{key: values[i] for key, values in stacked.items()}
                    for i in range(len(self.steps))]

  def first_non_finite(self) -> tuple[int, float] | None:
    self.fetch()
    for step, metrics in zip(self.steps, self.metrics):
      loss = float(np.asarray(metrics[self.loss_key]))
      if not math.isfinite(loss):
        return step, loss
    return None

  def averages(self) -> dict[str, float]:
    self.fetch()
    keys = self.metrics[0].keys()
    return {k: float(np.mean([np.asarray(m[k], np.float64) for m in self.metrics])) for k in keys}

  def reset(self) -> None:
    self.steps, self.metrics = [], []
    self.start_time = time.monotonic()


def run_loop(*, name: str, workdir: str, state: Any, train_step: TrainStep,
             batches: Iterator[Mapping[str, Any]], num_steps: int, start_step: int,
             checkpointer: Checkpointer, log_every: int, checkpoint_every: int,
             eval_every: int = 0, eval_fn: EvalFn | None = None,
             extra_fn: Callable[[int], Mapping[str, Any]] | None = None, writer: Any = None,
             examples_per_step: int | None = None, tokens_per_step: int | None = None,
             config: Any = None, loss_key: str = "loss") -> Any:
  """Runs steps `start_step .. num_steps-1` and returns the final state.

  `train_step(state, batch, step) -> (state, metrics)` is jitted by the caller; metrics are
  scalar arrays and must include `loss_key`. `batches` yields the batch for `start_step` first.
  `eval_fn(state, step) -> {name: scalar | uint8 image(s) | uint8 videos (N,T,H,W,3)}` runs every
  `eval_every` steps and at the end. `extra_fn(step) -> dict` adds JSON to each checkpoint
  (`step`, `data_position` and, when `config` is given, `config` are always there).

  Raises `Preempted` (a clean `SystemExit(0)`) after saving when SIGTERM arrives, and
  `NonFiniteLossError` (a `UserError`) when the loss is NaN/inf, without saving that state.
  """
  for key, value in (("num_steps", num_steps), ("log_every", log_every),
                     ("checkpoint_every", checkpoint_every)):
    if not isinstance(value, numbers.Integral) or value < 1:
      raise ConfigError(f"{name}.{key}", f"must be a positive integer, got {value!r}",
                        f"pass --config.{name}.{key}=<a positive integer>")
  if not isinstance(eval_every, numbers.Integral) or eval_every < 0:
    raise ConfigError(f"{name}.eval_every", f"must be 0 (only at the end) or positive, got "
                      f"{eval_every!r}", f"pass --config.{name}.eval_every=<steps>")
  if start_step >= num_steps:
    logging.info("%s: already trained for %d/%d steps.", name, start_step, num_steps)
    return state
  own_writer = writer is None
  if own_writer:
    writer = _create_writer(workdir)
  config_json = config.to_json_best_effort(sort_keys=True) if config is not None else None
  if writer is not None and config is not None and start_step == 0:
    writer.write_hparams(hparams_from_config(config))
  stop = _StopRequest()
  window = _MetricWindow(loss_key)
  # Lines are written at log steps (with the averaged loss), not on a timer.
  progress = Progress(total=num_steps, name=name, initial=start_step,
                      log_every_seconds=float("inf"))
  logging.info("%s: training steps %d..%d; TensorBoard logs in %s.", name, start_step + 1,
               num_steps, workdir)

  def check_finite():
    bad = window.first_non_finite()
    if bad is not None:
      checkpointer.wait_until_finished()
      raise NonFiniteLossError(name, bad[0], bad[1], checkpointer.latest_step(),
                               checkpointer.directory)

  def save(done: int, force: bool = False) -> None:
    check_finite()  # Never write a state that came from a NaN step.
    extra = {"step": done, "name": name, "data_position": done}
    if config_json is not None:
      extra["config"] = config_json
    if extra_fn is not None:
      extra.update(extra_fn(done))
    checkpointer.save(done, state, extra, force=force)

  def log(done: int) -> None:
    check_finite()
    averages = window.averages()
    seconds = time.monotonic() - window.start_time
    steps_per_sec = len(window.steps) / seconds if seconds > 0 else 0.0
    scalars = {f"train/{k}": v for k, v in averages.items()}
    scalars["train/steps_per_sec"] = steps_per_sec
    shown = {"loss": averages[loss_key]}
    for label, per_step in (("examples", examples_per_step), ("tokens", tokens_per_step)):
      if per_step:
        scalars[f"train/{label}_per_sec"] = steps_per_sec * per_step
        shown[f"{label}/s"] = f"{steps_per_sec * per_step:.4g}"
    if writer is not None:
      writer.write_scalars(done, scalars)
    progress.set_rate(steps_per_sec)
    progress.log(**shown)
    window.reset()

  stop.install()
  try:
    for step in range(start_step, num_steps):
      try:
        batch = next(batches)
      except StopIteration:
        raise UserError(f"{name}: the input pipeline ran out of batches at step {step} of "
                        f"{num_steps}. Fix: make the training split repeat, or lower "
                        f"--config.{name}.num_steps.") from None
      state, metrics = train_step(state, batch, step)
      done = step + 1
      window.add(done, metrics)
      progress.update(1)
      stopping = stop.any_process_requested(done)
      last = done == num_steps
      if done % log_every == 0 or last or stopping:
        log(done)
      if done % checkpoint_every == 0 or last or stopping:
        save(done, force=stopping or last)
      if stopping:
        checkpointer.wait_until_finished()
        logging.warning("%s: stopped by %s after step %d; checkpoint saved in %s. To resume, "
                        "rerun the same command with the same --workdir.", name,
                        stop.signal_name or "a request on another host", done,
                        checkpointer.directory)
        raise Preempted(done, checkpointer.directory)
      if eval_fn is not None and ((eval_every and done % eval_every == 0) or last):
        eval_start = time.monotonic()
        outputs = eval_fn(state, done)
        if outputs:
          _write_eval_outputs(writer, workdir, done, outputs)
        window.start_time += time.monotonic() - eval_start  # Speed counts training only.
    checkpointer.wait_until_finished()
    progress.close()
    return state
  except BaseException:
    progress.end_line()  # So the error message does not land on the progress bar.
    raise
  finally:
    stop.uninstall()
    if writer is not None:
      writer.flush()
      if own_writer:
        writer.close()
