"""Your own folder of captioned videos: text -> video (docs/video_text.md).

    python -m mmvid_jax.main --config=configs/video_text.py --workdir=runs/mine \
        --config.data.manual_dir=PATH/TO/VIDEOS
    python -m mmvid_jax.data.preview --config=configs/video_text.py --workdir=runs/mine \
        --config.data.manual_dir=PATH/TO/VIDEOS --num=16 --out=preview

`data.manual_dir` is the one required setting: a folder of videos (mp4/avi/webm/mov/mkv/gif,
or folders of png/jpg frames) with a `.txt` per video (one caption per line) or one
`.csv`/`.jsonl` (file,caption) at its root.

Sizing (default variant) follows MMVID's Multimodal VoxCeleb text -> video run: 128 px,
8 frames 4 apart (a 29-frame window, about 1.2 s at 25 fps), a per-frame VQGAN with
downsampling 16 and 1024 codes (8 x 8 = 64 tokens per frame, 512 per clip), a 12 x 768
transformer, batch 32 (divisible by 4 TPU v4 chips or 8 GPUs). The `tiny` variant runs on
CPU in minutes (32 px, 4 frames).
"""

import os
import sys

import ml_collections

# Config files are loaded by path from any folder (config_flags): make configs.common importable.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.append(_ROOT)
from configs import common  # noqa: E402  pylint: disable=g-import-not-at-top

VARIANTS = ("default", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/video_text.py: unknown variant {variant!r}; choose one of "
                     f"{VARIANTS}.")
  tiny = variant == "tiny"

  config = common.base_config(f"video_text_{variant}", variant)

  config.data = _data(tiny)
  # Per-frame VQGAN (docs/tokenizer.md): f16 at 128 px, 8 x 8 tokens per frame (MMVID).
  config.tokenizer = common.mmvid_scale_tokenizer(config.data.image_size, tiny)
  config.transformer = _transformer(tiny)
  config.sample = common.mmvid_scale_sample(tiny)
  config.evaluate = common.mmvid_scale_evaluate(tiny)
  config.mesh = common.mesh_section()
  return config


def _data(tiny: bool) -> ml_collections.ConfigDict:
  data = ml_collections.ConfigDict()
  data.name = "video_text"
  # Required: your folder of videos and captions (layout in docs/video_text.md).
  data.manual_dir = ""
  # The caption table at the folder's root; empty: the one .csv/.jsonl there, if any.
  data.captions_file = ""
  # Without train/ validation/ test/ subfolders: split by the hash of each relative path.
  data.split_fractions = (0.9, 0.05, 0.05)
  data.source = "tfds"  # decoded once by the data stage into the TFDS `video_text` dataset
  data.data_dir = ""  # TFDS data_dir; empty means <workdir>/tfds.
  data.image_size = 32 if tiny else 128
  data.num_frames = 4 if tiny else 8
  data.frame_step = 2 if tiny else 4
  # Frames stored per video (its first ones); training starts at a random frame inside them.
  data.clip_frames = 8 if tiny else 64
  data.build_workers = 0  # Decoding threads for the build; 0 = one per core.
  # Text.
  data.text_seq_len = 24 if tiny else 64
  data.text_tokenizer = "sentencepiece"  # or "bert" (WordPiece of the packaged MiniLM).
  data.sentencepiece_vocab_size = 128 if tiny else 1024
  data.drop_sentence = True  # MMVID's text dropout for multi-sentence captions.
  data.null_caption_prob = 0.1
  # Input pipeline.
  data.shuffle_buffer = 16 if tiny else 2048
  data.prefetch = 2
  return data


def _transformer(tiny: bool) -> ml_collections.ConfigDict:
  tr = common.mmvid_scale_transformer(tiny)
  # remat stays off: 512 video + 64 text tokens: activations fit without recomputation.
  # Text only by default; ("first_frame:keep",) adds the first frame as an image control.
  tr.controls = ()
  return tr

