"""tf.data input for MUGEN: numpy batches per the batch contract (`video`, `text_ids`, `caption`).

`make_dataset` has the same signature and behaviour as `pipeline.make_dataset`:

- `config.data.source == "tfds"`: reads the pre-rendered `mugen` TFDS dataset (frames 0, S,
  ..., (T-1)*S of each clip, as the reference loader with its default fixed start).
- `config.data.source == "render"`: renders clips inside the pipeline from the game-state
  JSONs (`render_workers` processes), so `random_start=True` draws a new start per element.

Training: shuffled, endless, caption chosen per `text_source`, text augmentation. Evaluation:
one ordered pass, start frame 0. Every random choice is seeded by `config.seed` and the
element index, so `start_step=k` resumes exactly.
"""

import collections
import itertools


from mmvid_jax.data import mugen
from mmvid_jax.data import mugen_data
from mmvid_jax.data import text
from mmvid_jax.errors import UserError

SOURCES = ("tfds", "render")


def _tf():
  from mmvid_jax.data import pipeline  # TensorFlow with accelerators hidden.
  return pipeline.import_tensorflow()


def check(config, split: str = "train") -> None:
  """MUGEN-specific settings, checked before any work."""
  d = config.data
  if d.source not in SOURCES:
    raise UserError(f"config.data.source: {d.source!r} is not a MUGEN source. Fix: use one of "
                    f"{', '.join(SOURCES)}.")
  if d.source == "tfds" and d.random_start:
    raise UserError("config.data.random_start=True needs frames rendered per element. Fix: set "
                    "--config.data.source=render (or random_start=False to read the TFDS build).")
  if d.text_source not in mugen_data.TEXT_SOURCES:
    raise UserError(f"config.data.text_source: unknown value {d.text_source!r}. Fix: use one of "
                    f"{', '.join(mugen_data.TEXT_SOURCES)}.")
  if split not in mugen_data.SPLITS:
    raise UserError(f"unknown split {split!r}. Fix: use one of {', '.join(mugen_data.SPLITS)}.")
  if "transformer" in config and config.transformer.get("controls", ()):
    raise UserError("config.transformer.controls: MUGEN provides text conditions only. Fix: set "
                    "--config.transformer.controls='()'.")


def _tfds_elements(config, split, workdir, training, process_index, process_count, seed):
  from mmvid_jax.data import mugen_tfds
  from mmvid_jax.data import pipeline
  tf = _tf()
  d = config.data
  builder = mugen_tfds.built_builder(config, workdir)
  with_manual_caption = lambda x: tf.size(x["captions"]) > 1
  ds = pipeline.read_tfds_split(
      builder, split, config, training=training, process_index=process_index,
      process_count=process_count, shuffle_seed=seed,
      missing_fix="check that the split file lists clips that exist, and rebuild.",
      keep=with_manual_caption if d.text_source == "manual" else None)
  video_feature = builder.info.features["video"]
  text_source = str(d.text_source)

  def element(index, example):
    count = tf.size(example["captions"], out_type=tf.int32)
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    if text_source == "auto":
      choice = tf.constant(0)
    elif text_source == "manual" and not training:
      choice = tf.constant(1)
    else:
      low = 1 if text_source == "manual" else 0
      choice = tf.random.stateless_uniform((), key, low, tf.maximum(count, low + 1), tf.int32)
    return {"video": video_feature.decode_example(example["video"]),
            "caption": example["captions"][choice]}

  return ds, element


def _render_elements(config, split, training, process_index, process_count, seed):
  """Clips rendered on the fly, as (index, element) pairs from a generator."""
  d = config.data
  clips = mugen_data.load_clips(d, split)
  if not clips:
    raise UserError(f"MUGEN {split}: no usable clip in {d.manual_dir!r} for {d.num_frames} "
                    f"frames at step {d.frame_step} with text_source={d.text_source!r}. Fix: "
                    "lower data.num_frames/frame_step or change text_source.")
  if not training:
    low = len(clips) * process_index // process_count
    clips = clips[low:len(clips) * (process_index + 1) // process_count]

  def choose(element):
    """The clip, frames and caption of stream element `element` (depends on nothing else)."""
    rng = mugen_data.clip_rng(seed, element)
    if training:
      # Endless stream: a fresh permutation per epoch; hosts take interleaved elements.
      epoch, position = divmod(element * process_count + process_index, len(clips))
      clip = clips[mugen_data.clip_rng(seed, epoch, salt=1).permutation(len(clips))[position]]
    else:
      clip = clips[element]
    indices = mugen_data.frame_indices(clip.num_frames, int(d.num_frames), int(d.frame_step),
                                       bool(d.random_start) and training, rng)
    caption = clip.captions[mugen_data.caption_index(len(clip.captions), str(d.text_source),
                                                     training, rng)]
    return clip, indices, caption

  workers = mugen.default_workers(int(d.get("render_workers", 0)))
  return clips, choose, workers


def make_dataset(config, split: str, workdir: str, *, batch_size: int, deterministic: bool,
                 start_step: int = 0, process_index: int | None = None,
                 process_count: int | None = None):
  """Iterator of numpy batches (per-process batch = batch_size / process count)."""
  check(config, split)
  from mmvid_jax.data import pipeline
  process_index, process_count = pipeline.process_share(batch_size, process_index, process_count)
  d = config.data
  tokenizer = text.get_text_tokenizer(config, workdir)
  tf = _tf()
  training = not deterministic
  local_batch = batch_size // process_count
  start_element = int(start_step) * local_batch
  seed = pipeline.process_seed(config, process_index)
  size, frames = int(d.image_size), int(d.num_frames)

  if d.source == "tfds":
    ds, element = _tfds_elements(config, split, workdir, training, process_index,
                                 process_count, seed)
    ds = ds.enumerate().skip(start_element).map(element, num_parallel_calls=tf.data.AUTOTUNE,
                                                deterministic=True)
  else:
    clips, choose, workers = _render_elements(config, split, training, process_index,
                                              process_count, seed)
    stop = None if training else len(clips)

    def generate():
      elements = (range(start_element, stop) if stop is not None
                  else itertools.count(start_element))
      chosen = (choose(e) for e in elements)
      captions = collections.deque()  # Captions of the clips handed to the renderer, in order.

      def tasks():
        for clip, indices, caption in chosen:
          captions.append(caption)
          yield d.asset_dir, size, clip.json_path, indices

      for video in mugen.render_many(tasks(), workers):
        yield {"video": video, "caption": captions.popleft()}

    signature = {"video": tf.TensorSpec((frames, size, size, 3), tf.uint8),
                 "caption": tf.TensorSpec((), tf.string)}
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
  from mmvid_jax.data import pipeline
  return pipeline.text_batches(ds, config, tokenizer, local_batch=local_batch,
                               augment_text=training and split == "train", sources=(),
                               process_index=process_index, start_step=start_step)
