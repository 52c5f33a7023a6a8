"""The tf.data input pipeline: clips -> numpy batches per the batch contract.

`make_dataset(config, split, workdir, batch_size=..., deterministic=...)` yields dicts:
`video` uint8 (B, T, H, W, 3), `text_ids` int32 (B, L), `controls` uint8 (B, n, H, W, 3)
(only with control slots), `attributes` int32 (B, 4), `centers` float32 (B, T, 2) and
`caption` bytes (B,) (host only). B is the per-process batch (global / process count).

Training (`deterministic=False`): shuffled, repeated forever, random start frame, text
augmentation on the train split. Evaluation (`deterministic=True`): one pass in order,
start frame 0, captions as stored. Every random choice is seeded from `config.seed` and the
element (or step) index, so a run sees the same batches and `start_step=k` continues
exactly where step k would have been.
"""

import logging as pylogging
import os
import queue
import threading

import numpy as np

from mmvid_jax.data import augment
from mmvid_jax.data import shapes_generator
from mmvid_jax.data import text
from mmvid_jax.errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

CONTROL_SOURCES = ("first_frame", "random_frame", "background", "same_color", "same_shape",
                   # mmvoxceleb (mmvoxceleb_input.CONTROL_SOURCES)
                   "mask", "draw", "same_pid_draw", "same_pid_image", "partial_image",
                   "appearance", "motion_frames")
HOST_ONLY_KEYS = ("caption",)
SOURCES = ("tfds", "stream")
_IMAGE_KEYS = ("background", "same_color", "same_shape")


# Log lines TFDS repeats on every dataset open; they say nothing a user can act on.
_TFDS_NOISE = ("`FeatureConnector.dtype` is deprecated", "Using custom data configuration",
               "Load dataset info from", "Creating a tf.data.Dataset reading",
               "Constructing tf.data.Dataset", "Dataset is an ordered dataset")


