"""TFDS builder `mmvoxceleb`: the Multimodal VoxCeleb folder, decoded once for every mode.

One builder config per resolution and storage, named `r{R}_t{T}_s{S}_c{C}_k{K}_p{P}_h{hash}`
(plus `_txt` with the release's captions, `data.caption_source="release"`):
per clip the first C frames resized to R x R (shorter side, centre crop), the 20 PCFG
captions (generated from the labels, or the release's txt/<key>.txt), the 40 labels, K
evenly spread mask frames and K drawing frames (empty when the folder has none), and a
pool of P frames and P drawings of random clips of the same pid
(MMVID draws "a random same-pid video, a random frame of it" per example; the pool holds P
such draws made at build time, seeded per key). `h` is a hash of the split fractions.
Clips without a usable label, with an empty frame folder, with an undecodable frame, or with
fewer than (T-1)*S+1 frames are skipped, counted in one log line per kind and in the
dataset's metadata (`skipped`).

Nothing is downloaded: `manual_dir` is the release folder (layout in `mmvoxceleb_data`).
"""

import dataclasses
import hashlib

# First: it sets the TensorFlow logging environment before TFDS imports TensorFlow.
from mmvid_jax.data import tfds_base  # isort: skip
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from mmvid_jax.data import mmvoxceleb_data as vox  # noqa: E402
from mmvid_jax.data import video_text_tfds  # noqa: E402
from mmvid_jax.errors import UserError  # noqa: E402

_ZLIB = tfds.features.Encoding.ZLIB


@dataclasses.dataclass
class MmVoxCelebConfig(tfds.core.BuilderConfig):
  image_size: int = 128
  num_frames: int = 8
  frame_step: int = 4
  clip_frames: int = 64
  control_frames: int = 8
  pool_size: int = 8
  split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
  caption_source: str = "generate"

  @property
  def needed_frames(self) -> int:
    return (self.num_frames - 1) * self.frame_step + 1


def builder_config(data_config) -> MmVoxCelebConfig:
  d = data_config
  fractions = tuple(float(f) for f in d.split_fractions)
  split_hash = hashlib.sha1(repr(fractions).encode()).hexdigest()[:6]
  name = (f"r{d.image_size}_t{d.num_frames}_s{d.frame_step}_c{d.clip_frames}"
          f"_k{d.control_frames}_p{d.pool_size}_h{split_hash}")
  caption_source = str(d.get("caption_source", "generate"))
  if caption_source == "release":
    name += "_txt"
  return MmVoxCelebConfig(
      name=name, version="1.0.0", image_size=int(d.image_size), num_frames=int(d.num_frames),
      frame_step=int(d.frame_step), clip_frames=int(d.clip_frames),
      control_frames=int(d.control_frames), pool_size=int(d.pool_size),
      split_fractions=fractions, caption_source=caption_source,
      description="Multimodal VoxCeleb frames, masks, drawings.")


