"""Moving Shapes, the embedded default: text (+ optional image) -> 32x32, 4-frame video.

    python -m mmvid_jax.main --config=configs/shapes.py --workdir=runs/shapes
    python -m mmvid_jax.main --config=configs/shapes.py:tiny --workdir=runs/tiny

Variants (after the colon): `default` (4 frames, motion on a 2-pixel grid, a 2-block transformer
trained 3000 steps: sized so the main job fits ~15 minutes on a 2-core CPU; the other variants
keep 8 frames of smooth motion),
`tiny` (tests, a few minutes end to end), `text_image` (background image as a control),
`dependent` (colour image + shape image + background, caption says which slot is which),
`long` (the default's data and tokenizer with the best transformer recipe measured on this CPU:
4 blocks, a local video convolution, lighter masks and 24000 steps, ~2.5 hours of training on
2 cores;
docs/results.md, "Session 16"),
`paper` (MMVID's Shapes geometry: 64 px, 16 frames, a factor-16 tokenizer with a 4x4 grid and
1024 codes; an accelerator-sized run).
"""

import os
import sys

import ml_collections

# Config files are loaded by path from any folder (config_flags): make configs.common importable.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.append(_ROOT)
from configs import common  # noqa: E402  pylint: disable=g-import-not-at-top

VARIANTS = ("default", "tiny", "text_image", "dependent", "paper", "long")
# The `long` variant's training length (docs/results.md, "Session 16").
LONG_STEPS = 24000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/shapes.py: unknown variant {variant!r}; choose one of {VARIANTS}.")
  tiny = variant == "tiny"

  config = common.base_config(f"shapes_{variant}", variant)

  config.data = _data(variant, tiny)
  config.tokenizer = _tokenizer(config.data, tiny, variant == "paper")
  config.transformer = _transformer(config.data, tiny, variant)
  config.sample = common.sample_section(tiny)
  if variant in ("default", "long"):
    # Guidance 2 from the null caption: all-correct 0.125 in two seeds of the default's recipe,
    # against 0.062-0.078 without (docs/results.md). On the `long` model it is what draws
    # held-out (shape, colour) pairs (0.32 against 0.055 unguided), at a small cost on seen
    # pairs (0.87 against 0.90; docs/results.md, "Session 17").
    config.sample.cfg_scale = 2.0
  config.evaluate = common.evaluate_section(tiny)
  config.mesh = common.mesh_section()
  return config


def _data(variant: str, tiny: bool) -> ml_collections.ConfigDict:
  data = ml_collections.ConfigDict()
  data.name = "shapes"
  # "tfds": build the TFDS `shapes` dataset once (under data_dir) and read it;
  # "stream": generate clips on the fly, unlimited and never materialised.
  data.source = "tfds"
  # TFDS data_dir; empty means <workdir>/tfds.
  data.data_dir = ""
  paper = variant == "paper"
  default = variant in ("default", "long")  # `long` trains longer on the default's data
  # 32 px frames (an 8x8 token grid per frame) are what a 2-core CPU tokenizes well within
  # minutes; `paper` is MMVID's 64 px x 16 frames (docs/results.md). The default's 4 frames
  # (S = 279) train twice as fast per step as 8 (S = 535).
  data.image_size = 64 if paper else 32
  data.num_frames = 16 if paper else (4 if default else 8)
  data.frame_step = 1
  # Frames stored per clip; training samples num_frames at frame_step from a random start.
  # The default stores exactly its 4 frames: a later start could show the motion after a
  # bounce, the caption's direction reversed.
  data.clip_frames = 24 if paper else (4 if default else 12)
  # Pixels per grid step of the motion; 0 is smooth motion (SPEED_FRACTION of the side per frame).
  # The default's 2-pixel grid leaves a 4x4 patch's code two sub-patch offsets per axis instead
  # of any: with 4 frames and 1500 steps the oracle's all-correct rate went from 0.000-0.016
  # (smooth, 8 frames, 500 steps) to 0.125 in two seeds (docs/results.md). A grid of 4 (the
  # tokenizer's factor) repeats the object's codes in every frame; it helps continuation but
  # not text-to-video at 500 steps.
  data.motion_grid = 2 if default else 0
  data.background = "random" if variant in ("text_image", "dependent") else "plain"
  data.num_train = 512 if tiny else 20000
  data.num_validation = 64 if tiny else 512
  data.num_test = 64 if tiny else 512
  data.generator_seed = 1234
  # Text.
  # Dependent captions name three image slots: longer (MMVID used 32 there too).
  data.text_seq_len = 32 if variant == "dependent" else 20
  data.text_tokenizer = "sentencepiece"  # or "bert" (WordPiece of the packaged MiniLM).
  # BPE pieces; ~192 makes every training-caption word one piece (held-out words split).
  data.sentencepiece_vocab_size = 192
  data.drop_sentence = False
  data.null_caption_prob = 0.1
  # Input pipeline.
  data.shuffle_buffer = 256 if tiny else 4096
  data.prefetch = 2
  return data


