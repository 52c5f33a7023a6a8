"""Ahead-of-time memory planning: compile a training step on abstract shapes, report per device.

`jax.jit(step).lower(abstract state, abstract batch).compile()` with `jax.ShapeDtypeStruct`s that
carry their shardings: XLA partitions and schedules the whole step for the mesh without a single
real array, and `compiled.memory_analysis()` gives the per-device buffers. Run it over fake CPU
devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8`) to plan a TPU slice or a GPU node
from a laptop. The CPU compiler fuses and schedules differently from the TPU/GPU ones, so the
temporaries are an estimate (usually high: TPU fusions keep fewer intermediates); parameter and
optimizer bytes are exact.
"""

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from mmvid_jax.errors import UserError
from mmvid_jax.infra import mesh as mesh_lib

GIB = 1024 ** 3
TPU_V4_HBM_BYTES = 32 * GIB


def per_device_bytes(tree: Any) -> int:
  """Bytes one device holds for a tree of (abstract or real) arrays, given their shardings.

  With uneven sharding the largest shard counts (that is what the device must hold).
  """
  total = 0
  for leaf in jax.tree.leaves(tree):
    sharding = getattr(leaf, "sharding", None)
    shape = sharding.shard_shape(leaf.shape) if sharding is not None else leaf.shape
    total += math.prod(shape) * jnp.dtype(leaf.dtype).itemsize
  return total


@dataclasses.dataclass(frozen=True)
class MemoryReport:
  """Per-device bytes of one compiled step (`compiled.memory_analysis()` + exact state sizes)."""
  name: str
  mesh_shape: dict[str, int]
  batch_size: int
  params_bytes: int  # the trainable parameters' shards
  optimizer_bytes: int  # Adam's moments (and counters)
  frozen_bytes: int  # replicated frozen inputs (the tokenizer's weights)
  batch_bytes: int  # this device's slice of the input batch
  argument_bytes: int  # everything the step takes (state + batch + frozen)
  output_bytes: int
  alias_bytes: int  # outputs written into donated inputs (the new state)
  temp_bytes: int  # activations kept for the backward pass, gradients, workspace
  code_bytes: int

  @property
  def peak_bytes(self) -> int:
    """Arguments + outputs that do not reuse donated arguments + temporaries + code."""
    return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes
            + self.code_bytes)

  def fits(self, capacity_bytes: int = TPU_V4_HBM_BYTES) -> bool:
    return self.peak_bytes <= capacity_bytes

  def row(self) -> str:
    """One Markdown table row, GiB per device."""
    g = lambda b: f"{b / GIB:.2f}"
    mesh = "x".join(str(v) for v in self.mesh_shape.values())
    return (f"| {self.name} | {mesh} | {self.batch_size} | {g(self.params_bytes)} | "
            f"{g(self.optimizer_bytes)} | {g(self.frozen_bytes)} | {g(self.temp_bytes)} | "
            f"{g(self.peak_bytes)} |")


TABLE_HEADER = ("| config | mesh (data x fsdp x model) | global batch | params | Adam | frozen | "
                "activations + grads (XLA temp) | peak |\n|---|---|---|---|---|---|---|---|")


def compile_abstract(step_fn: Callable, abstract_args: Sequence[Any], in_shardings: Any,
                     out_shardings: Any, donate_argnums: int | tuple[int, ...] = ()):
  """Lowers and compiles `step_fn` for abstract arguments; returns the compiled executable."""
  jitted = jax.jit(step_fn, in_shardings=in_shardings, out_shardings=out_shardings,
                   donate_argnums=donate_argnums)
  return jitted.lower(*abstract_args).compile()


def memory_fields(compiled) -> dict[str, int]:
  stats = compiled.memory_analysis()
  stats = stats[0] if isinstance(stats, (list, tuple)) else stats
  return dict(argument_bytes=int(stats.argument_size_in_bytes),
              output_bytes=int(stats.output_size_in_bytes),
              alias_bytes=int(stats.alias_size_in_bytes),
              temp_bytes=int(stats.temp_size_in_bytes),
              code_bytes=int(stats.generated_code_size_in_bytes))


def _abstract(shape, dtype, sharding) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(tuple(shape), jnp.dtype(dtype), sharding=sharding)


