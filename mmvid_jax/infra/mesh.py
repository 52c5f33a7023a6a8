"""Device mesh, batch placement and logical-axis sharding rules.

The mesh has three axes: `data` (pure data parallelism), `fsdp` (data parallelism that also
shards parameters) and `model` (tensor parallelism). Batches are split over `data` x `fsdp`;
parameters are sharded by logical axis names (`embed`, `mlp`, `heads`, `vocab`, ...) mapped to
mesh axes by rules that are plain data, so a config can swap them.
"""

from collections.abc import Callable, Mapping, Sequence
import math
from typing import Any

from absl import logging
from flax import linen as nn
import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
import numpy as np

from mmvid_jax.errors import ConfigError, UserError

MESH_AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")

# Logical axis name -> mesh axes. Names not listed (e.g. `length`, `kernel`) stay replicated.
DEFAULT_LOGICAL_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", BATCH_AXES),
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("vocab", "model"),
)


def logical_rules(mesh_config: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
  """`config.mesh.logical_axis_rules` as rule pairs, or `DEFAULT_LOGICAL_RULES` when unset."""
  rules = None if mesh_config is None else mesh_config.get("logical_axis_rules", None)
  if not rules:
    return DEFAULT_LOGICAL_RULES
  checked = []
  for rule in rules:
    if len(rule) != 2 or not isinstance(rule[0], str):
      raise ConfigError("mesh.logical_axis_rules", f"bad rule {rule!r}",
                        "give (logical name, mesh axis or tuple of mesh axes or None) pairs")
    axes = rule[1]
    names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    unknown = [name for name in names if name not in MESH_AXES]
    if unknown:
      raise ConfigError("mesh.logical_axis_rules", f"rule {rule!r} names unknown mesh axes "
                        f"{unknown}", f"use mesh axes from {MESH_AXES}")
    checked.append((rule[0], axes if axes is None or isinstance(axes, str) else tuple(axes)))
  return tuple(checked)


def mesh_shape(mesh_config: Mapping[str, int], num_devices: int) -> tuple[int, int, int]:
  """Resolves the (data, fsdp, model) sizes; one entry may be -1 (= the remaining devices)."""
  sizes = []
  for axis in MESH_AXES:
    size = mesh_config.get(axis, 1)
    if not isinstance(size, int) or (size < 1 and size != -1):
      raise ConfigError(f"mesh.{axis}", f"must be a positive integer or -1, got {size!r}",
                        f"pass --config.mesh.{axis}=<size> (or -1 for the remaining devices)")
    sizes.append(size)
  free = [axis for axis, size in zip(MESH_AXES, sizes) if size == -1]
  if len(free) > 1:
    raise ConfigError(f"mesh.{free[1]}", f"only one mesh axis may be -1, but {free} are",
                      "give explicit sizes to all mesh axes but one")
  fixed = math.prod(size for size in sizes if size != -1)
  if free:
    if num_devices % fixed:
      raise ConfigError(
          f"mesh.{free[0]}",
          f"the other mesh axes use {fixed} devices, which does not divide the {num_devices} "
          "available devices", "choose mesh sizes whose product divides the device count")
    sizes[MESH_AXES.index(free[0])] = num_devices // fixed
  elif fixed != num_devices:
    raise ConfigError(
        "mesh", f"data*fsdp*model = {'*'.join(map(str, sizes))} = {fixed} but there are "
        f"{num_devices} devices", "make the product equal the device count, or set one axis to -1")
  return tuple(sizes)


def make_mesh(mesh_config: Mapping[str, int], devices: Sequence[Any] | None = None
              ) -> jax.sharding.Mesh:
  """Builds the (data, fsdp, model) mesh from `config.mesh` over all (or the given) devices."""
  devices = list(devices) if devices is not None else jax.devices()
  shape = mesh_shape(mesh_config, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
                       devices=devices)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over data x fsdp; other axes replicated."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def num_batch_shards(mesh: jax.sharding.Mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def _is_device_value(value: Any) -> bool:
  """Numeric arrays go to devices; strings, bytes and objects (captions) stay on the host."""
  return np.asarray(value).dtype.kind in "biuf"  # bool, int, uint, float.


def shard_batch(batch: Mapping[str, Any], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Per-process numpy batch -> dict of global arrays split over data x fsdp.

  Host-only values (captions as bytes/str) are dropped; 0-d values are replicated. Each
  process passes its own slice; the global batch is the concatenation over processes.
  Batch arrays go through `mmvid_jax.data.pipeline.to_global`, the one place that builds
  global arrays; this adds the checks that turn a bad batch size into a clear error.
  """
  from mmvid_jax.data.pipeline import to_global  # pylint: disable=g-import-not-at-top
  # Devices on this host that hold distinct batch slices.
  local_shards = max(1, num_batch_shards(mesh) // jax.process_count())
  scalars, batched = {}, {}
  for key, value in batch.items():
    value = np.asarray(value)
    if not _is_device_value(value):
      continue
    if value.ndim == 0:
      scalars[key] = jax.make_array_from_process_local_data(replicated_sharding(mesh), value)
      continue
    if value.shape[0] % local_shards:
      raise UserError(
          f"batch[{key!r}] has {value.shape[0]} examples on this host, which does not split over "
          f"its {local_shards} data-parallel devices. Fix: use a batch size that is a multiple of "
          f"{local_shards * jax.process_count()}.")
    batched[key] = value
  return {**to_global(batched, batch_sharding(mesh)), **scalars}


def _fit_spec_to_shape(spec: P, shape: tuple[int, ...], mesh: jax.sharding.Mesh) -> P:
  """Drops mesh axes from dimensions they do not divide evenly (those stay replicated)."""
  fitted = []
  for dim, axes in enumerate(tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axes is None:
      fitted.append(None)
      continue
    names = (axes,) if isinstance(axes, str) else tuple(axes)
    size = math.prod(mesh.shape[name] for name in names)
    if shape[dim] % size:
      logging.warning("Dimension %d of size %d is not divisible by mesh axes %s (%d devices); "
                      "keeping it replicated.", dim, shape[dim], names, size)
      fitted.append(None)
    else:
      fitted.append(axes)
  return P(*fitted)


def logical_to_sharding(logical_spec_tree: Any, mesh: jax.sharding.Mesh,
                        rules: Sequence[tuple[str, Any]] | None = None) -> Any:
  """Tree of logical PartitionSpecs (e.g. P('embed', 'mlp')) -> tree of NamedShardings."""
  rules = DEFAULT_LOGICAL_RULES if rules is None else tuple(rules)
  return nn.logical_to_mesh_sharding(logical_spec_tree, mesh, rules)


def abstract_sharded_state(init_fn: Callable[..., Any], mesh: jax.sharding.Mesh,
                           rules: Sequence[tuple[str, Any]] | None = None,
                           init_args: tuple[Any, ...] = ()) -> Any:
  """Shapes, dtypes and shardings of `init_fn(*init_args)` without computing it.

  Leaves created with `nn.with_logical_partitioning` are sharded by their logical axis names;
  everything else is replicated. Returns a tree of `jax.ShapeDtypeStruct` with `.sharding`,
  unboxed (no `nn.LogicallyPartitioned` wrappers), ready for `Checkpointer.restore`.
  """
  boxed = jax.eval_shape(init_fn, *init_args)
  logical_specs = nn.get_partition_spec(boxed)
  shardings = logical_to_sharding(logical_specs, mesh, rules)
  shapes = nn.meta.unbox(boxed)

  def attach(shape, sharding):
    spec = _fit_spec_to_shape(sharding.spec, shape.shape, mesh)
    return jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=NamedSharding(mesh, spec))

  return jax.tree.map(attach, shapes, shardings)


def create_sharded_state(init_fn: Callable[..., Any], mesh: jax.sharding.Mesh,
                         rules: Sequence[tuple[str, Any]] | None = None,
                         init_args: tuple[Any, ...] = ()) -> Any:
  """Runs `init_fn(*init_args)` under jit so every leaf is created already sharded.

  Logical-partitioning boxes are removed from the result (plain arrays with shardings).
  """
  abstract = abstract_sharded_state(init_fn, mesh, rules, init_args)
  leaves, treedef = jax.tree.flatten(abstract)
  # Flat leaves in and out: static pytree metadata (an optax chain, a bound apply_fn) is
  # rebuilt on every call of init_fn and would not compare equal to the abstract tree's.
  flat_init = lambda *args: jax.tree.leaves(nn.meta.unbox(init_fn(*args)))
  out = jax.jit(flat_init, out_shardings=[leaf.sharding for leaf in leaves])(*init_args)
  return jax.tree.unflatten(treedef, out)


def tree_shardings(tree: Any) -> Any:
  """The sharding of every array leaf (for jit in_shardings / out_shardings)."""
  return jax.tree.map(lambda x: x.sharding, tree)
