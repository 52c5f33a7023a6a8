"""Multimodal VoxCeleb (MMVID's MM-Vox): every released conditioning mode (docs/mmvoxceleb.md).

    python -m mmvid_jax.main --config=configs/mmvoxceleb.py:text_mask --workdir=runs/vox_mask \
        --config.data.manual_dir=PATH/TO/mmvoxceleb

`data.manual_dir` is the one required setting: the release folder holding `video/<key>/*.png`,
`label/<key>.txt` (40 CelebA 0/1 attributes) and, for the mask/drawing modes,
`mask/<key>/*.png` and `draw/style1/<key>/*.png`.

Variants (MMVID §7; batch, L_txt, slots, erasing and steps of the released scripts and
checkpoints), each with a `<mode>_tiny` counterpart that runs on CPU in minutes:

| variant | controls (slot order) | captions | L_txt | batch | steps |
|---|---|---|---|---|---|
| text_video (default) | none | PCFG | 50 | 48 | 100k |
| text_mask | mask:mask_8x8 | PCFG, null p=0.1 | 50 | 20 | 200k |
| text_draw | draw:mask_8x8 | PCFG, null p=0.1 | 50 | 20 | 200k |
| text_partial | partial_image:face_8x8 | PCFG, null p=0.1 | 50 | 20 | 98k |
| draw_mask | same_pid_draw, mask (mask2_8x8) | template | 20 | 20 | 92k |
| image_mask | same_pid_image, mask (mask2_8x8) | template | 20 | 20 | 100k |
| image_video | appearance, 3 x motion_frames (face2_8x8) + colour | template | 20 | 32 | 149k |
| text_aug | none; pooled sentence encoder, sentence dropout | PCFG | 50 (1) | 24 | 112k |

Sizing follows MMVID: 128 px, 8 frames 4 apart, a per-frame VQGAN with downsampling 16 and
1024 codes (8 x 8 tokens per frame, 512 per clip), a 12 x 768 transformer, Adam at 1e-4 after
a 5000-step log warm-up.
"""

import os
import sys

import ml_collections

# Config files are loaded by path from any folder (config_flags): make configs.common importable.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.append(_ROOT)
from configs import common  # noqa: E402  pylint: disable=g-import-not-at-top

MODES = ("text_video", "text_mask", "text_draw", "text_partial", "draw_mask", "image_mask",
         "image_video", "text_aug")
VARIANTS = MODES + tuple(m + "_tiny" for m in MODES) + ("default", "tiny")