def _abstract_tokenizer(tok_config, image_size: int, mesh):
  """The frozen VQGAN with abstract, replicated variables (its encoder runs inside the step)."""
  from mmvid_jax.tokenizer.api import VideoTokenizer  # pylint: disable=g-import-not-at-top
  from mmvid_jax.tokenizer.model import build_tokenizer  # pylint: disable=g-import-not-at-top
  module = build_tokenizer(tok_config)
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  shapes = jax.eval_shape(lambda k: module.init(k, images), jax.random.key(0))
  replicated = mesh_lib.replicated_sharding(mesh)
  variables = jax.tree.map(lambda x: _abstract(x.shape, x.dtype, replicated), shapes)
  return VideoTokenizer(variables=variables, module=module, image_size=image_size)


def transformer_plan(config, mesh, name: str = "", batch_size: int | None = None,
                     tokenizer=None) -> MemoryReport:
  """Memory of the transformer train step (MSM + REL + VID with the frozen tokenizer) on `mesh`.

  `config` is a full config (data, tokenizer, transformer, mesh sections); the tokenizer is the
  config's VQGAN with abstract weights unless one is given. Text uses the learned embedding
  (`text_encoder="learned"`); a BERT text encoder's weights are not counted.
  """
  # Imports here: infra must not import the stages at module load (they import infra).
  from mmvid_jax.transformer import train_step as step_lib  # pylint: disable=g-import-not-at-top
  from mmvid_jax.transformer import trainer  # pylint: disable=g-import-not-at-top
  from mmvid_jax.transformer import vocab  # pylint: disable=g-import-not-at-top

  tr, data = config.transformer, config.data
  batch_size = int(batch_size or tr.batch_size)
  if batch_size % mesh_lib.num_batch_shards(mesh):
    raise UserError(f"a global batch of {batch_size} does not split over the "
                    f"{mesh_lib.num_batch_shards(mesh)} data x fsdp devices of the mesh. "
                    "Fix: use a multiple of data * fsdp.")
  image_size = int(data.image_size)
  if tokenizer is None:
    tokenizer = _abstract_tokenizer(config.tokenizer, image_size, mesh)
  layout = vocab.layout_from_config(config, tokenizer.codebook_size, tokenizer.latent_size,
                                    vocab.text_vocab_size_for(data))
  model = trainer.training_model(tr, layout)
  tx = step_lib.build_optimizer(tr, int(tr.num_steps))
  init_fn = trainer.make_init_fn(model, layout, tx, None)
  rules = mesh_lib.logical_rules(config.mesh)
  state = mesh_lib.abstract_sharded_state(init_fn, mesh, rules, init_args=(jax.random.key(0),))

  batch_sharding = mesh_lib.batch_sharding(mesh)
  batch = {"video": _abstract((batch_size, int(data.num_frames), image_size, image_size, 3),
                              jnp.uint8, batch_sharding),
           "text_ids": _abstract((batch_size, layout.text_len), jnp.int32, batch_sharding)}
  if layout.num_controls:
    batch["controls"] = _abstract((batch_size, layout.num_controls, image_size, image_size, 3),
                                  jnp.uint8, batch_sharding)
  frozen = (tokenizer, None)
  replicated = mesh_lib.replicated_sharding(mesh)
  state_shardings = mesh_lib.tree_shardings(state)
  step = step_lib.make_train_step(model, layout, step_lib.settings_from_config(tr),
                                  jax.random.key(1), step_lib.build_schedule(tr, int(tr.num_steps)))
  compiled = compile_abstract(step, (state, batch, frozen),
                              (state_shardings, batch_sharding, replicated),
                              (state_shardings, replicated), donate_argnums=0)
  return MemoryReport(
      name=name or str(config.get("experiment", "transformer")),
      mesh_shape=dict(mesh.shape), batch_size=batch_size,
      params_bytes=per_device_bytes(state.params),
      optimizer_bytes=per_device_bytes(state.opt_state),
      frozen_bytes=per_device_bytes(frozen), batch_bytes=per_device_bytes(batch),
      **memory_fields(compiled))


def fake_mesh(mesh_config, num_devices: int):
  """A mesh over the first `num_devices` devices (fake CPU devices when planning)."""
  devices = jax.devices()
  if len(devices) < num_devices:
    raise UserError(f"memory planning for {num_devices} devices but JAX sees {len(devices)}. Fix: "
                    f"set XLA_FLAGS=--xla_force_host_platform_device_count={num_devices} before "
                    "JAX starts (and JAX_PLATFORMS=cpu).")
  return mesh_lib.make_mesh(mesh_config, devices[:num_devices])

