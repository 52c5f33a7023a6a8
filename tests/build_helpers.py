"""Shared by the dataset tests: build a TFDS dataset and keep the absl log lines it wrote."""

import logging


def build_logging(build, config, workdir: str):
  """(`build(config, workdir)`'s builder, the absl messages logged while it built)."""
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  logging.getLogger("absl").addHandler(handler)
  try:
    builder = build(config, workdir)
  finally:
    logging.getLogger("absl").removeHandler(handler)
  return builder, [r.getMessage() for r in records]
