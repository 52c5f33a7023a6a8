"""MUGEN (CoinRun gameplay + captions): text -> video, rendered from game states.

    python -m mmvid_jax.main --config=configs/mugen.py --workdir=runs/mugen \
        --config.data.manual_dir=PATH/coinrun_dataset_jsons/release \
        --config.data.asset_dir=PATH/coinrun/assets
    python -m mmvid_jax.main --config=configs/mugen.py:tiny --workdir=runs/mugen_tiny \
        --config.data.manual_dir=... --config.data.asset_dir=...   # CPU, minutes
    python -m mmvid_jax.main --config=configs/mugen.py:gpu ...     # CUDA GPUs with >= 40 GB

MUGEN is obtained from https://mugen-org.github.io/download (split files, per-clip game-state
JSONs, the coinrun sprite assets); see docs/mugen.md.

Sizing (default variant, for a TPU v4-8 or one 8-GPU node):
- frames: 16 at frame_step 6, i.e. frames 0, 6, ..., 90 of the 96-frame (3.2 s, 30 fps) clip:
  the whole clip the caption describes, at 5 fps (Mugen crosses a tile in ~6 frames).
- resolution: 128 px (tile = 11 px, the agent 11 x 22 px).
- tokenizer: per-frame VQGAN, downsampling 8 (a token covers 8 x 8 px, under one tile, so the
  small sprites survive), 1024 codes -> 16 x 16 = 256 tokens per frame, 4096 per clip.
- transformer: 12 layers x 768 wide, 6 heads of 128 (~90M parameters), remat on (keeping q, k, v and
  attention outputs), batch 16 (4 clips per chip
  of a v4-8, 2 per GPU of an 8-GPU node: what fits a v4 chip's 32 GiB, see
  docs/performance.md); 4096 video + 64 text tokens of full attention per clip.
"""

import os
import sys

import ml_collections

# Config files are loaded by path from any folder (config_flags): make configs.common importable.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.append(_ROOT)
from configs import common  # noqa: E402  pylint: disable=g-import-not-at-top

VARIANTS = ("default", "tiny", "gpu")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/mugen.py: unknown variant {variant!r}; choose one of {VARIANTS}.")
  tiny = variant == "tiny"

  config = common.base_config(f"mugen_{variant}", variant)

  config.data = _data(tiny)
  config.tokenizer = _tokenizer(config.data, tiny)
  config.transformer = _transformer(tiny)
  if variant == "gpu":
    _for_gpus(config.transformer)
  config.sample = common.mmvid_scale_sample(tiny)
  config.evaluate = common.mmvid_scale_evaluate(tiny)
  config.mesh = common.mesh_section()
  return config


def _data(tiny: bool) -> ml_collections.ConfigDict:
  data = ml_collections.ConfigDict()
  data.name = "mugen"
  # Required: the folder with train.json / val.json (or valid.json) / test.json
  # (MUGEN's coinrun_dataset_jsons/release) and the sprite tree (coinrun/assets).
  data.manual_dir = ""
  data.asset_dir = ""
  # Root of the split files' json_file paths; empty: the split file's metadata.data_folder
  # when it exists here, else manual_dir's parent.
  data.root_dir = ""
  # "tfds": render once into the TFDS `mugen` dataset (under data_dir) and read pixels;
  # "render": render inside the input pipeline (needed for random_start).
  data.source = "tfds"
  data.data_dir = ""  # TFDS data_dir; empty means <workdir>/tfds.
  data.image_size = 32 if tiny else 128
  data.num_frames = 4 if tiny else 16
  data.frame_step = 3 if tiny else 6
  data.random_start = False  # MUGEN's reference loader starts at frame 0.
  data.use_downsampled_train = False  # train_downsampled.json instead of train.json.
  # Caption: "auto" (templated), "manual" (human-written), "both" (MUGEN's rules).
  data.text_source = "manual"
  data.build_workers = 0  # Render processes for the TFDS build; 0 = one per core.
  # Build on Apache Beam instead (apache-beam is installed by make install; docs/mugen.md), e.g.
  # "runner=DirectRunner,direct_num_workers=8,direct_running_mode=multi_processing"; empty: off.
  data.beam_pipeline_options = ""
  data.render_workers = 0  # Render processes for source="render"; 0 = one per core.
  # Text.
  data.text_seq_len = 24 if tiny else 64
  data.text_tokenizer = "sentencepiece"  # or "bert" (WordPiece of the packaged MiniLM).
  data.sentencepiece_vocab_size = 128 if tiny else 1024
  data.drop_sentence = False
  data.null_caption_prob = 0.1
  # Input pipeline.
  data.shuffle_buffer = 16 if tiny else 4096
  data.prefetch = 2
  return data


def _tokenizer(data: ml_collections.ConfigDict, tiny: bool) -> ml_collections.ConfigDict:
  """Per-frame VQGAN (docs/tokenizer.md): f8 at 128 px, 16 x 16 tokens per frame."""
  # f8, not MMVID's f16: a token covers 8 x 8 px, under one 11 px tile, so the small sprites
  # survive (sizing in the module docstring).
  tok = common.mmvid_scale_tokenizer(data.image_size, tiny, channel_mult=(1, 2, 2, 4))
  if not tiny:
    tok.embed_dim = 64
  return tok


def _for_gpus(tr: ml_collections.ConfigDict) -> None:
  """The default model, trained as fast as a CUDA GPU with >= 40 GB runs it: bf16 compute (so
  attention takes the cuDNN fused kernel), layers unrolled and nothing rematerialised. 40.9% MFU
  on one H100 at 8 clips (35 GiB), docs/performance.md; the TPU default keeps remat for v4's
  32 GiB."""
  tr.compute_dtype = "bfloat16"
  tr.remat = False
  tr.scan_layers = False
  tr.batch_size = 8  # one GPU; on N GPUs pass --config.transformer.batch_size=8N


def _transformer(tiny: bool) -> ml_collections.ConfigDict:
  tr = common.mmvid_scale_transformer(tiny)
  tr.remat = not tiny  # 4096-token sequences: recompute activations in the backward pass...
  tr.remat_policy = "attention"  # ...except q, k, v and attention outputs (docs/performance.md)
  if not tiny:
    # 6 heads of 128 rather than MMVID's 12 of 64: a TPU's matrix units are 128 wide, cuDNN
    # flash attention runs ~1.4x faster at head dim 128 (docs/performance.md), and XLA's
    # einsum attention keeps half as many S x S score tensors.
    tr.num_heads = 6
  # MUGEN conditions on text only (common's controls = ()).
  # 16 = 4 clips per TPU v4 chip on a v4-8 (3 passes of 4163 tokens each, with full attention
  # in XLA: ~18 GiB of the 32 GiB HBM; 32 needs ~34 GiB). docs/performance.md has the plan.
  # negatives="split" would halve REL/VID passes: a third less compute at 4096 tokens.
  tr.batch_size = 8 if tiny else 16
  return tr
