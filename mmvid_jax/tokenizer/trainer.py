"""Trains the tokenizer with the shared loop, evaluates it and exports the EMA weights.

Layout under `<workdir>/tokenizer/`: `checkpoints/<step>/` (orbax), TensorBoard events,
`eval/metrics.json` + side-by-side reconstructions (original | reconstruction), `export/`
(what `api.load_tokenizer` reads).
"""

import json
import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mmvid_jax.evaluation import image_metrics
from mmvid_jax.infra import mesh as mesh_lib
from mmvid_jax.infra import video_io
from mmvid_jax.infra.checkpoint import Checkpointer, abstract_like
from mmvid_jax.infra.train_loop import run_loop
from mmvid_jax.tokenizer import api
from mmvid_jax.tokenizer import train_step as ts
from mmvid_jax.tokenizer.model import VQGAN, build_tokenizer
from mmvid_jax.tokenizer.quantizers import codebook_stats

STAGE_DIR = "tokenizer"


def stage_dir(workdir: str) -> str:
  return os.path.join(workdir, STAGE_DIR)


def metrics_path(workdir: str) -> str:
  return os.path.join(stage_dir(workdir), "eval", "metrics.json")


def read_metrics(workdir: str) -> dict | None:
  path = metrics_path(workdir)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def eval_variables(state: ts.TrainState) -> dict:
  """The generator as evaluated and exported: EMA params + current quantizer collections."""
  return {"params": state.ema_params, **state.model_state}


def make_eval_batch_fn(model: VQGAN, lpips_module):
  """Jitted: (variables, uint8 video, lpips vars) → per-frame metrics, codes, uint8 recon."""

  def fn(variables, video, lpips_variables):
    x = ts.video_to_float(video)
    recon, aux = model.apply(variables, x)
    recon = jnp.clip(recon, -1.0, 1.0)
    metrics = {"psnr": image_metrics.psnr(x, recon), "ssim": image_metrics.ssim(x, recon),
               "lpips": image_metrics.lpips_with(lpips_module, lpips_variables, x, recon)}
    recon_uint8 = jnp.round((recon + 1.0) * 127.5).astype(jnp.uint8)
    # Whether the tokenizer gives back its own codes for its own (8-bit) reconstruction: what
    # chaining through saved frames (interpolating or extending a generated video) relies on.
    again = model.apply(variables, ts.video_to_float(recon_uint8), method=model.encode_indices)
    metrics["reencode_changed"] = jnp.mean((again != aux["indices"]).astype(jnp.float32),
                                           axis=(-2, -1))  # per frame, like the others
    return metrics, aux["indices"], recon_uint8

  return jax.jit(fn)


def evaluate(config: ml_collections.ConfigDict, workdir: str, variables, eval_batch_fn,
             lpips_variables, mesh, step: int) -> dict:
  """PSNR / SSIM / LPIPS / codebook usage on the validation split; writes eval/metrics.json."""
  from mmvid_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  tok = config.tokenizer
  batch_size = int(tok.get("eval_batch_size", tok.batch_size))
  batches = pipeline.make_dataset(config, "validation", workdir, batch_size=batch_size,
                                  deterministic=True)
  totals, counts, shown = {}, np.zeros(build_tokenizer(tok).codebook_size, np.int64), None
  num_frames = 0
  try:
    for index, batch in enumerate(batches):
      if index >= int(tok.num_eval_batches):
        break
      video = mesh_lib.shard_batch({"video": batch["video"]}, mesh)["video"]
      metrics, indices, recon = jax.device_get(eval_batch_fn(variables, video, lpips_variables))
      for key, value in metrics.items():
        totals[key] = totals.get(key, 0.0) + float(np.sum(value))
      num_frames += int(np.prod(metrics["psnr"].shape))
      counts += np.bincount(np.asarray(indices).reshape(-1), minlength=counts.size)
      if shown is None:
        shown = np.concatenate([batch["video"][:4], recon[:4]], axis=3)  # original | recon
  finally:
    if hasattr(batches, "close"):
      batches.close()
  if not num_frames:
    raise ValueError("the validation split gave no batches; lower tokenizer.eval_batch_size")
  probs = counts / counts.sum()
  result = {key: value / num_frames for key, value in totals.items()}
  result.update(
      code_usage=float(np.mean(counts > 0)),
      perplexity=float(np.exp(-np.sum(probs * np.log(probs + 1e-10)))),
      codebook_size=int(counts.size), num_frames=num_frames, step=int(step))
  out_dir = os.path.dirname(metrics_path(workdir))
  os.makedirs(out_dir, exist_ok=True)
  if jax.process_index() == 0:
    video_io.write_video(os.path.join(out_dir, f"reconstructions_{step:06d}.mp4"),
                         video_io.tile_videos(list(shown), columns=2), fps=8)
    with open(metrics_path(workdir) + ".tmp", "w") as f:
      json.dump(result, f, indent=2, sort_keys=True)
    os.replace(metrics_path(workdir) + ".tmp", metrics_path(workdir))
  logging.info("tokenizer eval at step %d: PSNR %.2f dB, SSIM %.4f, LPIPS %.4f, codes used %.1f%%, "
               "%.1f%% of codes change when a reconstruction is encoded again", step,
               result["psnr"], result["ssim"], result["lpips"], 100 * result["code_usage"],
               100 * result["reencode_changed"])
  result["_videos"] = shown
  return result


