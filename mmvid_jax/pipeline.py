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

# Stage name -> module implementing it.
STAGE_MODULES: dict[str, str] = {
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
    stage = importlib.import_module(STAGE_MODULES[name])
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


def summary_lines(workdir: str) -> list[str]:
  """What a finished job left in `workdir` to open next: the sample gallery and the evaluation's
  headline figures (empty when neither stage has written anything yet)."""
  from mmvid_jax.evaluation import metrics_io
  from mmvid_jax.sampling import stage as sampling_stage
  lines = []
  gallery = os.path.join(sampling_stage.samples_dir(workdir), "index.html")
  if os.path.exists(gallery):
    lines.append(f"samples: {gallery}")
  record = metrics_io.read_metrics(workdir)
  if not (record and record.get("complete")):
    return lines
  lines.append(f"evaluation: {metrics_io.metrics_path(workdir)} ({record['num_videos']} "
               f"{record['split']} clips)")
  real = record.get("real") or {}
  real_rel = (real.get("rel") or {}).get("mean_probability")
  real_text = _joined(_oracle_text(real.get("oracle")), _rel_text(real_rel))
  if real_text:
    lines.append(f"  real clips: {real_text}")
  reconstruction = record.get("reconstruction") or {}
  if reconstruction.get("psnr") is not None:
    lines.append("  tokenizer reconstructions: " + _joined(
        f"PSNR {reconstruction['psnr']:.1f} dB", _oracle_text(reconstruction.get("oracle"))))
  for name, result in record.get("decoders", {}).items():
    fvd = result.get("fvd")
    lines.append(f"  {name}: " + (_joined(
        _oracle_text(result.get("oracle")), "" if fvd is None else f"FVD {fvd:.1f}",
        _rel_text((result.get("rel") or {}).get("mean_probability"))) or "no figures"))
  return lines


def _joined(*parts: str) -> str:
  return ", ".join(part for part in parts if part)


def _rel_text(probability: float | None) -> str:
  return "" if probability is None else f"mean REL probability {probability:.2f}"


def _oracle_text(oracle: dict | None) -> str:
  if not oracle:
    return ""
  return (f"Shapes oracle all-correct {oracle['all']:.3f} (colour {oracle['color']:.2f}, "
          f"shape {oracle['shape']:.2f}, size {oracle['size']:.2f}, "
          f"direction {oracle['direction']:.2f})")
