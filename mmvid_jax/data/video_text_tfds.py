"""TFDS builder `video_text`: a user's own folder of captioned videos, decoded once.

One builder config per resolution and clip sampling, named `r{R}_t{T}_s{S}_c{C}`, e.g.
`r128_t8_s4_c64`: the first C frames of every video (fewer when the video is shorter),
resized to R x R (shorter side to R, centre crop), stored as zlib-compressed uint8 with all
the video's captions. Training draws T frames S apart from a random start inside them.
Videos that cannot be decoded, have no caption, or have fewer than (T-1)*S+1 frames are
skipped, counted in one log line per kind and in the dataset's metadata (`skipped`).

Nothing is downloaded: `manual_dir` is the user's folder (layout in `video_text_data`).
"""

import dataclasses
import os

# First: it sets the TensorFlow logging environment before TFDS imports TensorFlow.
from mmvid_jax.data import tfds_base  # isort: skip
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from mmvid_jax.data import video_text_data  # noqa: E402
from mmvid_jax.errors import UserError  # noqa: E402

_ZLIB = tfds.features.Encoding.ZLIB


@dataclasses.dataclass
class VideoTextConfig(tfds.core.BuilderConfig):
  image_size: int = 128
  num_frames: int = 8
  frame_step: int = 4
  clip_frames: int = 64
  split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
  captions_file: str = ""

  @property
  def needed_frames(self) -> int:
    return (self.num_frames - 1) * self.frame_step + 1


def builder_config(data_config) -> VideoTextConfig:
  d = data_config
  name = f"r{d.image_size}_t{d.num_frames}_s{d.frame_step}_c{d.clip_frames}"
  return VideoTextConfig(
      name=name, version="1.0.0", image_size=int(d.image_size), num_frames=int(d.num_frames),
      frame_step=int(d.frame_step), clip_frames=int(d.clip_frames),
      split_fractions=tuple(float(f) for f in d.split_fractions),
      captions_file=str(d.get("captions_file", "")),
      description="A folder of captioned videos, decoded with imageio/ffmpeg.")


class VideoText(tfds_base.ManualDirBuilder):
  """A user's folder of videos with captions (text -> video)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = ("Pass your folder of " + video_text_data.LAYOUT +
                                  " as config.data.manual_dir.")

  def __init__(self, *, manual_dir: str = "", num_workers: int = 0, **kwargs):
    self.skipped = {"no_caption": 0, "unreadable": 0, "too_short": 0}
    super().__init__(manual_dir=manual_dir, num_workers=num_workers, **kwargs)


  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "video": tfds.features.Tensor(shape=(None, c.image_size, c.image_size, 3),
                                          dtype=np.uint8, encoding=_ZLIB),
            "captions": tfds.features.Sequence(tfds.features.Text()),
        }),
        # Stored in path order, so evaluation passes are the same everywhere.
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    manual_dir = self._manual_dir or str(dl_manager.manual_dir)
    c = self.builder_config
    items, uncaptioned = video_text_data.scan(manual_dir, c.captions_file)
    self.skipped["no_caption"] = uncaptioned
    video_text_data.log_skipped("all", 0, uncaptioned, [], [], c.needed_frames)
    by_split = video_text_data.split_items(items, manual_dir, c.split_fractions)
    generators = {}
    for split, split_items in by_split.items():
      if not split_items:
        logging.warning("video_text: no captioned video falls in the %s split; it is left out.",
                        split)
        continue
      generators[split] = self._generate_examples(split, split_items)
    if "train" not in generators:
      raise UserError(f"config.data.manual_dir {manual_dir!r}: no captioned video falls in the "
                      "train split. Fix: add captioned videos (or a train/ folder), or raise "
                      "config.data.split_fractions[0].")
    return generators

  def _generate_examples(self, split, items):
    c = self.builder_config
    workers = _default_workers(self._num_workers)
    unreadable, too_short, kept = [], [], 0
    for item, frames in video_text_data.decode_many(items, c.image_size, c.clip_frames, workers):
      if isinstance(frames, str):
        logging.info("video_text: cannot decode %s (%s).", item.path, frames)
        unreadable.append(item.relative_path)
      elif len(frames) < c.needed_frames:
        too_short.append(item.relative_path)
      else:
        kept += 1
        yield item.relative_path, {"id": item.relative_path, "video": frames,
                                   "captions": list(item.captions)}
    video_text_data.log_skipped(split, len(items), 0, unreadable, too_short, c.needed_frames)
    self.skipped["unreadable"] += len(unreadable)
    self.skipped["too_short"] += len(too_short)
    self.info.metadata["skipped"] = dict(self.skipped)
    if not kept:
      raise UserError(f"video_text {split}: every video was skipped ({len(unreadable)} "
                      f"undecodable, {len(too_short)} shorter than {c.needed_frames} frames). "
                      "Fix: add usable videos there, or lower data.num_frames/frame_step.")


def _default_workers(requested: int) -> int:
  if requested > 0:
    return requested
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:
    return max(1, os.cpu_count() or 1)


def data_dir(config, workdir: str) -> str:
  return tfds_base.data_dir(config, workdir)


def get_builder(config, workdir: str) -> VideoText:
  return tfds_base.make_builder(VideoText, builder_config(config.data), config, workdir)


def is_built(config, workdir: str) -> bool:
  return tfds_base.is_built(get_builder(config, workdir))


def build(config, workdir: str) -> VideoText:
  """Decodes and writes the dataset (no-op when already there)."""
  video_text_data.check_folder(config.data.manual_dir)
  return tfds_base.build(get_builder(config, workdir), config.data.manual_dir)


def built_builder(config, workdir: str) -> VideoText:
  """The builder of an already built dataset, or a clear UserError saying how to build it."""
  return tfds_base.require_built(get_builder(config, workdir))
