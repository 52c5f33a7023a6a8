"""Transformer stage trainer: frozen tokenizer + data pipeline + sharded state + the shared loop.

Writes under `<workdir>/transformer/`: `checkpoints/` (orbax, resumable), TensorBoard events,
and at the end `export/` (what `api.load_transformer` reads).
"""

import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.data import pipeline as data_pipeline
from mmvid_jax.data import text as text_lib
from mmvid_jax.errors import ConfigError, UserError
from mmvid_jax.infra import mesh as mesh_lib
from mmvid_jax.infra.checkpoint import Checkpointer
from mmvid_jax.infra.train_loop import run_loop
from mmvid_jax.transformer import api
from mmvid_jax.transformer import code_init
from mmvid_jax.transformer import model as model_lib
from mmvid_jax.transformer import text_encoders
from mmvid_jax.transformer import train_step as step_lib
from mmvid_jax.transformer.vocab import Layout, layout_from_config

STAGE_DIR = "transformer"


def stage_dir(workdir: str) -> str:
  return os.path.join(workdir, STAGE_DIR)


def init_inputs(layout: Layout, text_encoder, batch: int = 2):
  """Dummy inputs for `model.init` (shapes only matter)."""
  text_ids = jnp.zeros((batch, layout.text_len), jnp.int32)
  controls = (jnp.zeros((batch, layout.num_controls, layout.latent_height, layout.latent_width),
                        jnp.int32) if layout.num_controls else None)
  video = jnp.zeros((batch, layout.video_len), jnp.int32)
  features = (None if text_encoder is None else
              jnp.zeros((batch, layout.text_len, text_encoder.hidden_size), jnp.float32))
  return text_ids, controls, video, features


def make_init_fn(model, layout: Layout, tx, text_encoder, code_tables=None):
  """key -> TrainState with logically partitioned (boxed) params.

  code_tables: optional (embedding rows (K, d), head kernel (d, K)) from `code_init`, which
  replace the random start of the code embedding and the video head."""
  text_ids, controls, video, features = init_inputs(layout, text_encoder)

  def init_fn(key):
    if isinstance(model, model_lib.ARTVTransformer):
      variables = model.init(key, text_ids, controls, video)
    else:
      variables = model.init(key, text_ids, controls, video, features,
                             method=model_lib.MMVIDTransformer.tokens_to_logits)
    params = variables["params"]
    if code_tables is not None:
      params = code_init.seed_params(params, *code_tables)
    return step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=tx.init(params), tx=tx)

  return init_fn


COMPUTE_DTYPES = model_lib.COMPUTE_DTYPES


def training_model(tr, layout: Layout):
  """The configured model computing in `tr.compute_dtype`: bfloat16 matmuls and activations,
  float32 parameters, LayerNorm, softmax and losses (the layers cast those)."""
  name = str(tr.get("compute_dtype", "float32"))
  if name not in COMPUTE_DTYPES:
    raise ConfigError("transformer.compute_dtype", f"unknown dtype {name!r}",
                      f"use one of {', '.join(COMPUTE_DTYPES)}")
  return model_lib.make_model(tr, layout).clone(dtype=jnp.dtype(name))


def evaluation_seed(config) -> int:
  """The seed of validation's fixed masks and negatives (benchmarks repeat it)."""
  return int(config.seed) + 3


def build(config, workdir: str, tokenizer):
  """Layout, model, frozen text encoder and settings for this config and tokenizer."""
  tr = config.transformer
  text_tokenizer = text_lib.get_text_tokenizer(config, workdir)
  layout = layout_from_config(config, tokenizer.codebook_size, tokenizer.latent_size,
                              max(int(text_tokenizer.vocab_size), 2))
  model = training_model(tr, layout)
  text_encoder = text_encoders.load_text_encoder(str(tr.text_encoder))
  return layout, model, text_encoder, step_lib.settings_from_config(tr)


def _evaluate(eval_step, params, frozen, config, workdir, mesh, num_batches: int, seed: int):
  """Validation MSM / REL / VID metrics averaged over `num_batches` fixed batches."""
  batches = data_pipeline.make_dataset(config, "validation", workdir,
                                       batch_size=int(config.transformer.batch_size),
                                       deterministic=True)
  totals, count = {}, 0
  for i, batch in enumerate(batches):
    if i >= num_batches:
      break
    metrics = eval_step(params, mesh_lib.shard_batch(batch, mesh), frozen,
                        jax.random.fold_in(jax.random.key(seed), i))
    for k, v in jax.device_get(metrics).items():
      totals[k] = totals.get(k, 0.0) + float(v)
    count += 1
  if not count:
    raise UserError("the validation split gave no full batch. Fix: raise "
                    "config.data.num_validation or lower config.transformer.batch_size.")
  return {k: v / count for k, v in totals.items() if k != "masked_tokens"}


