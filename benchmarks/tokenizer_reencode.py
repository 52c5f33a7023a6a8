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


def measure(workdir: str, split: str, num_clips: int, rounds: int, batch_size: int = 16) -> dict:
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from mmvid_jax import pipeline  # pylint: disable=import-outside-toplevel
  from mmvid_jax.data import pipeline as data_pipeline  # pylint: disable=import-outside-toplevel
  from mmvid_jax.tokenizer import api  # pylint: disable=import-outside-toplevel

  if rounds < 1 or num_clips < 1:
    raise UserError(f"--rounds and --clips must be >= 1, got {rounds} and {num_clips}.")
  config = pipeline.load_resolved_config(workdir)
  tokenizer = api.load_tokenizer(workdir)
  batches = data_pipeline.make_dataset(config, split, workdir, batch_size=batch_size,
                                       deterministic=True)
  videos = []
  try:
    for batch in batches:
      videos.append(np.asarray(batch["video"]))
      if sum(len(v) for v in videos) >= num_clips:
        break
  finally:
    if hasattr(batches, "close"):
      batches.close()
  if not videos:
    raise UserError(f"the {split!r} split of {workdir!r} gave no clips.")
  real = np.concatenate(videos)[:num_clips]

  def to_float(video):
    return jnp.asarray(video, jnp.float32) / 127.5 - 1.0

  def encode(video):
    return np.concatenate([np.asarray(tokenizer.encode_to_codes(to_float(video[i:i + batch_size])))
                           for i in range(0, len(video), batch_size)])

  def decode(codes):
    frames = [tokenizer.decode_from_codes(jnp.asarray(codes[i:i + batch_size]))
              for i in range(0, len(codes), batch_size)]
    return np.concatenate([np.asarray(jnp.round((f + 1.0) * 127.5)) for f in frames]).astype(np.uint8)

  return {"split": split, **round_trips(real, encode, decode, rounds)}


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