class _DropTfdsNoise(pylogging.Filter):

  def filter(self, record: pylogging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(noise in message for noise in _TFDS_NOISE)


def import_tensorflow():
  """TensorFlow for data only: it must never see (or grab memory on) an accelerator."""
  absl_logger = pylogging.getLogger("absl")
  if not any(isinstance(f, _DropTfdsNoise) for f in absl_logger.filters):
    absl_logger.addFilter(_DropTfdsNoise())
  import tensorflow as tf
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # Already initialised in this process; devices were hidden then.
    pass
  return tf


def control_sources(config) -> tuple[str, ...]:
  """Control image source per slot, from `config.transformer.controls` ("<source>:<mode>")."""
  entries = config.transformer.get("controls", ()) if "transformer" in config else ()
  sources = tuple(str(entry).split(":", 1)[0] for entry in entries)
  for source in sources:
    if source not in CONTROL_SOURCES:
      raise UserError(f"config.transformer.controls: unknown control source {source!r}. "
                      f"Fix: use entries '<source>:<erasing mode>' with source one of "
                      f"{', '.join(CONTROL_SOURCES)}.")
  return sources


def _check_request(config, split: str, batch_size: int, process_count: int):
  data = config.data
  if data.name != "shapes":
    raise UserError(f"config.data.name: unknown dataset {data.name!r}. Fix: use 'shapes'.")
  if data.source not in SOURCES:
    raise UserError(f"config.data.source: unknown source {data.source!r}. "
                    f"Fix: use one of {', '.join(SOURCES)}.")
  if split not in shapes_generator.SPLITS:
    raise UserError(f"unknown split {split!r}. Fix: use one of {', '.join(shapes_generator.SPLITS)}.")
  if batch_size <= 0 or batch_size % process_count:
    raise UserError(f"batch size {batch_size} is not a positive multiple of the {process_count} "
                    "processes. Fix: use a global batch size divisible by the process count.")


def _split_size(config, split: str) -> int:
  return int({"train": config.data.num_train, "validation": config.data.num_validation,
              "test": config.data.num_test}[split])


def read_tfds_split(builder, split: str, config, *, training: bool, process_index: int,
                    process_count: int, shuffle_seed: int, skip_decoding=("video",),
                    unit: str = "clips", missing_fix: str = "", keep=None):
  """This process's share of a built TFDS split, as raw examples.

  Features named in `skip_decoding` stay encoded (decode them in the element map, in parallel).
  `keep` (example -> bool tensor) drops examples before shuffling. Training interleaves the
  shards, shuffles with `config.data.shuffle_buffer` and repeats; otherwise the stored order.
  A missing split or one with fewer examples than processes is a UserError.
  """
  import tensorflow_datasets as tfds
  import_tensorflow()  # Hide accelerators before TFDS starts TensorFlow.
  if split not in builder.info.splits:
    raise UserError(f"the {builder.name} dataset has no {split!r} split (no usable {unit} fell "
                    f"in it). Fix: {missing_fix or 'add data for that split and rebuild.'}")
  count = builder.info.splits[split].num_examples
  if count < process_count:
    raise UserError(f"the {builder.name} {split} split has {count} {unit} for {process_count} "
                    f"processes. Fix: add {unit} to that split.")
  local_split = tfds.even_splits(split, n=process_count, drop_remainder=False)[process_index]
  read_config = tfds.ReadConfig(shuffle_seed=int(config.seed), try_autocache=False,
                                interleave_cycle_length=16 if training else 1,
                                enable_ordering_guard=not training)
  ds = builder.as_dataset(split=local_split, shuffle_files=training, read_config=read_config,
                          decoders={key: tfds.decode.SkipDecoding() for key in skip_decoding})
  if keep is not None:
    ds = ds.filter(keep)
  if training:
    if int(config.data.shuffle_buffer) > 1:
      ds = ds.shuffle(int(config.data.shuffle_buffer), seed=shuffle_seed,
                      reshuffle_each_iteration=True)
    ds = ds.repeat()
  return ds


def _tfds_source(config, split, workdir, training, process_index, process_count):
  """Raw TFDS examples (image tensors still zlib-encoded) and their decode function."""
  from mmvid_jax.data import shapes_tfds
  import_tensorflow()  # Hide accelerators before TFDS starts TensorFlow.
  builder = shapes_tfds.built_builder(config, workdir)
  ds = read_tfds_split(builder, split, config, training=training, process_index=process_index,
                       process_count=process_count, shuffle_seed=int(config.seed) + process_index,
                       skip_decoding=("video",) + _IMAGE_KEYS)
  features = builder.info.features

  def decode(example):
    example = dict(example)
    for key in ("video",) + _IMAGE_KEYS:
      example[key] = features[key].decode_example(example[key])
    return example

  return ds, decode


def _stream_source(config, split, training, start_element, process_index, process_count):
  """Clips generated on the fly: the train split never ends; others are their fixed clips.

  Whole generator blocks are made in parallel threads (numpy releases the GIL for most of
  the rendering) and then split into clips, in a fixed order.
  """
  tf = import_tensorflow()
  spec = shapes_generator.ShapesSpec.from_config(config.data)
  size, frames, block = spec.image_size, spec.clip_frames, shapes_generator.BLOCK_SIZE
  if split == "train" and training:
    # This process's own sequence: blocks process_index, process_index + count, ...
    first_block, skip = divmod(start_element, block)
    ids = tf.data.Dataset.range(first_block, 2**62).map(
        lambda b: b * process_count + process_index)
    take = -1
  else:
    total = _split_size(config, split)
    low = total * process_index // process_count + start_element
    high = total * (process_index + 1) // process_count
    first_block, skip = divmod(low, block)
    ids = tf.data.Dataset.range(first_block, max(first_block, -(-high // block)))
    take = max(0, high - low)

  def generate(block_index):
    clips = shapes_generator.generate_block(spec, split, int(block_index))
    clips["caption"] = np.array([c.encode("utf-8") for c in clips["caption"]], dtype=object)
    yield clips

  image = tf.TensorSpec((block, size, size, 3), tf.uint8)
  signature = {
      "index": tf.TensorSpec((block,), tf.int64),
      "video": tf.TensorSpec((block, frames, size, size, 3), tf.uint8),
      "caption": tf.TensorSpec((block,), tf.string),
      "attributes": tf.TensorSpec((block, 4), tf.int32),
      "centers": tf.TensorSpec((block, frames, 2), tf.float32),
      "boxes": tf.TensorSpec((block, frames, 4), tf.float32),
      **{key: image for key in _IMAGE_KEYS},
  }
  workers = max(1, min(4, os.cpu_count() or 1))
  ds = ids.interleave(
      lambda b: tf.data.Dataset.from_generator(generate, args=(b,), output_signature=signature),
      cycle_length=workers, block_length=1, num_parallel_calls=workers, deterministic=True)
  ds = ds.unbatch().skip(skip).take(take)
  return ds, lambda x: x


def _resize_square(tf, images, size: int):
  """Resize the shorter side to `size` and centre-crop; uint8 in, uint8 out. Also returns
  the (scale, offset_y, offset_x) that maps source pixel coordinates to output ones."""
  height, width = images.shape[-3], images.shape[-2]
  if height == size and width == size:
    return images, (1.0, 0.0, 0.0)
  scale = size / min(height, width)
  new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
  resized = tf.image.resize(tf.cast(images, tf.float32), (new_h, new_w), antialias=True)
  top, left = (new_h - size) // 2, (new_w - size) // 2
  cropped = resized[..., top:top + size, left:left + size, :]
  return tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8), (scale, top, left)


def _element_fn(config, decode, sources, training: bool, seed_base: int):
  """Per-clip work: decode, sample frames, resize, gather controls."""
  tf = import_tensorflow()
  data = config.data
  num_frames, step = int(data.num_frames), int(data.frame_step)
  needed = (num_frames - 1) * step + 1

  def fn(index, example):
    example = decode(example)
    video = example["video"]
    clip_frames = tf.shape(video)[0]
    seed = tf.stack([tf.constant(seed_base, tf.int64), tf.cast(index, tf.int64)])
    if training:
      start = tf.random.stateless_uniform((), seed, 0, clip_frames - needed + 1, tf.int32)
      other = tf.random.stateless_uniform((), seed + [0, 1 << 40], 0, clip_frames, tf.int32)
    else:
      start, other = tf.constant(0, tf.int32), clip_frames // 2
    frame_index = start + step * tf.range(num_frames)
    frames, (scale, top, left) = _resize_square(tf, tf.gather(video, frame_index), data.image_size)
    out = {"video": frames, "caption": example["caption"]}
    # Ground truth only where the dataset has it (Shapes).
    if "attributes" in example:
      out["attributes"] = tf.cast(example["attributes"], tf.int32)
    if "centers" in example:
      offset = tf.constant([top, left], tf.float32)
      centers = tf.gather(example["centers"], frame_index) * scale - offset
      out["centers"] = tf.cast(centers, tf.float32)
    if sources:
      images = {"first_frame": video[start], "random_frame": video[other],
                **{key: example[key] for key in _IMAGE_KEYS if key in example}}
      missing = [s for s in sources if s not in images]
      if missing:
        raise UserError(f"config.transformer.controls: control source(s) {missing} are not "
                        f"available for dataset {data.name!r}. Fix: use first_frame or "
                        "random_frame.")
      controls = tf.stack([images[s] for s in sources])
      out["controls"] = _resize_square(tf, controls, data.image_size)[0]
    return out

  return fn


def process_seed(config, process_index: int) -> int:
  """Base seed of one process's input stream (shuffle order, start frames, caption choice)."""
  return int(config.seed) * 1_000_003 + process_index


def caption_picker(seed: int, training: bool):
  """(index, example with a `captions` list) -> (index, {video, caption}): in training a random
  caption of the list, drawn statelessly from (seed, index); the first caption otherwise."""
  tf = import_tensorflow()

  def pick(index, example):
    if training:
      key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64) + (1 << 41)])
      count = tf.size(example["captions"], out_type=tf.int32)
      choice = tf.random.stateless_uniform((), key, 0, count, tf.int32)
    else:
      choice = tf.constant(0)
    return index, {"video": example["video"], "caption": example["captions"][choice]}

  return pick


