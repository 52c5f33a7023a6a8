"""Text tokenizers: round trip, padding, truncation warning, BERT ids offline, clear errors."""

import importlib.util
import os

from absl import logging
import numpy as np
import pytest

from mmvid_jax.data import shapes_captions
from mmvid_jax.data import text
from mmvid_jax.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTIONS = ["A small red circle is moving north.",
            "There is a little magenta triangle moving down and to the left.",
            shapes_captions.dependent_caption(("same_color", "same_shape", "background"), 1)]


def tiny_config(**data):
  spec = importlib.util.spec_from_file_location("shapes_config", os.path.join(ROOT, "configs", "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def sentencepiece(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("work"))
  return text.get_text_tokenizer(tiny_config(), workdir), workdir


def test_sentencepiece_round_trip_and_padding(sentencepiece):
  tok, workdir = sentencepiece
  assert os.path.exists(os.path.join(workdir, "text", "shapes_bpe192.model"))
  assert tok.vocab_size == 192
  ids = tok.encode(CAPTIONS + [""], 32)
  assert ids.shape == (4, 32) and ids.dtype == np.int32
  assert ids.min() >= 0 and ids.max() < tok.vocab_size
  assert (ids[3] == 0).all()  # Empty text = the null caption.
  for row in ids[:3]:
    length = int((row > 0).sum())
    assert (row[:length] > 0).all() and (row[length:] == 0).all()
  assert tok.decode(ids) == [c.lower() for c in CAPTIONS] + [""]
  # Every word of the training captions is one piece; held-out paraphrase words still encode.
  assert (tok.encode([CAPTIONS[0]], 32) > 0).sum() == 8
  held_out = "The big cyan plus slides up and to the left."
  assert tok.decode(tok.encode([held_out], 32)) == [held_out.lower()]
  assert (tok.encode([b"A small red circle is moving north."], 32) == ids[:1]).all()


def test_sentencepiece_is_cached(sentencepiece):
  tok, workdir = sentencepiece
  path = text.sentencepiece_path(tiny_config(), workdir)
  mtime = os.path.getmtime(path)
  again = text.get_text_tokenizer(tiny_config(), workdir)
  assert os.path.getmtime(path) == mtime
  np.testing.assert_array_equal(again.encode(CAPTIONS, 32), tok.encode(CAPTIONS, 32))


def test_truncation_warns_once(sentencepiece, monkeypatch):
  tok = text.SentencePieceTokenizer(sentencepiece[0].model_path)
  warnings = []
  monkeypatch.setattr(logging, "warning", lambda msg, *args: warnings.append(msg % args))
  ids = tok.encode(CAPTIONS, 5)
  assert ids.shape == (3, 5) and (ids > 0).all()
  np.testing.assert_array_equal(ids, tok.encode(CAPTIONS, 32)[:, :5])
  tok.encode(CAPTIONS, 5)
  assert len(warnings) == 1 and "truncated" in warnings[0] and "text_seq_len" in warnings[0]
  assert tok.encode(CAPTIONS[:1], 32).shape == (1, 32) and len(warnings) == 1


def test_bert_wordpiece_offline():
  tok = text.get_text_tokenizer(tiny_config(text_tokenizer="bert"), "unused")
  assert tok.vocab_size == 30522
  ids = tok.encode(["A cat jumps over a dog.", ""], 12)
  np.testing.assert_array_equal(ids[0], [101, 1037, 4937, 14523, 2058, 1037, 3899, 1012, 102, 0, 0, 0])
  assert (ids[1] == 0).all()
  assert tok.decode(ids) == ["a cat jumps over a dog.", ""]
  short = tok.encode(["A cat jumps over a dog."], 5)
  np.testing.assert_array_equal(short[0], [101, 1037, 4937, 14523, 102])  # [SEP] kept.


def test_unknown_tokenizer_is_a_clear_error():
  with pytest.raises(UserError, match="unknown tokenizer 'clip'"):
    text.get_text_tokenizer(tiny_config(text_tokenizer="clip"), "unused")
