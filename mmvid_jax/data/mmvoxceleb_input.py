"""tf.data input for `mmvoxceleb`: numpy batches per the batch contract, every MMVID mode.

`make_dataset` has the signature and behaviour of `pipeline.make_dataset` and yields `video`,
`text_ids`, `caption` and, with control slots, `controls` (one image per slot, in slot order).
Control sources (`config.transformer.controls` entries "<source>:<erasing mode>"):

| source | training | evaluation |
|---|---|---|
| mask | random stored frame of this clip's mask folder | its first stored frame |
| draw | random stored frame of this clip's drawing folder | its first |
| same_pid_draw | drawing of a random same-pid clip (the build's pool) | pool entry 0 |
| same_pid_image | frame of a random same-pid clip (pool) | pool entry 0 |
| partial_image | p=.5 a pool frame, p=.5 a random frame of this clip | pool entry 0 |
| appearance | random stored frame of this clip | its middle stored frame |
| motion_frames | the k-th such slot holds target frame 3k (frames 0, 3, 6) | same |

Captions (`config.data.captions`): "pcfg": a random one of the clip's 20 PCFG captions in
training, the first in evaluation; "template": the dependent-mode sentence naming each slot
(`mmvoxceleb_captions.template_captions`), the clause-swapped variant with p=.5 in training.
The shared text step then applies sentence dropout / the null caption (training only).
With `config.data.motion_color`, the motion slots get MMVID's colour shift (§2.5) per batch.
Clips that lack a modality a slot needs (no mask folder, say) are left out of this stream.
Every random choice is seeded by `config.seed` and the element (or step) index, so
`start_step=k` resumes exactly.
"""

import numpy as np

from mmvid_jax.data import mmvoxceleb_captions as captions_lib
from mmvid_jax.data import mmvoxceleb_data as vox
from mmvid_jax.data import pipeline
from mmvid_jax.data import text
from mmvid_jax.errors import UserError

SOURCES = ("tfds",)
CONTROL_SOURCES = ("mask", "draw", "same_pid_draw", "same_pid_image", "partial_image",
                   "appearance", "motion_frames")
CAPTION_MODES = ("pcfg", "template")
MOTION_STRIDE = 3  # MMVID image+video33: target frames 0, 3, 6
_NEEDS = {"mask": "mask", "draw": "draw", "same_pid_draw": "pid_draws",
          "same_pid_image": "pid_frames", "partial_image": "pid_frames"}
_IMAGE_KEYS = ("video", "mask", "draw", "pid_frames", "pid_draws")


def check(config, split: str = "train") -> None:
  """mmvoxceleb settings, checked before any work."""
  d = config.data
  vox.check_folder(d.manual_dir)
  if d.source not in SOURCES:
    raise UserError(f"config.data.source: {d.source!r} is not an mmvoxceleb source. Fix: use "
                    "'tfds' (the folder is decoded once by the data stage).")
  if split not in vox.SPLITS:
    raise UserError(f"unknown split {split!r}. Fix: use one of {', '.join(vox.SPLITS)}.")
  sources = pipeline.control_sources(config)
  wrong = [s for s in sources if s not in CONTROL_SOURCES]
  if wrong:
    raise UserError(f"config.transformer.controls: control source(s) {wrong} are not available "
                    f"for mmvoxceleb. Fix: use {', '.join(CONTROL_SOURCES)}.")
  for source, modality in (("mask", "mask"), ("draw", "draw"), ("same_pid_draw", "draw")):
    if source in sources and not vox.has_modality(d.manual_dir, modality):
      folder = "mask/" if modality == "mask" else "draw/style1/"
      raise UserError(f"config.transformer.controls uses {source!r} but {d.manual_dir!r} has "
                      f"no {folder} folder. Fix: add the release's {folder} folder, or pick a "
                      "mode without it.")
  motion = sources.count("motion_frames")
  if motion and MOTION_STRIDE * (motion - 1) >= int(d.num_frames):
    raise UserError(f"{motion} motion_frames slots need target frame "
                    f"{MOTION_STRIDE * (motion - 1)} but clips have {d.num_frames} frames. "
                    "Fix: raise config.data.num_frames or use fewer motion slots.")
  if d.get("caption_source", "generate") not in vox.CAPTION_SOURCES:
    raise UserError(f"config.data.caption_source: unknown value {d.caption_source!r}. Fix: use "
                    f"one of {', '.join(vox.CAPTION_SOURCES)}.")
  if d.get("caption_source", "generate") == "release" and not vox.has_modality(d.manual_dir,
                                                                                "txt"):
    raise UserError(f"config.data.caption_source='release' but {d.manual_dir!r} has no txt/ "
                    "folder. Fix: add the release's txt/<key>.txt captions, or use "
                    "caption_source='generate'.")
  mode = d.get("captions", "pcfg")
  if mode not in CAPTION_MODES:
    raise UserError(f"config.data.captions: unknown value {mode!r}. Fix: use one of "
                    f"{', '.join(CAPTION_MODES)}.")
  if mode == "template":
    try:
      captions_lib.template_captions(sources)
    except ValueError as e:
      raise UserError(f"config.data.captions='template': {e}. Fix: use captions='pcfg' or "
                      "such control slots.") from None


