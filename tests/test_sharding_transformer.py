"""The transformer train step on 8 fake CPU devices: every mesh layout computes the same thing.

Data parallelism (data=8), FSDP (data=2, fsdp=4) and 2-way model sharding (data=4, model=2)
each give the loss and updated parameters of the single-device run, up to fp32 reduction order
(rtol 1e-5, atol 1e-6 on the loss; rtol 1e-4, atol 1e-6 on the parameters after two Adam
steps). The state's shardings match a checked-in table, and a checkpoint saved on one mesh
restores onto another.
"""

import jax
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import pytest

from mmvid_jax.infra import checkpoint as checkpoint_lib
from mmvid_jax.infra import mesh as mesh_lib
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
from mmvid_jax.transformer import train_step as step_lib
from mmvid_jax.transformer import trainer
from mmvid_jax.transformer.model import make_model
from mmvid_jax.transformer.vocab import Layout

SIZE, FRAMES, BATCH = 16, 2, 8
TOKENIZER = PseudoTokenizer(image_size=SIZE, patch_size=4, levels=3)
LAYOUT = Layout(TOKENIZER.codebook_size, 12, 4, FRAMES, 4, 4)
TR = ml_collections.ConfigDict(dict(
    width=32, depth=2, num_heads=2, mlp_dim=64, activation="quick_gelu", dropout=0.0,
    scan_layers=True, remat=False, text_encoder="learned", embed_init_std=0.02, controls=(),
    mask_ratio_schedule="mmvid", msm_strategy_prob=(0.7, 0.1, 0.1, 0.1),
    msm_bernoulli_keep=(0.2, 0.2), vid_strategy_prob=(0.25, 0.25, 0.25, 0.25), beta_msm=7.0,
    beta_rel=0.5, beta_vid=0.5, lr_schedule="constant", learning_rate=1e-3, warmup_steps=1,
    min_learning_rate=1e-6, grad_clip_norm=1.0))

MESHES = {
    "data_parallel": {"data": 8, "fsdp": 1, "model": 1},
    "fsdp": {"data": 2, "fsdp": 4, "model": 1},
    "model_parallel": {"data": 4, "fsdp": 1, "model": 2},
}

# Parameter path -> PartitionSpec on a (data=2, fsdp=2, model=2) mesh for the tiny config above,
# generated once from `abstract_sharded_state` and checked in. Scanned layers have a leading
# `layers` axis (never sharded); vocabulary rows that do not split 2 ways (3 specials, 29 video
# ids, 27 codes) stay replicated, the 16-row text table is split over `model`.
EXPECTED_SPECS = {
    "rel_head/dense/bias": P(None),
    "rel_head/dense/kernel": P("fsdp", None),
    "rel_head/ln/bias": P("fsdp"),
    "rel_head/ln/scale": P("fsdp"),
    "special_emb": P(None, "fsdp"),
    "special_pos_emb": P(None, "fsdp"),
    "text/text_emb": P("model", "fsdp"),
    "text/text_pos": P(None, "fsdp"),
    "trunk/layers/block/attention/key_value/bias": P(None, None, "model", None),
    "trunk/layers/block/attention/key_value/kernel": P(None, "fsdp", None, "model", None),
    "trunk/layers/block/attention/out/bias": P(None, "fsdp"),
    "trunk/layers/block/attention/out/kernel": P(None, "model", None, "fsdp"),
    "trunk/layers/block/attention/query/bias": P(None, "model", None),
    "trunk/layers/block/attention/query/kernel": P(None, "fsdp", "model", None),
    "trunk/layers/block/ln1/bias": P(None, "fsdp"),
    "trunk/layers/block/ln1/scale": P(None, "fsdp"),
    "trunk/layers/block/ln2/bias": P(None, "fsdp"),
    "trunk/layers/block/ln2/scale": P(None, "fsdp"),
    "trunk/layers/block/mlp/fc1/bias": P(None, "model"),
    "trunk/layers/block/mlp/fc1/kernel": P(None, "fsdp", "model"),
    "trunk/layers/block/mlp/fc2/bias": P(None, "fsdp"),
    "trunk/layers/block/mlp/fc2/kernel": P(None, "model", "fsdp"),
    "vid_head/dense/bias": P(None),
    "vid_head/dense/kernel": P("fsdp", None),
    "vid_head/ln/bias": P("fsdp"),
    "vid_head/ln/scale": P("fsdp"),
    "video_emb": P(None, "fsdp"),
    "video_head/dense/bias": P(None),
    "video_head/dense/kernel": P("fsdp", None),
    "video_head/ln/bias": P("fsdp"),
    "video_head/ln/scale": P("fsdp"),
    "video_positions/t": P(None, None, None, "fsdp"),
    "video_positions/x": P(None, None, None, "fsdp"),
    "video_positions/y": P(None, None, None, "fsdp"),
}


