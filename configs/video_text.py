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

import ml_collections

VARIANTS = ("default", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/video_text.py: unknown variant {variant!r}; choose one of "
                     f"{VARIANTS}.")
  tiny = variant == "tiny"

  config = ml_collections.ConfigDict()
  config.experiment = f"video_text_{variant}"
  config.variant = variant
  # One of: all, data, tokenizer, transformer, sample, evaluate.
  config.stage = "all"
  config.seed = 0

  config.data = _data(tiny)
  config.tokenizer = _tokenizer(config.data, tiny)
  config.transformer = _transformer(tiny)
  config.sample = _sample(tiny)
  config.evaluate = _evaluate(tiny)
  config.mesh = _mesh()
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


def _tokenizer(data: ml_collections.ConfigDict, tiny: bool) -> ml_collections.ConfigDict:
  """Per-frame VQGAN (docs/tokenizer.md): f16 at 128 px, 8 x 8 tokens per frame (MMVID)."""
  tok = ml_collections.ConfigDict()
  tok.quantizer = "vq"  # "vq" or "fsq"
  tok.codebook_size = 128 if tiny else 1024  # vq only; fsq has prod(fsq_levels) codes
  tok.fsq_levels = (8, 5, 5, 5)
  tok.embed_dim = 16 if tiny else 256
  tok.channels = 16 if tiny else 128
  # One entry per resolution level; downsampling factor = 2 ** (len(channel_mult) - 1).
  tok.channel_mult = (1, 2, 2) if tiny else (1, 1, 2, 2, 4)
  tok.num_res_blocks = 1 if tiny else 2
  tok.attn_resolutions = () if tiny else (16,)  # plus the mid block's attention
  tok.dropout = 0.0
  tok.downsample_factor = 2 ** (len(tok.channel_mult) - 1)
  tok.latent_size = data.image_size // tok.downsample_factor
  tok.beta = 0.25
  tok.l2_normalize = True
  tok.ema = False
  tok.ema_decay = 0.99
  tok.dead_code_restart = True
  tok.dead_code_threshold = 0.03  # restart codes used < 3% as often as uniform
  tok.usage_decay = 0.9 if tiny else 0.99
  tok.restart_by_error = True  # draw replacements in proportion to their VQ error
  # Losses.
  tok.recon_loss = "l1"  # "l1" or "l2"
  tok.perceptual_weight = 0.0 if tiny else 1.0
  tok.lpips_net = "vgg16"  # or "alexnet"
  tok.eval_lpips_net = "alexnet"
  tok.disc_start = 10**9 if tiny else 20000
  tok.disc_weight = 0.8
  tok.disc_loss = "hinge"  # or "non_saturating"
  tok.disc_channels = 64
  tok.disc_layers = 3
  tok.disc_norm = "group"  # or "none"
  tok.disc_learning_rate = 3e-3 if tiny else 1e-4
  tok.adaptive_disc_weight = True
  tok.r1_weight = 0.0
  tok.lecam_weight = 0.0
  tok.codebook_weight = 1.0
  # Optimisation.
  tok.batch_size = 8 if tiny else 32
  tok.frames_per_clip = 2 if tiny else 4  # random frames per clip in each training batch
  tok.num_steps = 10 if tiny else 100000
  tok.learning_rate = 3e-3 if tiny else 1e-4
  tok.adam_b1 = 0.9
  tok.adam_b2 = 0.99
  tok.grad_clip_norm = 0.0
  tok.warmup_steps = 2 if tiny else 1000
  tok.ema_params_decay = 0.9 if tiny else 0.999
  tok.log_every = 5 if tiny else 100
  tok.eval_every = 10 if tiny else 5000
  tok.checkpoint_every = 10 if tiny else 2000
  tok.max_to_keep = 2
  tok.num_eval_batches = 1 if tiny else 16
  tok.eval_batch_size = 8 if tiny else 16
  return tok


