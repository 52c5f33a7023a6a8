"""Logical axis rules come from `config.mesh.logical_axis_rules` (data), with checked entries."""

import importlib.util
import os

from flax import linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import ml_collections
import pytest

from mmvid_jax.errors import ConfigError
from mmvid_jax.infra import mesh as mesh_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str):
  spec = importlib.util.spec_from_file_location(f"{name}_cfg", os.path.join(ROOT, "configs",
                                                                            f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(None)


@pytest.mark.parametrize("name", ["shapes", "mugen"])
def test_configs_carry_the_default_rules(name):
  config = load_config(name)
  assert mesh_lib.logical_rules(config.mesh) == mesh_lib.DEFAULT_LOGICAL_RULES


def test_missing_or_empty_rules_fall_back_to_the_defaults():
  assert mesh_lib.logical_rules(None) == mesh_lib.DEFAULT_LOGICAL_RULES
  assert mesh_lib.logical_rules({"data": -1}) == mesh_lib.DEFAULT_LOGICAL_RULES
  assert mesh_lib.logical_rules({"logical_axis_rules": ()}) == mesh_lib.DEFAULT_LOGICAL_RULES


def test_config_rules_change_the_parameter_layout():
  def init():
    kernel = nn.with_logical_partitioning(nn.initializers.zeros, ("embed", "mlp"))
    return {"kernel": kernel(jax.random.key(0), (8, 16), jnp.float32)}

  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "model": 2})
  mesh_config = ml_collections.ConfigDict({"data": 2, "fsdp": 2, "model": 2,
                                           "logical_axis_rules": (("embed", "model"),
                                                                  ("mlp", None))})
  rules = mesh_lib.logical_rules(mesh_config)
  assert rules == (("embed", "model"), ("mlp", None))
  custom = mesh_lib.abstract_sharded_state(init, mesh, rules)
  default = mesh_lib.abstract_sharded_state(init, mesh)
  assert custom["kernel"].sharding.spec == P("model", None)
  assert default["kernel"].sharding.spec == P("fsdp", "model")


@pytest.mark.parametrize("rules, message", [
    ((("embed", "tensor"),), "unknown mesh axes"),
    ((("embed",),), "bad rule"),
    (((3, "model"),), "bad rule"),
])
def test_bad_rules_are_config_errors(rules, message):
  with pytest.raises(ConfigError, match=message):
    mesh_lib.logical_rules({"logical_axis_rules": rules})
