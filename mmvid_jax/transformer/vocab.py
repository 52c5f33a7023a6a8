"""The vocabulary and sequence layout of the MMVID transformer: every id range and index.

One sequence per sample (MMVID, spec §3.1):

```
pos 0                       [REL]            special id 0
pos 1 .. L                  text             L = text_tokens (caption ids, or 1 pooled token)
pos 1+L .. L+V              controls         n_ctrl slots of h*w codes (+1 [SEP] each if insert_sep)
pos 1+L+V                   [ST1]            special id 1 (no loss, kept: it changes attention)
pos 2+L+V                   [VID]            special id 2
pos 3+L+V .. S-1            video            N = T*h*w codes, frame-major then raster
S = 3 + L + V + N
```

Id ranges (all non-negative, each in its own embedding table):
- video/control codes `[0, K)`, `[MASK] = K`, `[SEP] = K + 1` (video table has K + 2 rows);
- text ids `[1, text_vocab)` with 0 = padding in the batch; in the model padding at position i
  becomes the position-specific id `text_vocab + i` (text table has text_vocab + L rows);
- special tokens [REL] = 0, [ST1] = 1, [VID] = 2 (special table has 3 rows).
"""

import dataclasses

import numpy as np

from mmvid_jax.errors import UserError

REL_ID, ST1_ID, VID_ID = 0, 1, 2
NUM_SPECIAL = 3

# Known text vocabularies (config.data.text_tokenizer -> size) for the BERT WordPiece ids.
BERT_VOCAB_SIZE = 30522


