"""Does a trained transformer use the visible video tokens? Object-token accuracy vs context.

    python benchmarks/context_use.py --workdir=runs/shapes
    python benchmarks/context_use.py --workdir=DIR --split=test --ratios=0.1,0.5,0.8,1.0 --cfg=2

Tokenizes real clips of a split with the run's tokenizer, hides some of their tokens and asks the
transformer (with the clips' captions) for the hidden ones. Reports the argmax accuracy on hidden
**object** tokens (a token whose code differs from its clip's most frequent code, the
background: on Shapes ~10 of a frame's 64 tokens) and on hidden background tokens:

- `ratio R`: each token hidden independently with probability R. A model that reads its
  neighbours gets better as R falls; one that predicts object codes from the caption alone stays
  flat, since the caption says nothing about where the object is or which part a token shows.
- `frame t`: frame t hidden, every other frame shown (prediction and interpolation).

MMVID's masking hides 80% of the tokens in 70% of the training samples, and its mask-predict
decoding ends with steps that hide 12.5%, so both ends of the ratio range matter.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmvid_jax.errors import UserError  # pylint: disable=wrong-import-position
from mmvid_jax.evaluation import stage as eval_stage  # pylint: disable=wrong-import-position
from mmvid_jax.sampling import generate  # pylint: disable=wrong-import-position
from mmvid_jax.sampling import inputs  # pylint: disable=wrong-import-position


def background_codes(codes: np.ndarray) -> np.ndarray:
  """(B,) the most frequent code of each clip's tokens (B, N)."""
  return np.array([np.bincount(row).argmax() for row in codes])


def hidden_accuracy(predicted: np.ndarray, codes: np.ndarray, hidden: np.ndarray) -> dict:
  """Argmax accuracy on hidden object and hidden background tokens, and their counts."""
  is_object = codes != background_codes(codes)[:, None]
  result = {}
  for name, where in (("object", hidden & is_object), ("background", hidden & ~is_object)):
    count = int(where.sum())
    result[name] = float(np.mean(predicted[where] == codes[where])) if count else float("nan")
    result[f"{name}_count"] = count
  return result


def context_use(workdir: str, split: str = "validation", ratios=(0.1, 0.3, 0.5, 0.8, 1.0),
                cfg: float = 0.0, seed: int = 0) -> dict[str, dict]:
  """{"ratio R" | "frame t": hidden_accuracy(...)} over the evaluate stage's clips of `split`."""
  run = inputs.load_run(workdir)
  config, bundle, tokenizer = run.config, run.bundle, run.tokenizer
  if bundle.is_causal:
    raise UserError(f"{workdir!r} holds an ART-V (causal) transformer; this probe needs MMVID's "
                    "bidirectional one.")
  config.evaluate.split = split
  real = eval_stage.load_real_clips(config, workdir)
  layout = bundle.layout
  text_ids = jnp.asarray(real["text_ids"], jnp.int32)
  controls = real.get("controls")
  # The sampler's own preparation, guided logits function and tokenization.
  prepare, logits_of, encode = (generate._prepare, generate._logits_fn,  # pylint: disable=protected-access
                                generate._uint8_to_codes)  # pylint: disable=protected-access
  options = generate.DecodeOptions(cfg_scale=float(cfg))
  text_ids, control_codes = prepare(bundle, tokenizer, text_ids, controls, options)
  logits_fn = jax.jit(logits_of(bundle, text_ids, control_codes, float(cfg)))
  codes = np.asarray(encode(tokenizer, jnp.asarray(real["video"])))
  codes = codes.reshape(codes.shape[0], -1)

  def predict(hidden: np.ndarray) -> np.ndarray:
    tokens = np.where(hidden, layout.mask_id, codes)
    return np.asarray(logits_fn(jnp.asarray(tokens, jnp.int32))[0]).argmax(-1)

  rng = np.random.default_rng(seed)
  results = {}
  for ratio in ratios:
    hidden = rng.random(codes.shape) < ratio
    results[f"ratio {ratio:g}"] = hidden_accuracy(predict(hidden), codes, hidden)
  per_frame = layout.latent_height * layout.latent_width
  for t in range(layout.num_frames):
    hidden = np.zeros(codes.shape, bool)
    hidden[:, t * per_frame:(t + 1) * per_frame] = True
    results[f"frame {t}"] = hidden_accuracy(predict(hidden), codes, hidden)
  return results


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True, help="a workdir with a trained transformer")
  parser.add_argument("--split", default="validation", help="validation | test | train")
  parser.add_argument("--ratios", default="0.1,0.3,0.5,0.8,1.0",
                      help="comma-separated hidden-token probabilities")
  parser.add_argument("--cfg", type=float, default=0.0, help="guidance scale (0: the model)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  try:
    ratios = tuple(float(r) for r in args.ratios.split(","))
    results = context_use(args.workdir, args.split, ratios, args.cfg, args.seed)
  except ValueError as error:
    raise SystemExit(f"error: --ratios={args.ratios!r}: {error}") from None
  except UserError as error:
    raise SystemExit(f"error: {error}") from None
  print(f"{'hidden':<10} {'object acc':>10} {'(tokens)':>9} {'background acc':>15}")
  for name, row in results.items():
    print(f"{name:<10} {row['object']:>10.3f} {row['object_count']:>9d} {row['background']:>15.3f}")


if __name__ == "__main__":
  main()