def motion_color(controls: np.ndarray, motion_slots, rng: np.random.Generator,
                 prob: float = 0.9) -> np.ndarray:
  """MMVID `visual_aug_mode='motion_color'` on uint8 controls (B, n, H, W, 3).

  With probability `prob` (one draw per batch) every sample's motion slots get that sample's
  own shift c ~ U(-0.5, 0.5) (in [0, 1] units), added to all channels or to one channel
  (each of the 4 choices p=1/4), the same for all its motion slots, then clamped.
  """
  motion_slots = np.asarray(motion_slots, bool)
  if not motion_slots.any() or rng.random() >= prob:
    return controls
  batch = controls.shape[0]
  shift = rng.uniform(-0.5, 0.5, batch)
  target = rng.integers(0, 4, batch)  # 0..2: that channel only, 3: all channels
  channels = np.where(target[:, None] == 3, 1.0, target[:, None] == np.arange(3)[None])
  offset = (shift[:, None] * channels)[:, None, None, None, :]  # (B, 1, 1, 1, 3)
  out = controls.copy()
  moved = controls[:, motion_slots].astype(np.float32) / 255.0 + offset
  out[:, motion_slots] = np.round(np.clip(moved, 0.0, 1.0) * 255.0).astype(np.uint8)
  return out


def _tfds_stream(config, split, workdir, training, process_index, process_count, seed, sources):
  from mmvid_jax.data import mmvoxceleb_tfds
  tf = pipeline.import_tensorflow()
  builder = mmvoxceleb_tfds.built_builder(config, workdir)
  features = builder.info.features
  needed = sorted({_NEEDS[s] for s in sources if s in _NEEDS})

  def has_all(example):  # A clip without that modality cannot feed this mode.
    ok = tf.constant(True)
    for key in needed:
      ok = tf.logical_and(ok, tf.shape(features[key].decode_example(example[key]))[0] > 0)
    return ok

  ds = pipeline.read_tfds_split(
      builder, split, config, training=training, process_index=process_index,
      process_count=process_count, shuffle_seed=seed, skip_decoding=_IMAGE_KEYS,
      missing_fix="change config.data.split_fractions and rebuild (a new fraction gives a new "
                  "builder config).", keep=has_all if needed else None)
  return ds, features


