"""tf.data input for `video_text`: numpy batches per the batch contract.

`make_dataset` has the signature and behaviour of `pipeline.make_dataset` and yields `video`,
`text_ids`, `caption` (and `controls` for first_frame / random_frame control slots).
Training: shuffled, endless, a random start per element with `frame_step` between frames, a
random caption of the video's list, then the Shapes path's text augmentation (sentence
dropout, null caption). Evaluation: one ordered pass, start frame 0, the first caption.
Every random choice is seeded by `config.seed` and the element index, so `start_step=k`
resumes exactly.
"""


from mmvid_jax.data import pipeline
from mmvid_jax.data import text
from mmvid_jax.data import video_text_data
from mmvid_jax.errors import UserError

SOURCES = ("tfds",)
CONTROL_SOURCES = ("first_frame", "random_frame")


def check(config, split: str = "train") -> None:
  """video_text settings, checked before any work."""
  d = config.data
  video_text_data.check_folder(d.manual_dir)
  if d.source not in SOURCES:
    raise UserError(f"config.data.source: {d.source!r} is not a video_text source. Fix: use "
                    "'tfds' (videos are decoded once by the data stage).")
  if split not in video_text_data.SPLITS:
    raise UserError(f"unknown split {split!r}. Fix: use one of "
                    f"{', '.join(video_text_data.SPLITS)}.")
  missing = [s for s in pipeline.control_sources(config) if s not in CONTROL_SOURCES]
  if missing:
    raise UserError(f"config.transformer.controls: control source(s) {missing} are not "
                    "available for video_text. Fix: use first_frame or random_frame.")


def _tfds_elements(config, split, workdir, training, process_index, process_count, seed):
  from mmvid_jax.data import video_text_tfds
  builder = video_text_tfds.built_builder(config, workdir)
  ds = pipeline.read_tfds_split(
      builder, split, config, training=training, process_index=process_index,
      process_count=process_count, shuffle_seed=seed, unit="videos",
      missing_fix=f"add videos (or a folder for that split) to {config.data.manual_dir!r} and "
                  "rebuild, or change config.data.split_fractions.")
  video_feature = builder.info.features["video"]
  return ds, pipeline.caption_picker(seed, training), video_feature.decode_example


def make_dataset(config, split: str, workdir: str, *, batch_size: int, deterministic: bool,
                 start_step: int = 0, process_index: int | None = None,
                 process_count: int | None = None):
  """Iterator of numpy batches (per-process batch = batch_size / process count)."""
  check(config, split)
  process_index, process_count = pipeline.process_share(batch_size, process_index, process_count)
  d = config.data
  sources = pipeline.control_sources(config)
  tokenizer = text.get_text_tokenizer(config, workdir)
  tf = pipeline.import_tensorflow()
  training = not deterministic
  local_batch = batch_size // process_count
  start_element = int(start_step) * local_batch
  seed = pipeline.process_seed(config, process_index)

  ds, pick_caption, decode_video = _tfds_elements(config, split, workdir, training,
                                                  process_index, process_count, seed)

  def decode(example):
    return {"video": decode_video(example["video"]), "caption": example["caption"]}

  # The shared per-clip step: start frame (random in training), frame_step, controls.
  element = pipeline._element_fn(config, decode, sources, training, seed)  # pylint: disable=protected-access
  ds = ds.enumerate().skip(start_element)
  ds = ds.map(pick_caption).map(element, num_parallel_calls=tf.data.AUTOTUNE,
                                deterministic=True)
  return pipeline.text_batches(ds, config, tokenizer, local_batch=local_batch,
                               augment_text=training and split == "train", sources=sources,
                               process_index=process_index, start_step=start_step)
