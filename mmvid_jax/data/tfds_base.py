"""The base of every mmvid-jax TFDS builder that reads a user's folder (`manual_dir`).

It holds what the MUGEN, video_text, iPER, MUG and MM-VoxCeleb builders share: the folder and
the number of decoding workers passed at construction, the release notes, and the builder's
source path (TFDS finds it through `importlib_resources`, which the pinned environment lacks).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from etils import epath  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from mmvid_jax.errors import UserError  # noqa: E402


class ManualDirBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A GeneratorBasedBuilder over `manual_dir` (never downloads), decoding on `num_workers`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def __init__(self, *, manual_dir: str = "", num_workers: int = 0, **kwargs):
    self._manual_dir, self._num_workers = manual_dir, num_workers
    super().__init__(**kwargs)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(sys.modules[cls.__module__].__file__)


def data_dir(config, workdir: str) -> str:
  """TFDS data_dir of a run: `config.data.data_dir`, or <workdir>/tfds."""
  return config.data.data_dir or os.path.join(workdir, "tfds")


def make_builder(builder_class, builder_config, config, workdir: str, **kwargs):
  """`builder_class` for this config and workdir (TensorFlow imported with accelerators hidden)."""
  from mmvid_jax.data.pipeline import import_tensorflow
  import_tensorflow()
  d = config.data
  return builder_class(config=builder_config, data_dir=data_dir(config, workdir),
                       manual_dir=d.manual_dir, num_workers=int(d.get("build_workers", 0)),
                       **kwargs)


def is_built(builder) -> bool:
  return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))


def build(builder, manual_dir: str, beam_options=None):
  """Writes the dataset from `manual_dir` (no-op when already there); never downloads."""
  from absl import logging
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False, beam_options=beam_options))
  logging.info("TFDS %s/%s ready in %s", builder.name, builder.builder_config.name,
               builder.data_dir)
  return builder


def require_built(builder, extra_fix: str = ""):
  """`builder` when its dataset is built, else a UserError saying how to build it."""
  if not is_built(builder):
    fixes = ["run the data stage with this config (--config.stage=data)",
             "point --config.data.data_dir at the folder where it was built"] + (
                 [extra_fix] if extra_fix else [])
    raise UserError(f"{str(builder.data_dir_root)!r} holds no "
                    f"{builder.name}/{builder.builder_config.name} dataset. Fix: "
                    f"{', '.join(fixes[:-1])} or {fixes[-1]}.")
  return builder