def process_share(batch_size: int, process_index: int | None, process_count: int | None
                  ) -> tuple[int, int]:
  """(process index, process count), defaulting to JAX's; the global batch must split evenly."""
  if process_index is None or process_count is None:
    import jax
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if batch_size <= 0 or batch_size % process_count:
    raise UserError(f"batch size {batch_size} is not a positive multiple of the {process_count} "
                    "processes. Fix: use a global batch size divisible by the process count.")
  return process_index, process_count


def make_dataset(config, split: str, workdir: str, *, batch_size: int, deterministic: bool,
                 start_step: int = 0, process_index: int | None = None,
                 process_count: int | None = None):
  """Iterator of numpy batches (per-process batch = batch_size / process count).

  Args:
    config: the experiment config (reads `data`, `seed`, `transformer.controls`).
    split: "train", "validation" or "test".
    workdir: the run's workdir (TFDS data under <workdir>/tfds unless data.data_dir is set,
      SentencePiece model under <workdir>/text).
    batch_size: global batch size.
    deterministic: True for evaluation (one ordered pass, start frame 0, no augmentation).
    start_step: resume the stream at this step (skips start_step batches exactly).
    process_index, process_count: default to jax.process_index() / jax.process_count().
  """
  if process_index is None or process_count is None:
    import jax
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if config.data.name == "mugen":
    from mmvid_jax.data import mugen_input
    return mugen_input.make_dataset(config, split, workdir, batch_size=batch_size,
                                    deterministic=deterministic, start_step=start_step,
                                    process_index=process_index, process_count=process_count)
  if config.data.name == "video_text":
    from mmvid_jax.data import video_text_input
    return video_text_input.make_dataset(config, split, workdir, batch_size=batch_size,
                                         deterministic=deterministic, start_step=start_step,
                                         process_index=process_index,
                                         process_count=process_count)
  if config.data.name == "mmvoxceleb":
    from mmvid_jax.data import mmvoxceleb_input
    return mmvoxceleb_input.make_dataset(config, split, workdir, batch_size=batch_size,
                                         deterministic=deterministic, start_step=start_step,
                                         process_index=process_index,
                                         process_count=process_count)
  if config.data.name in ("iper", "mug"):
    import importlib
    input_module = importlib.import_module(f"mmvid_jax.data.{config.data.name}_input")
    return input_module.make_dataset(config, split, workdir, batch_size=batch_size,
                                     deterministic=deterministic, start_step=start_step,
                                     process_index=process_index, process_count=process_count)
  _check_request(config, split, batch_size, process_count)
  sources = control_sources(config)
  tokenizer = text.get_text_tokenizer(config, workdir)
  tf = import_tensorflow()
  training = not deterministic
  local_batch = batch_size // process_count
  start_element = int(start_step) * local_batch

  if config.data.source == "tfds":
    ds, decode = _tfds_source(config, split, workdir, training, process_index, process_count)
    ds = ds.enumerate().skip(start_element)
  else:
    ds, decode = _stream_source(config, split, training, start_element, process_index,
                                process_count)
    ds = ds.enumerate(start=start_element)
  seed_base = process_seed(config, process_index)
  ds = ds.map(_element_fn(config, decode, sources, training, seed_base),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return text_batches(ds, config, tokenizer, local_batch=local_batch,
                      augment_text=training and split == "train", sources=sources,
                      process_index=process_index, start_step=start_step)


def text_batches(ds, config, tokenizer, *, local_batch: int, augment_text: bool,
                 sources: tuple[str, ...], process_index: int, start_step: int):
  """Batches a tf.data stream of examples with a `caption` and yields numpy batches.

  Shared by every dataset: caption augmentation (sentence dropout, null caption) seeded per
  (seed, process, step) so a resumed run sees the same text, tokenization into `text_ids`, and
  a background prefetch thread.
  """
  tf = import_tensorflow()
  d = config.data
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = True
  ds = ds.with_options(options)

  def batches():
    for step, batch in enumerate(ds.as_numpy_iterator(), start=int(start_step)):
      rng = np.random.default_rng([int(config.seed), process_index, step])
      captions = augment.augment_captions(
          batch["caption"], batch.get("attributes"), rng, sources=sources, training=augment_text,
          drop_sentence=bool(d.get("drop_sentence", False)),
          null_caption_prob=float(d.get("null_caption_prob", 0.0)))
      batch["text_ids"] = tokenizer.encode(captions, int(d.text_seq_len))
      batch["caption"] = np.array([c.encode("utf-8") for c in captions], dtype=object)
      yield batch

  return _prefetch(batches(), int(d.get("prefetch", 2)))


class _Prefetch:
  """Runs a batch iterator in a background thread (text work overlaps the train step).

  The thread stops when this object is closed or garbage collected, so abandoned
  iterators (an evaluation that takes only a few batches) do not pile up.
  """

  _DONE = object()

  def __init__(self, iterator, size: int):
    self._queue = queue.Queue(maxsize=max(1, size))
    self._stop = threading.Event()
    # The thread must not hold `self`, or this object would never be collected.
    self._thread = threading.Thread(target=_fill, args=(iterator, self._queue, self._stop),
                                    daemon=True)
    self._thread.start()

  def __iter__(self):
    return self

  def __next__(self):
    item = self._queue.get()
    if item is self._DONE:
      self._queue.put(item)
      raise StopIteration
    if isinstance(item, BaseException):
      raise item
    return item

  def close(self):
    self._stop.set()

  def __del__(self):
    self._stop.set()


def _fill(iterator, out: queue.Queue, stop: threading.Event):
  def put(item) -> bool:
    while not stop.is_set():
      try:
        out.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  try:
    for item in iterator:
      if not put(item):
        return
  except BaseException as e:  # Re-raised in the consumer thread.
    put(e)
    return
  put(_Prefetch._DONE)


def _prefetch(iterator, size: int):
  return _Prefetch(iterator, size) if size > 0 else iterator


def to_global(batch: dict, sharding) -> dict:
  """Per-process numpy batch -> dict of global jax.Arrays (host-only keys dropped).

  `sharding` splits the leading (batch) axis, e.g. NamedSharding(mesh, P(("data", "fsdp")));
  trailing axes are replicated.
  """
  import jax
  return {key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
          for key, value in batch.items() if key not in HOST_ONLY_KEYS}