class TokenizerTrainer:
  """Everything one run needs: modules, optimisers, mesh, state, jitted step."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config, self.workdir = config, workdir
    tok = config.tokenizer
    self.num_steps = int(tok.num_steps)
    self.image_size = int(config.data.image_size)
    self.mesh = mesh_lib.make_mesh(config.mesh)
    self.model = build_tokenizer(tok)
    self.disc = ts.build_discriminator(tok) if ts.gan_enabled(tok) else None
    self.gen_tx = ts.build_optimizer(tok, float(tok.learning_rate))
    self.disc_tx = ts.build_optimizer(tok, float(tok.get("disc_learning_rate", tok.learning_rate)))
    init_key, self.step_key = jax.random.split(jax.random.key(int(config.seed)))
    self.state = mesh_lib.create_sharded_state(
        lambda: ts.init_state(self.model, self.disc, self.gen_tx, self.disc_tx, init_key,
                              self.image_size), self.mesh,
        rules=mesh_lib.logical_rules(config.mesh))
    replicated = mesh_lib.replicated_sharding(self.mesh)
    train_module, train_lpips = image_metrics.load_lpips(tok.lpips_net)
    self.train_lpips = jax.device_put(train_lpips, replicated)
    eval_module, eval_lpips = image_metrics.load_lpips(tok.get("eval_lpips_net", "alexnet"))
    self.eval_lpips = jax.device_put(eval_lpips, replicated)
    step_fn = ts.make_train_step(tok, self.model, self.disc, self.gen_tx, self.disc_tx,
                                 train_module, self.step_key)
    state_shardings = mesh_lib.tree_shardings(self.state)
    self._step = jax.jit(step_fn, in_shardings=(state_shardings, mesh_lib.batch_sharding(self.mesh),
                                                None, replicated),
                         out_shardings=(state_shardings, replicated), donate_argnums=(0,))
    self._eval_batch = make_eval_batch_fn(self.model, eval_module)
    self.checkpointer = Checkpointer(os.path.join(stage_dir(workdir), "checkpoints"),
                                     max_to_keep=int(tok.max_to_keep))

  def train_step(self, state, batch, step):
    video = mesh_lib.shard_batch({"video": batch["video"]}, self.mesh)["video"]
    return self._step(state, {"video": video}, step, self.train_lpips)

  def restore_or_init(self) -> int:
    """Restores the latest checkpoint into self.state; returns the step to start from."""
    latest = self.checkpointer.latest_step()
    if latest is None:
      return 0
    self.state, _ = self.checkpointer.restore(abstract_like(self.state), latest)
    logging.info("tokenizer: resuming from step %d.", latest)
    return int(latest)

  def evaluate(self, state, step: int) -> dict:
    result = evaluate(self.config, self.workdir, eval_variables(state), self._eval_batch,
                      self.eval_lpips, self.mesh, step)
    videos = result.pop("_videos")
    outputs = {k: v for k, v in result.items() if k in ("psnr", "ssim", "lpips", "code_usage",
                                                       "perplexity", "reencode_changed")}
    outputs["reconstructions"] = videos
    return outputs

  def train(self, batches=None) -> ts.TrainState:
    from mmvid_jax.data import pipeline  # pylint: disable=g-import-not-at-top
    tok = self.config.tokenizer
    start = self.restore_or_init()
    if batches is None:
      batches = pipeline.make_dataset(self.config, "train", self.workdir,
                                      batch_size=int(tok.batch_size), deterministic=False,
                                      start_step=start)
    try:
      self.state = run_loop(
          name="tokenizer", workdir=stage_dir(self.workdir), state=self.state,
          train_step=self.train_step, batches=batches, num_steps=self.num_steps,
          start_step=start, checkpointer=self.checkpointer, log_every=int(tok.log_every),
          checkpoint_every=int(tok.checkpoint_every), eval_every=int(tok.eval_every),
          eval_fn=self.evaluate, config=self.config,
          examples_per_step=int(tok.batch_size) * int(tok.get("frames_per_clip", 2)))
    finally:
      if hasattr(batches, "close"):
        batches.close()
    return self.state

  def finish(self) -> None:
    """Final evaluation (if the loop did not write it) and the export for later stages."""
    metrics = read_metrics(self.workdir)
    if metrics is None or metrics.get("step") != self.num_steps:
      self.evaluate(self.state, self.num_steps)
    if jax.process_index() == 0:
      api.save_tokenizer(os.path.join(stage_dir(self.workdir), api.EXPORT_DIR), self.config.tokenizer,
                         self.image_size, jax.device_get(eval_variables(self.state)), self.num_steps)
    self.checkpointer.close()
