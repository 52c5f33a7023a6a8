"""iPER person videos: text -> video as in MMVID's iPER run (docs/iper.md).

    python -m mmvid_jax.main --config=configs/iper.py --workdir=runs/iper \
        --config.data.manual_dir=PATH/TO/iPER
    python -m mmvid_jax.main --config=configs/iper.py:tiny --workdir=runs/iper_tiny \
        --config.data.manual_dir=PATH/TO/iPER   # CPU, minutes

`data.manual_dir` is the one required setting: the iPER release videos
(`iPER_256_video_release/<person>_<outfit>_<type>.mp4`), their frame folders, or MMVID's
100-frame clip folders (layouts in docs/iper.md). The data stage cuts every video into
100-frame clips (30 fps) and splits them as MMVID does (10 persons drawn with seed 42, one
A-pose outfit each held out).

Sizing (default) follows MMVID's `scripts/iPER/train.sh`: 128 px, 8 frames 8 apart with
`--slow` (steps 4 / 8 / 12 and "slow/normal/fast speed." in the caption; clips need 85
frames), `--drop_sentence` (captions rebuilt from their fields), MSM Bernoulli keep
probability drawn from U(0.1, 0.3), batch 24, a per-frame VQGAN f16 with 1024 codes (8 x 8
tokens per frame) and a 12 x 768 transformer. Text: the packaged BERT WordPiece with 20 ids
(MMVID: 16 CLIP-BPE ids; WordPiece adds [CLS]/[SEP] and splits "'A'").

Long videos (MMVID `scripts/iPER/long_video_*.sh`, docs/iper.md): the `long` variant (and
`long_tiny`) is the default or tiny model whose sampling command extrapolates 100 clips keeping
7 frames each, 8 + 99 = 107 frames (the project page; MMVID's script: 50 clips, 57 frames):
    python -m mmvid_jax.sample --workdir=runs/iper \
        --text="Person 001 dressed in 1 is performing 'A' pose, normal speed." \
        --num_clips=100 --t_overlap=7         # or train with configs/iper.py:long
and interpolation (MMVID interp_real, --t_repeat 2: 4x the frame rate of a real clip):
    python -m mmvid_jax.sample --workdir=runs/iper --text="..." --interpolate=clip.mp4
"""

import os
import sys

import ml_collections

# Config files are loaded by path from any folder (config_flags): make configs.common importable.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.append(_ROOT)
from configs import common  # noqa: E402  pylint: disable=g-import-not-at-top

VARIANTS = ("default", "tiny", "long", "long_tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/iper.py: unknown variant {variant!r}; choose one of "
                     f"{VARIANTS}.")
  tiny = variant in ("tiny", "long_tiny")

  config = common.base_config(f"iper_{variant}", variant)

  config.data = _data(tiny)
  # Per-frame VQGAN (docs/tokenizer.md): f16 at 128 px, 8 x 8 tokens per frame (MMVID).
  config.tokenizer = common.mmvid_scale_tokenizer(config.data.image_size, tiny)
  config.transformer = _transformer(tiny)
  config.sample = common.mmvid_scale_sample(tiny)  # num_prompts: clips of the held-out set
  if variant.startswith("long"):
    # The project page's 107 frames: T + (100 - 1) * (T - 7) with T = 8 (MMVID's script: 50
    # clips -> 57 frames). The tiny model's 4-frame clips keep 3: 4 + 99 = 103 frames.
    config.sample.update(num_clips=100, t_overlap=config.data.num_frames - 1)
  config.evaluate = _evaluate(tiny)
  config.mesh = common.mesh_section()
  return config


def _data(tiny: bool) -> ml_collections.ConfigDict:
  data = ml_collections.ConfigDict()
  data.name = "iper"
  # Required: your copy of iPER (release videos, frame folders or MMVID clip folders).
  data.manual_dir = ""
  data.source = "tfds"  # decoded once by the data stage into the TFDS `iper` dataset
  data.data_dir = ""  # TFDS data_dir; empty means <workdir>/tfds.
  data.image_size = 32 if tiny else 128
  data.num_frames = 4 if tiny else 8
  data.frame_step = 2 if tiny else 8  # the "normal" speed; slow = step // 2, fast = 1.5 step
  # MMVID --slow: a speed drawn per clip in training, named at the end of the caption.
  data.slow = True
  data.eval_speed = "normal"  # speed of evaluation clips: slow | normal | fast (MMVID: normal)
  # Videos are cut into clips of this many frames (MMVID: 100 at 30 fps).
  data.clip_frames = 12 if tiny else 100
  # MMVID's split: this many persons drawn with random.seed(split_seed) hold out one
  # A-pose outfit each (validation; the "test" split reads the same clips).
  data.validation_persons = 10
  data.split_seed = 42
  data.build_workers = 0  # Decoding threads for the build; 0 = one per core.
  # Text.
  data.text_seq_len = 20
  data.text_tokenizer = "bert"  # the packaged WordPiece; or "sentencepiece" (trained on the captions)
  data.sentencepiece_vocab_size = 128 if tiny else 1024
  data.drop_sentence = True  # MMVID --drop_sentence: iPER captions rebuilt from their fields.
  data.null_caption_prob = 0.0  # MMVID's iPER loader never blanks the caption.
  # Input pipeline.
  data.shuffle_buffer = 16 if tiny else 2048
  data.prefetch = 2
  return data


def _transformer(tiny: bool) -> ml_collections.ConfigDict:
  tr = common.mmvid_scale_transformer(tiny)
  # remat stays off: 512 video + 20 text tokens: activations fit without recomputation.
  # Text only by default; ("first_frame:keep",) adds the first frame as an image control.
  tr.controls = ()
  tr.msm_bernoulli_keep = (0.1, 0.3)  # MMVID iPER: --msm_bernoulli_prob 0.1,0.3
  tr.batch_size = 8 if tiny else 24  # MMVID iPER: 24
  return tr


def _evaluate(tiny: bool) -> ml_collections.ConfigDict:
  e = common.mmvid_scale_evaluate(tiny)
  e.split = "validation"  # MMVID holds out one set (test reads it too)
  # The held-out set is ~10 videos (about 100 clips); MMVID's FVD uses 2048 on MM-Vox.
  e.num_videos = 2 if tiny else 96
  return e