def batch_for(seed=0):
  rng = np.random.default_rng(seed)
  video = rng.integers(0, 256, (BATCH, FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
  text = rng.integers(1, 12, (BATCH, 4)).astype(np.int32)
  text[:, 3:] = 0
  return {"video": video, "text_ids": text}


def model_and_tx(tr=TR):
  return make_model(tr, LAYOUT), step_lib.build_optimizer(tr, 100)


def init_fn(model, tx):
  return trainer.make_init_fn(model, LAYOUT, tx, None)


def run_steps(mesh, num_steps=2, tr=TR):
  """Sharded init + `num_steps` jitted steps on `mesh`; (losses, params as numpy, state)."""
  model, tx = model_and_tx(tr)
  state = mesh_lib.create_sharded_state(init_fn(model, tx), mesh, init_args=(jax.random.key(0),))
  shardings = mesh_lib.tree_shardings(state)
  replicated = mesh_lib.replicated_sharding(mesh)
  step = jax.jit(step_lib.make_train_step(model, LAYOUT, step_lib.settings_from_config(tr),
                                          jax.random.key(1)),
                 in_shardings=(shardings, mesh_lib.batch_sharding(mesh), replicated),
                 out_shardings=(shardings, replicated))
  frozen = jax.device_put((TOKENIZER, None), replicated)
  losses = []
  for i in range(num_steps):
    state, metrics = step(state, mesh_lib.shard_batch(batch_for(i), mesh), frozen)
    losses.append(float(metrics["loss"]))
  assert mesh_lib.tree_shardings(state) == shardings  # out_shardings kept the layout.
  return np.array(losses), jax.tree.map(np.asarray, state.params), state


_RUNS = {}


def cached_run(name):
  """Each layout is compiled and run once per test session (compiles dominate the time)."""
  if name not in _RUNS:
    mesh = (mesh_lib.make_mesh(MESHES[name]) if name in MESHES else
            mesh_lib.make_mesh({"data": 1, "fsdp": 1, "model": 1}, jax.devices()[:1]))
    _RUNS[name] = (mesh,) + run_steps(mesh)
  return _RUNS[name]


@pytest.fixture(scope="module")
def single_device_run():
  return cached_run("single")[1:]


def path_str(path) -> str:
  return "/".join(str(getattr(k, "key", k)) for k in path)


@pytest.mark.parametrize("name", sorted(MESHES))
def test_mesh_layouts_match_the_single_device_run(name, single_device_run):
  losses_1, params_1, _ = single_device_run
  mesh, losses_n, params_n, state = cached_run(name)
  np.testing.assert_allclose(losses_n, losses_1, rtol=1e-5, atol=1e-6)
  flat_1 = dict(jax.tree_util.tree_flatten_with_path(params_1)[0])
  for path, value in jax.tree_util.tree_flatten_with_path(params_n)[0]:
    np.testing.assert_allclose(value, flat_1[path], rtol=1e-4, atol=1e-6,
                               err_msg=f"{name}: {path_str(path)}")
  # The layout is really used: parameters are split over fsdp / model exactly when those exist.
  split_axes = {axis for leaf in jax.tree.leaves(state.params) for axes in leaf.sharding.spec
                if axes for axis in ((axes,) if isinstance(axes, str) else axes)
                if mesh.shape[axis] > 1}
  assert split_axes == {axis for axis in ("fsdp", "model") if MESHES[name][axis] > 1}


def test_state_shardings_match_the_checked_in_table():
  model, tx = model_and_tx()
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "model": 2})
  abstract = mesh_lib.abstract_sharded_state(init_fn(model, tx), mesh,
                                             init_args=(jax.random.key(0),))
  specs = {path_str(p): leaf.sharding.spec
           for p, leaf in jax.tree_util.tree_flatten_with_path(abstract.params)[0]}
  assert specs == EXPECTED_SPECS
  # Adam's moments follow their parameters.
  mu = abstract.opt_state[1].mu
  for path, leaf in jax.tree_util.tree_flatten_with_path(mu)[0]:
    assert leaf.sharding.spec == specs[path_str(path)], path_str(path)


def test_checkpoint_moves_between_meshes(tmp_path):
  model, tx = model_and_tx()
  _, _, params_a, state = cached_run("fsdp")
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(2, state, {"step": 2})
  ckpt.wait_until_finished()
  mesh_b = mesh_lib.make_mesh(MESHES["model_parallel"])
  abstract = mesh_lib.abstract_sharded_state(init_fn(model, tx), mesh_b,
                                             init_args=(jax.random.key(0),))
  restored, extra = ckpt.restore(abstract)
  ckpt.close()
  assert extra["step"] == 2 and int(restored.step) == 2
  assert mesh_lib.tree_shardings(restored) == mesh_lib.tree_shardings(abstract)
  kernel = restored.params["trunk"]["layers"]["block"]["mlp"]["fc1"]["kernel"]
  assert kernel.sharding.spec == P(None, "fsdp", "model")  # fsdp has size 1 here.
  assert {s.data.shape for s in kernel.addressable_shards} == {(2, 32, 32)}
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, restored.params),
               params_a)
