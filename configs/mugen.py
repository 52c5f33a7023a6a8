"""MUGEN (CoinRun gameplay + captions): text -> video, rendered from game states.

    python -m mmvid_jax.main --config=configs/mugen.py --workdir=runs/mugen \
        --config.data.manual_dir=PATH/coinrun_dataset_jsons/release \
        --config.data.asset_dir=PATH/coinrun/assets
    python -m mmvid_jax.main --config=configs/mugen.py:tiny --workdir=runs/mugen_tiny \
        --config.data.manual_dir=... --config.data.asset_dir=...   # CPU, minutes

MUGEN is obtained from https://mugen-org.github.io/download (split files, per-clip game-state
JSONs, the coinrun sprite assets); see docs/mugen.md.

Sizing (default variant, for a TPU v4-8 or one 8-GPU node):
- frames: 16 at frame_step 6, i.e. frames 0, 6, ..., 90 of the 96-frame (3.2 s, 30 fps) clip:
  the whole clip the caption describes, at 5 fps (Mugen crosses a tile in ~6 frames).
- resolution: 128 px (tile = 11 px, the agent 11 x 22 px).
- tokenizer: per-frame VQGAN, downsampling 8 (a token covers 8 x 8 px, under one tile, so the
  small sprites survive), 1024 codes -> 16 x 16 = 256 tokens per frame, 4096 per clip.
- transformer: 12 layers x 768 wide (~90M parameters), remat on, batch 16 (4 clips per chip
  of a v4-8, 2 per GPU of an 8-GPU node: what fits a v4 chip's 32 GiB, see
  docs/performance.md); 4096 video + 64 text tokens of full attention per clip.
"""

import ml_collections

VARIANTS = ("default", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/mugen.py: unknown variant {variant!r}; choose one of {VARIANTS}.")
  tiny = variant == "tiny"

  config = ml_collections.ConfigDict()
  config.experiment = f"mugen_{variant}"
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
  tok = ml_collections.ConfigDict()
  tok.quantizer = "vq"  # "vq" or "fsq"
  tok.codebook_size = 128 if tiny else 1024  # vq only; fsq has prod(fsq_levels) codes
  tok.fsq_levels = (8, 5, 5, 5)
  tok.embed_dim = 16 if tiny else 64
  tok.channels = 16 if tiny else 128
  # One entry per resolution level; downsampling factor = 2 ** (len(channel_mult) - 1).
  tok.channel_mult = (1, 2, 2) if tiny else (1, 2, 2, 4)
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
  tr.remat = not tiny  # 4096-token sequences: recompute activations in the backward pass.
  # Training compute precision: "float32" or "bfloat16" (bf16 matmuls and activations; params,
  # LayerNorm, softmax and losses stay fp32). See docs/performance.md.
  tr.compute_dtype = "float32"
  tr.attention = "auto"  # or "xla" / "cudnn" (see docs/performance.md)
  # "mmvid" (bidirectional, MSM + REL + VID) or "artv" (the causal ART-V baseline).
  tr.objective = "mmvid"
  tr.text_encoder = "learned"  # "learned" | "bert_pooled" | "bert_tokens"
  tr.embed_init_std = 0.02
  tr.controls = ()  # MUGEN conditions on text only.
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
  # "all": REL and VID negative passes for every sample (MMVID); "split" halves the batch
  # between them (2 passes per sample instead of 3: a third less compute at 4096 tokens).
  tr.negatives = "all"
  # Optimisation.
  # 16 = 4 clips per TPU v4 chip on a v4-8 (3 passes of 4163 tokens each, with full attention
  # in XLA: ~27 GiB of the 32 GiB HBM; 32 needs ~52 GiB). docs/performance.md has the plan.
  tr.batch_size = 8 if tiny else 16
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
  # mask-predict Gumbel-noise schedule (alpha1, beta1, alpha2, alpha3); zeros = MMVID default.
  s.noise_schedule = (0.0, 0.0, 0.0, 0.0)
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
  # Logical axis name -> mesh axes (None = replicated), first match wins; a mesh axis is used
  # once per array. Same as mmvid_jax.infra.mesh.DEFAULT_LOGICAL_RULES; see docs/performance.md.
  m.logical_axis_rules = (
      ("batch", ("data", "fsdp")),
      ("embed", "fsdp"),
      ("mlp", "model"),
      ("heads", "model"),
      ("vocab", "model"),
  )
  return m