def _element_fn(config, features, sources, training: bool, seed_base: int):
  """Per-clip work: frames, caption, one image per control slot."""
  tf = pipeline.import_tensorflow()
  d = config.data
  num_frames, step = int(d.num_frames), int(d.frame_step)
  needed = (num_frames - 1) * step + 1
  templates = (captions_lib.template_captions(sources)
               if d.get("captions", "pcfg") == "template" else ())

  def uniform(key, high):
    return tf.random.stateless_uniform((), key, 0, high, tf.int32)

  def fn(index, example):
    images = {k: features[k].decode_example(example[k]) for k in _IMAGE_KEYS}
    video = images["video"]
    stored = tf.shape(video)[0]
    seed = tf.stack([tf.constant(seed_base, tf.int64), tf.cast(index, tf.int64)])
    keys = [seed + [0, (slot + 1) << 40] for slot in range(len(sources) + 2)]
    start = uniform(keys[-1], stored - needed + 1) if training else tf.constant(0)
    frames = tf.gather(video, start + step * tf.range(num_frames))
    if templates:
      caption = tf.constant(templates[0])
      if training and len(templates) > 1:
        caption = tf.where(uniform(keys[-2], 2) == 0, templates[0], templates[1])
    else:
      count = tf.size(example["captions"], out_type=tf.int32)
      caption = example["captions"][uniform(keys[-2], count) if training else 0]
    out = {"video": frames, "caption": caption}
    if sources:
      slots, motion = [], 0
      for slot, source in enumerate(sources):
        key = keys[slot]
        if source == "motion_frames":
          slots.append(frames[MOTION_STRIDE * motion])
          motion += 1
          continue
        if source == "appearance":
          slots.append(video[uniform(key, stored)] if training else video[stored // 2])
          continue
        pool = images[{"mask": "mask", "draw": "draw", "same_pid_draw": "pid_draws"}.get(
            source, "pid_frames")]
        pick = pool[uniform(key, tf.shape(pool)[0])] if training else pool[0]
        if source == "partial_image" and training:  # p=.5 this clip, p=.5 a same-pid clip
          own = video[uniform(key + [0, 1], stored)]
          pick = tf.where(uniform(key + [0, 2], 2) == 0, own, pick)
        slots.append(pick)
      out["controls"] = tf.stack(slots)
    return out

  return fn


class _MotionColor:
  """Applies `motion_color` to each batch (seeded per step) over a batch iterator."""

  def __init__(self, batches, motion_slots, seed: int, process_index: int, start_step: int):
    self._batches, self._slots = batches, motion_slots
    self._seed, self._process, self._step = seed, process_index, int(start_step)

  def __iter__(self):
    return self

  def __next__(self):
    batch = next(self._batches)
    rng = np.random.default_rng([self._seed, self._process, self._step, 17])
    self._step += 1
    batch["controls"] = motion_color(batch["controls"], self._slots, rng)
    return batch

  def close(self):
    if hasattr(self._batches, "close"):
      self._batches.close()


def make_dataset(config, split: str, workdir: str, *, batch_size: int, deterministic: bool,
                 start_step: int = 0, process_index: int | None = None,
                 process_count: int | None = None):
  """Iterator of numpy batches (per-process batch = batch_size / process count)."""
  check(config, split)
  process_index, process_count = pipeline.process_share(batch_size, process_index, process_count)
  sources = pipeline.control_sources(config)
  tokenizer = text.get_text_tokenizer(config, workdir)
  tf = pipeline.import_tensorflow()
  training = not deterministic
  local_batch = batch_size // process_count
  seed = pipeline.process_seed(config, process_index)
  ds, features = _tfds_stream(config, split, workdir, training, process_index, process_count,
                              seed, sources)
  ds = ds.enumerate().skip(int(start_step) * local_batch)
  ds = ds.map(_element_fn(config, features, sources, training, seed),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  batches = pipeline.text_batches(ds, config, tokenizer, local_batch=local_batch,
                                  augment_text=training and split == "train", sources=sources,
                                  process_index=process_index, start_step=start_step)
  motion_slots = [s == "motion_frames" for s in sources]
  if training and bool(config.data.get("motion_color", False)) and any(motion_slots):
    return _MotionColor(batches, motion_slots, int(config.seed), process_index, start_step)
  return batches
