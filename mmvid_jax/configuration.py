"""Config checks that run before any compute is spent.

Each check raises `ConfigError` naming the key and a fix. Sections a stage owns
(tokenizer, transformer, ...) are checked here too, so every mistake surfaces
at start-up rather than minutes into a run.
"""

import os

import ml_collections

from mmvid_jax.errors import ConfigError, UserError

STAGES = ("all", "data", "tokenizer", "transformer", "sample", "evaluate")


def _positive(config: ml_collections.ConfigDict, section: str, keys: tuple[str, ...]):
  sub = config.get(section)
  if sub is None:
    return
  for key in keys:
    if key in sub and not (isinstance(sub[key], (int, float)) and sub[key] > 0):
      raise ConfigError(f"{section}.{key}", f"must be a positive number, got {sub[key]!r}",
                        f"pass --config.{section}.{key}=<a positive value>")


def _one_of(section: str, key: str, value, allowed: tuple):
  if value not in allowed:
    raise ConfigError(f"{section}.{key}", f"unknown value {value!r}",
                      f"use one of {', '.join(map(str, allowed))}")


def _check_data(config: ml_collections.ConfigDict) -> None:
  """The data section (datasets, pipeline, text) and the control sources it must produce."""
  data = config.data
  if data.get("name") != "shapes":
    return  # Other datasets check their own keys.
  from mmvid_jax.data import pipeline, shapes, text  # Light: no TensorFlow at import.
  _one_of("data", "source", data.source, pipeline.SOURCES)
  _one_of("data", "background", data.background, shapes.BACKGROUND_MODES)
  _one_of("data", "text_tokenizer", data.text_tokenizer, text.TOKENIZER_NAMES)
  if not 0.0 <= data.null_caption_prob <= 1.0:
    raise ConfigError("data.null_caption_prob", f"{data.null_caption_prob} is not a probability",
                      "use a value in [0, 1]")
  if data.image_size < 16:
    raise ConfigError("data.image_size", f"{data.image_size} px is too small to draw shapes",
                      "use at least 16 (32 for tests, 64 by default)")
  if data.text_tokenizer == "sentencepiece" and data.sentencepiece_vocab_size < 64:
    raise ConfigError("data.sentencepiece_vocab_size", f"{data.sentencepiece_vocab_size} is too "
                      "small to hold the caption characters", "use at least 64 (default 192)")
  _check_motion_grid(data, shapes)
  for key in ("shuffle_buffer", "prefetch"):
    if data[key] < 0:
      raise ConfigError(f"data.{key}", f"must be >= 0, got {data[key]}", f"pass --config.data.{key}=0 or more")
  for entry in config.get("transformer", {}).get("controls", ()):
    source = str(entry).split(":", 1)[0]
    if source not in pipeline.CONTROL_SOURCES:
      raise ConfigError("transformer.controls", f"unknown control source {source!r} in {entry!r}",
                        f"write entries as '<source>:<erasing mode>' with source one of "
                        f"{', '.join(pipeline.CONTROL_SOURCES)}")


def _check_motion_grid(data, shapes) -> None:
  """Grid motion needs room for every object to take two steps on each axis."""
  grid = data.get("motion_grid", 0)
  if not isinstance(grid, int) or grid < 0:
    raise ConfigError("data.motion_grid", f"must be a whole number of pixels >= 0, got {grid!r}",
                      "use 0 for smooth motion or a grid step such as 4 (the tokenizer's factor)")
  if not grid:
    return
  steps = int(shapes.grid_travel_steps(int(data.image_size), grid).min())
  if steps < 2:
    raise ConfigError("data.motion_grid",
                      f"a {grid}-pixel grid leaves the largest objects {steps} step(s) of travel in "
                      f"{data.image_size}-pixel frames",
                      "use a smaller data.motion_grid (or 0 for smooth motion), or raise "
                      "data.image_size")