@dataclasses.dataclass(frozen=True)
class Layout:
  """Vocabulary + positions of one MMVID sequence (hashable: usable as a static module field)."""
  codebook_size: int          # K video codes
  text_vocab_size: int        # caption ids live in [0, text_vocab_size), 0 = padding
  text_len: int               # caption ids per sample in the batch (L_ids)
  num_frames: int             # T
  latent_height: int          # h
  latent_width: int           # w
  num_controls: int = 0       # n_ctrl control slots
  insert_sep: bool = False    # one [SEP] after each control slot (Shapes dependent)
  pooled_text: bool = False   # text becomes one token (frozen BERT, mean-pooled)

  def __post_init__(self):
    for name in ("codebook_size", "text_vocab_size", "text_len", "num_frames", "latent_height",
                 "latent_width"):
      if getattr(self, name) < 1:
        raise UserError(f"Layout.{name} must be >= 1, got {getattr(self, name)}.")
    if self.num_controls < 0:
      raise UserError(f"Layout.num_controls must be >= 0, got {self.num_controls}.")

  # ---- ids -----------------------------------------------------------------------------------
  @property
  def mask_id(self) -> int:
    return self.codebook_size

  @property
  def sep_id(self) -> int:
    return self.codebook_size + 1

  @property
  def video_vocab_size(self) -> int:
    """Rows of the video/control embedding table: codes, [MASK], [SEP]."""
    return self.codebook_size + 2

  @property
  def text_table_size(self) -> int:
    """Rows of the text embedding table: real ids then one pad id per position."""
    return self.text_vocab_size + self.text_len

  def text_pad_id(self, position: int) -> int:
    return self.text_vocab_size + position

  # ---- lengths -------------------------------------------------------------------------------
  @property
  def tokens_per_frame(self) -> int:
    return self.latent_height * self.latent_width

  @property
  def video_len(self) -> int:
    """N = T * h * w."""
    return self.num_frames * self.tokens_per_frame

  @property
  def text_tokens(self) -> int:
    """Text positions in the sequence: L_ids, or 1 when pooled."""
    return 1 if self.pooled_text else self.text_len

  @property
  def control_slot_len(self) -> int:
    return self.tokens_per_frame + int(self.insert_sep)

  @property
  def control_len(self) -> int:
    """V = n_ctrl * (h*w (+1 with [SEP]))."""
    return self.num_controls * self.control_slot_len

  @property
  def seq_len(self) -> int:
    """S = 3 + L + V + N."""
    return 3 + self.text_tokens + self.control_len + self.video_len

  @property
  def condition_len(self) -> int:
    """Positions before [ST1]: [REL] + text + controls (the block swapped for REL negatives)."""
    return 1 + self.text_tokens + self.control_len

  # ---- positions -----------------------------------------------------------------------------
  @property
  def rel_index(self) -> int:
    return 0

  @property
  def text_slice(self) -> slice:
    return slice(1, 1 + self.text_tokens)

  @property
  def control_slice(self) -> slice:
    start = 1 + self.text_tokens
    return slice(start, start + self.control_len)

  def control_slot_slice(self, slot: int) -> slice:
    """Positions of control slot `slot` (its h*w codes, then its [SEP] if any)."""
    if not 0 <= slot < self.num_controls:
      raise UserError(f"control slot {slot} out of range: the layout has {self.num_controls}.")
    start = self.control_slice.start + slot * self.control_slot_len
    return slice(start, start + self.control_slot_len)

  @property
  def st1_index(self) -> int:
    return 1 + self.text_tokens + self.control_len

  @property
  def vid_index(self) -> int:
    return self.st1_index + 1

  @property
  def video_slice(self) -> slice:
    return slice(self.vid_index + 1, self.seq_len)

  # ---- the attention pattern -----------------------------------------------------------------
  def attention_allowed(self) -> np.ndarray:
    """Boolean (S, S) `allowed[q, k]`: bidirectional except [ST1]/[VID] rows see no earlier key."""
    allowed = np.ones((self.seq_len, self.seq_len), dtype=bool)
    for q in (self.st1_index, self.vid_index):
      allowed[q, :q] = False
    return allowed

  def masked_attention_rows(self) -> tuple[int, ...]:
    """The rows of `attention_allowed()` that are not all True ([ST1], [VID])."""
    allowed = self.attention_allowed()
    return tuple(int(row) for row in np.flatnonzero(~allowed.all(axis=1)))

  # ---- id checks -----------------------------------------------------------------------------
  def check_ids(self, text_ids=None, control_codes=None, video_tokens=None) -> None:
    """Raises UserError when concrete ids fall outside their range (JAX would give silent NaN)."""
    def check(name, values, low, high, shape_tail):
      values = np.asarray(values)
      if shape_tail is not None and values.shape[1:] != shape_tail:
        raise UserError(f"{name} has shape {values.shape}; the transformer layout expects "
                        f"(batch, {', '.join(map(str, shape_tail))}). Fix: match the config "
                        "the transformer was trained with.")
      if values.size and (values.min() < low or values.max() >= high):
        raise UserError(f"{name} holds ids in [{values.min()}, {values.max()}] but the valid "
                        f"range is [{low}, {high}). Fix: use the tokenizers this model was "
                        "trained with.")
    if text_ids is not None:
      check("text_ids", text_ids, 0, self.text_vocab_size, (self.text_len,))
    if control_codes is not None:
      values = np.asarray(control_codes).reshape(np.shape(control_codes)[0], self.num_controls, -1)
      check("control_codes", values, 0, self.codebook_size + 1,
            (self.num_controls, self.tokens_per_frame))
    if video_tokens is not None:
      check("video_tokens", video_tokens, 0, self.codebook_size + 1, (self.video_len,))


def text_vocab_size_for(data_config) -> int:
  """Caption id range of the configured text tokenizer (ids in [0, size), 0 = padding)."""
  kind = data_config.get("text_tokenizer", "sentencepiece")
  if kind == "bert":
    return BERT_VOCAB_SIZE
  return int(data_config.sentencepiece_vocab_size)


def layout_from_config(config, codebook_size: int, latent_size: int | tuple[int, int],
                       text_vocab_size: int | None = None) -> Layout:
  """The one factory: config + tokenizer codebook/latent grid (+ text vocab) -> Layout."""
  tr, data = config.transformer, config.data
  if isinstance(latent_size, int):
    latent_size = (latent_size, latent_size)
  return Layout(
      codebook_size=int(codebook_size),
      text_vocab_size=int(text_vocab_size or text_vocab_size_for(data)),
      text_len=int(data.text_seq_len),
      num_frames=int(data.num_frames),
      latent_height=int(latent_size[0]),
      latent_width=int(latent_size[1]),
      num_controls=len(tr.get("controls", ())),
      insert_sep=bool(tr.get("insert_sep", False)),
      pooled_text=tr.get("text_encoder", "learned") == "bert_pooled")
