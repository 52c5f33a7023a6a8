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

import ml_collections

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

  config = ml_collections.ConfigDict()
  config.experiment = f"mmvoxceleb_{variant}"
  config.variant = variant
  config.mode = mode
  # One of: all, data, tokenizer, transformer, sample, evaluate.
  config.stage = "all"
  config.seed = 0

  config.data = _data(mode, tiny)
  config.tokenizer = _tokenizer(config.data, tiny)
  config.transformer = _transformer(mode, tiny)
  config.sample = _sample(tiny)
  config.evaluate = _evaluate(tiny)
  config.mesh = _mesh()
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
  # Losses (MMVID's vox VQGAN: disc_start 10000, disc_weight 0.8).
  tok.recon_loss = "l1"  # "l1" or "l2"
  tok.perceptual_weight = 0.0 if tiny else 1.0
  tok.lpips_net = "vgg16"  # or "alexnet"
  tok.eval_lpips_net = "alexnet"
  tok.disc_start = 10**9 if tiny else 10000
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
  tok.batch_size = 8 if tiny else 48
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


def _transformer(mode: str, tiny: bool) -> ml_collections.ConfigDict:
  controls, _, _, _, batch, steps = _MODES[mode]
  tr = ml_collections.ConfigDict()
  tr.width = 64 if tiny else 768
  tr.depth = 2 if tiny else 12
  tr.num_heads = 2 if tiny else 12
  tr.mlp_dim = 4 * tr.width
  tr.activation = "quick_gelu"  # or "gelu"
  tr.dropout = 0.0
  tr.scan_layers = not tiny
  tr.remat = False  # at most 512 video + 256 control + 50 text tokens: fits without it
  # Training compute precision: "float32" or "bfloat16" (see docs/performance.md).
  tr.compute_dtype = "float32"
  tr.attention = "auto"  # or "xla" / "cudnn" (see docs/performance.md)
  # "mmvid" (bidirectional, MSM + REL + VID) or "artv" (the causal ART-V baseline).
  tr.objective = "mmvid"
  # text_aug: MMVID's frozen RoBERTa sentence encoder becomes the packaged MiniLM (pooled).
  tr.text_encoder = "bert_pooled" if mode == "text_aug" else "learned"
  tr.embed_init_std = 0.02
  tr.controls = controls  # "<source>:<erasing mode>" per slot (mmvoxceleb_input)
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
  # Optimisation (MMVID: Adam 1e-4 after a log warm-up, clip 1.0).
  tr.batch_size = 8 if tiny else batch
  tr.num_steps = 10 if tiny else steps
  tr.learning_rate = 1e-3 if tiny else 1e-4
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
  s.steps = 4 if tiny else 20  # MMVID evaluation.sh: mp_T 20
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
  # "default": the measures below; "mmvid": the paper's FVD/PRD protocol (eval_num clips at
  # 128 px, MMVID's decoding; docs/evaluation.md). MMVID evaluated on its training folder:
  # add --config.evaluate.split=train for that.
  e.protocol = "default"
  e.eval_num = 2048  # protocol "mmvid": clips (all of the split when it holds fewer)
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
  m.logical_axis_rules = (
      ("batch", ("data", "fsdp")),
      ("embed", "fsdp"),
      ("mlp", "model"),
      ("heads", "model"),
      ("vocab", "model"),
  )
  return m
