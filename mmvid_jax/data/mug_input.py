"""tf.data input for `mug`: numpy batches per the batch contract (`video`, `text_ids`,
`caption`, and `controls` for first_frame / random_frame control slots, e.g. the
expression-transfer variant's `face3_8x8` slots).

Training: shuffled, endless, a random start per take with `frame_step` between frames, a
random caption of the take's list, then the shared text augmentation (null caption).
Evaluation: one ordered pass, start frame 0, the first (canonical) caption. Every random
choice is seeded by `config.seed` and the element index, so `start_step=k` resumes exactly.
"""

from mmvid_jax.data import frame_folders
from mmvid_jax.data import mug_data
from mmvid_jax.data import pipeline
from mmvid_jax.data import text
from mmvid_jax.errors import UserError

SOURCES = ("tfds",)
CONTROL_SOURCES = ("first_frame", "random_frame")


def check(config, split: str = "train") -> None:
  """MUG settings, checked before any work."""
  d = config.data
  frame_folders.check_root("MUG", d.manual_dir, mug_data.LAYOUT)
  if d.source not in SOURCES:
    raise UserError(f"config.data.source: {d.source!r} is not a mug source. Fix: use 'tfds' "
                    "(takes are decoded once by the data stage).")
  if split not in mug_data.SPLITS:
    raise UserError(f"unknown split {split!r}. Fix: use one of {', '.join(mug_data.SPLITS)}.")
  fractions = tuple(d.split_fractions)
  if (len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0
      or abs(sum(fractions) - 1.0) > 1e-6):
    raise UserError(f"config.data.split_fractions {fractions} is not (train, validation, test) "
                    "fractions summing to 1 with train > 0. Fix: pass e.g. '(0.8, 0.1, 0.1)'.")
  if int(d.captions_per_take) < 1:
    raise UserError(f"config.data.captions_per_take must be >= 1, got {d.captions_per_take}. "
                    "Fix: use e.g. 8.")
  missing = [s for s in pipeline.control_sources(config) if s not in CONTROL_SOURCES]
  if missing:
    raise UserError(f"config.transformer.controls: control source(s) {missing} are not "
                    "available for mug. Fix: use first_frame or random_frame.")


def make_dataset(config, split: str, workdir: str, *, batch_size: int, deterministic: bool,
                 start_step: int = 0, process_index: int | None = None,
                 process_count: int | None = None):
  """Iterator of numpy batches (per-process batch = batch_size / process count)."""
  check(config, split)
  process_index, process_count = pipeline.process_share(batch_size, process_index, process_count)
  from mmvid_jax.data import mug_tfds
  tokenizer = text.get_text_tokenizer(config, workdir)
  tf = pipeline.import_tensorflow()
  sources = pipeline.control_sources(config)
  training = not deterministic
  local_batch = batch_size // process_count
  seed = pipeline.process_seed(config, process_index)

  builder = mug_tfds.built_builder(config, workdir)
  ds = pipeline.read_tfds_split(
      builder, split, config, training=training, process_index=process_index,
      process_count=process_count, shuffle_seed=seed, unit="takes",
      missing_fix=f"add subjects to {config.data.manual_dir!r} and rebuild, or change "
                  "config.data.split_fractions.")
  decode_video = builder.info.features["video"].decode_example

  pick_caption = pipeline.caption_picker(seed, training)

  def decode(example):
    return {"video": decode_video(example["video"]), "caption": example["caption"]}

  # The shared per-clip step: start frame (random in training), frame_step, controls.
  element = pipeline._element_fn(config, decode, sources, training, seed)  # pylint: disable=protected-access
  ds = ds.enumerate().skip(int(start_step) * local_batch)
  ds = ds.map(pick_caption).map(element, num_parallel_calls=tf.data.AUTOTUNE,
                                deterministic=True)
  return pipeline.text_batches(ds, config, tokenizer, local_batch=local_batch,
                               augment_text=training and split == "train", sources=sources,
                               process_index=process_index, start_step=start_step)
