"""Runs the stages in order, skipping the ones already complete.

Each stage lives in `mmvid_jax/<package>/stage.py` and exposes
`is_complete(config, workdir) -> bool` and `run(config, workdir) -> None`.
A stage resumes from its own checkpoints when it was interrupted.
"""

import importlib
import json
import os

from absl import logging
from etils import epath
import jax
import ml_collections

from mmvid_jax import configuration
from mmvid_jax.errors import UserError
from mmvid_jax.infra import distributed

ORDER = ("data", "tokenizer", "transformer", "sample", "evaluate")

# Stage name -> module implementing it. None marks a stage that is not built yet:
# the pipeline says so and stops rather than fake a result.
STAGE_MODULES: dict[str, str | None] = {
    "data": "mmvid_jax.data.stage",
    "tokenizer": "mmvid_jax.tokenizer.stage",
    "transformer": "mmvid_jax.transformer.stage",
    "sample": "mmvid_jax.sampling.stage",
    "evaluate": "mmvid_jax.evaluation.stage",
}


def selected_stages(stage: str) -> tuple[str, ...]:
  return ORDER if stage == "all" else (stage,)


def save_resolved_config(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes the resolved config as WORKDIR/config.json (process 0 only; local or gs:// paths)."""
  path = epath.Path(workdir) / "config.json"
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  return os.fspath(path)


def load_resolved_config(workdir: str) -> ml_collections.ConfigDict:
  path = epath.Path(workdir) / "config.json"
  if not path.exists():
    raise UserError(f"{workdir!r} holds no config.json: it is not an mmvid-jax workdir. "
                    "Fix: pass the --workdir of a run made with `python -m mmvid_jax.main`.")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def run(config: ml_collections.ConfigDict, workdir: str, num_devices: int = 1) -> list[str]:
  """Runs the selected stages; returns the names of the stages that ran or were skipped."""
  configuration.validate(config, num_devices=num_devices)
  save_resolved_config(config, workdir)
  distributed.barrier("config-written")
  done = []
  for name in selected_stages(config.stage):
    module_name = STAGE_MODULES[name]
    if module_name is None:
      missing = [s for s in selected_stages(config.stage) if STAGE_MODULES[s] is None]
      logging.warning("Stage %r is not built yet in this version of mmvid-jax; stopping here. "
                      "Stages not built yet: %s.", name, ", ".join(missing))
      break
    stage = importlib.import_module(module_name)
    # The data stage writes shared files (dataset, text model): process 0 builds, the rest wait.
    builds_here = name != "data" or jax.process_index() == 0
    if stage.is_complete(config, workdir):
      logging.info("Stage %s: already complete in %s, skipping.", name, workdir)
    elif builds_here:
      logging.info("Stage %s: running.", name)
      stage.run(config, workdir)
    if name == "data":
      distributed.barrier("data-built")
    done.append(name)
  return done
