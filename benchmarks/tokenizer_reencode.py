"""Does the tokenizer give back its own codes when its reconstruction is encoded again?

    python benchmarks/tokenizer_reencode.py --workdir=runs/shapes
    python benchmarks/tokenizer_reencode.py --workdir=DIR --split=test --clips=256 --rounds=3

Encodes real clips of a split, decodes them to 8-bit frames (as a saved video holds them),
encodes those again, and repeats `--rounds` times. Per round it reports the share of tokens that
differ from the first encoding, the share of the most frequent code (on Shapes, the background),
and the PSNR of that round's frames against the real ones (over all pixels of the split's clips). Anything that re-enters the model
through pixels (interpolating or extending a generated video from its file, scoring generated
frames) relies on the first figure being small; docs/tokenizer.md ("Encoding a reconstruction
again") has the measurements.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mmvid_jax.errors import UserError  # noqa: E402  pylint: disable=wrong-import-position


def measure(workdir: str, split: str, num_clips: int, rounds: int) -> dict:
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from mmvid_jax import pipeline  # pylint: disable=import-outside-toplevel
  from mmvid_jax.evaluation import stage as eval_stage  # pylint: disable=import-outside-toplevel
  from mmvid_jax.sampling import generate  # pylint: disable=import-outside-toplevel
  from mmvid_jax.tokenizer import api  # pylint: disable=import-outside-toplevel

  if rounds < 1 or num_clips < 1:
    raise UserError(f"--rounds and --clips must be >= 1, got {rounds} and {num_clips}.")
  config = pipeline.load_resolved_config(workdir)
  config.evaluate.split, config.evaluate.num_videos = split, num_clips
  tokenizer = api.load_tokenizer(workdir)
  real = eval_stage.load_real_clips(config, workdir)["video"]
  batch = int(config.evaluate.batch_size)
  encode, decode = generate._uint8_to_codes, generate._codes_to_uint8  # pylint: disable=protected-access

  def batched(fn, array):
    return np.concatenate([np.asarray(fn(tokenizer, jnp.asarray(array[i:i + batch])))
                           for i in range(0, len(array), batch)])

  return {"split": split, **round_trips(real, lambda v: batched(encode, v),
                                        lambda c: batched(decode, c), rounds)}


def round_trips(real: np.ndarray, encode, decode, rounds: int) -> dict:
  """`encode`: uint8 video -> codes; `decode`: codes -> uint8 video. Per round trip: the share
  of codes that differ from the first encoding, the share of the most frequent first code, and
  the PSNR of the round's frames against `real`."""
  first = encode(real)
  background = int(np.bincount(first.ravel()).argmax())
  result = {"clips": int(len(real)), "background_code": background,
            "background_share": float((first == background).mean()), "rounds": []}
  codes = first
  for _ in range(rounds):
    frames = decode(codes)
    codes = encode(frames)
    error = np.mean((frames.astype(np.float64) - real.astype(np.float64)) ** 2)
    result["rounds"].append({
        "tokens_changed": float((codes != first).mean()),
        "background_share": float((codes == background).mean()),
        "psnr_db": float(10 * np.log10(255.0 ** 2 / error)) if error > 0 else float("inf")})
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a workdir with a trained tokenizer")
  parser.add_argument("--split", default="validation")
  parser.add_argument("--clips", type=int, default=256)
  parser.add_argument("--rounds", type=int, default=2, help="decode-encode round trips")
  args = parser.parse_args()
  try:
    result = measure(args.workdir, args.split, args.clips, args.rounds)
  except UserError as e:
    raise SystemExit(f"error: {e}") from None
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
