"""Checkpoints: orbax CheckpointManager with a train state and a small JSON `extra`.

Each step directory holds `state/` (the pytree, sharded arrays written in parallel) and
`extra/` (JSON: step, config, data position). Orbax writes into a temporary directory and
renames it when complete, and deletes old steps only after a newer one is finished, so a
crash or a failed save never loses the last good checkpoint.
"""

from collections.abc import Mapping
import json
import logging as std_logging
import os
from typing import Any

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from mmvid_jax.errors import UserError


class _QuietOrbaxInfo(std_logging.Filter):
  """Drops orbax's INFO chatter (~40 lines per save) unless absl verbosity is DEBUG."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING
            or f"{os.sep}orbax{os.sep}" not in record.pathname
            or logging.get_verbosity() >= logging.DEBUG)


_ORBAX_FILTER = _QuietOrbaxInfo()


def _path_str(path: tuple[Any, ...]) -> str:
  """('params', 'Dense_0', 'kernel') style key path -> 'params/Dense_0/kernel'."""
  parts = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        parts.append(str(getattr(entry, attr)))
        break
    else:
      parts.append(str(entry))
  return "/".join(parts)


def _stored_shape(leaf: Any) -> tuple[int, ...]:
  """Shape as orbax stores it: typed PRNG keys are saved as their raw key data."""
  dtype = getattr(leaf, "dtype", None)
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    return tuple(jax.eval_shape(jax.random.key_data, leaf).shape)
  return tuple(getattr(leaf, "shape", ()))


def _shapes_by_path(tree: Any) -> dict[str, tuple[int, ...]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_path_str(path): _stored_shape(leaf) for path, leaf in leaves}


def _is_single_leaf(tree: Any) -> bool:
  return jax.tree_util.treedef_is_leaf(jax.tree.structure(tree))


def _wrap(tree: Any) -> Any:
  """Orbax's standard handler saves containers only; a bare array goes in a one-entry dict."""
  return {"value": tree} if _is_single_leaf(tree) else tree


def _unwrap(template: Any, tree: Any) -> Any:
  return tree["value"] if _is_single_leaf(template) else tree


class Checkpointer:
  """Saves and restores `(state, extra)` pairs under `directory/<step>/`.

  `state` is any pytree of arrays (a flax TrainState, a dict); `extra` is JSON.
  Restoring places every array with the sharding of the matching leaf of the
  `abstract_state` given, so a checkpoint written on one mesh restores onto another.
  """

  def __init__(self, directory: str, max_to_keep: int = 2, async_save: bool = True):
    # Remote directories (gs://...) are used as given; orbax writes them through epath.
    self.directory = directory if "://" in directory else os.path.abspath(directory)
    logging.get_absl_logger().addFilter(_ORBAX_FILTER)  # Idempotent: the same object.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True)  # Leftovers of interrupted saves are never complete.
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "extra": ocp.JsonCheckpointHandler()})

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The newest finished checkpoint's step, or None when there is none."""
    return self._manager.latest_step()

  def save(self, step: int, state: Any, extra: Mapping[str, Any] | None = None,
           force: bool = False) -> bool:
    """Starts saving `state` at `step` (asynchronously); returns False if `step` already exists.

    An existing step is never overwritten. The arrays are copied off the devices before this
    returns, so the caller may donate `state` to the next train step right away.
    """
    extra = dict(extra or {})
    try:
      json.dumps(extra)
    except TypeError as e:
      raise TypeError(f"Checkpointer.save: extra must be JSON-serialisable ({e}).") from e
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
      if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, bool, str)):
        # Checked here: orbax fails on these only halfway through an asynchronous save.
        raise TypeError(f"Checkpointer.save: state leaf {_path_str(path)!r} is of type "
                        f"{type(leaf).__name__}, not an array or number.")
    if step in self._manager.all_steps():
      logging.info("Checkpoint for step %d already exists in %s; not overwriting it.",
                   step, self.directory)
      return False
    args = ocp.args.Composite(state=ocp.args.StandardSave(_wrap(state)),
                              extra=ocp.args.JsonSave(extra))
    saved = self._manager.save(step, args=args, force=force)
    if saved:
      logging.info("Saving checkpoint for step %d to %s.", step, self.directory)
    return bool(saved)

  def _check_compatible(self, abstract_state: Any, step: int) -> None:
    """Raises UserError when the checkpoint's arrays differ from the expected ones."""
    metadata = self._manager.item_metadata(step)
    state_metadata = metadata["state"] if metadata is not None else None
    tree = getattr(state_metadata, "tree", None)
    if tree is None:
      return  # No metadata to compare with: orbax reports any mismatch itself.
    stored = _shapes_by_path(tree)
    expected = _shapes_by_path(abstract_state)
    fix = ("Fix: point --workdir at a fresh directory (or delete this stage's folder) to start "
           "over, or restore the config that wrote this checkpoint.")
    where = f"checkpoint step {step} in {self.directory}"
    for path, shape in expected.items():
      if path not in stored:
        raise UserError(f"{where} has no array {path!r} that the current model expects, so it "
                        f"was written by a different model config. {fix}")
      if stored[path] != shape:
        raise UserError(f"{where} stores {path!r} with shape {stored[path]} but the current "
                        f"config expects {shape}. {fix}")
    unexpected = sorted(set(stored) - set(expected))
    if unexpected:
      raise UserError(f"{where} holds arrays the current model does not have (e.g. "
                      f"{unexpected[0]!r}), so it was written by a different model config. {fix}")

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores `(state, extra)` at `step` (default: the latest).

    `abstract_state` is a tree of `jax.ShapeDtypeStruct` with shardings (or real arrays)
    with the structure of the saved state; each array comes back with that leaf's sharding
    and dtype.
    """
    if step is None:
      step = self.latest_step()
      if step is None:
        raise UserError(f"No checkpoint to restore in {self.directory}. Fix: train first, or "
                        "point --workdir at the run that holds the checkpoints.")
    elif step not in self._manager.all_steps():
      raise UserError(f"No checkpoint for step {step} in {self.directory} (have "
                      f"{self.all_steps()}). Fix: pick one of the saved steps.")
    self._check_compatible(_wrap(abstract_state), step)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(_wrap(abstract_state)),
                              extra=ocp.args.JsonRestore())
    restored = self._manager.restore(step, args=args)
    logging.info("Restored checkpoint step %d from %s.", step, self.directory)
    return _unwrap(abstract_state, restored["state"]), dict(restored["extra"] or {})

  def maybe_restore(self, state: Any) -> tuple[Any, int, dict[str, Any]]:
    """Resume helper: `(restored state, its step, extra)` from the latest checkpoint, or
    `(state, 0, {})` unchanged when there is none. `state` (a fresh, sharded state or its
    abstract version) gives the structure, dtypes and shardings.
    """
    if self.latest_step() is None:
      return state, 0, {}
    restored, extra = self.restore(abstract_like(state))
    step = int(extra.get("step", self.latest_step()))
    return restored, step, extra

  def wait_until_finished(self) -> None:
    """Blocks until every asynchronous save has been written and committed."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def abstract_like(state: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a concrete state, e.g. a freshly created one."""
  def to_abstract(x):
    if not isinstance(x, jax.Array):
      return x  # Python scalars and numpy arrays restore as they are.
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
  return jax.tree.map(to_abstract, state)
