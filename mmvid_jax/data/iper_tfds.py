"""TFDS builder `iper`: the iPER videos cut into 100-frame clips and decoded once.

One builder config per resolution, clip length and minimum length, named `r{R}_c{C}_m{M}`,
e.g. `r128_c100_m85`: every video is cut into consecutive C-frame clips, resized to R x R
(shorter side to R, centre crop), stored as zlib-compressed uint8 with the caption and its
fields. Clips shorter than M frames (what training needs: 7 * 12 + 1 = 85 with `--slow`),
undecodable sources, unnamed sources and duplicates are skipped, counted in one log line per
kind and in the dataset's metadata (`skipped`).

Nothing is downloaded: `manual_dir` is the user's copy of iPER (layouts in `iper_data`).
"""

import dataclasses

# First: it sets the TensorFlow logging environment before TFDS imports TensorFlow.
from mmvid_jax.data import tfds_base  # isort: skip
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from mmvid_jax.data import frame_folders  # noqa: E402
from mmvid_jax.data import iper_data  # noqa: E402
from mmvid_jax.errors import UserError  # noqa: E402

_ZLIB = tfds.features.Encoding.ZLIB
_WHOLE_VIDEO = 10**7  # read every frame of a source, then cut


@dataclasses.dataclass
class IperConfig(tfds.core.BuilderConfig):
  image_size: int = 128
  clip_frames: int = 100
  min_frames: int = 85
  validation_persons: int = 10
  split_seed: int = 42


def builder_config(data_config) -> IperConfig:
  d = data_config
  min_frames = iper_data.needed_frames(int(d.num_frames), int(d.frame_step), bool(d.slow))
  name = f"r{d.image_size}_c{d.clip_frames}_m{min_frames}"
  if (int(d.validation_persons), int(d.split_seed)) != (10, 42):
    name += f"_v{d.validation_persons}s{d.split_seed}"
  return IperConfig(name=name, version="1.0.0", image_size=int(d.image_size),
                    clip_frames=int(d.clip_frames), min_frames=min_frames,
                    validation_persons=int(d.validation_persons), split_seed=int(d.split_seed),
                    description="iPER videos cut into clips, decoded with imageio/ffmpeg.")


class Iper(tfds_base.ManualDirBuilder):
  """iPER person videos (text -> video, MMVID's setting)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass your folder of " + iper_data.LAYOUT + " as manual_dir."

  def __init__(self, *, manual_dir: str = "", num_workers: int = 0, **kwargs):
    self.skipped = frame_folders.Skipped("iper")
    super().__init__(manual_dir=manual_dir, num_workers=num_workers, **kwargs)


  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "video": tfds.features.Tensor(shape=(None, c.image_size, c.image_size, 3),
                                          dtype=np.uint8, encoding=_ZLIB),
            "caption": tfds.features.Text(),
            "person": tfds.features.Text(),
            "outfit": tfds.features.Text(),
            "pose": tfds.features.Text(),  # "'A' pose" or "random pose"
        }),
        disable_shuffling=True,  # stored in key order: evaluation passes are reproducible
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    manual_dir = self._manual_dir or str(dl_manager.manual_dir)
    c = self.builder_config
    videos, skipped = iper_data.scan(manual_dir)
    skipped.log("scan")
    self.skipped.merge(skipped)
    by_split = iper_data.split_videos(videos, c.validation_persons, c.split_seed)
    if not by_split["train"]:
      raise UserError(f"config.data.manual_dir {manual_dir!r}: every iPER video fell in the "
                      "validation split. Fix: add videos of more persons or outfits, or lower "
                      "config.data.validation_persons.")
    return {split: self._generate_examples(split, items)
            for split, items in by_split.items() if items}

  def _generate_examples(self, split, videos):
    c = self.builder_config
    skipped = frame_folders.Skipped("iper")
    sources = [(video, source, start) for video in videos
               for source, start in zip(video.sources, video.starts)]
    decoded = frame_folders.decode_many([s for _, s, _ in sources], c.image_size, _WHOLE_VIDEO,
                                        frame_folders.default_workers(self._num_workers))
    kept = 0
    for (video, source, first), (_, frames) in zip(sources, decoded):
      if isinstance(frames, str):
        skipped.add("unreadable", "videos or frame folders that could not be decoded",
                    f"{source.relative_path} ({frames})")
        continue
      for start, clip in frame_folders.cut_clips(frames, c.clip_frames, first):
        clip_id = f"{video.key.name}#{start}"
        if len(clip) < c.min_frames:
          skipped.add("too_short", f"clips shorter than {c.min_frames} frames", clip_id)
          continue
        kept += 1
        yield clip_id, {"id": clip_id, "video": clip, "caption": iper_data.caption(video.key),
                        "person": video.key.person, "outfit": video.key.outfit,
                        "pose": iper_data.pose_words(video.key.type)}
    skipped.log(split)
    self.skipped.merge(skipped)
    self.info.metadata["skipped"] = self.skipped.counts()
    if not kept:
      raise UserError(f"iper {split}: every clip was skipped ({skipped.counts()}). Fix: add "
                      "readable videos of at least "
                      f"{c.min_frames} frames, or lower data.num_frames / frame_step.")


def get_builder(config, workdir: str) -> Iper:
  return tfds_base.make_builder(Iper, builder_config(config.data), config, workdir)


def is_built(config, workdir: str) -> bool:
  return tfds_base.is_built(get_builder(config, workdir))


def build(config, workdir: str) -> Iper:
  """Decodes and writes the dataset (no-op when already there)."""
  frame_folders.check_root("iPER", config.data.manual_dir, iper_data.LAYOUT)
  return tfds_base.build(get_builder(config, workdir), config.data.manual_dir)


def built_builder(config, workdir: str) -> Iper:
  """The builder of an already built dataset, or a clear UserError saying how to build it."""
  return tfds_base.require_built(get_builder(config, workdir))
