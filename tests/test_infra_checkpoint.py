"""Checkpointer: round trips, retention, extra JSON, restoring onto another mesh, clear errors."""

import os

from flax import linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.infra import checkpoint as checkpoint_lib
from mmvid_jax.infra import mesh as mesh_lib


def _state(scale=1.0):
  return {
      "params": {"w": jnp.full((4, 6), scale, jnp.bfloat16),
                 "codebook": jnp.arange(12, dtype=jnp.float32).reshape(3, 4) * scale},
      "step": jnp.int32(7),
      "counts": jnp.arange(5, dtype=jnp.int32),
      "rng": jax.random.key(int(scale * 10)),
  }


def _plain(tree):
  """Typed PRNG keys -> their raw data, so every leaf compares as a numpy array."""
  return jax.tree.map(lambda x: jax.random.key_data(x)
                      if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)


def test_round_trip_preserves_values_and_dtypes(tmp_path):
  with checkpoint_lib.Checkpointer(str(tmp_path / "ckpt")) as ckpt:
    assert ckpt.latest_step() is None
    state = _state(2.5)
    assert ckpt.save(10, state, {"step": 10, "config": "{\"a\": 1}", "data_position": 10})
    ckpt.wait_until_finished()
    assert ckpt.latest_step() == 10
    restored, extra = ckpt.restore(checkpoint_lib.abstract_like(_state()))
  assert extra == {"step": 10, "config": "{\"a\": 1}", "data_position": 10}
  assert restored["params"]["w"].dtype == jnp.bfloat16
  assert restored["step"].dtype == jnp.int32 and int(restored["step"]) == 7
  assert jax.dtypes.issubdtype(restored["rng"].dtype, jax.dtypes.prng_key)
  for got, want in zip(jax.tree.leaves(_plain(restored)), jax.tree.leaves(_plain(state))):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_max_to_keep_and_no_overwrite(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), max_to_keep=2)
  for step in (1, 2, 3):
    ckpt.save(step, _state(step), {"step": step})
  ckpt.wait_until_finished()
  assert ckpt.all_steps() == [2, 3]
  # An existing step is never overwritten.
  assert not ckpt.save(3, _state(100.0), {"step": 3})
  ckpt.wait_until_finished()
  restored, extra = ckpt.restore(checkpoint_lib.abstract_like(_state()), step=2)
  assert extra["step"] == 2
  assert float(restored["params"]["codebook"][0, 1]) == 2.0
  restored, _ = ckpt.restore(checkpoint_lib.abstract_like(_state()))
  assert float(restored["params"]["codebook"][0, 1]) == 3.0
  ckpt.close()


