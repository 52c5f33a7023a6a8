"""A trained transformer's validation metrics, recomputed from its workdir (no training).

    python benchmarks/validation_metrics.py --workdir=runs/shapes
    python benchmarks/validation_metrics.py --workdir=runs/shapes --batches=32 --seed=7
    python benchmarks/validation_metrics.py --workdir=runs/shapes --vid_strategy=colour

Runs the training stage's own evaluation (`trainer._evaluate`: the validation split, fixed MSM
masks and VID negatives from the seed, every sample scored with both negatives) on the exported
transformer, and prints every metric: MSM loss/accuracy, REL/VID loss and accuracy on the masked
videos the objective trains on, and the same REL/VID figures on the complete videos
(`*_unmasked`, what the sampler's reranker sees). The default seed and batch count are the
training run's, so the masked figures repeat its last `eval` line. `--vid_strategy` makes every
VID negative of one kind (frame_swap, shuffle, colour, affine) to see which ones the model
detects.
"""

import argparse
import os
import sys

import jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmvid_jax.errors import UserError  # pylint: disable=wrong-import-position
from mmvid_jax.infra import mesh as mesh_lib  # pylint: disable=wrong-import-position
from mmvid_jax.sampling import inputs  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import negatives  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import train_step as step_lib  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import trainer  # pylint: disable=wrong-import-position


def validation_metrics(workdir: str, batches: int = 0, seed: int | None = None,
                       config=None, vid_strategy: str = "") -> dict:
  """{metric: value} over `batches` validation batches (0: the config's num_eval_batches);
  `config`: the workdir's own config.json when None; `vid_strategy`: one VID negative kind
  only (negatives.VID_STRATEGIES), or "" for the config's mixture."""
  run = inputs.load_run(workdir, config=config)
  config, bundle = run.config, run.bundle
  tr = config.transformer
  if vid_strategy:
    if vid_strategy not in negatives.VID_STRATEGIES:
      raise UserError(f"--vid_strategy={vid_strategy!r} is not a VID negative; use one of "
                      f"{', '.join(negatives.VID_STRATEGIES)}.")
    tr.vid_strategy_prob = tuple(float(name == vid_strategy)
                                 for name in negatives.VID_STRATEGIES)
  settings = step_lib.settings_from_config(tr)
  eval_step = jax.jit(step_lib.make_eval_step(bundle.model, bundle.layout, settings))
  mesh = mesh_lib.make_mesh(config.mesh)
  seed = trainer.evaluation_seed(config) if seed is None else seed
  return trainer._evaluate(eval_step, bundle.params, (run.tokenizer, bundle.text_encoder),  # pylint: disable=protected-access
                           config, workdir, mesh,
                           batches or int(tr.get("num_eval_batches", 4)), seed)


def validation_arguments(workdir_help: str) -> argparse.ArgumentParser:
  """A parser with --workdir, --batches and --seed as the training stage's evaluation uses them."""
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True, help=workdir_help)
  parser.add_argument("--batches", type=int, default=0,
                      help="validation batches (0: the config's transformer.num_eval_batches)")
  parser.add_argument("--seed", type=int, default=None,
                      help="masks and negatives seed (default: the training run's eval seed)")
  return parser


def main():
  parser = validation_arguments("a workdir with a trained transformer")
  parser.add_argument("--vid_strategy", default="",
                      help="only this VID negative: frame_swap | shuffle | colour | affine")
  args = parser.parse_args()
  try:
    metrics = validation_metrics(args.workdir, args.batches, args.seed,
                                 vid_strategy=args.vid_strategy)
  except UserError as error:
    raise SystemExit(f"error: {error}") from None
  width = max(len(k) for k in metrics)
  for key in sorted(metrics):
    print(f"{key:<{width}}  {metrics[key]:.4f}")


if __name__ == "__main__":
  main()
