"""Ahead-of-time memory planning on 8 fake CPU devices (abstract shapes, nothing allocated)."""

import importlib.util
import os

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.infra import memory
from mmvid_jax.infra import mesh as mesh_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mugen_config(variant: str):
  spec = importlib.util.spec_from_file_location("mugen_cfg", os.path.join(ROOT, "configs",
                                                                          "mugen.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def test_per_device_bytes_counts_shards():
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 4, "model": 1})
  split = jax.ShapeDtypeStruct((8, 6), jnp.float32, sharding=NamedSharding(mesh, P("fsdp")))
  whole = jax.ShapeDtypeStruct((8, 6), jnp.bfloat16, sharding=NamedSharding(mesh, P()))
  assert memory.per_device_bytes({"a": split, "b": whole}) == 2 * 6 * 4 + 8 * 6 * 2
  assert memory.per_device_bytes(np.zeros((3, 5), np.int32)) == 60  # no sharding: whole array


def test_tiny_mugen_plan_reports_exact_state_and_compiled_buffers():
  config = mugen_config("tiny")
  mesh = memory.fake_mesh({"data": 8, "fsdp": 1, "model": 1}, 8)
  report = memory.transformer_plan(config, mesh, name="mugen tiny")
  # Data parallel: every device holds all parameters, Adam holds two moments per parameter.
  num_params = report.params_bytes // 4
  assert num_params > 10_000
  assert report.optimizer_bytes >= 2 * report.params_bytes
  assert report.batch_bytes == (8 // 8) * (4 * 32 * 32 * 3 + 24 * 4)  # uint8 video + int32 text
  assert report.temp_bytes > 0 and report.argument_bytes >= report.params_bytes
  assert report.alias_bytes >= report.params_bytes  # the donated state is updated in place
  assert report.fits() and "| mugen tiny | 8x1x1 | 8 |" in report.row()

  # FSDP over 4 devices: the same state, split (width 64 divides 4), checked without compiling.
  fsdp = memory.fake_mesh({"data": 2, "fsdp": 4, "model": 1}, 8)
  from mmvid_jax.transformer import train_step as step_lib  # pylint: disable=g-import-not-at-top
  from mmvid_jax.transformer import trainer  # pylint: disable=g-import-not-at-top
  from mmvid_jax.transformer.vocab import layout_from_config  # pylint: disable=g-import-not-at-top
  tokenizer = memory._abstract_tokenizer(  # pylint: disable=protected-access
      config.tokenizer, 32, fsdp)
  layout = layout_from_config(config, tokenizer.codebook_size, tokenizer.latent_size, 128)
  tx = step_lib.build_optimizer(config.transformer, 10)
  state = mesh_lib.abstract_sharded_state(
      trainer.make_init_fn(trainer.training_model(config.transformer, layout), layout, tx, None),
      fsdp, init_args=(jax.random.key(0),))
  assert memory.per_device_bytes(state.params) < report.params_bytes / 3


def test_too_few_devices_is_a_user_error():
  with pytest.raises(UserError, match="xla_force_host_platform_device_count"):
    memory.fake_mesh({"data": -1}, 64)


@pytest.mark.slow
def test_mugen_default_fits_a_tpu_v4_chip_at_its_default_batch():
  """configs/mugen.py on a TPU v4-8 (4 chips, 32 GiB HBM each) at its default batch size."""
  config = mugen_config("default")
  mesh = memory.fake_mesh(dict(config.mesh), 4)
  report = memory.transformer_plan(config, mesh, name="mugen v4-8")
  assert report.batch_size == int(config.transformer.batch_size)
  assert report.fits(memory.TPU_V4_HBM_BYTES), report.row()


def test_batch_that_does_not_split_over_the_mesh_is_a_user_error():
  mesh = memory.fake_mesh({"data": 8, "fsdp": 1, "model": 1}, 8)
  with pytest.raises(UserError, match="multiple of data"):
    memory.transformer_plan(mugen_config("tiny"), mesh, batch_size=12)
