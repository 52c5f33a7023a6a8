"""The `mugen` TFDS build on Apache Beam: one render per clip as a `beam.Map`.

TFDS runs a builder on Beam when `_generate_examples` returns a `beam.PTransform` and the
download config carries Beam options (`tfds build --beam_pipeline_options=...`, or
`config.data.beam_pipeline_options` through the data stage). The DirectRunner spreads the
clips over local cores; the same pipeline runs unchanged on Dataflow, Spark or Flink, whose
workers only need this package, the pinned requirements and read access to the game-state
files and the sprite tree (docs/mugen.md).

`apache-beam==2.77.0` is pinned in requirements.txt (installed by `make install`); an
environment without it gets a UserError when Beam is asked for, before any work.
Examples (keys included) are the local build's, so both builds store the same dataset.
"""

from mmvid_jax.errors import UserError

INSTALL_HINT = "make install (apache-beam==2.77.0 is pinned in requirements.txt)"


def apache_beam_available() -> bool:
  try:
    import apache_beam  # noqa: F401
  except ImportError:
    return False
  return True


def require_beam():
  """The `apache_beam` module, or a UserError saying how to get it or turn Beam off."""
  try:
    import apache_beam
  except ImportError:
    raise UserError("config.data.beam_pipeline_options is set but apache-beam is not "
                    f"installed. Fix: {INSTALL_HINT}, or set "
                    "--config.data.beam_pipeline_options='' for the multiprocessing build."
                    ) from None
  return apache_beam


def pipeline_options(options: str):
  """`runner=DirectRunner,direct_num_workers=2` -> `PipelineOptions` (the `tfds build` syntax).

  Empty -> None (no Beam). Each item is one Beam flag without its leading `--`.
  """
  options = (options or "").strip()
  if not options:
    return None
  beam = require_beam()
  flags = []
  for item in options.split(","):
    item = item.strip()
    if not item or item.startswith("-") or (item.count("=") != 1 and "=" in item):
      raise UserError(f"config.data.beam_pipeline_options: bad item {item!r} in {options!r}. "
                      "Fix: write comma-separated Beam flags without '--', e.g. "
                      "'runner=DirectRunner,direct_num_workers=4,"
                      "direct_running_mode=multi_processing'.")
    flags.append(f"--{item}")
  parsed = beam.options.pipeline_options.PipelineOptions(flags=flags)
  unknown = sorted(set(parsed.get_all_options(retain_unknown_options=True))
                   - set(parsed.get_all_options()))
  if unknown:
    raise UserError(f"config.data.beam_pipeline_options: Beam knows no option {unknown[0]!r}. "
                    "Fix: use Beam's pipeline option names (runner, direct_num_workers, "
                    "direct_running_mode, project, region, temp_location, ...).")
  return parsed


def render_example(item, asset_dir: str, image_size: int, frame_indices):
  """(key, clip fields) -> (key, TFDS example): runs on the Beam workers."""
  from mmvid_jax.data import mugen
  key, clip = item
  video = mugen.render_frames(asset_dir, image_size, clip["json_path"], frame_indices)
  return key, {"id": clip["id"], "video": video, "captions": list(clip["captions"]),
               "characters": list(clip["characters"]),
               "game_events": list(clip["game_events"]), "world_theme": clip["world_theme"]}


def render_transform(clips, asset_dir: str, image_size: int, frame_indices, split: str):
  """`beam.Create(clips) | beam.Map(render_example)`: the split's examples, keyed as locally."""
  beam = require_beam()
  items = [(number, {"id": c.id, "json_path": c.json_path, "captions": tuple(c.captions),
                     "characters": tuple(c.characters), "game_events": tuple(c.game_events),
                     "world_theme": int(c.world_theme)})
           for number, c in enumerate(clips)]
  # Reshuffle so a runner that fuses Create with Map still spreads the renders over workers.
  return (beam.Create(items) | f"Reshuffle_{split}" >> beam.Reshuffle()
          | f"Render_{split}" >> beam.Map(render_example, asset_dir=asset_dir,
                                          image_size=int(image_size),
                                          frame_indices=[int(i) for i in frame_indices]))
