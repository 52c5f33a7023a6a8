"""Stage 1: the video tokenizer. Trains (resuming from its checkpoints), evaluates, exports.

Complete when the final checkpoint (step = tokenizer.num_steps), the final evaluation and the
export that `api.load_tokenizer` reads all exist.
"""

import json
import os

from absl import logging

from mmvid_jax.tokenizer import api
from mmvid_jax.tokenizer import trainer


def _export_step(workdir: str) -> int | None:
  path = os.path.join(trainer.stage_dir(workdir), api.EXPORT_DIR, api.SPEC_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return int(json.load(f).get("step", -1))


def _final_checkpoint_exists(workdir: str, num_steps: int) -> bool:
  return os.path.isdir(os.path.join(trainer.stage_dir(workdir), "checkpoints", str(num_steps)))


def is_complete(config, workdir: str) -> bool:
  num_steps = int(config.tokenizer.num_steps)
  metrics = trainer.read_metrics(workdir)
  return (_final_checkpoint_exists(workdir, num_steps) and metrics is not None
          and metrics.get("step") == num_steps and _export_step(workdir) == num_steps)


def run(config, workdir: str) -> None:
  run_trainer = trainer.TokenizerTrainer(config, workdir)
  run_trainer.train()
  run_trainer.finish()
  metrics = trainer.read_metrics(workdir)
  logging.info("Tokenizer stage done: PSNR %.2f dB, SSIM %.4f, LPIPS %.4f, %.1f%% of %d codes "
               "used; weights exported to %s.", metrics["psnr"], metrics["ssim"], metrics["lpips"],
               100 * metrics["code_usage"], metrics["codebook_size"],
               os.path.join(trainer.stage_dir(workdir), api.EXPORT_DIR))
