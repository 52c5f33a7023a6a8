"""The frozen MiniLM text encoder loads offline from its package and drives the BERT modes."""

import os

import jax
import jax.numpy as jnp
from flax import linen as nn
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.transformer import text_encoders
from mmvid_jax.transformer.model import MMVIDTransformer
from mmvid_jax.transformer.vocab import Layout

# WordPiece ids of "A cat jumps over a dog." ([CLS] ... [SEP]) from the packaged tokenizer.
IDS = [101, 1037, 4937, 14523, 2058, 1037, 3899, 1012, 102]
# Recorded once from the package (sentence-transformers style: masked mean, L2-normalised).
REFERENCE_POOLED_FIRST6 = [0.006958, -0.003933, 0.073667, 0.060196, -0.092161, -0.03207]
REFERENCE_TOKEN1_FIRST4 = [-0.180295, -0.124774, -0.036672, 0.444581]


@pytest.fixture(scope="module")
def bert():
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  return text_encoders.load_text_encoder("bert_pooled")


def test_pretrained_bert_matches_recorded_embedding(bert):
  ids = np.zeros((1, 12), np.int32)
  ids[0, :len(IDS)] = IDS
  states = np.asarray(bert(jnp.asarray(ids)))
  assert states.shape == (1, 12, 384) and bert.hidden_size == 384
  mask = (ids != 0)[..., None]
  pooled = (states * mask).sum(1) / mask.sum(1)
  pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True)
  np.testing.assert_allclose(pooled[0, :6], REFERENCE_POOLED_FIRST6, atol=1e-5)
  np.testing.assert_allclose(states[0, 1, :4], REFERENCE_TOKEN1_FIRST4, atol=1e-5)


def test_bert_is_frozen(bert):
  ids = jnp.asarray([IDS + [0, 0, 0]])
  grads = jax.grad(lambda p: bert.replace(params=p)(ids).sum())(bert.params)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("mode, text_tokens", [("bert_pooled", 1), ("bert_tokens", 12)])
def test_bert_modes_in_the_model(bert, mode, text_tokens):
  layout = Layout(16, 30522, 12, 2, 2, 2, pooled_text=mode == "bert_pooled")
  assert layout.text_tokens == text_tokens
  model = MMVIDTransformer(layout, width=32, depth=1, num_heads=2, mlp_dim=64, text_encoder=mode)
  ids = np.zeros((2, 12), np.int32)
  ids[0, :len(IDS)] = IDS  # sample 1 is the null caption
  features = bert(jnp.asarray(ids))
  video = jnp.full((2, layout.video_len), 16)
  variables = model.init(jax.random.key(0), jnp.asarray(ids), None, video, features,
                         method=MMVIDTransformer.tokens_to_logits)
  params = nn.unbox(variables["params"])
  assert "text_emb" not in params["text"] and "bert_proj" in params["text"]
  logits, rel, vid = model.apply({"params": params}, jnp.asarray(ids), None, video, features,
                                 method=MMVIDTransformer.tokens_to_logits)
  assert logits.shape == (2, layout.video_len, 16)
  assert np.isfinite(np.asarray(logits)).all() and np.isfinite(np.asarray(rel)).all()


def test_unknown_encoder_is_a_clear_error():
  with pytest.raises(UserError, match="unknown encoder 'roberta'"):
    text_encoders.load_text_encoder("roberta")
