"""User inputs -> model inputs, shared by the sampling command and the Python API
(`mmvid_jax.Pipeline`): the trained models of a workdir, decoder settings with the workdir's
defaults, control images (paths, PIL images or uint8 arrays) and captions.
"""

import dataclasses
import logging
import os

import numpy as np

from mmvid_jax.errors import UserError

log = logging.getLogger("mmvid_jax.sample")


def control_slots(config) -> list[str]:
  """The source name of each control slot, in order (empty for a text-only model)."""
  from mmvid_jax.transformer import controls as controls_lib
  return [source for source, _ in controls_lib.parse_slots(config.transformer.get("controls", ()))]


@dataclasses.dataclass
class LoadedRun:
  """Everything a trained workdir provides for generation."""
  workdir: str
  config: object           # the resolved ml_collections.ConfigDict
  bundle: object           # transformer_api.TransformerBundle (compute dtype applied)
  tokenizer: object        # the video tokenizer
  text_tokenizer: object
  slots: list[str]


def load_config(workdir: str):
  """The workdir's resolved config, with a clear error when it is not a workdir."""
  from mmvid_jax import pipeline
  if not os.path.isdir(workdir) and "://" not in workdir:
    raise UserError(f"workdir {workdir!r} does not exist. Fix: pass the workdir of a trained run.")
  return pipeline.load_resolved_config(workdir)


def load_run(workdir: str, dtype: str | None = None, config=None) -> LoadedRun:
  """Loads a workdir's config, transformer, video tokenizer and text tokenizer."""
  config = load_config(workdir) if config is None else config
  from mmvid_jax.data import text as text_lib
  from mmvid_jax.sampling import generate
  from mmvid_jax.tokenizer import api as tokenizer_api
  from mmvid_jax.transformer import api as transformer_api
  sample = config.get("sample", {})
  bundle = generate.with_compute_dtype(transformer_api.load_transformer(workdir),
                                       dtype or sample.get("dtype", "float32"))
  tokenizer = tokenizer_api.load_tokenizer(workdir)
  text_tokenizer = text_lib.get_text_tokenizer(config, workdir)
  return LoadedRun(workdir, config, bundle, tokenizer, text_tokenizer, control_slots(config))


@dataclasses.dataclass(frozen=True)
class Settings:
  decoder: str
  steps: int
  candidates: int
  cfg: float
  num_samples: int


def resolve_settings(config, *, decoder=None, steps=None, candidates=None, cfg=None,
                     num_samples=None) -> Settings:
  """Explicit values, else the workdir's `sample` section, else the built-in defaults."""
  for name, value in (("steps", steps), ("candidates", candidates), ("num_samples", num_samples)):
    if value is not None and int(value) < 1:
      raise UserError(f"{name} must be >= 1, got {value}. Fix: pass a positive number.")
  sample = config.get("sample", {})
  decoder = decoder or sample.get("decoder", "mask_predict")
  steps = int(steps or sample.get("steps", 20))
  candidates = int(candidates or (sample.get("num_candidates", 1)
                                  if decoder == "mask_predict" else 1))
  cfg = float(sample.get("cfg_scale", 0.0) if cfg is None else cfg)
  num_samples = int(num_samples or sample.get("num_samples", 4))
  return Settings(decoder, steps, candidates, cfg, num_samples)


def load_image(image, size: int) -> np.ndarray:
  """A path, PIL image or uint8 (H, W, 3|4|1) array -> uint8 (size, size, 3) RGB; other sizes are
  resized (bicubic) with a logged note."""
  from PIL import Image, UnidentifiedImageError
  if isinstance(image, (str, os.PathLike)):
    path = os.fspath(image)
    if not os.path.isfile(path):
      raise UserError(f"image file {path!r} does not exist. Fix: check the path.")
    try:
      with Image.open(path) as opened:
        return _square_rgb(opened.convert("RGB"), size, path)
    except (UnidentifiedImageError, OSError, ValueError) as e:
      raise UserError(f"cannot read image {path!r} ({type(e).__name__}). Fix: pass a PNG or "
                      "JPEG file.") from None
  if isinstance(image, Image.Image):
    return _square_rgb(image.convert("RGB"), size, "the PIL image")
  array = np.asarray(image)
  if array.ndim == 2:
    array = array[..., None]
  if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or array.dtype != np.uint8:
    raise UserError(f"an image array must be uint8 (H, W, 3), got {array.dtype} {array.shape}. "
                    "Fix: pass a path, a PIL image or a uint8 RGB array.")
  array = np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]
  return _square_rgb(Image.fromarray(np.ascontiguousarray(array)), size, "the image array")