def validate(config: ml_collections.ConfigDict, num_devices: int = 1) -> None:
  """Raises ConfigError on the first invalid value."""
  if config.stage not in STAGES:
    raise ConfigError("stage", f"unknown stage {config.stage!r}",
                      f"use one of {', '.join(STAGES)}")
  _positive(config, "data", ("image_size", "num_frames", "frame_step", "clip_frames",
                             "num_train", "num_validation", "num_test", "text_seq_len"))
  _positive(config, "tokenizer", ("codebook_size", "embed_dim", "channels", "batch_size",
                                  "num_steps", "learning_rate", "num_res_blocks"))
  _positive(config, "transformer", ("width", "depth", "num_heads", "mlp_dim", "batch_size",
                                    "num_steps", "learning_rate"))
  _positive(config, "sample", ("steps", "num_samples", "num_candidates"))
  _positive(config, "evaluate", ("num_videos", "batch_size", "i3d_batch_size", "prd_clusters",
                                 "prd_angles", "prd_runs", "eval_num"))

  data = config.data
  needed = (data.num_frames - 1) * data.frame_step + 1
  if "clip_frames" in data and needed > data.clip_frames:
    raise ConfigError(
        "data.frame_step",
        f"{data.num_frames} frames at step {data.frame_step} need {needed} source frames but "
        f"clips have {data.clip_frames}",
        "lower data.num_frames or data.frame_step, or raise data.clip_frames")
  _check_data(config)
  if "transformer" in config:
    _check_transformer(config)

  if "tokenizer" in config:
    factor = config.tokenizer.downsample_factor
    expected = 2 ** (len(config.tokenizer.channel_mult) - 1)
    if factor != expected:
      raise ConfigError("tokenizer.downsample_factor",
                        f"is {factor} but channel_mult has {len(config.tokenizer.channel_mult)} "
                        f"levels, which downsample by {expected}",
                        "set it to 2 ** (len(channel_mult) - 1) or change channel_mult")
    if data.image_size % factor:
      raise ConfigError("data.image_size",
                        f"{data.image_size} is not divisible by the tokenizer's downsampling "
                        f"factor {factor}",
                        f"use a multiple of {factor} (e.g. {max(factor, data.image_size // factor * factor)})")
    _check_tokenizer(config)

  _check_batch_split(config, num_devices)

  if data.get("name") == "mugen":
    _check_mugen_paths(data)
  if data.get("name") == "video_text":
    _check_video_text(data)
  if data.get("name") == "mmvoxceleb":
    _check_mmvoxceleb(data)
  if data.get("name") in ("iper", "mug"):
    _check_frame_folder_dataset(config)
  for key in ("manual_dir", "asset_dir"):
    path = data.get(key)
    if path and not os.path.isdir(path):
      raise ConfigError(f"data.{key}", f"directory {path!r} does not exist",
                        f"point --config.data.{key} at the folder that holds the dataset")

  if "sample" in config:
    _check_sample(config)
  if "evaluate" in config:
    _check_evaluate(config)



