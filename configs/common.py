"""Section builders every experiment config starts from (configs/shapes.py's values).

Two levels, so each config states only what it changes (`base_config` holds the top-level keys):
- `tokenizer_section`, `transformer_section`, `sample_section`, `evaluate_section`,
  `mesh_section`: every key with its Shapes default (and its `tiny` value);
- `mmvid_scale_*`: the same, resized to MMVID's real-dataset runs (128 px frames, a per-frame
  VQGAN f16 with 1024 codes, a 12 x 768 transformer; MUGEN, MM-Vox, iPER, MUG, your own videos)
  with a `tiny` counterpart that runs on CPU in minutes.
Configs override the values that differ with `section.update(...)`, saying why next to them.
"""

import ml_collections


def base_config(experiment: str, variant: str) -> ml_collections.ConfigDict:
  """The top-level keys; the config file adds its sections."""
  config = ml_collections.ConfigDict()
  config.experiment = experiment
  config.variant = variant
  # One of: all, data, tokenizer, transformer, sample, evaluate.
  config.stage = "all"
  config.seed = 0
  return config


def tokenizer_section(image_size: int, tiny: bool, channel_mult: tuple | None = None
                      ) -> ml_collections.ConfigDict:
  """Per-frame VQGAN (docs/tokenizer.md). Shapes default and tiny: f4, an 8x8 grid per 32 px frame
  (a 4x4 grid at f8 loses the shapes: docs/tokenizer.md). `channel_mult` sets the levels (and so
  the downsampling factor and latent grid) instead of the default's."""
  tok = ml_collections.ConfigDict()
  tok.quantizer = "vq"  # "vq" or "fsq"
  tok.codebook_size = 128 if tiny else 256  # vq; fsq: prod(fsq_levels)
  tok.fsq_levels = (8, 5, 5, 5)
  tok.embed_dim = 16 if tiny else 32
  tok.channels = 16
  # One entry per resolution level; downsampling factor = 2 ** (len(channel_mult) - 1).
  tok.channel_mult = channel_mult or ((1, 2, 2) if tiny else (1, 2, 4))
  tok.num_res_blocks = 1
  tok.attn_resolutions = ()  # the mid block always has one attention layer
  # "global": taming's encoder (GroupNorm + mid-block attention, every latent sees the frame);
  # "local": per-position norm, no attention; "patch": each latent sees only its own patch, so
  # equal patches get equal codes (docs/tokenizer.md).
  tok.encoder_context = "global"
  tok.dropout = 0.0
  tok.downsample_factor = 2 ** (len(tok.channel_mult) - 1)
  tok.latent_size = image_size // tok.downsample_factor
  tok.beta = 0.25
  tok.l2_normalize = True
  tok.ema = False
  tok.ema_decay = 0.99
  tok.dead_code_restart = True
  tok.dead_code_threshold = 0.03  # restart codes used < 3% as often as uniform
  tok.usage_decay = 0.9
  tok.restart_by_error = True  # draw replacements in proportion to their VQ error
  # Losses.
  # L2 learns colour far sooner than L1 on Shapes (docs/tokenizer.md: 25.0 vs 19.3 dB PSNR).
  tok.recon_loss = "l2"  # "l2" or "l1" (taming)
  tok.perceptual_weight = 0.0  # LPIPS is costly on CPU; 1.0 is taming's value
  tok.lpips_net = "vgg16"  # or "alexnet"
  tok.eval_lpips_net = "alexnet"
  tok.disc_start = 10**9  # GAN off for the CPU budget; e.g. 2000 with longer runs
  tok.disc_weight = 0.8
  tok.disc_loss = "hinge"  # or "non_saturating"
  tok.disc_channels = 64
  tok.disc_layers = 3
  tok.disc_norm = "group"  # or "none"
  tok.disc_learning_rate = 2e-3 if not tiny else 3e-3
  tok.adaptive_disc_weight = True
  tok.r1_weight = 0.0
  tok.lecam_weight = 0.0
  tok.codebook_weight = 1.0
  # Optimisation.
  tok.batch_size = 8
  tok.frames_per_clip = 2  # random frames per clip in each training batch
  # 1500 steps: 31.7 dB validation PSNR in 5 minutes on the loaded 2-core CPU (docs/tokenizer.md).
  tok.num_steps = 30 if tiny else 1500
  tok.learning_rate = 3e-3 if tiny else 2e-3
  tok.adam_b1 = 0.9
  tok.adam_b2 = 0.99
  tok.grad_clip_norm = 0.0
  tok.warmup_steps = 5 if tiny else 20
  tok.ema_params_decay = 0.9 if tiny else 0.98
  tok.log_every = 10 if tiny else 20
  tok.eval_every = 30 if tiny else 750
  tok.checkpoint_every = 30 if tiny else 500
  tok.max_to_keep = 2
  tok.num_eval_batches = 2 if tiny else 4
  tok.eval_batch_size = 8 if tiny else 16
  return tok