# mode: (controls, captions, null_caption_prob, text_seq_len, batch_size, num_steps)
_MODES = {
    "text_video": ((), "pcfg", 0.0, 50, 48, 100_000),
    "text_mask": (("mask:mask_8x8",), "pcfg", 0.1, 50, 20, 200_000),
    "text_draw": (("draw:mask_8x8",), "pcfg", 0.1, 50, 20, 200_000),
    "text_partial": (("partial_image:face_8x8",), "pcfg", 0.1, 50, 20, 98_000),
    "draw_mask": (("same_pid_draw:mask2_8x8", "mask:mask2_8x8"), "template", 0.0, 20, 20,
                  92_000),
    "image_mask": (("same_pid_image:mask2_8x8", "mask:mask2_8x8"), "template", 0.0, 20, 20,
                   100_000),
    "image_video": (("appearance:face2_8x8",) + ("motion_frames:face2_8x8",) * 3, "template",
                    0.0, 20, 32, 149_000),
    "text_aug": ((), "pcfg", 0.0, 50, 24, 112_000),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = {None: "text_video", "": "text_video", "default": "text_video",
             "tiny": "text_video_tiny"}.get(arg, arg)
  if variant not in VARIANTS:
    raise ValueError(f"configs/mmvoxceleb.py: unknown variant {arg!r}; choose one of "
                     f"{', '.join(VARIANTS)}.")
  tiny = variant.endswith("_tiny")
  mode = variant[:-len("_tiny")] if tiny else variant

  config = common.base_config(f"mmvoxceleb_{variant}", variant)
  config.mode = mode

  config.data = _data(mode, tiny)
  config.tokenizer = _tokenizer(config.data, tiny)
  config.transformer = _transformer(mode, tiny)
  config.sample = common.mmvid_scale_sample(tiny)  # steps: MMVID evaluation.sh mp_T 20
  # MMVID evaluated on its training folder: add --config.evaluate.split=train for that.
  config.evaluate = common.mmvid_scale_evaluate(tiny)
  config.mesh = common.mesh_section()
  return config


def _data(mode: str, tiny: bool) -> ml_collections.ConfigDict:
  controls, captions, null_prob, text_len, _, _ = _MODES[mode]
  data = ml_collections.ConfigDict()
  data.name = "mmvoxceleb"
  # Required: the release folder (video/, label/, mask/, draw/style1/; docs/mmvoxceleb.md).
  data.manual_dir = ""
  # The release has no split: whole pids (interview situations) by a stable hash.
  data.split_fractions = (0.9, 0.05, 0.05)
  data.source = "tfds"  # decoded once by the data stage into the TFDS `mmvoxceleb` dataset
  data.data_dir = ""  # TFDS data_dir; empty means <workdir>/tfds.
  data.image_size = 32 if tiny else 128
  motion = mode == "image_video"
  # image_video needs target frames 0, 3, 6: the tiny variant keeps 7 consecutive frames.
  data.num_frames = (7 if motion else 4) if tiny else 8
  data.frame_step = (1 if motion else 2) if tiny else 4
  # Frames stored per clip (its first ones); training starts at a random frame inside them.
  data.clip_frames = 8 if tiny else 64
  data.control_frames = 4 if tiny else 16  # mask / drawing frames stored per clip
  data.pool_size = 4 if tiny else 16  # frames (and drawings) of random same-pid clips per clip
  data.build_workers = 0  # Decoding threads for the build; 0 = one per core.
  # Text: "pcfg" (one of the clip's 20 attribute captions) or "template" (dependent modes).
  data.captions = captions
  # "generate": the 20 PCFG captions from the labels (seeded per clip); "release": the
  # release's txt/<key>.txt files (the captions MMVID trained on).
  data.caption_source = "generate"
  data.text_seq_len = 32 if tiny else text_len
  data.text_tokenizer = "bert" if mode == "text_aug" else "sentencepiece"
  data.sentencepiece_vocab_size = 128 if tiny else 1024
  data.drop_sentence = mode == "text_aug"  # the released checkpoint name says "txtdrop"
  data.null_caption_prob = null_prob
  data.motion_color = motion  # MMVID visual_aug_mode='motion_color' for image+video
  # Input pipeline.
  data.shuffle_buffer = 16 if tiny else 2048
  data.prefetch = 2
  return data


def _tokenizer(data: ml_collections.ConfigDict, tiny: bool) -> ml_collections.ConfigDict:
  """Per-frame VQGAN (docs/tokenizer.md): f16 at 128 px, 8 x 8 tokens per frame (MMVID).
  Frames, masks and drawings share it (MMVID trains a second VQGAN for the controls)."""
  tok = common.mmvid_scale_tokenizer(data.image_size, tiny)
  if not tiny:
    # MMVID's vox VQGAN: disc_start 10000 (disc_weight 0.8 as in common).
    tok.update(disc_start=10000, batch_size=48)
  return tok


def _transformer(mode: str, tiny: bool) -> ml_collections.ConfigDict:
  controls, _, _, _, batch, steps = _MODES[mode]
  tr = common.mmvid_scale_transformer(tiny)
  # remat stays off: at most 512 video + 256 control + 50 text tokens fit without it.
  # text_aug: MMVID's frozen RoBERTa sentence encoder becomes the packaged MiniLM (pooled).
  tr.text_encoder = "bert_pooled" if mode == "text_aug" else "learned"
  tr.controls = controls  # "<source>:<erasing mode>" per slot (mmvoxceleb_input)
  if not tiny:
    # MMVID: Adam 1e-4 after a log warm-up, clip 1.0; the released scripts' batch and steps.
    tr.update(batch_size=batch, num_steps=steps, learning_rate=1e-4)
  return tr