def _check_batch_split(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Training batches are split evenly over the mesh's data x fsdp devices."""
  from mmvid_jax.infra import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  mesh = config.get("mesh", {})
  try:
    data, fsdp, _ = mesh_lib.mesh_shape(mesh, num_devices)
    shards = data * fsdp
  except ConfigError:  # A mesh that does not fit the devices is named by make_mesh.
    shards = num_devices
  for section in ("tokenizer", "transformer"):
    batch = int(config[section].batch_size) if section in config else shards
    if batch % shards:
      fix = (f"pass --config.{section}.batch_size={-(-batch // shards) * shards} "
             f"(a multiple of {shards})")
      # With mesh.data = -1, a model axis of size m leaves num_devices / m for the batch.
      model = next((m for m in range(2, num_devices + 1)
                    if num_devices % m == 0 and batch % (num_devices // m) == 0), None)
      if model and mesh.get("data", -1) == -1 and mesh.get("fsdp", 1) == 1:
        fix += (f", or keep {batch} on a mesh whose data x fsdp divides it: "
                f"--config.mesh.model={model} (data = {num_devices // model})")
      raise ConfigError(f"{section}.batch_size", f"{batch} is not divisible by the {shards} "
                        "devices that split the batch (mesh data x fsdp)", fix)


def _check_tokenizer(config: ml_collections.ConfigDict) -> None:
  """Choices and ranges of the tokenizer section (stage 1)."""
  tok = config.tokenizer
  _one_of("tokenizer", "quantizer", tok.quantizer, ("vq", "fsq"))
  _one_of("tokenizer", "recon_loss", tok.recon_loss, ("l1", "l2"))
  _one_of("tokenizer", "disc_loss", tok.disc_loss, ("hinge", "non_saturating"))
  _one_of("tokenizer", "lpips_net", tok.lpips_net, ("alexnet", "vgg16"))
  _one_of("tokenizer", "eval_lpips_net", tok.get("eval_lpips_net", "alexnet"), ("alexnet", "vgg16"))
  _one_of("tokenizer", "disc_norm", tok.get("disc_norm", "group"), ("group", "none"))
  if tok.quantizer == "fsq" and (len(tok.fsq_levels) < 1
                                 or any(int(l) != l or l < 2 for l in tok.fsq_levels)):
    raise ConfigError("tokenizer.fsq_levels", f"{tuple(tok.fsq_levels)} must be integers >= 2",
                      "use e.g. (8, 5, 5, 5) for 1000 codes")
  expected_latent = config.data.image_size // tok.downsample_factor
  if tok.get("latent_size", expected_latent) != expected_latent:
    raise ConfigError("tokenizer.latent_size", f"is {tok.latent_size} but {config.data.image_size} "
                      f"px frames downsampled by {tok.downsample_factor} give {expected_latent}",
                      "set it to data.image_size // downsample_factor")
  for key in ("perceptual_weight", "disc_weight", "r1_weight", "lecam_weight", "codebook_weight",
              "beta", "warmup_steps", "disc_start"):
    if key in tok and tok[key] < 0:
      raise ConfigError(f"tokenizer.{key}", f"must be >= 0, got {tok[key]!r}",
                        f"pass --config.tokenizer.{key}=0 or more")
  for key in ("ema_decay", "ema_params_decay", "usage_decay"):
    if key in tok and not 0.0 <= tok[key] < 1.0:
      raise ConfigError(f"tokenizer.{key}", f"{tok[key]!r} is not a decay in [0, 1)",
                        "use e.g. 0.99")
  frames = tok.get("frames_per_clip", 1)
  if not 1 <= frames:
    raise ConfigError("tokenizer.frames_per_clip", f"must be >= 1, got {frames!r}",
                      f"use 1 to {config.data.num_frames}")
  context = tok.get("encoder_context", "global")
  if context not in ("global", "local", "patch"):
    raise ConfigError("tokenizer.encoder_context", f"{context!r} is not an encoder context",
                      "use 'global' (taming), 'local' (per-position norm, no attention) or "
                      "'patch' (each latent sees only its own patch)")
  if any(r not in [config.data.image_size // 2 ** i for i in range(len(tok.channel_mult))]
         for r in tok.attn_resolutions):
    raise ConfigError("tokenizer.attn_resolutions", f"{tuple(tok.attn_resolutions)} includes a "
                      "resolution the encoder never reaches",
                      f"use sizes among {[config.data.image_size // 2 ** i for i in range(len(tok.channel_mult))]}")


def _check_mugen_paths(data: ml_collections.ConfigDict) -> None:
  """MUGEN is never downloaded at run time: both of its folders must be given."""
  missing = [key for key in ("manual_dir", "asset_dir") if not data.get(key)]
  if missing:
    raise ConfigError(
        f"data.{missing[0]}",
        ("is not set, nor is config.data.asset_dir" if len(missing) == 2 else "is not set") +
        "; MUGEN is not downloaded at run time (get it from https://mugen-org.github.io/download)",
        "pass --config.data.manual_dir=<coinrun_dataset_jsons/release, holding train.json, "
        "val.json, test.json> and --config.data.asset_dir=<coinrun/assets, holding kenney/, "
        "kenneyLarge/, backgrounds/, bubble_shield.png>; clips are found under the split "
        "file's data_folder or --config.data.root_dir")
  root = data.get("root_dir")
  if root and not os.path.isdir(root):
    raise ConfigError("data.root_dir", f"directory {root!r} does not exist",
                      "point it at the folder the split files' json_file paths are relative to, "
                      "or leave it empty")


def _check_video_text(data: ml_collections.ConfigDict) -> None:
  """A user's own folder of videos: the folder is the one required setting."""
  from mmvid_jax.data import text, video_text_data  # Light: no TensorFlow at import.
  layout = video_text_data.LAYOUT
  if not data.get("manual_dir"):
    raise ConfigError("data.manual_dir", "is not set; video_text trains on your own folder of "
                      "videos", f"pass --config.data.manual_dir=<a folder of {layout}>")
  if os.path.isdir(data.manual_dir) and not os.listdir(data.manual_dir):
    raise ConfigError("data.manual_dir", f"folder {data.manual_dir!r} is empty",
                      f"fill it with {layout}")
  _one_of("data", "source", data.source, ("tfds",))
  _one_of("data", "text_tokenizer", data.text_tokenizer, text.TOKENIZER_NAMES)
  fractions = tuple(data.get("split_fractions", (0.9, 0.05, 0.05)))
  if (len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0
      or abs(sum(fractions) - 1.0) > 1e-6):
    raise ConfigError("data.split_fractions", f"{fractions} is not (train, validation, test) "
                      "fractions summing to 1 with train > 0", "pass e.g. '(0.9, 0.05, 0.05)'")
  if not 0.0 <= data.null_caption_prob <= 1.0:
    raise ConfigError("data.null_caption_prob", f"{data.null_caption_prob} is not a probability",
                      "use a value in [0, 1]")


def _check_mmvoxceleb(data: ml_collections.ConfigDict) -> None:
  """Multimodal VoxCeleb is never downloaded: the release folder is the one required setting."""
  from mmvid_jax.data import mmvoxceleb_data, text  # Light: no TensorFlow at import.
  layout = mmvoxceleb_data.LAYOUT
  if not data.get("manual_dir"):
    raise ConfigError("data.manual_dir", "is not set; Multimodal VoxCeleb is not downloaded at "
                      "run time", f"pass --config.data.manual_dir=<the folder holding {layout}>")
  for folder in ("video", "label"):
    if os.path.isdir(data.manual_dir) and not os.path.isdir(os.path.join(data.manual_dir,
                                                                         folder)):
      raise ConfigError("data.manual_dir", f"folder {data.manual_dir!r} has no {folder}/",
                        f"point it at the folder holding {layout}")
  _one_of("data", "source", data.source, ("tfds",))
  _one_of("data", "text_tokenizer", data.text_tokenizer, text.TOKENIZER_NAMES)
  _one_of("data", "captions", data.get("captions", "pcfg"), ("pcfg", "template"))
  _one_of("data", "caption_source", data.get("caption_source", "generate"),
          mmvoxceleb_data.CAPTION_SOURCES)
  fractions = tuple(data.get("split_fractions", (0.9, 0.05, 0.05)))
  if (len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0
      or abs(sum(fractions) - 1.0) > 1e-6):
    raise ConfigError("data.split_fractions", f"{fractions} is not (train, validation, test) "
                      "fractions of the pids summing to 1 with train > 0",
                      "pass e.g. '(0.9, 0.05, 0.05)'")
  if not 0.0 <= data.null_caption_prob <= 1.0:
    raise ConfigError("data.null_caption_prob", f"{data.null_caption_prob} is not a probability",
                      "use a value in [0, 1]")


def _check_frame_folder_dataset(config: ml_collections.ConfigDict) -> None:
  """iPER and MUG are never downloaded: the user's copy (`data.manual_dir`) is required."""
  import importlib  # pylint: disable=g-import-not-at-top
  data = config.data
  reader = importlib.import_module(f"mmvid_jax.data.{data.name}_data")  # Light: no TensorFlow.
  title = {"iper": "iPER", "mug": "MUG"}[data.name]
  if not data.get("manual_dir"):
    raise ConfigError("data.manual_dir", f"is not set; {title} is not downloaded at run time",
                      f"pass --config.data.manual_dir=<a folder of {reader.LAYOUT}>")
  if not os.path.isdir(data.manual_dir):
    raise ConfigError("data.manual_dir", f"directory {data.manual_dir!r} does not exist",
                      f"point it at your copy of {title}: a folder of {reader.LAYOUT}")
  if not [e for e in os.listdir(data.manual_dir) if not e.startswith(".")]:
    raise ConfigError("data.manual_dir", f"folder {data.manual_dir!r} is empty",
                      f"fill it with {reader.LAYOUT}")
  from mmvid_jax.data import text  # pylint: disable=g-import-not-at-top
  _one_of("data", "text_tokenizer", data.text_tokenizer, text.TOKENIZER_NAMES)
  if not 0.0 <= data.get("null_caption_prob", 0.0) <= 1.0:
    raise ConfigError("data.null_caption_prob", f"{data.null_caption_prob} is not a probability",
                      "use a value in [0, 1]")
  # The dataset's own settings (source, speeds, split fractions, control sources).
  importlib.import_module(f"mmvid_jax.data.{data.name}_input").check(config)


def _check_transformer(config: ml_collections.ConfigDict) -> None:
  """The transformer section: model shape, objective, masking, controls, text encoder."""
  # pylint: disable=g-import-not-at-top
  from mmvid_jax.transformer import code_init
  from mmvid_jax.transformer import controls as controls_lib
  from mmvid_jax.transformer import model as model_lib
  from mmvid_jax.transformer import video_conv as video_conv_lib
  # pylint: enable=g-import-not-at-top
  tr = config.transformer
  if tr.width % tr.num_heads:
    raise ConfigError("transformer.num_heads", f"{tr.num_heads} heads do not divide width "
                      f"{tr.width}", "pick a width that is a multiple of num_heads")
  # The model factory's own checks (initializer, remat policy, rotary head size, video
  # convolution, code embedding start, dtype), here so a bad value stops the run before the data
  # and tokenizer stages spend minutes.
  model_lib.model_kwargs(tr)
  video_conv_lib.validate(tr.get("video_conv", 0), tr.get("objective", "mmvid"))
  code_init.validate(str(tr.get("code_embedding_init", "random")))
  _one_of("transformer", "compute_dtype", tr.get("compute_dtype", "float32"),
          model_lib.COMPUTE_DTYPES)
  _one_of("transformer", "activation", tr.activation, ("quick_gelu", "gelu"))
  _one_of("transformer", "objective", tr.get("objective", "mmvid"), ("mmvid", "artv"))
  _one_of("transformer", "text_encoder", tr.text_encoder,
          ("learned", "bert_pooled", "bert_tokens"))
  _one_of("transformer", "mask_ratio_schedule", tr.mask_ratio_schedule, ("mmvid", "cosine"))
  _one_of("transformer", "lr_schedule", tr.lr_schedule, ("log_warmup", "cosine", "constant"))
  _one_of("transformer", "negatives", tr.get("negatives", "all"), ("all", "split"))
  _one_of("transformer", "attention", tr.get("attention", "auto"), ("auto", "xla", "cudnn"))
  _one_of("transformer", "position_init", tr.get("position_init", "normal"), ("normal", "sincos"))
  if tr.text_encoder != "learned" and config.data.text_tokenizer != "bert":
    raise ConfigError("transformer.text_encoder", f"{tr.text_encoder!r} reads BERT WordPiece ids "
                      f"but data.text_tokenizer is {config.data.text_tokenizer!r}",
                      "set --config.data.text_tokenizer=bert (or text_encoder=learned)")
  if tr.get("objective", "mmvid") == "artv" and tr.text_encoder != "learned":
    raise ConfigError("transformer.text_encoder", "ART-V predicts text tokens, so it needs "
                      "learned text embeddings", "set --config.transformer.text_encoder=learned")
  for key in ("msm_strategy_prob", "vid_strategy_prob"):
    probs = tuple(tr[key])
    if len(probs) != 4 or min(probs) < 0 or sum(probs) <= 0:
      raise ConfigError(f"transformer.{key}", f"needs 4 non-negative weights with a positive "
                        f"sum, got {probs}", f"pass e.g. --config.transformer.{key}='(1,1,1,1)'")
  low, high = tuple(tr.msm_bernoulli_keep)
  if not 0 <= low <= high <= 1:
    raise ConfigError("transformer.msm_bernoulli_keep", f"({low}, {high}) is not a range of "
                      "probabilities", "use 0 <= a <= b <= 1, e.g. (0.2, 0.2)")
  ema = tr.get("ema_decay", 0.0)
  if not isinstance(ema, (int, float)) or not 0.0 <= ema < 1.0:
    raise ConfigError("transformer.ema_decay", f"{ema!r} is not a decay in [0, 1)",
                      "use 0 (off) or e.g. 0.99")
  preserve = float(tr.get("msm_preserve_prob", 0.0))
  if not 0 <= preserve <= 1:
    raise ConfigError("transformer.msm_preserve_prob", f"{preserve} is not a probability",
                      "use a value in [0, 1], e.g. 0.2 (0 = MMVID's scripts)")
  corrupt = float(tr.get("msm_corrupt_prob", 0.0))
  if not 0 <= corrupt < 1:
    raise ConfigError("transformer.msm_corrupt_prob", f"{corrupt} is not a probability below 1",
                      "use a value in [0, 1), e.g. 0.1 (0 = MMVID)")
  if tr.get("objective", "mmvid") == "mmvid" and tr.batch_size % 2:
    raise ConfigError("transformer.batch_size", f"{tr.batch_size} is odd but the REL negative "
                      "swaps the two halves of the batch", "use an even batch size")
  try:
    controls_lib.parse_slots(tr.get("controls", ()))
  except UserError as e:  # Names the bad entry.
    raise ConfigError("transformer.controls", str(e).split(". Fix")[0].split(": ", 1)[-1],
                      "write '<source>:<mode>' with a known erasing mode") from None


def _check_long_video(config: ml_collections.ConfigDict) -> None:
  """Long-video defaults of the sampling command (spec 5.4)."""
  s = config.sample
  for key in ("num_clips", "interp_levels"):
    if key in s and not (isinstance(s[key], int) and s[key] >= 1):
      raise ConfigError(f"sample.{key}", f"must be an integer >= 1, got {s[key]!r}",
                        f"pass --config.sample.{key}=1 or more")
  num_frames = config.get("data", {}).get("num_frames")
  overlap = s.get("t_overlap", -1)
  if num_frames is not None and not (isinstance(overlap, int) and -1 <= overlap < num_frames):
    raise ConfigError("sample.t_overlap", f"is {overlap!r} but {num_frames}-frame clips can keep "
                      f"0 to {num_frames - 1} frames (-1 = half)",
                      f"set it to -1 or at most {num_frames - 1}")


def _check_sample(config: ml_collections.ConfigDict) -> None:
  """The sample section: decoder name and its options, test prompts available."""
  s = config.sample
  decoders = ("mask_predict", "maskgit", "ar")
  if s.get("decoder", "mask_predict") not in decoders:
    raise ConfigError("sample.decoder", f"unknown decoder {s.decoder!r}",
                      f"use one of {', '.join(decoders)}")
  if s.get("num_candidates", 1) > 1 and s.get("decoder", "mask_predict") != "mask_predict":
    raise ConfigError("sample.num_candidates", f"is {s.num_candidates} but only mask_predict "
                      "reranks candidates", "set it to 1 or use decoder mask_predict")
  noise = tuple(s.get("noise_schedule", (0.0, 0.0, 0.0, 0.0)))
  if len(noise) != 4 or any(not isinstance(v, (int, float)) or v < 0 for v in noise):
    raise ConfigError("sample.noise_schedule", f"needs 4 non-negative numbers, got {noise!r}",
                      "pass (alpha1, beta1, alpha2, alpha3), e.g. (0, 0, 0, 0)")
  if s.get("dtype", "float32") not in ("float32", "bfloat16"):
    raise ConfigError("sample.dtype", f"unknown dtype {s.dtype!r}", "use float32 or bfloat16")
  if s.get("score_on", "completed") not in ("completed", "masked"):
    raise ConfigError("sample.score_on", f"unknown value {s.score_on!r}", "use completed or masked")
  for key in ("temperature", "batch_size", "num_prompts"):
    if key in s and not s[key] > 0:
      raise ConfigError(f"sample.{key}", f"must be positive, got {s[key]!r}",
                        f"pass --config.sample.{key}=<a positive value>")
  if s.get("top_k", 0) < 0 or s.get("cfg_scale", 0.0) < 0:
    raise ConfigError("sample.cfg_scale" if s.get("cfg_scale", 0.0) < 0 else "sample.top_k",
                      "must be >= 0", "use 0 to turn it off")
  _check_long_video(config)
  num_test = config.get("data", {}).get("num_test")
  if num_test is not None and s.get("num_prompts", 1) > num_test:
    raise ConfigError("sample.num_prompts", f"{s.num_prompts} prompts but the test split has "
                      f"{num_test} clips", f"lower it to at most {num_test}")


def _check_evaluate(config: ml_collections.ConfigDict) -> None:
  """The evaluate section: split size, decoder names, FVD/PRD sample counts, paths."""
  from mmvid_jax.evaluation import decoder_specs  # pylint: disable=g-import-not-at-top
  ev, data = config.evaluate, config.data
  split = ev.get("split", "test")
  sizes = {"train": data.get("num_train"), "validation": data.get("num_validation"),
           "test": data.get("num_test")}
  if split not in sizes:
    raise ConfigError("evaluate.split", f"unknown split {split!r}", "use test, validation or train")
  from mmvid_jax.evaluation import protocol_spec  # pylint: disable=g-import-not-at-top
  _one_of("evaluate", "protocol", ev.get("protocol", "default"), protocol_spec.PROTOCOLS)
  if ev.get("protocol", "default") == "mmvid":
    _check_protocol(config)
    return
  if sizes[split] is not None:
    usable = sizes[split] // ev.batch_size * ev.batch_size  # the pipeline drops a partial batch
    if ev.num_videos > usable:
      raise ConfigError("evaluate.num_videos",
                        f"{ev.num_videos} videos but the {split} split yields {usable} clips in "
                        f"batches of {ev.batch_size}",
                        f"lower it to at most {usable} or raise data.num_{split}")
  if "sample" in config:
    try:
      specs = decoder_specs.from_config(config)
    except ValueError as e:
      raise ConfigError("evaluate.compare", str(e), "fix the listed names") from None
    objective = config.get("transformer", {}).get("objective", None)
    if (any(s.decoder == "ar" for s in specs) and not ev.get("ar_workdir")
        and objective not in (None, "artv")):
      raise ConfigError("evaluate.compare", "lists 'ar' but this run trains an MMVID transformer",
                        "set --config.evaluate.ar_workdir to a workdir trained with ART-V")
  if ev.get("fvd"):
    if ev.num_videos < 2:
      raise ConfigError("evaluate.num_videos", "FVD needs at least 2 videos",
                        "raise it (MMVID used 2048) or set --config.evaluate.fvd=False")
    if 2 * ev.num_videos < ev.get("prd_clusters", 20):
      raise ConfigError("evaluate.prd_clusters",
                        f"{ev.prd_clusters} clusters for {2 * ev.num_videos} feature vectors",
                        "raise evaluate.num_videos or lower evaluate.prd_clusters")
  if ev.get("lpips_net", "alexnet") not in ("alexnet", "vgg16"):
    raise ConfigError("evaluate.lpips_net", f"unknown network {ev.lpips_net!r}",
                      "use alexnet or vgg16")
  if ev.get("ar_workdir") and not os.path.isdir(ev.ar_workdir):
    raise ConfigError("evaluate.ar_workdir", f"directory {ev.ar_workdir!r} does not exist",
                      "point it at the workdir of a finished ART-V run")


def _check_protocol(config: ml_collections.ConfigDict) -> None:
  """evaluate.protocol=mmvid: the paper's protocol ignores num_videos, compare and fvd."""
  from mmvid_jax.evaluation import protocol_spec  # pylint: disable=g-import-not-at-top
  ev = config.evaluate
  objective = config.get("transformer", {}).get("objective", None)
  checks = (
      ("evaluate.eval_num", lambda: protocol_spec.check_eval_num(
          ev.get("eval_num", protocol_spec.DEFAULT_EVAL_NUM))),
      ("data.num_frames", lambda: protocol_spec.check_frames(int(config.data.num_frames))),
      ("evaluate.protocol_decoders", lambda: protocol_spec.resolve_methods(
          ev.get("protocol_decoders", ()), has_mmvid_model=objective != "artv",
          has_artv_model=bool(ev.get("ar_workdir")) or objective == "artv")),
  )
  for key, check in checks:
    try:
      check()
    except protocol_spec.ProtocolError as e:
      raise ConfigError(key, e.problem, e.fix) from None
  if ev.get("ar_workdir") and not os.path.isdir(ev.ar_workdir):
    raise ConfigError("evaluate.ar_workdir", f"directory {ev.ar_workdir!r} does not exist",
                      "point it at the workdir of a finished ART-V run")