def transformer_section(tiny: bool) -> ml_collections.ConfigDict:
  tr = ml_collections.ConfigDict()
  # Sized for the end-to-end CPU budget (see docs/transformer.md, "Shapes default config").
  tr.width = 64 if tiny else 128
  tr.depth = 2 if tiny else 4
  tr.num_heads = 2 if tiny else 4
  tr.mlp_dim = 4 * tr.width
  tr.activation = "quick_gelu"  # or "gelu"
  tr.dropout = 0.0
  tr.scan_layers = False
  tr.remat = False
  # With remat, what each block keeps for the backward pass: "full" (only its input), "attention"
  # (+ q, k, v and the attention output), "dots" (+ every matmul output). docs/performance.md.
  tr.remat_policy = "full"
  # Training compute precision: "float32" or "bfloat16" (bf16 matmuls and activations; params,
  # LayerNorm, softmax and losses stay fp32). See docs/performance.md.
  tr.compute_dtype = "float32"
  # Attention kernel: "auto" (cuDNN fused attention on a CUDA GPU with bf16/fp16 compute, the
  # einsum path otherwise), "xla" (always einsum) or "cudnn". See docs/performance.md.
  tr.attention = "auto"
  # "mmvid" (bidirectional, MSM + REL + VID) or "artv" (the causal ART-V baseline).
  tr.objective = "mmvid"
  tr.text_encoder = "learned"  # "learned" | "bert_pooled" | "bert_tokens"
  # Embedding init std (MMVID: 1.0 on a pretrained CLIP trunk; 0.02 trains better from scratch).
  tr.embed_init_std = 0.02
  # Trunk and head kernels: "lecun" (N(0, 1/fan_in)) or "normal" (N(0, 0.02), CLIP / GPT-2).
  # MMVID fine-tunes a trained CLIP trunk; from scratch at width 128, 0.02 leaves the attention
  # logits ~20x too flat and the caption's words bind hundreds of steps later (docs/transformer.md).
  tr.dense_init = "lecun"
  # Video axial position tables start as N(0, std) ("normal", MMVID) or as a 3-D sin-cos code
  # ("sincos": neighbours start similar, docs/transformer.md).
  tr.position_init = "normal"
  # Not in MMVID: "video_3d" also rotates video queries/keys by their (t, y, x) (rotary
  # position encoding, a quarter of each head's channel pairs per axis; docs/transformer.md).
  tr.rotary = "none"
  # Not in MMVID: "pixels" starts the code embedding rows from a random projection of what each
  # code decodes to (similar codes start close), "pixels_and_head" also the video head's
  # columns; "random" = MMVID (docs/transformer.md).
  tr.code_embedding_init = "random"
  # Not in MMVID: add a projection of the mean text embedding to every video token's input, a
  # direct text path beside attention (docs/transformer.md, "Text summary").
  tr.text_summary = False
  # Not in MMVID: kernel size of a depthwise 3-D convolution over the video tokens at the start
  # of every block (0 = off; MMVID objective only; docs/transformer.md, "Video convolution").
  tr.video_conv = 0
  # Control slots: each is "<source>:<erasing mode>"; none = text only.
  tr.controls = ()
  # One [SEP] after each control slot (MMVID's insert_sep, used for Shapes dependent).
  tr.insert_sep = False
  # Own embedding table for control codes (MMVID does this when a second tokenizer is used).
  tr.separate_control_embedding = False
  # MSM masking (MMVID defaults).
  tr.msm_strategy_prob = (0.7, 0.1, 0.1, 0.1)
  tr.msm_bernoulli_keep = (0.2, 0.2)
  tr.mask_ratio_schedule = "mmvid"  # or "cosine" (MaskGIT)
  # MMVID's pc_prob (0 in its scripts): the share of samples that also show 1..T/2 whole frames.
  tr.msm_preserve_prob = 0.0
  # Not in MMVID: the share of shown video tokens replaced by codes from elsewhere in the batch
  # and predicted like masked ones (training only; docs/transformer.md, "Corrupted tokens").
  tr.msm_corrupt_prob = 0.0
  tr.beta_msm = 7.0
  tr.beta_rel = 0.5
  tr.beta_vid = 0.5
  tr.vid_strategy_prob = (0.25, 0.25, 0.25, 0.25)
  # Not in MMVID: no VID loss for a negative whose visible tokens equal its positive's
  # (12% of the Shapes default's pairs; docs/transformer.md, "How hard the VID task is").
  tr.vid_skip_identical = False
  # "all": REL and VID negative passes for every sample (MMVID); "split": half the batch each
  # (2 passes per sample instead of 3; see docs/transformer.md).
  tr.negatives = "all"
  # Optimisation.
  # The Shapes default's S = 535 costs ~1.7 s per batch-8 step on the 2-core CPU (docs/results.md).
  tr.batch_size = 8
  tr.num_steps = 30 if tiny else 400
  tr.learning_rate = 1e-3
  tr.lr_schedule = "log_warmup"  # MMVID; or "cosine"
  tr.warmup_steps = 5 if tiny else 50
  tr.min_learning_rate = 1e-6
  tr.grad_clip_norm = 1.0
  # Not in MMVID: validation and the export use a moving average of the parameters with this
  # decay (0 = off: the last parameters, as MMVID). docs/transformer.md, "Parameter average".
  tr.ema_decay = 0.0
  tr.log_every = 10 if tiny else 50
  tr.eval_every = 30 if tiny else 200
  tr.checkpoint_every = 30 if tiny else 200
  tr.max_to_keep = 2
  tr.num_eval_batches = 2 if tiny else 4
  return tr


