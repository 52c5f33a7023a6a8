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