def _square_rgb(image, size: int, name: str) -> np.ndarray:
  from PIL import Image
  if image.size != (size, size):
    log.info("Image %s is %dx%d; resized to the model's %dx%d.", name, image.size[0],
             image.size[1], size, size)
    image = image.resize((size, size), Image.Resampling.BICUBIC)
  return np.asarray(image, np.uint8)


def check_image_count(count: int, slots: list[str]) -> None:
  if count and not slots:
    raise UserError("control images were given, but this model has no control slots (it was "
                    "trained on text only). Fix: drop the images, or use a workdir trained with "
                    "controls (e.g. configs/shapes.py:text_image).")
  if count > len(slots):
    raise UserError(f"{count} control images were given but the model has {len(slots)} control "
                    f"slot(s) ({', '.join(slots)}). Fix: pass at most {len(slots)}.")


def controls_array(images: list, slots: list[str], size: int) -> np.ndarray | None:
  """One image (or None = a missing control) per slot -> uint8 (n_slots, size, size, 3), or None
  when every slot is missing (generate_videos then fills them with [MASK])."""
  images = list(images) + [None] * (len(slots) - len(images))
  missing = [slot for slot, image in zip(slots, images) if image is None]
  if missing:
    log.info("No image for control slot(s) %s: they are treated as missing (all [MASK]).",
             ", ".join(missing))
  if len(missing) == len(slots):
    return None
  return np.stack([np.zeros((size, size, 3), np.uint8) if image is None
                   else load_image(image, size) for image in images])


def encode_captions(text_tokenizer, texts: list[str], text_len: int) -> np.ndarray:
  """int32 (len(texts), text_len) ids; a caption longer than the model's text slot is truncated
  with a warning."""
  if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
    raise UserError("text must be a list of captions (strings). Fix: e.g. text=[\"A small red "
                    "circle is moving north.\"] (\"\" = the null caption).")
  if not texts:
    raise UserError("no caption given. Fix: pass at least one caption (\"\" = the null caption).")
  for text in texts:
    if text and np.count_nonzero(text_tokenizer.encode([text], 4 * text_len + 8)) > text_len:
      log.warning("Caption %r is longer than the model's %d text tokens; it is truncated.",
                  text, text_len)
  return np.asarray(text_tokenizer.encode(list(texts), text_len), np.int32)


def load_real_frames(path: str, size: int, num_frames: int) -> np.ndarray:
  """The real frames an interpolation keeps: the first `num_frames` (the model's clip length)
  frames of a video file or a folder of frame images, as uint8 (n, size, size, 3); frames of
  another size are resized (shorter side, centre crop) with a logged note. Interpolation needs at
  least ceil(num_frames / 2) of them (one window of given frames)."""
  from mmvid_jax.data import video_text_data as files
  is_folder = os.path.isdir(path)
  if not is_folder and not os.path.isfile(path):
    raise UserError(f"video {path!r} does not exist. Fix: pass a video file or a folder of "
                    "frames.")
  if is_folder and not any(n.lower().endswith(files.FRAME_EXTENSIONS) for n in os.listdir(path)):
    raise UserError(f"folder {path!r} has no frame images. Fix: put "
                    f"{'/'.join(files.FRAME_EXTENSIONS)} frames in it (read in name order).")
  if not is_folder and not path.lower().endswith(files.VIDEO_EXTENSIONS):
    raise UserError(f"{path!r} is not a video file. Fix: pass one of "
                    f"{', '.join(files.VIDEO_EXTENSIONS)} or a folder of frame images.")
  try:
    frames = files.read_frames(path, is_folder, size, num_frames)
  except ValueError as e:
    raise UserError(f"cannot read video {path!r} ({e}). Fix: check that it is a complete, valid "
                    "video or a folder of images.") from None
  needed = (num_frames + 1) // 2
  if len(frames) < needed:
    raise UserError(f"{path!r} has {len(frames)} frame(s) but interpolation needs at least "
                    f"{needed} (half the model's {num_frames}-frame clip). Fix: give a longer "
                    "video.")
  log.info("Interpolating the first %d real frame(s) of %s, read at the model's %dx%d (other "
           "sizes resized: shorter side, centre crop).", len(frames), path, size, size)
  return frames