class Mmvoxceleb(tfds_base.ManualDirBuilder):
  """Multimodal VoxCeleb (MMVID): frames, PCFG captions, labels, masks, drawings."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass the folder holding " + vox.LAYOUT + " as manual_dir."

  def __init__(self, *, manual_dir: str = "", num_workers: int = 0, **kwargs):
    self.skipped = {"no_label": 0, "bad_label": 0, "no_frames": 0, "no_text": 0,
                    "unreadable": 0, "too_short": 0, "bad_control_frames": 0}
    # Kept clips without mask / drawing frames: the modes that need them leave them out.
    self.without = {"mask": 0, "draw": 0}
    super().__init__(manual_dir=manual_dir, num_workers=num_workers, **kwargs)


  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    images = lambda: tfds.features.Tensor(shape=(None, s, s, 3), dtype=np.uint8,  # noqa: E731
                                          encoding=_ZLIB)
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "pid": tfds.features.Text(),
            "video": images(),
            "captions": tfds.features.Sequence(tfds.features.Text()),
            "labels": tfds.features.Tensor(shape=(vox.captions_lib.NUM_ATTRIBUTES,),
                                           dtype=np.int32),
            "mask": images(),
            "draw": images(),
            "pid_frames": images(),
            "pid_draws": images(),
        }),
        disable_shuffling=True,  # key order, so evaluation passes are the same everywhere
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    manual_dir = self._manual_dir or str(dl_manager.manual_dir)
    c = self.builder_config
    items, counts = vox.scan(manual_dir, c.caption_source)
    vox.log_skipped(counts)
    for kind in ("no_label", "bad_label", "no_frames", "no_text"):
      self.skipped[kind] = len(getattr(counts, kind))
    by_split = vox.split_items(items, c.split_fractions)
    generators = {}
    for split, split_items in by_split.items():
      if not split_items:
        logging.warning("mmvoxceleb: no clip falls in the %s split; it is left out.", split)
        continue
      generators[split] = self._generate_examples(split, split_items)
    if "train" not in generators:
      raise UserError(f"config.data.manual_dir {manual_dir!r}: no usable clip falls in the "
                      "train split. Fix: add labelled clips, or raise "
                      "config.data.split_fractions[0].")
    return generators

  def _generate_examples(self, split, items):
    c = self.builder_config
    workers = video_text_tfds._default_workers(self._num_workers)  # pylint: disable=protected-access
    unreadable, too_short, bad_controls, kept = [], [], 0, 0
    without = {"mask": 0, "draw": 0}
    for item, example in vox.decode_many(items, c.image_size, c.clip_frames, c.control_frames,
                                         c.pool_size, workers):
      if isinstance(example, str):
        logging.info("mmvoxceleb: cannot decode %s (%s).", item.key, example)
        unreadable.append(item.key)
      elif len(example["video"]) < c.needed_frames:
        too_short.append(item.key)
      else:
        kept += 1
        bad_controls += example.pop("bad_control_frames")
        for modality in without:
          without[modality] += int(len(example[modality]) == 0)
        yield item.key, example
    _log_split(split, len(items), unreadable, too_short, bad_controls, c.needed_frames)
    self.skipped["unreadable"] += len(unreadable)
    self.skipped["too_short"] += len(too_short)
    self.skipped["bad_control_frames"] += bad_controls
    self.info.metadata["skipped"] = dict(self.skipped)
    for modality, count in without.items():
      self.without[modality] += count
    self.info.metadata["without"] = dict(self.without)
    if any(without.values()):
      logging.warning("mmvoxceleb %s: %d clips have no mask frames and %d no drawing frames; "
                      "modes with mask/drawing controls leave them out.", split,
                      without["mask"], without["draw"])
    if not kept:
      raise UserError(f"mmvoxceleb {split}: every clip was skipped ({len(unreadable)} "
                      f"undecodable, {len(too_short)} shorter than {c.needed_frames} frames). "
                      "Fix: check the frames there, or lower data.num_frames/frame_step.")


def _log_split(split, total, unreadable, too_short, bad_controls, needed):
  def examples(keys):
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
  if unreadable:
    logging.warning("mmvoxceleb %s: skipped %d of %d clips with a frame that could not be "
                    "decoded (%s).", split, len(unreadable), total, examples(unreadable))
  if too_short:
    logging.warning("mmvoxceleb %s: skipped %d of %d clips shorter than %d frames (%s).", split,
                    len(too_short), total, needed, examples(too_short))
  if bad_controls:
    logging.warning("mmvoxceleb %s: left out %d mask/drawing/pool frames that could not be "
                    "decoded.", split, bad_controls)


def data_dir(config, workdir: str) -> str:
  return tfds_base.data_dir(config, workdir)


def get_builder(config, workdir: str) -> Mmvoxceleb:
  return tfds_base.make_builder(Mmvoxceleb, builder_config(config.data), config, workdir)


def is_built(config, workdir: str) -> bool:
  return tfds_base.is_built(get_builder(config, workdir))


def build(config, workdir: str) -> Mmvoxceleb:
  """Decodes and writes the dataset (no-op when already there)."""
  vox.check_folder(config.data.manual_dir)
  return tfds_base.build(get_builder(config, workdir), config.data.manual_dir)


def built_builder(config, workdir: str) -> Mmvoxceleb:
  """The builder of an already built dataset, or a clear UserError saying how to build it."""
  return tfds_base.require_built(get_builder(config, workdir))
