"""Stage 2: the MMVID transformer (`is_complete` / `run`, see docs/architecture.md)."""

import json
import os

from mmvid_jax.transformer import api
from mmvid_jax.transformer import trainer


def is_complete(config, workdir: str) -> bool:
  """True when the export exists and was trained for the configured number of steps."""
  spec_path = os.path.join(trainer.stage_dir(workdir), api.EXPORT_DIR, api.SPEC_FILE)
  if not os.path.exists(spec_path):
    return False
  with open(spec_path) as f:
    return int(json.load(f).get("step", -1)) >= int(config.transformer.num_steps)


def run(config, workdir: str) -> None:
  from mmvid_jax.tokenizer.api import load_tokenizer  # pylint: disable=g-import-not-at-top
  tokenizer = load_tokenizer(workdir, expected_config=config.tokenizer,
                             expected_image_size=config.data.image_size)
  trainer.train(config, workdir, tokenizer)