def train(config, workdir: str, tokenizer) -> api.TransformerBundle:
  """Trains (or resumes) the transformer and exports it; returns the bundle."""
  tr = config.transformer
  out_dir = stage_dir(workdir)
  layout, model, text_encoder, settings = build(config, workdir, tokenizer)
  logging.info("Transformer layout: S=%d (text %d, controls %d, video %d), K=%d.",
               layout.seq_len, layout.text_tokens, layout.control_len, layout.video_len,
               layout.codebook_size)
  mesh = mesh_lib.make_mesh(config.mesh)
  num_steps = int(tr.num_steps)
  tx = step_lib.build_optimizer(tr, num_steps)
  base_key = jax.random.key(int(config.seed))
  init_key, step_key = jax.random.fold_in(base_key, 1), jax.random.fold_in(base_key, 2)
  eval_seed = evaluation_seed(config)
  code_tables = None
  code_start = code_init.validate(str(tr.get("code_embedding_init", "random")))
  if code_start != "random":
    rows, head = code_init.seeded_tables(code_init.code_pixel_signatures(tokenizer),
                                         int(tr.width), float(tr.get("embed_init_std", 0.02)),
                                         seed=int(config.seed))
    code_tables = (rows, head if code_start == "pixels_and_head" else None)
    logging.info("Code embedding%s seeded from the tokenizer's %d decoded codes.",
                 " and video head" if code_start == "pixels_and_head" else "",
                 layout.codebook_size)
  state = mesh_lib.create_sharded_state(make_init_fn(model, layout, tx, text_encoder, code_tables),
                                        mesh,
                                        rules=mesh_lib.logical_rules(config.mesh),
                                        init_args=(init_key,))
  logging.info("Transformer parameters: %.2fM.", model_lib.count_params(state.params) / 1e6)
  checkpointer = Checkpointer(os.path.join(out_dir, "checkpoints"), int(tr.max_to_keep))
  state, start_step, _ = checkpointer.maybe_restore(state)

  state_shardings = mesh_lib.tree_shardings(state)
  replicated = mesh_lib.replicated_sharding(mesh)
  batch_sharding = mesh_lib.batch_sharding(mesh)
  frozen = jax.device_put((tokenizer, text_encoder), replicated)
  train_step = jax.jit(
      step_lib.make_train_step(model, layout, settings, step_key,
                               step_lib.build_schedule(tr, num_steps)),
      in_shardings=(state_shardings, batch_sharding, replicated),
      out_shardings=(state_shardings, replicated), donate_argnums=0)
  eval_step = jax.jit(step_lib.make_eval_step(model, layout, settings))

  def loop_step(state, batch, step):
    del step  # The state carries its own step (and so its key).
    layout.check_ids(text_ids=batch["text_ids"])  # Host-side: out-of-range ids would be NaN.
    return train_step(state, mesh_lib.shard_batch(batch, mesh), frozen)

  def eval_fn(state, step):
    del step
    return _evaluate(eval_step, step_lib.evaluation_params(state), frozen, config, workdir,
                     mesh, int(tr.get("num_eval_batches", 4)), eval_seed)

  batches = data_pipeline.make_dataset(config, "train", workdir, batch_size=int(tr.batch_size),
                                       deterministic=False, start_step=start_step)
  state = run_loop(name="transformer", workdir=out_dir, state=state, train_step=loop_step,
                   batches=batches, num_steps=num_steps, start_step=start_step,
                   checkpointer=checkpointer, log_every=int(tr.log_every),
                   checkpoint_every=int(tr.checkpoint_every), eval_every=int(tr.eval_every),
                   eval_fn=eval_fn, examples_per_step=int(tr.batch_size),
                   tokens_per_step=int(tr.batch_size) * layout.seq_len, config=config)
  checkpointer.close()
  params = jax.device_get(step_lib.evaluation_params(state))
  bundle = api.TransformerBundle(params=jax.tree_util.tree_map(np.asarray, params),
                                 text_encoder=text_encoder, layout=layout, model=model,
                                 control_modes=settings.control_modes,
                                 objective=settings.objective)
  api.save_transformer(os.path.join(out_dir, api.EXPORT_DIR), bundle, num_steps,
                       str(tr.text_encoder))
  logging.info("Transformer exported to %s.", os.path.join(out_dir, api.EXPORT_DIR))
  return bundle
