"""How soon does the transformer start to use each caption word? Train, probe every N steps.

    python benchmarks/text_binding_curve.py --workdir=runs/shapes --steps=600 --probe_every=150
    python benchmarks/text_binding_curve.py --workdir=runs/shapes --set=dense_init=normal
    python benchmarks/text_binding_curve.py --workdir=runs/shapes --pseudo --set=learning_rate=1e-3

Trains a fresh transformer with the workdir's config (its data, text tokenizer and trained video
tokenizer; `--pseudo` uses the colour-quantising PseudoTokenizer instead) and `--set` overrides
of the `transformer` section, without writing checkpoints. Every `--probe_every` steps it prints
the mean training MSM loss and REL/VID accuracies since the last probe, and the word divergences
of `text_sensitivity.py` (Jensen-Shannon divergence of the fully-masked predictions when one
caption word is swapped; float noise is ~1e-8). A word "binds" when its divergence leaves the
noise floor. One process, same seed for every run, so two runs differ only in their overrides.
"""

import argparse
import ast
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import text_sensitivity  # pylint: disable=wrong-import-position
from mmvid_jax.errors import UserError  # pylint: disable=wrong-import-position

TRAIN_METRICS = ("msm_loss", "rel_accuracy", "vid_accuracy")


def apply_overrides(section, assignments: list[str]) -> None:
  """`key=value` pairs into a config section; values are Python literals, else strings."""
  for assignment in assignments:
    key, sep, text = assignment.partition("=")
    if not sep or not key:
      raise UserError(f"--set={assignment!r}: write KEY=VALUE, e.g. --set=learning_rate=3e-4.")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    if key in section and isinstance(section[key], float) and isinstance(value, int):
      value = float(value)
    with section.unlocked():  # keys that older workdirs' configs do not have yet
      section[key] = value


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True,
                      help="a workdir whose data, text and tokenizer stages have run")
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--probe_every", type=int, default=150)
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override config.transformer.KEY (repeatable)")
  parser.add_argument("--pseudo", action="store_true",
                      help="codes = quantised patch colours (no trained tokenizer needed)")
  args = parser.parse_args()

  import flax
  from mmvid_jax import pipeline
  from mmvid_jax.data import pipeline as data_pipeline
  from mmvid_jax.data import text as text_lib
  from mmvid_jax.tokenizer import api as tokenizer_api
  from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
  from mmvid_jax.transformer import train_step as step_lib
  from mmvid_jax.transformer import trainer

  try:
    config = pipeline.load_resolved_config(args.workdir)
    apply_overrides(config.transformer, args.set)
    tokenizer = (PseudoTokenizer(int(config.data.image_size), 4, 4) if args.pseudo
                 else tokenizer_api.load_tokenizer(args.workdir))
    layout, model, text_encoder, settings = trainer.build(config, args.workdir, tokenizer)
    text_tokenizer = text_lib.get_text_tokenizer(config, args.workdir)
  except UserError as error:
    raise SystemExit(f"error: {error}") from None
  if settings.objective != "mmvid" or layout.num_controls:
    raise SystemExit("error: the probe needs a text-only MMVID config (transformer.objective=mmvid, "
                     "no transformer.controls).")
  tr = config.transformer
  tx = step_lib.build_optimizer(tr, args.steps)
  state = jax.jit(trainer.make_init_fn(model, layout, tx, text_encoder))(jax.random.key(1))
  state = flax.linen.meta.unbox(state)
  train_step = jax.jit(step_lib.make_train_step(model, layout, settings, jax.random.key(2)),
                       donate_argnums=0)

  labels, text_ids, masked_video = text_sensitivity.probe_inputs(
      text_tokenizer, layout, text_sensitivity.DEFAULT_TEXT, list(text_sensitivity.DEFAULT_SWAPS))

  @jax.jit
  def divergences(params):
    logits, _, _ = model.apply({"params": params}, text_ids, None, masked_video,
                               method=model.tokens_to_logits)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.stack([text_sensitivity.jensen_shannon(probs[0], probs[i]).mean()
                      for i in range(1, len(labels) + 1)])

  print(f"workdir {args.workdir}; overrides {args.set or 'none'}; "
        f"{'pseudo' if args.pseudo else 'trained'} tokenizer; S = {layout.seq_len}")
  print(f"{'step':>5s} {'seconds':>8s} " + " ".join(f"{m:>12s}" for m in TRAIN_METRICS) + " | "
        + " ".join(f"{label:>14s}" for label in labels))
  batches = data_pipeline.make_dataset(config, "train", args.workdir,
                                       batch_size=int(tr.batch_size), deterministic=False)
  frozen = (tokenizer, text_encoder)
  sums, count, start = {}, 0, time.time()
  for step, batch in enumerate(batches, start=1):
    if step > args.steps:
      break
    inputs = {k: v for k, v in batch.items() if k in ("video", "text_ids")}
    state, metrics = train_step(state, inputs, frozen)
    for name in TRAIN_METRICS:
      sums[name] = sums.get(name, 0.0) + metrics[name]
    count += 1
    if step % args.probe_every == 0 or step == args.steps:
      js = np.asarray(divergences(state.params))
      means = [float(sums[name]) / count for name in TRAIN_METRICS]
      print(f"{step:5d} {time.time() - start:8.0f} " + " ".join(f"{m:12.3f}" for m in means)
            + " | " + " ".join(f"{v:14.1e}" for v in js), flush=True)
      sums, count = {}, 0


if __name__ == "__main__":
  main()
