"""TFDS builder `mug`: the MUG facial expression takes, decoded once.

One builder config per resolution and clip sampling, named `r{R}_t{T}_s{S}_c{C}`, e.g.
`r128_t8_s4_c64`: the first C frames of every take (fewer when the take is shorter),
resized to R x R (shorter side to R, centre crop), stored as zlib-compressed uint8 with the
take's captions, subject and expression. Training draws T frames S apart from a random start
inside them. Takes that cannot be decoded or have fewer than (T-1)*S+1 frames are skipped,
counted in one log line per kind and in the dataset's metadata (`skipped`).

Nothing is downloaded: `manual_dir` is the user's copy of MUG (layout in `mug_data`).
"""

import dataclasses

# First: it sets the TensorFlow logging environment before TFDS imports TensorFlow.
from mmvid_jax.data import tfds_base  # isort: skip
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from mmvid_jax.data import frame_folders  # noqa: E402
from mmvid_jax.data import mug_data  # noqa: E402
from mmvid_jax.errors import UserError  # noqa: E402

_ZLIB = tfds.features.Encoding.ZLIB
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclasses.dataclass
class MugConfig(tfds.core.BuilderConfig):
  image_size: int = 128
  needed_frames: int = 29
  clip_frames: int = 64
  split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
  captions_per_take: int = 8
  caption_seed: int = 0


def builder_config(data_config) -> MugConfig:
  d = data_config
  fractions = tuple(float(f) for f in d.split_fractions)
  name = f"r{d.image_size}_t{d.num_frames}_s{d.frame_step}_c{d.clip_frames}"
  if (fractions, int(d.captions_per_take), int(d.caption_seed)) != (DEFAULT_FRACTIONS, 8, 0):
    name += "_" + "_".join(f"{f:g}" for f in fractions) + f"_p{d.captions_per_take}"
    name += f"_k{d.caption_seed}"
  return MugConfig(
      name=name, version="1.0.0", image_size=int(d.image_size),
      needed_frames=(int(d.num_frames) - 1) * int(d.frame_step) + 1,
      clip_frames=int(d.clip_frames), split_fractions=fractions,
      captions_per_take=int(d.captions_per_take), caption_seed=int(d.caption_seed),
      description="MUG facial expression takes with expression captions.")


class Mug(tfds_base.ManualDirBuilder):
  """MUG facial expressions (text -> video, image + text -> video)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass your copy of " + mug_data.LAYOUT + " as manual_dir."

  def __init__(self, *, manual_dir: str = "", num_workers: int = 0, **kwargs):
    self.skipped = frame_folders.Skipped("mug")
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
            "subject": tfds.features.Text(),
            "expression": tfds.features.ClassLabel(names=mug_data.EXPRESSIONS),
        }),
        disable_shuffling=True,  # stored in path order: evaluation passes are reproducible
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    manual_dir = self._manual_dir or str(dl_manager.manual_dir)
    c = self.builder_config
    takes, skipped = mug_data.scan(manual_dir)
    skipped.log("scan")
    self.skipped.merge(skipped)
    by_split = mug_data.split_takes(takes, c.split_fractions)
    for split in ("validation", "test"):
      if not by_split[split]:
        logging.warning("mug: no subject falls in the %s split; it is left out.", split)
    if not by_split["train"]:
      raise UserError(f"config.data.manual_dir {manual_dir!r}: no MUG subject falls in the "
                      "train split. Fix: add subjects, or raise config.data.split_fractions[0].")
    return {split: self._generate_examples(split, items)
            for split, items in by_split.items() if items}

  def _generate_examples(self, split, takes):
    c = self.builder_config
    skipped = frame_folders.Skipped("mug")
    kept = 0
    decoded = frame_folders.decode_many(takes, c.image_size, c.clip_frames,
                                        frame_folders.default_workers(self._num_workers))
    for take, frames in decoded:
      if isinstance(frames, str):
        skipped.add("unreadable", "takes that could not be decoded",
                    f"{take.relative_path} ({frames})")
      elif len(frames) < c.needed_frames:
        skipped.add("too_short", f"takes shorter than {c.needed_frames} frames",
                    take.relative_path)
      else:
        kept += 1
        yield take.relative_path, {
            "id": take.relative_path, "video": frames, "subject": take.subject,
            "expression": take.expression,
            "captions": mug_data.captions(take.expression, take.relative_path,
                                          c.captions_per_take, c.caption_seed)}
    skipped.log(split)
    self.skipped.merge(skipped)
    self.info.metadata["skipped"] = self.skipped.counts()
    if not kept:
      raise UserError(f"mug {split}: every take was skipped ({skipped.counts()}). Fix: add "
                      f"readable takes of at least {c.needed_frames} frames there, or lower "
                      "data.num_frames / frame_step.")


def get_builder(config, workdir: str) -> Mug:
  return tfds_base.make_builder(Mug, builder_config(config.data), config, workdir)


def is_built(config, workdir: str) -> bool:
  return tfds_base.is_built(get_builder(config, workdir))


def build(config, workdir: str) -> Mug:
  """Decodes and writes the dataset (no-op when already there)."""
  frame_folders.check_root("MUG", config.data.manual_dir, mug_data.LAYOUT)
  return tfds_base.build(get_builder(config, workdir), config.data.manual_dir)


def built_builder(config, workdir: str) -> Mug:
  """The builder of an already built dataset, or a clear UserError saying how to build it."""
  return tfds_base.require_built(get_builder(config, workdir))
