"""Mesh resolution, batch placement and logical-axis sharding on 8 fake CPU devices."""

from flax import linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import optax
from flax.training import train_state
import pytest

from mmvid_jax.errors import ConfigError, UserError
from mmvid_jax.infra import mesh as mesh_lib


def test_eight_fake_devices():
  assert jax.device_count() == 8


@pytest.mark.parametrize("config, shape", [
    ({"data": -1, "fsdp": 1, "model": 1}, (8, 1, 1)),
    ({"data": -1, "fsdp": 2, "model": 1}, (4, 2, 1)),
    ({"data": 2, "fsdp": -1, "model": 2}, (2, 2, 2)),
    ({"data": 1, "fsdp": 1, "model": -1}, (1, 1, 8)),
    ({"data": 2, "fsdp": 4, "model": 1}, (2, 4, 1)),
])
def test_make_mesh_resolves_minus_one(config, shape):
  mesh = mesh_lib.make_mesh(config)
  assert mesh.axis_names == ("data", "fsdp", "model")
  assert tuple(mesh.shape.values()) == shape
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize("config, key", [
    ({"data": 3, "fsdp": 1, "model": 1}, "mesh"),
    ({"data": -1, "fsdp": 3, "model": 1}, "mesh.data"),
    ({"data": -1, "fsdp": -1, "model": 1}, "mesh.fsdp"),
    ({"data": 0, "fsdp": 1, "model": 1}, "mesh.data"),
])
def test_make_mesh_bad_product_is_a_config_error(config, key):
  with pytest.raises(ConfigError) as info:
    mesh_lib.make_mesh(config)
  assert info.value.key == key
  assert "Fix:" in str(info.value)


def test_make_mesh_accepts_config_dict():
  import ml_collections
  config = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 2})
  assert tuple(mesh_lib.make_mesh(config).shape.values()) == (4, 1, 2)


def test_shard_batch_splits_leading_axis_and_drops_captions():
  mesh = mesh_lib.make_mesh({"data": 4, "fsdp": 2, "model": 1})
  batch = {
      "video": np.arange(8 * 2 * 4 * 4 * 3, dtype=np.uint8).reshape(8, 2, 4, 4, 3),
      "text_ids": np.arange(8 * 5, dtype=np.int32).reshape(8, 5),
      "caption": np.array([b"a red circle"] * 8),
  }
  out = mesh_lib.shard_batch(batch, mesh)
  assert set(out) == {"video", "text_ids"}
  video = out["video"]
  assert video.shape == (8, 2, 4, 4, 3) and video.dtype == np.uint8
  assert video.sharding.spec == P(("data", "fsdp"))
  # Each device holds exactly one example, and the values are unchanged.
  assert {shard.data.shape[0] for shard in video.addressable_shards} == {1}
  np.testing.assert_array_equal(np.asarray(out["text_ids"]), batch["text_ids"])


def test_shard_batch_indivisible_batch_is_a_user_error():
  mesh = mesh_lib.make_mesh({"data": -1, "fsdp": 1, "model": 1})
  with pytest.raises(UserError, match="multiple of 8"):
    mesh_lib.shard_batch({"video": np.zeros((6, 2), np.uint8)}, mesh)


class _TinyMlp(nn.Module):
  @nn.compact
  def __call__(self, x):
    kernel_in = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp"))
    kernel_out = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("mlp", "embed"))
    x = nn.Dense(16, kernel_init=kernel_in, name="up")(x)
    x = nn.Dense(8, kernel_init=kernel_out, name="down")(x)
    return nn.Dense(3, name="head")(x)  # No annotations: replicated.


def _init_state():
  model = _TinyMlp()
  params = model.init(jax.random.key(0), jnp.zeros((1, 8)))["params"]
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-3))


def test_create_sharded_state_follows_logical_rules():
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "model": 2})
  state = mesh_lib.create_sharded_state(_init_state, mesh)
  specs = jax.tree.map(lambda x: x.sharding.spec, state.params)
  assert specs["up"]["kernel"] == P("fsdp", "model")
  assert specs["down"]["kernel"] == P("model", "fsdp")
  assert specs["head"]["kernel"] in (P(), P(None, None))
  # Optimizer moments follow their parameters.
  mu = state.opt_state[0].mu
  assert mu["up"]["kernel"].sharding.spec == P("fsdp", "model")
  # Values equal an unsharded init (no boxes left in the result).
  reference = nn.meta.unbox(_init_state().params)
  np.testing.assert_allclose(np.asarray(state.params["up"]["kernel"]),
                             np.asarray(reference["up"]["kernel"]))
  assert isinstance(state.params["up"]["kernel"], jax.Array)


def test_custom_rules_and_indivisible_dimension_stays_replicated():
  mesh = mesh_lib.make_mesh({"data": 1, "fsdp": 1, "model": 8})
  # `head` is not annotated, `up` has mlp=16 (divisible by 8), `down` embed=8 over model.
  rules = (("mlp", "model"), ("embed", None))
  abstract = mesh_lib.abstract_sharded_state(_init_state, mesh, rules)
  assert abstract.params["up"]["kernel"].sharding.spec == P(None, "model")
  assert abstract.params["up"]["bias"].sharding.spec in (P(), P(None))
  mesh3 = mesh_lib.make_mesh({"data": 2, "fsdp": 4, "model": 1})
  # embed=8 over fsdp=4 divides; a dimension of 3 over 4 would not and stays replicated.
  spec = mesh_lib._fit_spec_to_shape(P("fsdp", None), (3, 5), mesh3)
  assert spec == P(None, None)


def test_logical_to_sharding_default_rules():
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "model": 2})
  tree = {"w": P("embed", "vocab"), "x": P("batch", "length"), "b": P()}
  shardings = mesh_lib.logical_to_sharding(tree, mesh)
  assert shardings["w"].spec == P("fsdp", "model")
  assert shardings["x"].spec == P(("data", "fsdp"), None)
  assert shardings["b"].spec == P()
