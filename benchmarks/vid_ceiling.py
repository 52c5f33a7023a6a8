"""How well could any model do the [VID] task on this data? A ceiling from the negatives alone.

    python benchmarks/vid_ceiling.py --workdir=runs/shapes
    python benchmarks/vid_ceiling.py --workdir=runs/shapes --batches=64 --seed=7

Builds the validation split's VID pairs exactly as the training stage's evaluation does (the
same MSM masks, VID negatives and frozen tokenizer for the same seed; `train_step.prepare_inputs`)
and counts, per negative kind, how many negatives are **identical to their positive** in the
tokens the model sees: on the masked videos (the tokens left visible) and on the complete
videos. An identical pair is the same input twice, so no classifier can get both right; the
best VID accuracy (the metric averages the positive and the negative of every sample that is
not fully masked) is therefore 1 - identical/2. It also prints how many tokens a negative
changes, since a negative that differs in one visible token is only barely a negative.

Needs a workdir whose tokenizer stage has finished (no transformer is loaded).
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # validation_metrics beside it

from mmvid_jax.data import pipeline as data_pipeline  # pylint: disable=wrong-import-position
from mmvid_jax.errors import UserError  # pylint: disable=wrong-import-position
from mmvid_jax.sampling.inputs import load_config  # pylint: disable=wrong-import-position
from mmvid_jax.tokenizer import api as tokenizer_api  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import masking  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import negatives  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import train_step as step_lib  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import trainer  # pylint: disable=wrong-import-position
from validation_metrics import validation_arguments  # pylint: disable=wrong-import-position

# Changed tokens a negative must show to count as "clearly different" in the summary.
BARELY = 2


def vid_pair_stats(workdir: str, batches: int = 0, seed: int | None = None) -> dict:
  """Per VID strategy: pair counts, identical pairs (masked / complete), changed-token counts."""
  config = load_config(workdir)
  tr = config.transformer
  if str(tr.get("objective", "mmvid")) != "mmvid":
    raise UserError(f"{workdir!r} trains the {tr.objective!r} objective, which has no [VID] "
                    "task. Fix: point --workdir at an MMVID run (transformer.objective='mmvid').")
  tokenizer = tokenizer_api.load_tokenizer(workdir)
  layout, _, text_encoder, settings = trainer.build(config, workdir, tokenizer)
  settings = step_lib.evaluation_settings(settings)
  batches = batches or int(tr.get("num_eval_batches", 4))
  seed = trainer.evaluation_seed(config) if seed is None else seed

  @jax.jit
  def pairs(batch, key):
    inputs = step_lib.prepare_inputs(layout, settings, tokenizer, text_encoder, batch, key,
                                     train=False)
    changed = inputs["codes"] != inputs["negative_codes"]
    return {"strategy": inputs["vid_strategy"],
            "counted": ~masking.fully_masked(inputs["keep"]),
            "changed_visible": jnp.sum(changed & inputs["keep"], axis=1),
            "changed_all": jnp.sum(changed, axis=1)}

  rows = []
  data = data_pipeline.make_dataset(config, "validation", workdir,
                                    batch_size=int(tr.batch_size), deterministic=True)
  for i, batch in enumerate(data):
    if i >= batches:
      break
    batch = {k: v for k, v in batch.items() if k in ("video", "text_ids", "controls")}
    rows.append(jax.device_get(pairs(batch, jax.random.fold_in(jax.random.key(seed), i))))
  if not rows:
    raise UserError("the validation split gave no full batch. Fix: raise "
                    "config.data.num_validation or lower config.transformer.batch_size.")
  stats = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
  return summarise(stats)


def summarise(stats: dict) -> dict:
  """{kind or "all": {pairs, identical_masked, identical_complete, barely_masked,
  median_changed_visible, median_changed_all, ceiling_masked, ceiling_complete}}."""
  out = {}
  kinds = list(enumerate(negatives.VID_STRATEGIES)) + [(None, "all")]
  for index, name in kinds:
    select = stats["counted"] if index is None else stats["counted"] & (stats["strategy"] == index)
    n = int(select.sum())
    if not n:
      continue
    visible, changed = stats["changed_visible"][select], stats["changed_all"][select]
    same_masked, same_complete = float(np.mean(visible == 0)), float(np.mean(changed == 0))
    out[name] = {
        "pairs": n,
        "identical_masked": same_masked,
        "identical_complete": same_complete,
        "barely_masked": float(np.mean(visible <= BARELY)),
        "median_changed_visible": float(np.median(visible)),
        "median_changed_all": float(np.median(changed)),
        "ceiling_masked": 1.0 - same_masked / 2,
        "ceiling_complete": 1.0 - same_complete / 2,
    }
  return out


def main():
  args = validation_arguments("a workdir whose tokenizer is trained").parse_args()
  try:
    table = vid_pair_stats(args.workdir, args.batches, args.seed)
  except UserError as error:
    raise SystemExit(f"error: {error}") from None
  columns = ("pairs", "identical_masked", "identical_complete", "barely_masked",
             "median_changed_visible", "median_changed_all", "ceiling_masked",
             "ceiling_complete")
  print("kind        " + "  ".join(f"{c:>22}" for c in columns))
  for name, row in table.items():
    print(f"{name:<12}" + "  ".join(f"{row[c]:>22.3f}" if isinstance(row[c], float)
                                    else f"{row[c]:>22d}" for c in columns))
  print(f"(barely_masked: at most {BARELY} visible tokens changed)")


if __name__ == "__main__":
  main()
