"""Conditions -> videos: the one call shared by the sample stage, evaluation, the sampling command
and the Python API.

    videos = generate_videos(bundle, tokenizer, text_ids, controls, key, decoder="mask_predict",
                             steps=20, num_candidates=1, cfg_scale=0.0)   # uint8 (B, T, H, W, 3)

Controls are tokenized and erased with the transformer's evaluation-mode pattern; a model with
control slots and no control images gets all-[MASK] controls (MMVID's "missing control"). The
decoding loop runs in one jitted call per (decoder options, preserved positions); the transformer
bundle and the tokenizer are pytrees, so new weights do not recompile.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.errors import UserError
from mmvid_jax.sampling import autoregressive
from mmvid_jax.sampling import guidance
from mmvid_jax.sampling import long_video
from mmvid_jax.sampling import mask_predict as mask_predict_lib
from mmvid_jax.sampling import maskgit as maskgit_lib
from mmvid_jax.sampling import schedules
from mmvid_jax.transformer import model as model_lib

DECODERS = ("mask_predict", "maskgit", "ar")


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
  """Every decoder setting (hashable: a static argument of the jitted decode)."""
  decoder: str = "mask_predict"
  steps: int = 20
  num_candidates: int = 1          # mask-predict: B reranked candidate masks per step
  dynamic_stop: bool = False       # mask-predict: keep the best-scoring video, stop after 5 flat steps
  score_on: str = "completed"      # mask-predict: "completed" (ours) or "masked" (official)
  cfg_scale: float = 0.0           # classifier-free guidance (0 = off)
  temperature: float = 1.0         # softmax temperature of the token draws (every decoder)
  top_k: int = 0                   # ART-V top-k filter (0 = off)
  choice_temperature: float = 4.5  # MaskGIT re-masking noise
  # mask-predict Gumbel-noise "temperature" (alpha1, beta1, alpha2, alpha3) over MMVID's phases
  # of 10/5/35 steps (spec §5.2); all zeros = the official default (plain sampling).
  noise_schedule: tuple = (0.0, 0.0, 0.0, 0.0)

  def __post_init__(self):
    # Hashable even when read back from a JSON config (lists).
    object.__setattr__(self, "noise_schedule", tuple(float(v) for v in self.noise_schedule))
    if len(self.noise_schedule) != 4:
      raise UserError(f"noise_schedule needs 4 values (alpha1, beta1, alpha2, alpha3), got "
                      f"{self.noise_schedule}.")
    if self.decoder not in DECODERS:
      raise UserError(f"unknown decoder {self.decoder!r}. Fix: use one of {', '.join(DECODERS)}.")
    if self.steps < 1 or self.num_candidates < 1:
      raise UserError(f"steps ({self.steps}) and candidates ({self.num_candidates}) must be >= 1.")
    if self.num_candidates > 1 and self.decoder != "mask_predict":
      raise UserError(f"{self.num_candidates} candidates given, but only the mask_predict decoder "
                      "reranks candidates. Fix: use --candidates=1 or --decoder=mask_predict.")
    if self.score_on not in mask_predict_lib.SCORE_ON:
      raise UserError(f"score_on must be one of {mask_predict_lib.SCORE_ON}, got "
                      f"{self.score_on!r}.")
    if self.temperature <= 0:
      raise UserError(f"temperature must be > 0, got {self.temperature}.")

  def forward_passes(self) -> int:
    """Transformer passes per video (ART-V: one cached single-token pass per token, not counted
    here). Completed-output scoring adds one pass per candidate per step (no vocabulary head).
    Guidance (cfg_scale != 0) runs every pass on the caption and on the null caption: twice."""
    guided = 2 if self.cfg_scale != 0 else 1
    if self.decoder != "mask_predict":
      return guided * self.steps
    scoring = self.num_candidates > 1 or self.dynamic_stop
    extra = self.num_candidates if scoring and self.score_on == "completed" else 0
    return guided * (1 + (self.steps - 1) * (self.num_candidates + extra))


COMPUTE_DTYPES = model_lib.COMPUTE_DTYPES


def with_compute_dtype(bundle, dtype: str):
  """The bundle with its transformer computing in `dtype` (weights stay float32). bfloat16 is
  ~1.7x faster on CPUs with AVX512-BF16 and on accelerators (docs/sampling.md)."""
  if dtype not in COMPUTE_DTYPES:
    raise UserError(f"unknown compute dtype {dtype!r}. Fix: use one of {', '.join(COMPUTE_DTYPES)}.")
  return bundle.replace(model=bundle.model.clone(dtype=jnp.dtype(dtype)))


def check_compatible(bundle, tokenizer, options: DecodeOptions) -> None:
  layout = bundle.layout
  if options.decoder == "ar" and not bundle.is_causal:
    raise UserError("the 'ar' decoder needs an ART-V (causal) transformer but this workdir holds "
                    "an MMVID one. Fix: use --decoder=mask_predict or maskgit.")
  if options.decoder != "ar" and bundle.is_causal:
    raise UserError(f"the {options.decoder!r} decoder needs an MMVID transformer but this workdir "
                    "holds an ART-V one. Fix: use --decoder=ar.")
  if tokenizer is not None and (tokenizer.codebook_size != layout.codebook_size
                                or tokenizer.latent_size != layout.latent_height):
    raise UserError(f"the transformer expects {layout.codebook_size} codes on a "
                    f"{layout.latent_height}x{layout.latent_width} grid but the tokenizer has "
                    f"{tokenizer.codebook_size} codes on {tokenizer.latent_size}x"
                    f"{tokenizer.latent_size}. Fix: use the tokenizer the transformer was "
                    "trained with (same workdir).")


def check_text_ids(bundle, text_ids) -> np.ndarray:
  text_ids = np.asarray(text_ids, np.int32)
  bundle.layout.check_ids(text_ids=text_ids)
  return text_ids


def control_codes_for(bundle, tokenizer, controls, batch: int):
  """uint8 control images (B, n_ctrl, H, W, 3) or None -> erased control codes or None."""
  layout = bundle.layout
  if not layout.num_controls:
    if controls is not None and np.size(controls):
      raise UserError("control images were given, but this model has no control slots (it was "
                      "trained on text only). Fix: drop the images, or train with "
                      "--config=configs/shapes.py:text_image.")
    return None
  if controls is None:  # a missing control: every control token is [MASK]
    return jnp.full((batch, layout.num_controls, layout.latent_height, layout.latent_width),
                    layout.mask_id, jnp.int32)
  controls = np.asarray(controls)
  if controls.ndim != 5 or controls.shape[1] != layout.num_controls:
    raise UserError(f"controls must be uint8 (batch, {layout.num_controls}, H, W, 3), got shape "
                    f"{controls.shape}. Fix: give one image per control slot.")
  return _control_codes(bundle, tokenizer, jnp.asarray(controls, jnp.uint8))


@jax.jit
def _control_codes(bundle, tokenizer, controls):
  return bundle.control_codes(tokenizer, controls)


def _logits_fn(bundle, text_ids, control_codes, cfg_scale: float):
  params = bundle.params
  cond = bundle.condition(params, text_ids, control_codes)
  null = bundle.condition(params, jnp.zeros_like(text_ids), control_codes) if cfg_scale else None
  return guidance.guided_logits_fn(bundle.tokens_to_logits, params, cond, null, cfg_scale)


def _decode(bundle, text_ids, control_codes, given, key, options: DecodeOptions, preserve):
  layout = bundle.layout
  preserve_mask = None if preserve is None else np.asarray(preserve, bool)
  if given is None:
    given = jnp.zeros((text_ids.shape[0], layout.video_len), jnp.int32)
  if options.decoder == "ar":
    prefill_fn, step_fn = autoregressive.causal_fns(bundle, bundle.params, text_ids,
                                                    control_codes, options.cfg_scale)
    return autoregressive.autoregressive_decode(
        prefill_fn, step_fn, layout.video_len, key, given_tokens=given,
        preserve_mask=preserve_mask,
        config=autoregressive.AutoregressiveConfig(options.top_k, options.temperature))
  logits_fn = _logits_fn(bundle, text_ids, control_codes, options.cfg_scale)
  if options.decoder == "maskgit":
    config = maskgit_lib.MaskGitConfig(options.steps, options.choice_temperature,
                                       options.temperature)
    return maskgit_lib.maskgit_decode(logits_fn, given, key, mask_id=layout.mask_id,
                                      preserve_mask=preserve_mask, config=config)
  phases = schedules.MMVID_NOISE_SCHEDULE
  config = mask_predict_lib.MaskPredictConfig(
      steps=options.steps, num_candidates=options.num_candidates,
      dynamic_stop=options.dynamic_stop, score_on=options.score_on,
      noise_schedule=schedules.ThreePhase(phases.len1, phases.len2, phases.len3,
                                          *options.noise_schedule),
      temperature=options.temperature)
  return mask_predict_lib.mask_predict(logits_fn, given, key, mask_id=layout.mask_id,
                                       preserve_mask=preserve_mask, config=config)


_decode_jit = jax.jit(_decode, static_argnames=("options", "preserve"))


def decode_tokens(bundle, text_ids, control_codes, key, options: DecodeOptions,
                  given_tokens=None, preserve_mask=None):
  """Video tokens (B, N) for prepared conditions; preserved positions keep `given_tokens`."""
  preserve = None if preserve_mask is None else tuple(bool(v) for v in np.asarray(preserve_mask))
  given = None if given_tokens is None else jnp.asarray(given_tokens, jnp.int32)
  return _decode_jit(bundle, jnp.asarray(text_ids, jnp.int32), control_codes, given, key,
                     options=options, preserve=preserve)


@jax.jit
def _codes_to_uint8(tokenizer, codes):
  video = tokenizer.decode_from_codes(codes)
  return jnp.clip(jnp.round((video + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


@jax.jit
def _uint8_to_codes(tokenizer, videos):
  return tokenizer.encode_to_codes(videos.astype(jnp.float32) / 127.5 - 1.0)


def tokens_to_video(tokenizer, tokens, layout) -> np.ndarray:
  """Tokens (B, frames*h*w) -> uint8 video (B, frames, H, W, 3)."""
  codes = jnp.asarray(tokens).reshape(tokens.shape[0], -1, layout.latent_height,
                                      layout.latent_width)
  return np.asarray(_codes_to_uint8(tokenizer, codes))


def _prepare(bundle, tokenizer, text_ids, controls, options):
  check_compatible(bundle, tokenizer, options)
  text_ids = check_text_ids(bundle, text_ids)
  return text_ids, control_codes_for(bundle, tokenizer, controls, text_ids.shape[0])


def generate_videos(bundle, video_tokenizer, text_ids, controls, key, *, decoder="mask_predict",
                    steps=20, num_candidates=1, cfg_scale=0.0, return_info=False,
                    given_video=None, num_given_frames: int = 0, **options):
  """uint8 videos (B, T, H, W, 3) for captions `text_ids` (B, L) and optional control images.

  Extra keyword options are `DecodeOptions` fields (dynamic_stop, score_on, temperature, top_k,
  choice_temperature). With `return_info`, also returns a dict of numpy arrays: `score` (the
  REL/VID score of each returned video when reranking ran, else NaN), `steps` and `tokens`
  (B, video_len), the video tokens the videos were decoded from.
  `given_video` (uint8 (B, >= k, H, W, 3)) and `num_given_frames` k > 0: the first k frames are
  those frames, tokenized and kept fixed (video prediction); the rest is generated.
  """
  options = DecodeOptions(decoder=decoder, steps=int(steps), num_candidates=int(num_candidates),
                          cfg_scale=float(cfg_scale), **options)
  text_ids, control_codes = _prepare(bundle, video_tokenizer, text_ids, controls, options)
  given, preserve = _given_frames(bundle.layout, video_tokenizer, given_video,
                                  int(num_given_frames), text_ids.shape[0])
  tokens, info = decode_tokens(bundle, text_ids, control_codes, key, options, given, preserve)
  videos = tokens_to_video(video_tokenizer, tokens, bundle.layout)
  if return_info:
    return videos, dict(jax.tree.map(np.asarray, info), tokens=np.asarray(tokens, np.int32))
  return videos


def _given_frames(layout, tokenizer, given_video, num_given: int, batch: int):
  """(given tokens (B, N), preserve mask (N,)) for the first `num_given` frames, or (None, None)."""
  if num_given <= 0:
    return None, None
  if not 0 < num_given < layout.num_frames:
    raise UserError(f"num_given_frames={num_given}: keep between 1 and {layout.num_frames - 1} "
                    f"of the model's {layout.num_frames} frames.")
  if given_video is None or np.ndim(given_video) != 5 or np.shape(given_video)[0] != batch:
    raise UserError(f"num_given_frames={num_given} needs given_video, uint8 (B={batch}, frames, "
                    "H, W, 3).")
  if np.shape(given_video)[1] < num_given:
    raise UserError(f"given_video has {np.shape(given_video)[1]} frames; num_given_frames="
                    f"{num_given} needs at least that many.")
  frames = jnp.asarray(np.asarray(given_video)[:, :num_given], jnp.uint8)
  codes = np.asarray(_uint8_to_codes(tokenizer, frames)).reshape(batch, -1)
  given = np.zeros((batch, layout.video_len), np.int32)
  given[:, :codes.shape[1]] = codes
  preserve = np.zeros(layout.video_len, bool)
  preserve[:codes.shape[1]] = True
  return given, preserve


def _clip_decoder(bundle, text_ids, control_codes, options):
  def decode(given, preserve, key):
    return decode_tokens(bundle, text_ids, control_codes, key, options, given, preserve)[0]
  return decode


def generate_long_videos(bundle, video_tokenizer, text_ids, controls, key, *, num_clips: int,
                         t_overlap: int, decoder="mask_predict", **options) -> np.ndarray:
  """Extrapolated videos: T + (num_clips - 1) * (T - t_overlap) frames, uint8."""
  options = DecodeOptions(decoder=decoder, **options)
  text_ids, control_codes = _prepare(bundle, video_tokenizer, text_ids, controls, options)
  layout = bundle.layout
  tokens = long_video.extend_video(
      _clip_decoder(bundle, text_ids, control_codes, options), key, batch=text_ids.shape[0],
      num_frames=layout.num_frames, tokens_per_frame=layout.tokens_per_frame,
      t_overlap=int(t_overlap), num_clips=int(num_clips))
  return tokens_to_video(video_tokenizer, tokens.reshape(tokens.shape[0], -1), layout)


def interpolate_videos(bundle, video_tokenizer, text_ids, controls, videos, key, *,
                       levels: int = 1, decoder="mask_predict", **options) -> np.ndarray:
  """Doubles the frame rate of uint8 `videos` (B, L, H, W, 3) `levels` times (MMVID
  `interp_real`): the real frames are tokenized and kept, the frames between are generated."""
  options = DecodeOptions(decoder=decoder, **options)
  text_ids, control_codes = _prepare(bundle, video_tokenizer, text_ids, controls, options)
  layout = bundle.layout
  codes = _uint8_to_codes(video_tokenizer, jnp.asarray(videos, jnp.uint8))
  tokens = codes.reshape(codes.shape[0], codes.shape[1], -1).astype(jnp.int32)
  tokens = long_video.interpolate_video(_clip_decoder(bundle, text_ids, control_codes, options),
                                        tokens, key, num_frames=layout.num_frames,
                                        levels=int(levels))
  return tokens_to_video(video_tokenizer, tokens.reshape(tokens.shape[0], -1), layout)


def generate_in_batches(bundle, video_tokenizer, text_ids, controls, key, *, batch_size: int,
                        progress=None, **kwargs):
  """`generate_videos` over many rows in fixed-size batches (the last one padded, so one
  compilation serves all). Returns (uint8 videos (M, ...), info dict of (M,) arrays)."""
  text_ids = np.asarray(text_ids, np.int32)
  total = text_ids.shape[0]
  videos, infos = [], []
  for index, start in enumerate(range(0, total, batch_size)):
    rows = np.arange(start, start + batch_size).clip(max=total - 1)
    batch_controls = None if controls is None else np.asarray(controls)[rows]
    out, info = generate_videos(bundle, video_tokenizer, text_ids[rows], batch_controls,
                                jax.random.fold_in(key, index), return_info=True, **kwargs)
    valid = min(batch_size, total - start)
    videos.append(out[:valid])
    infos.append({k: v[:valid] for k, v in info.items()})
    if progress is not None:
      progress.update(valid)
  return np.concatenate(videos), {k: np.concatenate([i[k] for i in infos]) for k in infos[0]}
