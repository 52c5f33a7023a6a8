"""tf.data input for `iper`: numpy batches per the batch contract (`video`, `text_ids`,
`caption`, and `controls` for first_frame / random_frame control slots).

Per clip, as MMVID's iPER loader does it:
- speed (`data.slow`): training draws slow / normal / fast uniformly, i.e. frame step
  step // 2, step, step + step // 2 (4, 8, 12 for step 8), and appends "slow speed." /
  "normal speed." / "fast speed." to the caption; evaluation uses `data.eval_speed`
  (MMVID: normal);
- frames: T frames that step apart from a start uniform in [0, len - (T - 1) * step - 1]
  (training) or 0 (evaluation);
- caption (`data.drop_sentence`): training on the train split rebuilds it from its fields
  (`iper_data.rebuild_caption`); otherwise it becomes caption[:-1] + ",".
The split "test" reads the validation clips (MMVID holds out one set). Every random choice
is seeded by `config.seed` and the element index, so `start_step=k` resumes exactly.
"""

from mmvid_jax.data import frame_folders
from mmvid_jax.data import iper_data
from mmvid_jax.data import pipeline
from mmvid_jax.data import text
from mmvid_jax.errors import UserError

SOURCES = ("tfds",)
CONTROL_SOURCES = ("first_frame", "random_frame")
SPLITS = ("train", "validation", "test")


def check(config, split: str = "train") -> None:
  """iPER settings, checked before any work."""
  d = config.data
  frame_folders.check_root("iPER", d.manual_dir, iper_data.LAYOUT)
  if d.source not in SOURCES:
    raise UserError(f"config.data.source: {d.source!r} is not an iper source. Fix: use 'tfds' "
                    "(videos are decoded once by the data stage).")
  if split not in SPLITS:
    raise UserError(f"unknown split {split!r}. Fix: use one of {', '.join(SPLITS)}.")
  if d.eval_speed not in iper_data.SPEEDS:
    raise UserError(f"config.data.eval_speed: {d.eval_speed!r} is unknown. Fix: use one of "
                    f"{', '.join(iper_data.SPEEDS)}.")
  if bool(d.slow) and int(d.frame_step) < 2:
    raise UserError(f"config.data.slow needs frame_step >= 2 (slow = step // 2), got "
                    f"{d.frame_step}. Fix: raise data.frame_step or set data.slow=False.")
  needed = iper_data.needed_frames(int(d.num_frames), int(d.frame_step), bool(d.slow))
  if needed > int(d.clip_frames):
    raise UserError(f"config.data: {d.num_frames} frames at the fastest step need {needed} "
                    f"frames but clips have {d.clip_frames}. Fix: lower data.num_frames or "
                    "data.frame_step, or raise data.clip_frames.")
  missing = [s for s in pipeline.control_sources(config) if s not in CONTROL_SOURCES]
  if missing:
    raise UserError(f"config.transformer.controls: control source(s) {missing} are not "
                    "available for iper. Fix: use first_frame or random_frame.")


def rebuild_caption_tf(tf, example, key):
  """`iper_data.rebuild_caption` in TensorFlow, with three stateless U(0,1) draws."""
  draws = tf.random.stateless_uniform((3,), key)
  who = tf.where(draws[0] < 0.5, "a person", tf.strings.join(["person ", example["person"]]))
  dressed = tf.where(draws[1] < 0.1, "", tf.strings.join([" dressed in ", example["outfit"]]))
  pose = tf.where(draws[2] < 0.5, "is performing some pose",
                  tf.strings.join(["is performing ", example["pose"]]))
  return tf.strings.join([who, dressed, " ", pose, ","])


def _element_fn(config, decode_video, sources, training: bool, augment_caption: bool, seed):
  tf = pipeline.import_tensorflow()
  d = config.data
  num_frames = int(d.num_frames)
  steps = tf.constant(iper_data.speed_steps(int(d.frame_step)), tf.int32)
  words = tf.constant([f"{speed} speed." for speed in iper_data.SPEEDS])
  eval_speed = iper_data.SPEEDS.index(d.eval_speed) if d.slow else 1

  def fn(index, example):
    video = decode_video(example["video"])
    length = tf.shape(video)[0]
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    if training and d.slow:
      speed = tf.random.stateless_uniform((), key + [0, 2 << 40], 0, 3, tf.int32)
    else:
      speed = tf.constant(eval_speed, tf.int32)
    step = steps[speed]
    if training:
      start = tf.random.stateless_uniform((), key, 0, length - (num_frames - 1) * step, tf.int32)
      other = tf.random.stateless_uniform((), key + [0, 1 << 40], 0, length, tf.int32)
    else:
      start, other = tf.constant(0, tf.int32), length // 2
    caption = example["caption"]
    if d.drop_sentence:
      if augment_caption:
        caption = rebuild_caption_tf(tf, example, key + [0, 3 << 40])
      else:
        caption = tf.strings.join([tf.strings.substr(caption, 0, tf.strings.length(caption) - 1),
                                   ","])
    if d.slow:
      caption = tf.strings.join([caption, words[speed]], separator=" ")
    out = {"video": tf.gather(video, start + step * tf.range(num_frames)), "caption": caption}
    if sources:
      images = {"first_frame": video[start], "random_frame": video[other]}
      out["controls"] = tf.stack([images[s] for s in sources])
    return out

  return fn


def make_dataset(config, split: str, workdir: str, *, batch_size: int, deterministic: bool,
                 start_step: int = 0, process_index: int | None = None,
                 process_count: int | None = None):
  """Iterator of numpy batches (per-process batch = batch_size / process count)."""
  check(config, split)
  process_index, process_count = pipeline.process_share(batch_size, process_index, process_count)
  from mmvid_jax.data import iper_tfds
  tokenizer = text.get_text_tokenizer(config, workdir)
  tf = pipeline.import_tensorflow()
  sources = pipeline.control_sources(config)
  training = not deterministic
  local_batch = batch_size // process_count
  seed = pipeline.process_seed(config, process_index)
  stored = "validation" if split == "test" else split

  builder = iper_tfds.built_builder(config, workdir)
  ds = pipeline.read_tfds_split(
      builder, stored, config, training=training, process_index=process_index,
      process_count=process_count, shuffle_seed=seed,
      missing_fix=f"add videos to {config.data.manual_dir!r} and rebuild.")
  element = _element_fn(config, builder.info.features["video"].decode_example, sources,
                        training, training and split == "train", seed)
  ds = ds.enumerate().skip(int(start_step) * local_batch)
  ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return pipeline.text_batches(ds, config, tokenizer, local_batch=local_batch,
                               augment_text=training and split == "train", sources=sources,
                               process_index=process_index, start_step=start_step)