def sample_section(tiny: bool) -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.decoder = "mask_predict"  # "mask_predict" | "maskgit" | "ar"
  s.steps = 20 if not tiny else 8
  s.num_candidates = 1  # B in MMVID's reranking (candidate masks per step)
  s.dynamic_stop = False  # keep the best REL/VID-scored video, stop after 5 flat steps
  # Where candidates are scored: "completed" (their finished videos) or "masked" (MMVID's code).
  s.score_on = "completed"
  s.cfg_scale = 0.0  # classifier-free guidance from the null caption; 0 = off
  s.temperature = 1.0  # softmax temperature of the token draws (every decoder; 1 = MMVID)
  s.top_k = 0  # ART-V top-k filter; 0 = off
  s.choice_temperature = 4.5  # MaskGIT re-masking noise
  # mask-predict Gumbel-noise schedule (alpha1, beta1, alpha2, alpha3); zeros = MMVID default.
  s.noise_schedule = (0.0, 0.0, 0.0, 0.0)
  s.dtype = "float32"  # transformer compute precision when sampling: "float32" | "bfloat16"
  s.num_samples = 2 if tiny else 4
  s.num_prompts = 2 if tiny else 8  # held-out captions (clips)
  s.batch_size = 8
  # Long videos (spec 5.4, `python -m mmvid_jax.sample`): extrapolation chains num_clips clips,
  # each keeping the last t_overlap frames of the previous one (1 = a normal video; t_overlap -1 =
  # half the clip, 0 = independent clips); interpolation doubles the frame rate interp_levels times.
  s.num_clips = 1
  s.t_overlap = -1
  s.interp_levels = 2  # MMVID --t_repeat 2: 4x the frame rate
  return s