def _tokenizer(data: ml_collections.ConfigDict, tiny: bool, paper: bool = False
               ) -> ml_collections.ConfigDict:
  """Per-frame VQGAN (docs/tokenizer.md). Default and tiny: common's f4, an 8x8 grid per 32 px
  frame; `paper`: f16 on 64 px, MMVID's 4x4 grid with 1024 codes."""
  if not paper:
    tok = common.tokenizer_section(data.image_size, tiny)
    # Each latent sees only its own 4x4 patch: the ~84% black patches all get one code, which
    # the transformer learns at once (the taming encoder spread them over ~170 codes).
    tok.encoder_context = "patch"
    return tok
  tok = common.tokenizer_section(data.image_size, tiny, channel_mult=(1, 2, 4, 4, 4))
  tok.update(codebook_size=1024, num_steps=20000)
  return tok


def _transformer(data: ml_collections.ConfigDict, tiny: bool, variant: str) -> ml_collections.ConfigDict:
  del data  # Same signature as the other section builders.
  tr = common.transformer_section(tiny)
  if variant != "paper":
    # CPU budget (docs/transformer.md): 2 heads of 64 instead of 4 of 32 (a third less softmax
    # work, same parameters) and the REL and VID negatives on half the batch each (2 passes per
    # sample, not 3): 0.82 s per batch-8 step against 1.61 s (0.59 s since the attention's
    # hand-written backward pass), so 500 steps fit the main job with minutes to spare.
    tr.update(num_heads=2, negatives="split")
    if not tiny:
      # 3e-4 rather than 1e-3: lower validation MSM loss at 500 steps (0.990 vs 1.012) and
      # ~1000x more sensitivity to colour words (docs/transformer.md, "Learning rate").
      tr.update(num_steps=500, learning_rate=3e-4)
      if variant == "default":
        # 2 blocks for 3000 steps rather than 4 for 1500, in the same ~7 minutes (~7.4 steps/s on
        # 4-frame videos): lower validation MSM loss (0.44-0.46 against 0.57-0.59), higher REL,
        # VID and seen-caption oracle in both seeds tried (docs/results.md, "Session 18").
        tr.update(depth=2, num_steps=3000, eval_every=1000, checkpoint_every=1000)
      # 32 validation batches (256 clips, ~16 s per evaluation at 32 px): the old 4 batches
      # (32 clips) put the default's REL at 0.98 where 256 clips give 0.87 (docs/results.md,
      # "Session 16").
      tr.num_eval_batches = 32
      if variant == "long":
        # Not in MMVID (docs/transformer.md, "Video convolution"): a separable 3x3x3 depthwise
        # convolution over the video tokens and keep probabilities from U(0.2, 0.8). At 1500
        # steps they do not move the oracle; over longer runs they lead on every figure
        # (docs/results.md, sessions 14 and 16).
        tr.update(num_steps=LONG_STEPS, eval_every=3000, checkpoint_every=1500, video_conv=3,
                  msm_bernoulli_keep=(0.2, 0.8))
  # Control slots: each is (source, erasing mode).
  if variant == "text_image":
    tr.controls = ("background:shape_4x4",)
  elif variant == "dependent":
    tr.controls = ("same_color:keep", "same_shape:keep", "background:keep")
    tr.insert_sep = True  # caption names each slot
  if variant == "paper":
    tr.update(batch_size=32, num_steps=60000)  # MMVID's Shapes run, 60k
  return tr


# Other code may import the section builders from here.
_sample = common.sample_section
_evaluate = common.evaluate_section
_mesh = common.mesh_section
