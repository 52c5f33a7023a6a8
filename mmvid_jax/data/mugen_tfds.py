"""TFDS builder `mugen`: MUGEN clips rendered once at build time, so training reads pixels.

One builder config per resolution and clip sampling, named `r{R}_t{T}_s{S}` (plus `_down` for
`train_downsampled.json`), e.g. `r256_t32_s3`: frames 0, S, ..., (T-1)*S of every clip long
enough (shorter clips are skipped and counted). Each example keeps every caption (index 0 the
auto text, then the manual ones), the clip's characters and game events, and its id.
Rendering runs in `num_workers` processes (default: one per core), or on Apache Beam when
the download config carries Beam options (`mugen_beam`): the same examples either way.

Nothing is downloaded: `manual_dir` holds the split files (the TFDS manual-download
convention), `asset_dir` the sprite tree and `root_dir` (optional) the clips' root. Random
start frames without a rebuild: `config.data.source = "render"` (see `mugen_input`).

TFDS's `tfds build` command builds it too (`tfds_build`; the asset and root folders go
through the environment, since `tfds build` passes no builder arguments):

    python -m mmvid_jax.data.mugen build --asset_dir=PATH/coinrun/assets \
        --config=r128_t16_s6 --manual_dir=PATH/release --data_dir=DIR \
        --beam_pipeline_options=runner=DirectRunner,direct_num_workers=8
"""

import dataclasses
import os

# First: it sets the TensorFlow logging environment before TFDS imports TensorFlow.
from mmvid_jax.data import tfds_base  # isort: skip
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from mmvid_jax.data import mugen  # noqa: E402
from mmvid_jax.data import mugen_beam  # noqa: E402
from mmvid_jax.data import mugen_data  # noqa: E402
from mmvid_jax.data import mugen_game  # noqa: E402
from mmvid_jax.errors import UserError  # noqa: E402

_ZLIB = tfds.features.Encoding.ZLIB


@dataclasses.dataclass
class MugenConfig(tfds.core.BuilderConfig):
  image_size: int = 256
  num_frames: int = 32
  frame_step: int = 3
  downsampled_train: bool = False


def _make_config(image_size: int, num_frames: int, frame_step: int, down: bool) -> MugenConfig:
  name = f"r{image_size}_t{num_frames}_s{frame_step}" + ("_down" if down else "")
  return MugenConfig(name=name, version="1.0.0", image_size=int(image_size),
                     num_frames=int(num_frames), frame_step=int(frame_step),
                     downsampled_train=down,
                     description="MUGEN clips rendered from their game states.")


# Named configs for `tfds build --config=...`: configs/mugen.py's sampling and the reference
# loader's, at 64, 128 and 256 px. Any other sampling works through the data stage.
STANDARD_CONFIGS = tuple(_make_config(r, t, s, False)
                         for r in (64, 128, 256) for t, s in ((16, 6), (32, 3)))
ENV_ASSET_DIR, ENV_ROOT_DIR = "MMVID_MUGEN_ASSET_DIR", "MMVID_MUGEN_ROOT_DIR"


def builder_config(data_config) -> MugenConfig | str:
  """The builder config for `config.data` (by name when it is a standard one)."""
  d = data_config
  config = _make_config(d.image_size, d.num_frames, d.frame_step,
                        bool(d.get("use_downsampled_train", False)))
  standard = {c.name: c for c in STANDARD_CONFIGS}
  return config.name if config == standard.get(config.name) else config


def config_name(data_config) -> str:
  config = builder_config(data_config)
  return config if isinstance(config, str) else config.name


