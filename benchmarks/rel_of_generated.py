"""What the [REL] head says about generated videos: own tokens against frames encoded again.

    python benchmarks/rel_of_generated.py --workdir=runs/shapes
    python benchmarks/rel_of_generated.py --workdir=DIR --split=test --clips=128 --candidates=4

On real clips of a split (Shapes or any dataset with captions) it reports:

- how many tokens change when a tokenizer reconstruction is encoded again, and the share of the
  most frequent (background) code before and after;
- the share of videos whose REL logit is > 0 (caption judged to match): real clips, real clips
  with the next clip's caption, and reconstructions encoded again;
- for `--candidates` videos generated per caption (guidance `--cfg`, default the config's): REL
  > 0 on the transformer's own tokens and on the frames encoded again, and, on Shapes, the
  oracle's all-correct rate of a random candidate, of the one with the highest own-token REL
  and of the best possible pick.

docs/evaluation.md ("REL score") and docs/results.md ("Session 17") hold the figures.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mmvid_jax.errors import UserError  # noqa: E402  pylint: disable=wrong-import-position


def best_of(correct: np.ndarray, scores: np.ndarray) -> dict:
  """All-correct rates over candidates (C, N): candidate 0, the mean, the highest score, any."""
  picked = correct[np.argmax(scores, axis=0), np.arange(correct.shape[1])]
  return {"first": float(correct[0].mean()), "mean": float(correct.mean()),
          "best_score": float(picked.mean()), "any": float(correct.any(axis=0).mean())}


def measure(workdir: str, split: str, num_clips: int, candidates: int, cfg: float | None,
            seed: int = 0) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from mmvid_jax.data import shapes_generator  # pylint: disable=import-outside-toplevel
  from mmvid_jax.evaluation import measures, oracle  # pylint: disable=import-outside-toplevel
  from mmvid_jax.evaluation import stage as eval_stage  # pylint: disable=import-outside-toplevel
  from mmvid_jax.sampling import generate, inputs  # pylint: disable=import-outside-toplevel

  run = inputs.load_run(workdir)
  config, tokenizer, bundle = run.config, run.tokenizer, run.bundle
  if bundle.is_causal:
    raise UserError(f"{workdir!r} holds an ART-V transformer, which has no [REL] head.")
  config.evaluate.split, config.evaluate.num_videos = split, num_clips
  real = eval_stage.load_real_clips(config, workdir)
  controls = real.get("controls")
  text = real["text_ids"]
  encode, decode = generate._uint8_to_codes, generate._codes_to_uint8  # pylint: disable=protected-access
  batch = int(config.evaluate.batch_size)

  codes, recon, codes_again = [], [], []
  for start in range(0, num_clips, batch):
    c = encode(tokenizer, jnp.asarray(real["video"][start:start + batch]))
    r = decode(tokenizer, c)
    codes.append(np.asarray(c))
    recon.append(np.asarray(r))
    codes_again.append(np.asarray(encode(tokenizer, r)))
  codes, recon, codes_again = (np.concatenate(x) for x in (codes, recon, codes_again))
  background = np.bincount(codes.ravel()).argmax()
  scorer = measures.RelScorer(bundle, tokenizer, batch)
  result = {
      "tokens_changed_by_encoding_again": float((codes != codes_again).mean()),
      "background_share": float((codes == background).mean()),
      "background_share_encoded_again": float((codes_again == background).mean()),
      "rel_real": float((scorer(real["video"], text, controls) > 0).mean()),
      "rel_real_next_caption": float((scorer(real["video"], np.roll(text, 1, axis=0),
                                             controls) > 0).mean()),
      "rel_reconstruction_encoded_again": float((scorer(recon, text, controls) > 0).mean()),
  }
  scale = float(config.sample.cfg_scale if cfg is None else cfg)
  attributes = real.get("attributes")
  own, through_pixels, correct = [], [], []
  for candidate in range(candidates):
    videos, info = generate.generate_in_batches(
        bundle, tokenizer, text, controls, jax.random.fold_in(jax.random.key(seed), candidate),
        batch_size=batch, cfg_scale=scale)
    own.append(scorer.score_tokens(info["tokens"], text, controls))
    through_pixels.append(scorer(videos, text, controls))
    if attributes is not None:
      reading = oracle.read_videos(videos, motion_grid=shapes_generator.motion_grid_of(config.data))
      correct.append((reading.attributes == attributes).all(axis=1))
  own, through_pixels = np.stack(own), np.stack(through_pixels)
  result.update(cfg=scale, rel_generated_own_tokens=float((own > 0).mean()),
                rel_generated_encoded_again=float((through_pixels > 0).mean()))
  if correct:
    correct = np.stack(correct)
    result["oracle"] = best_of(correct, own)
    result["rel_own_tokens_correct"] = float((own[correct] > 0).mean()) if correct.any() else None
    result["rel_own_tokens_wrong"] = float((own[~correct] > 0).mean()) if (~correct).any() else None
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a workdir with a trained MMVID transformer")
  parser.add_argument("--split", default="validation")
  parser.add_argument("--clips", type=int, default=128)
  parser.add_argument("--candidates", type=int, default=4, help="videos generated per caption")
  parser.add_argument("--cfg", type=float, default=None, help="guidance (default: the config's)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  if args.clips < 1 or args.candidates < 1:
    raise SystemExit("error: --clips and --candidates must be positive")
  try:
    result = measure(args.workdir, args.split, args.clips, args.candidates, args.cfg, args.seed)
  except UserError as error:
    raise SystemExit(f"error: {error}") from None
  for key, value in result.items():
    print(f"{key}: {value}")


if __name__ == "__main__":
  main()
