"""Could the transformer draw the held-out clips' codes at all? Tokenizer codes, split by split.

    python benchmarks/code_coverage.py --workdir=runs/shapes
    python benchmarks/code_coverage.py --workdir=DIR --train_clips=4096
    python benchmarks/code_coverage.py --workdir=DIR --by_pair     # + one row per test pair

Tokenizes training clips and the validation and test clips of a Shapes workdir with its tokenizer
and asks, for every **object** token (a code other than its clip's most frequent one, the
background) of the validation and test clips:

- `unseen`: its code never occurs in the training clips, so the transformer never had it as a
  target and could not produce it;
- `rare`: its code occurs fewer than 5 times there;
- `seen with shape` / `with colour` / `with both`: its code occurs in training clips whose object
  has the same shape / the same colour / the same (shape, colour) pair.

The test split's (shape, colour) pairs never occur in training (data.md), so `with both` is 0
there by construction; `with shape` and `with colour` say whether the held-out objects are
drawn with codes the model met on the same shape and on the same colour.
"""

import argparse
import os
import sys

import numpy as np

_BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCHMARKS))
sys.path.insert(0, _BENCHMARKS)
# The object / background split is context_use.py's: a clip's most frequent code is background.
from context_use import background_codes  # noqa: E402  pylint: disable=wrong-import-position
from mmvid_jax.data import shapes  # noqa: E402  pylint: disable=wrong-import-position
from mmvid_jax.errors import UserError  # noqa: E402  pylint: disable=wrong-import-position

RARE = 5


def coverage(train_codes: np.ndarray, train_attributes: np.ndarray, codes: np.ndarray,
             attributes: np.ndarray, codebook_size: int) -> dict:
  """Shares of the object tokens of `codes` (N, tokens) by what training shows of their code.

  `*_attributes` (N, >=2): shape and colour index in columns 0 and 1 (`shapes.ATTRIBUTE_NAMES`).
  """
  train_object = train_codes != background_codes(train_codes)[:, None]
  counts = np.bincount(train_codes[train_object], minlength=codebook_size)
  num_shapes = int(max(train_attributes[:, 0].max(), attributes[:, 0].max())) + 1
  num_colors = int(max(train_attributes[:, 1].max(), attributes[:, 1].max())) + 1
  with_shape = np.zeros((codebook_size, num_shapes), bool)
  with_color = np.zeros((codebook_size, num_colors), bool)
  with_pair = np.zeros((codebook_size, num_shapes, num_colors), bool)
  clip_index = np.nonzero(train_object)[0]
  object_codes = train_codes[train_object]
  shape, color = train_attributes[clip_index, 0], train_attributes[clip_index, 1]
  with_shape[object_codes, shape] = True
  with_color[object_codes, color] = True
  with_pair[object_codes, shape, color] = True

  is_object = codes != background_codes(codes)[:, None]
  clip_index = np.nonzero(is_object)[0]
  object_codes = codes[is_object]
  shape, color = attributes[clip_index, 0], attributes[clip_index, 1]
  return {
      "object_tokens": int(object_codes.size),
      "train_codes_used": int((counts > 0).sum()),
      "unseen": float(np.mean(counts[object_codes] == 0)) if object_codes.size else float("nan"),
      "rare": float(np.mean(counts[object_codes] < RARE)) if object_codes.size else float("nan"),
      "seen_with_shape": float(np.mean(with_shape[object_codes, shape])),
      "seen_with_color": float(np.mean(with_color[object_codes, color])),
      "seen_with_both": float(np.mean(with_pair[object_codes, shape, color])),
  }


def tokenize_split(workdir: str, split: str, num_clips: int, batch: int = 64):
  """(codes (N, tokens), attributes (N, 4), codebook size) of the first clips of a split."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from mmvid_jax.evaluation import stage as eval_stage  # pylint: disable=import-outside-toplevel
  from mmvid_jax.sampling import generate, inputs  # pylint: disable=import-outside-toplevel
  run = inputs.load_run(workdir)
  config = run.config
  if config.data.name != "shapes":
    raise UserError(f"{workdir!r} holds a {config.data.name!r} run; this probe reads the Shapes "
                    "attributes of each clip.")
  config.evaluate.split = split
  config.evaluate.num_videos = num_clips
  real = eval_stage.load_real_clips(config, workdir)
  encode = generate._uint8_to_codes  # pylint: disable=protected-access
  codes = [np.asarray(encode(run.tokenizer, jnp.asarray(real["video"][i:i + batch])))
           for i in range(0, num_clips, batch)]
  codes = np.concatenate(codes).reshape(num_clips, -1)
  return codes, np.asarray(real["attributes"]), run.tokenizer.codebook_size


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a Shapes workdir with a trained tokenizer")
  parser.add_argument("--train_clips", type=int, default=2048)
  parser.add_argument("--eval_clips", type=int, default=512)
  parser.add_argument("--by_pair", action="store_true",
                      help="also one row per (shape, colour) pair of the test split")
  args = parser.parse_args()
  try:
    train_codes, train_attributes, size = tokenize_split(args.workdir, "train", args.train_clips)
    print(f"{args.train_clips} training clips: {np.unique(train_codes).size} of {size} codes "
          "occur")
    print(f"{'clips':<16} {'object tokens':>13} {'unseen':>7} {'rare':>6} {'w/ shape':>9} "
          f"{'w/ colour':>10} {'w/ both':>8}")
    for split in ("validation", "test"):
      codes, attributes, _ = tokenize_split(args.workdir, split, args.eval_clips)
      row = coverage(train_codes, train_attributes, codes, attributes, size)
      rows = [(split, row)]
      if args.by_pair and split == "test":
        for shape, color in sorted({tuple(a[:2]) for a in attributes.tolist()}):
          chosen = (attributes[:, 0] == shape) & (attributes[:, 1] == color)
          name = f"{shapes.COLOR_NAMES[color]} {shapes.SHAPE_NAMES[shape]}"
          rows.append((name, coverage(train_codes, train_attributes, codes[chosen],
                                      attributes[chosen], size)))
      for name, row in rows:
        print(f"{name:<16} {row['object_tokens']:>13d} {row['unseen']:>7.3f} {row['rare']:>6.3f} "
              f"{row['seen_with_shape']:>9.3f} {row['seen_with_color']:>10.3f} "
              f"{row['seen_with_both']:>8.3f}")
  except UserError as error:
    raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
  main()
