"""Entry point: python -m mmvid_jax.main --config=configs/shapes.py --workdir=DIR.

Parses flags, sets up logging and dispatches to the pipeline; nothing else.
"""

import logging as pylogging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mmvid_jax import cli  # noqa: E402
from mmvid_jax.errors import UserError  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/shapes.py or configs/shapes.py:tiny.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import jax  # Imported late so the flags above parse quickly.
  from mmvid_jax import pipeline
  from mmvid_jax.infra import distributed

  logging.set_verbosity(logging.INFO)
  # JAX logs at INFO that it looked for a TPU; on CPU/GPU machines that is only noise.
  pylogging.getLogger("jax._src.xla_bridge").setLevel(pylogging.WARNING)
  try:
    distributed.maybe_initialize()  # Before anything touches a device.
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  try:
    config = _CONFIG.value
    experiment = config.experiment  # A config file that failed to load raises here.
  except cli.FLAG_ERRORS as e:
    cli.exit_with_flag_error(e)
  # Remote workdirs (gs://...) are used as given; local ones are made absolute.
  workdir = _WORKDIR.value if "://" in _WORKDIR.value else os.path.abspath(_WORKDIR.value)
  logging.info("mmvid-jax: config %s, workdir %s, %d %s device(s).", experiment,
               workdir, jax.device_count(), jax.default_backend())
  try:
    pipeline.run(config, workdir, num_devices=jax.device_count())
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  # Where to look next, after a run that sampled or evaluated (process 0 only).
  shows_results = config.stage in ("all", "sample", "evaluate") and jax.process_index() == 0
  summary = pipeline.summary_lines(workdir) if shows_results else []
  if summary:
    print("\n".join([f"mmvid-jax: done ({config.stage}) in {workdir}."] + summary))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
