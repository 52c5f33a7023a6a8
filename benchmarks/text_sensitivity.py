"""Does a trained transformer use each word of its caption? Swap one word, compare predictions.

    python benchmarks/text_sensitivity.py --workdir=runs/shapes
    python benchmarks/text_sensitivity.py --workdir=DIR --text="A big red circle is moving left." \
        --swap=big:small --swap=red:blue --swap=circle:square --swap=left:up

For the base caption and each caption with one word swapped, the transformer predicts every video
token from a fully masked video (the first step of text->video decoding). The report is the mean
over token positions of the Jensen-Shannon divergence (nats) between the two predicted code
distributions, and the change in the mean probability of the background (most likely) code. A
word the model ignores gives a divergence at float noise (~1e-8); a null caption ("") is the
reference for "no text at all". The default swaps name each Shapes attribute once (size, colour,
shape, direction).
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
from mmvid_jax.sampling import inputs  # pylint: disable=wrong-import-position

DEFAULT_TEXT = "A big red circle is moving left."
DEFAULT_SWAPS = ("big:small", "red:blue", "circle:square", "left:up")


def jensen_shannon(p: jax.Array, q: jax.Array) -> jax.Array:
  """Per-position JS divergence (nats) of two (..., K) distributions."""
  m = 0.5 * (p + q)
  kl = lambda a, b: jnp.sum(a * (jnp.log(a + 1e-12) - jnp.log(b + 1e-12)), axis=-1)
  return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def swapped_captions(text: str, swaps: list[str]) -> list[tuple[str, str]]:
  """(label, caption) for each `old:new` swap of a whole word of `text`, then the null caption."""
  words = text.split(" ")
  result = []
  for swap in swaps:
    old, sep, new = swap.partition(":")
    if not sep or not old or not new:
      raise UserError(f"--swap={swap!r}: write OLD:NEW, e.g. --swap=red:blue.")
    stripped = [w.rstrip(".,;!?") for w in words]
    if old not in stripped:
      raise UserError(f"--swap={swap!r}: {old!r} is not a word of --text={text!r}.")
    i = stripped.index(old)
    changed = words[:i] + [new + words[i][len(old):]] + words[i + 1:]
    result.append((f"{old} -> {new}", " ".join(changed)))
  result.append(("null caption", ""))
  return result


def probe_inputs(text_tokenizer, layout, text: str, swaps: list[str]):
  """(labels, text ids (1 + len(labels), L), all-[MASK] video): the base caption first, then
  one caption per swap and the null caption."""
  variants = swapped_captions(text, swaps)
  captions = [text] + [caption for _, caption in variants]
  text_ids = jnp.asarray(text_tokenizer.encode(captions, layout.text_len))
  video = jnp.full((len(captions), layout.video_len), layout.mask_id, jnp.int32)
  return [label for label, _ in variants], text_ids, video


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True, help="a workdir with a trained transformer")
  parser.add_argument("--text", default=DEFAULT_TEXT)
  parser.add_argument("--swap", action="append", default=[], metavar="OLD:NEW")
  args = parser.parse_args()
  try:
    run = inputs.load_run(args.workdir)
    bundle, layout = run.bundle, run.bundle.layout
    labels, text_ids, video = probe_inputs(run.text_tokenizer, layout, args.text,
                                           args.swap or list(DEFAULT_SWAPS))
  except UserError as error:
    raise SystemExit(f"error: {error}") from None
  if bundle.is_causal:
    raise SystemExit("error: this workdir's transformer is ART-V (causal); the probe needs MMVID.")
  logits, _, _ = bundle.tokens_to_logits(bundle.params, video, {"text_ids": text_ids})
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  background = int(jnp.argmax(probs[0].mean(0)))
  base_background = float(probs[0, :, background].mean())
  print(f"workdir {args.workdir}: base caption {args.text!r}; background code {background}, "
        f"mean p(background) {base_background:.3f}")
  print(f"{'swap':24s} {'JS (nats, mean over tokens)':>28s} {'max over tokens':>16s} "
        f"{'change in p(background)':>24s}")
  for row, label in enumerate(labels, start=1):
    divergence = np.asarray(jensen_shannon(probs[0], probs[row]))
    delta = float(probs[row, :, background].mean()) - base_background
    print(f"{label:24s} {divergence.mean():28.2e} {divergence.max():16.2e} {delta:+24.4f}")


if __name__ == "__main__":
  main()