class Mugen(tfds_base.ManualDirBuilder):
  """MUGEN (Hayes et al., 2022): CoinRun gameplay clips with auto and manual captions."""

  BUILDER_CONFIGS = list(STANDARD_CONFIGS)
  RELEASE_NOTES = {"1.0.0": "First release: frames rendered with mmvid_jax.data.mugen_render."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download MUGEN from https://mugen-org.github.io/download and pass the folder holding "
      "train.json, val.json and test.json (coinrun_dataset_jsons/release) as the manual dir.")

  def __init__(self, *, asset_dir: str = "", root_dir: str = "", manual_dir: str = "",
               num_workers: int = 0, **kwargs):
    self._asset_dir = asset_dir or os.environ.get(ENV_ASSET_DIR, "")
    self._root_dir = root_dir or os.environ.get(ENV_ROOT_DIR, "")
    self._use_beam = False
    super().__init__(manual_dir=manual_dir, num_workers=num_workers, **kwargs)


  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "video": tfds.features.Tensor(shape=(c.num_frames, c.image_size, c.image_size, 3),
                                          dtype=np.uint8, encoding=_ZLIB),
            "captions": tfds.features.Sequence(tfds.features.Text()),
            "characters": tfds.features.Sequence(tfds.features.Text()),
            "game_events": tfds.features.Sequence(tfds.features.Text()),
            "world_theme": tfds.features.Scalar(np.int32),
        }),
        homepage="https://mugen-org.github.io/",
        citation="Hayes et al., MUGEN: A Playground for Video-Audio-Text Multimodal "
                 "Understanding and GENeration, ECCV 2022.",
    )

  def _download_and_prepare(self, dl_manager, download_config=None):
    # Beam options (from `tfds build --beam_pipeline_options` or the data stage) switch the
    # build from local processes to a Beam pipeline.
    self._use_beam = download_config is not None and (
        download_config.beam_options is not None or download_config.beam_runner is not None)
    return super()._download_and_prepare(dl_manager, download_config)

  def _split_generators(self, dl_manager):
    manual_dir = self._manual_dir or str(dl_manager.manual_dir)
    if not self._asset_dir or not mugen_game.is_dir(self._asset_dir):
      raise UserError(f"MUGEN asset_dir {self._asset_dir!r} is not a folder. Fix: set "
                      "config.data.asset_dir (or, for `tfds build`, the environment variable "
                      f"{ENV_ASSET_DIR}) to MUGEN's coinrun assets folder.")
    c = self.builder_config
    generators = {}
    for split in mugen_data.SPLITS:
      path = mugen_data.split_file(manual_dir, split, c.downsampled_train and split == "train")
      clips, root = mugen_data.read_split(path, self._root_dir, manual_dir)
      clips, _ = mugen_data.usable(clips, c.num_frames, c.frame_step, "both",
                                   name=os.path.basename(path))
      logging.info("MUGEN %s: rendering %d clips from %s (clips under %s)%s.", split,
                   len(clips), path, root, " on Beam" if self._use_beam else "")
      if self._use_beam:
        generators[split] = mugen_beam.render_transform(
            clips, self._asset_dir, c.image_size, c.frame_step * np.arange(c.num_frames), split)
      else:
        generators[split] = self._generate_examples(clips)
    return generators

  def _generate_examples(self, clips):
    c = self.builder_config
    indices = c.frame_step * np.arange(c.num_frames)
    tasks = ((self._asset_dir, c.image_size, clip.json_path, indices) for clip in clips)
    workers = min(mugen.default_workers(self._num_workers), max(1, len(clips)))
    # Keys are the clip's position in the split (the Beam path uses the same ones).
    for number, (clip, video) in enumerate(zip(clips, mugen.render_many(tasks, workers))):
      yield number, {"id": clip.id, "video": video, "captions": list(clip.captions),
                     "characters": list(clip.characters), "game_events": list(clip.game_events),
                     "world_theme": clip.world_theme}


def data_dir(config, workdir: str) -> str:
  return tfds_base.data_dir(config, workdir)


def get_builder(config, workdir: str) -> Mugen:
  d = config.data
  return tfds_base.make_builder(Mugen, builder_config(d), config, workdir, asset_dir=d.asset_dir,
                                root_dir=d.get("root_dir", ""))


def is_built(config, workdir: str) -> bool:
  return tfds_base.is_built(get_builder(config, workdir))


def build(config, workdir: str) -> Mugen:
  """Renders and writes the dataset (no-op when already there).

  With `config.data.beam_pipeline_options` set (e.g. `runner=DirectRunner,direct_num_workers=8,
  direct_running_mode=multi_processing`), the build runs as an Apache Beam pipeline.
  """
  beam_options = mugen_beam.pipeline_options(config.data.get("beam_pipeline_options", ""))
  return tfds_base.build(get_builder(config, workdir), config.data.manual_dir, beam_options)


def built_builder(config, workdir: str) -> Mugen:
  """The builder of an already built dataset, or a clear UserError saying how to build it."""
  return tfds_base.require_built(get_builder(config, workdir),
                                 "set --config.data.source=render to render clips on the fly")
def tfds_build(argv: list[str]) -> None:
  """`tfds build mugen ...` with this builder registered: TFDS's own build command.

  `argv` takes `tfds build` flags (`--config`, `--manual_dir`, `--data_dir`,
  `--beam_pipeline_options`, ...) plus `--asset_dir` and `--root_dir`, which `tfds build`
  cannot pass to a builder and which reach it through the environment. Runs TFDS's command
  directly because the `tfds` executable of tfds 4.9.10 also imports `mlcroissant`, which the
  pinned environment does not have.
  """
  import argparse
  import simple_parsing
  from tensorflow_datasets.scripts.cli import build as tfds_build_cli
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument("--asset_dir", default="")
  parser.add_argument("--root_dir", default="")
  ours, rest = parser.parse_known_args(argv)
  if not ours.asset_dir and not os.environ.get(ENV_ASSET_DIR):
    raise UserError(f"mugen build: no sprite tree. Fix: pass --asset_dir=PATH/coinrun/assets "
                    f"(or set {ENV_ASSET_DIR}).")
  if ours.asset_dir:
    os.environ[ENV_ASSET_DIR] = ours.asset_dir
  if ours.root_dir:
    os.environ[ENV_ROOT_DIR] = ours.root_dir
  if not any(a.startswith(("--manual_dir", "--manual-dir")) for a in rest):
    raise UserError("mugen build: no --manual_dir. Fix: pass --manual_dir=PATH to the folder "
                    "holding MUGEN's train.json, val.json and test.json.")
  args = simple_parsing.parse(tfds_build_cli.Args, args=["mugen", f"--imports={__name__}"] + rest)
  args.execute()