def test_restore_from_a_new_checkpointer(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(5, _state(3.0), {"step": 5})
  ckpt.close()
  reopened = checkpoint_lib.Checkpointer(str(tmp_path))
  assert reopened.latest_step() == 5
  restored, extra = reopened.restore(checkpoint_lib.abstract_like(_state()))
  assert extra["step"] == 5 and float(restored["params"]["w"][0, 0]) == 3.0
  reopened.close()


def test_restore_onto_a_different_mesh(tmp_path):
  def init():
    kernel = nn.with_logical_partitioning(lambda k, s: jnp.arange(np.prod(s), dtype=jnp.float32)
                                          .reshape(s), ("embed", "mlp"))
    return {"kernel": kernel(None, (8, 16))}

  mesh_a = mesh_lib.make_mesh({"data": 1, "fsdp": 8, "model": 1})
  state = mesh_lib.create_sharded_state(init, mesh_a)
  assert state["kernel"].sharding.spec == P("fsdp", "model")
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(1, state, {"step": 1})
  ckpt.wait_until_finished()

  mesh_b = mesh_lib.make_mesh({"data": 2, "fsdp": 1, "model": 4})
  abstract = mesh_lib.abstract_sharded_state(init, mesh_b)
  restored, _ = ckpt.restore(abstract)
  kernel = restored["kernel"]
  assert kernel.sharding.mesh.shape == mesh_b.shape
  assert kernel.sharding.spec == P("fsdp", "model")
  assert {shard.data.shape for shard in kernel.addressable_shards} == {(8, 4)}
  np.testing.assert_array_equal(np.asarray(kernel), np.arange(128.0).reshape(8, 16))
  ckpt.close()


def test_mismatched_shape_names_the_array_and_both_shapes(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(4, _state(), {"step": 4})
  ckpt.wait_until_finished()
  bigger = _state()
  bigger["params"]["codebook"] = jnp.zeros((5, 4))  # e.g. a different codebook size.
  with pytest.raises(UserError) as info:
    ckpt.restore(checkpoint_lib.abstract_like(bigger))
  message = str(info.value)
  assert "params/codebook" in message and "(3, 4)" in message and "(5, 4)" in message
  assert "fresh" in message
  # Different structure: a missing array is named too.
  renamed = _state()
  renamed["params"]["extra_layer"] = jnp.zeros(2)
  with pytest.raises(UserError, match="params/extra_layer"):
    ckpt.restore(checkpoint_lib.abstract_like(renamed))
  # The checkpoint itself is untouched.
  assert ckpt.all_steps() == [4]
  ckpt.close()


def test_restore_without_checkpoints_is_a_user_error(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path / "empty"))
  with pytest.raises(UserError, match="No checkpoint"):
    ckpt.restore(checkpoint_lib.abstract_like(_state()))
  ckpt.save(2, _state(), {})
  ckpt.wait_until_finished()
  with pytest.raises(UserError, match=r"step 9"):
    ckpt.restore(checkpoint_lib.abstract_like(_state()), step=9)
  ckpt.close()
  assert os.path.isdir(tmp_path / "empty" / "2")


def test_extra_must_be_json(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  with pytest.raises(TypeError, match="JSON"):
    ckpt.save(1, _state(), {"bad": object()})
  assert ckpt.all_steps() == []
  ckpt.close()


def test_maybe_restore_starts_fresh_then_resumes(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  fresh = _state()
  state, step, extra = ckpt.maybe_restore(fresh)
  assert state is fresh and step == 0 and extra == {}
  ckpt.save(12, _state(4.0), {"step": 12, "data_position": 12})
  ckpt.wait_until_finished()
  state, step, extra = ckpt.maybe_restore(fresh)
  assert step == 12 and extra["data_position"] == 12
  assert float(state["params"]["w"][0, 0]) == 4.0
  ckpt.close()


def test_a_bare_array_state_round_trips(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(1, jnp.arange(4.0), {"step": 1})
  ckpt.wait_until_finished()
  restored, _ = ckpt.restore(jax.ShapeDtypeStruct((4,), jnp.float32))
  np.testing.assert_array_equal(np.asarray(restored), np.arange(4.0))
  ckpt.close()


def test_failed_save_keeps_the_last_good_checkpoint(tmp_path):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), max_to_keep=1)
  ckpt.save(1, {"a": jnp.ones(3)}, {"step": 1})
  ckpt.wait_until_finished()
  with pytest.raises(TypeError, match="'b' is of type object"):
    ckpt.save(2, {"a": jnp.ones(3), "b": object()}, {"step": 2})  # Cannot be serialised.
  ckpt.wait_until_finished()
  ckpt.close()
  reopened = checkpoint_lib.Checkpointer(str(tmp_path), max_to_keep=1)
  assert reopened.all_steps() == [1]
  assert sorted(os.listdir(tmp_path)) == ["1"]  # No half-written step left behind.
  restored, extra = reopened.restore({"a": jax.ShapeDtypeStruct((3,), jnp.float32)})
  assert extra["step"] == 1 and float(restored["a"][0]) == 1.0
  # Retrying the same step works, and only then is step 1 rotated out.
  reopened.save(2, {"a": jnp.full(3, 2.0)}, {"step": 2})
  reopened.wait_until_finished()
  assert reopened.all_steps() == [2]
  reopened.close()