def _transformer(tiny: bool) -> ml_collections.ConfigDict:
  tr = ml_collections.ConfigDict()
  tr.width = 64 if tiny else 768
  tr.depth = 2 if tiny else 12
  tr.num_heads = 2 if tiny else 12
  tr.mlp_dim = 4 * tr.width
  tr.activation = "quick_gelu"  # or "gelu"
  tr.dropout = 0.0
  tr.scan_layers = not tiny
  tr.remat = False  # 512 video + 64 text tokens: activations fit without recomputation.
  tr.attention = "auto"  # or "xla" / "cudnn" (see docs/performance.md)
  # "mmvid" (bidirectional, MSM + REL + VID) or "artv" (the causal ART-V baseline).
  tr.objective = "mmvid"
  tr.text_encoder = "learned"  # "learned" | "bert_pooled" | "bert_tokens"
  tr.embed_init_std = 0.02
  # Text only by default; ("first_frame:keep",) adds the first frame as an image control.
  tr.controls = ()
  tr.insert_sep = False
  tr.separate_control_embedding = False
  # MSM masking (MMVID defaults).
  tr.msm_strategy_prob = (0.7, 0.1, 0.1, 0.1)
  tr.msm_bernoulli_keep = (0.2, 0.2)
  tr.mask_ratio_schedule = "mmvid"  # or "cosine" (MaskGIT)
  tr.beta_msm = 7.0
  tr.beta_rel = 0.5
  tr.beta_vid = 0.5
  tr.vid_strategy_prob = (0.25, 0.25, 0.25, 0.25)
  tr.negatives = "all"  # or "split" (see docs/transformer.md)
  # Optimisation.
  tr.batch_size = 8 if tiny else 32
  tr.num_steps = 10 if tiny else 200000
  tr.learning_rate = 1e-3 if tiny else 3e-4
  tr.lr_schedule = "log_warmup"  # MMVID; or "cosine"
  tr.warmup_steps = 2 if tiny else 5000
  tr.min_learning_rate = 1e-6
  tr.grad_clip_norm = 1.0
  tr.log_every = 5 if tiny else 100
  tr.eval_every = 10 if tiny else 5000
  tr.checkpoint_every = 10 if tiny else 2000
  tr.max_to_keep = 2
  tr.num_eval_batches = 1 if tiny else 8
  return tr


def _sample(tiny: bool) -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.decoder = "mask_predict"  # "mask_predict" | "maskgit" | "ar"
  s.steps = 4 if tiny else 20
  s.num_candidates = 1  # B in MMVID's reranking (candidate masks per step)
  s.dynamic_stop = False
  s.score_on = "completed"  # "completed" or "masked" (MMVID's code)
  s.cfg_scale = 0.0  # classifier-free guidance from the null caption; 0 = off
  s.temperature = 1.0
  s.top_k = 0
  s.choice_temperature = 4.5
  s.noise_schedule = (0.0, 0.0, 0.0, 0.0)  # zeros = MMVID's mask-predict default
  s.dtype = "float32"  # transformer compute precision when sampling: "float32" | "bfloat16"
  s.num_samples = 2 if tiny else 4
  s.num_prompts = 2 if tiny else 8
  s.batch_size = 2 if tiny else 8
  return s


def _evaluate(tiny: bool) -> ml_collections.ConfigDict:
  e = ml_collections.ConfigDict()
  e.protocol = "default"  # or "mmvid": the paper's FVD/PRD protocol (docs/evaluation.md)
  e.eval_num = 2048  # protocol "mmvid": clips
  e.protocol_decoders = ()  # protocol "mmvid": e.g. "mmvid,artv"; empty: every trained method
  e.split = "test"
  e.num_videos = 2 if tiny else 2048  # MMVID's FVD protocol: 2048 videos.
  e.batch_size = 2 if tiny else 16
  e.compare = ()
  e.ar_workdir = ""
  e.fvd = not tiny
  e.i3d_batch_size = 16
  e.prd_clusters = 20
  e.prd_angles = 1001
  e.prd_runs = 10
  e.lpips_net = "alexnet"
  e.num_gallery = 2 if tiny else 8
  return e


def _mesh() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  # -1 = all remaining devices.
  m.data = -1
  m.fsdp = 1
  m.model = 1
  return m
