"""MUG facial expressions: text -> video, and image-conditioned expression transfer
(docs/mug.md).

    python -m mmvid_jax.main --config=configs/mug.py --workdir=runs/mug \
        --config.data.manual_dir=PATH/TO/MUG/subjects3
    python -m mmvid_jax.main --config=configs/mug.py:transfer --workdir=runs/mug_transfer \
        --config.data.manual_dir=PATH/TO/MUG/subjects3
    python -m mmvid_jax.main --config=configs/mug.py:tiny --workdir=runs/mug_tiny \
        --config.data.manual_dir=PATH/TO/MUG/subjects3   # CPU, minutes

`data.manual_dir` is the one required setting: the MUG takes as
`<subject>/<expression>/take<k>/*.jpg` (variations in docs/mug.md). Captions come from the
expression label through a small seeded paraphrase grammar; the split is subject-disjoint.

Variants:
- default: text -> video at 128 px (MMVID's MUG VQGAN is 128 px with disc_weight 0.4),
  8 frames 4 apart, per-frame VQGAN f16 with 1024 codes, 12 x 768 transformer, batch 32;
- transfer: the same plus two control images with MMVID's `face3_8x8` ("for MUG
  evaluation"): slot 0 (the clip's first frame: who) is kept whole, slot 1 (a random frame
  of the take: the expression) keeps only its centre 4 x 4 tokens;
- tiny, transfer_tiny: the same at 32 px, 4 frames, for CPU runs and tests.
"""

import os
import sys

import ml_collections

# Config files are loaded by path from any folder (config_flags): make configs.common importable.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.append(_ROOT)
from configs import common  # noqa: E402  pylint: disable=g-import-not-at-top

VARIANTS = ("default", "tiny", "transfer", "transfer_tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/mug.py: unknown variant {variant!r}; choose one of "
                     f"{VARIANTS}.")
  tiny = variant.endswith("tiny")
  transfer = variant.startswith("transfer")

  config = common.base_config(f"mug_{variant}", variant)

  config.data = _data(tiny)
  config.tokenizer = _tokenizer(config.data, tiny)
  config.transformer = _transformer(tiny, transfer)
  config.sample = common.mmvid_scale_sample(tiny)
  config.evaluate = common.mmvid_scale_evaluate(tiny)
  config.mesh = common.mesh_section()
  return config


def _data(tiny: bool) -> ml_collections.ConfigDict:
  data = ml_collections.ConfigDict()
  data.name = "mug"
  # Required: your copy of MUG (<subject>/<expression>/take<k>/ frame folders).
  data.manual_dir = ""
  # Subject-disjoint (train, validation, test) fractions of the subjects (docs/mug.md).
  data.split_fractions = (0.8, 0.1, 0.1)
  data.captions_per_take = 8  # the canonical caption + 7 paraphrases, drawn once per take
  data.caption_seed = 0
  data.source = "tfds"  # decoded once by the data stage into the TFDS `mug` dataset
  data.data_dir = ""  # TFDS data_dir; empty means <workdir>/tfds.
  data.image_size = 32 if tiny else 128
  data.num_frames = 4 if tiny else 8
  data.frame_step = 2 if tiny else 4
  # Frames stored per take (its first ones); training starts at a random frame inside them.
  data.clip_frames = 8 if tiny else 64
  data.build_workers = 0  # Decoding threads for the build; 0 = one per core.
  # Text.
  data.text_seq_len = 16
  data.text_tokenizer = "bert"  # the packaged WordPiece; or "sentencepiece" (trained on the captions)
  data.sentencepiece_vocab_size = 128 if tiny else 1024
  data.drop_sentence = False  # captions are single sentences
  data.null_caption_prob = 0.1
  # Input pipeline.
  data.shuffle_buffer = 16 if tiny else 2048
  data.prefetch = 2
  return data


def _tokenizer(data: ml_collections.ConfigDict, tiny: bool) -> ml_collections.ConfigDict:
  """Per-frame VQGAN (docs/tokenizer.md): f16 at 128 px, 8 x 8 tokens per frame (MMVID)."""
  tok = common.mmvid_scale_tokenizer(data.image_size, tiny)
  tok.disc_weight = 0.4  # MMVID's 128 px MUG VQGAN
  return tok


def _transformer(tiny: bool, transfer: bool) -> ml_collections.ConfigDict:
  tr = common.mmvid_scale_transformer(tiny)
  # remat stays off: 512 video + 16 text (+ 128 control) tokens: activations fit.
  # Text only by default. transfer: who (slot 0, whole) + the expression (slot 1, centre).
  tr.controls = ("first_frame:face3_8x8", "random_frame:face3_8x8") if transfer else ()
  return tr