def evaluate_section(tiny: bool) -> ml_collections.ConfigDict:
  e = ml_collections.ConfigDict()
  # "default": the measures below; "mmvid": the paper's FVD/PRD protocol (eval_num clips at
  # 128 px, MMVID's decoding; writes evaluation/protocol_mmvid.{json,md}; docs/evaluation.md).
  e.protocol = "default"
  e.eval_num = 2048  # protocol "mmvid": clips (all of the split when it holds fewer)
  # protocol "mmvid": methods, e.g. "mmvid,artv"; empty: every method a model exists for.
  e.protocol_decoders = ()
  # Held-out clips, first num_videos in order; one generated video each (MMVID: 2048).
  e.split = "test"
  e.num_videos = 16 if tiny else 64
  e.batch_size = 8 if tiny else 16  # generation / tokenizer / REL batch
  # Decoder settings to compare, "<decoder>[_b<B>][_s<steps>]" (docs/evaluation.md);
  # empty: config.sample's decoder. E.g. ("mask_predict", "mask_predict_b4_s5", "maskgit").
  e.compare = ()
  # Workdir of an ART-V run (same data and tokenizer) for the "ar" entry of compare.
  e.ar_workdir = ""
  # FVD + PRD with the packaged Kinetics-400 I3D (slow on CPU: ~1 s per clip).
  e.fvd = not tiny
  e.i3d_batch_size = 16  # MMVID/FVD protocol
  e.prd_clusters = 20
  e.prd_angles = 1001
  e.prd_runs = 10
  e.lpips_net = "alexnet"  # or "vgg16"
  e.num_gallery = 8  # videos per setting in TensorBoard and the comparison GIFs
  return e


def mesh_section() -> ml_collections.ConfigDict:
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


# MMVID's real-dataset scale. `tiny` keeps the Shapes tiny model and shortens its schedule further.


def mmvid_scale_tokenizer(image_size: int, tiny: bool, channel_mult: tuple = (1, 1, 2, 2, 4)
                          ) -> ml_collections.ConfigDict:
  """MMVID's per-frame VQGAN: f16 at 128 px (8 x 8 tokens per frame), 1024 codes, L1 + LPIPS,
  a GAN from step 20000; a long accelerator schedule."""
  tok = tokenizer_section(image_size, tiny, channel_mult=None if tiny else channel_mult)
  tok.recon_loss = "l1"  # taming's loss at MMVID's scale
  if tiny:
    tok.update(num_steps=10, warmup_steps=2, log_every=5, eval_every=10, checkpoint_every=10,
               num_eval_batches=1)
    return tok
  tok.update(codebook_size=1024, embed_dim=256, channels=128, num_res_blocks=2,
             attn_resolutions=(16,),  # plus the mid block's attention
             usage_decay=0.99, perceptual_weight=1.0, disc_start=20000, disc_learning_rate=1e-4,
             batch_size=32, frames_per_clip=4, num_steps=100000, learning_rate=1e-4,
             warmup_steps=1000, ema_params_decay=0.999, log_every=100, eval_every=5000,
             checkpoint_every=2000, num_eval_batches=16, eval_batch_size=16)
  return tok


def mmvid_scale_transformer(tiny: bool) -> ml_collections.ConfigDict:
  """A 12 x 768 transformer (~90M parameters; scanned layers), batch 32, 200k steps at 3e-4."""
  tr = transformer_section(tiny)
  tr.scan_layers = not tiny
  if tiny:
    tr.update(num_steps=10, warmup_steps=2, log_every=5, eval_every=10, checkpoint_every=10,
              num_eval_batches=1)
    return tr
  tr.update(width=768, depth=12, num_heads=12, mlp_dim=4 * 768, batch_size=32, num_steps=200000,
            learning_rate=3e-4, warmup_steps=5000, log_every=100, eval_every=5000,
            checkpoint_every=2000, num_eval_batches=8)
  return tr


def mmvid_scale_sample(tiny: bool) -> ml_collections.ConfigDict:
  s = sample_section(tiny)
  s.update(steps=4 if tiny else 20, batch_size=2 if tiny else 8)
  return s


def mmvid_scale_evaluate(tiny: bool) -> ml_collections.ConfigDict:
  e = evaluate_section(tiny)
  # MMVID's FVD protocol: 2048 videos.
  e.update(num_videos=2 if tiny else 2048, batch_size=2 if tiny else 16,
           num_gallery=2 if tiny else 8)
  return e
