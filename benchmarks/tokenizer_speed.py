"""Tokenizer encode / decode throughput (frames per second) on the local devices.

    python benchmarks/tokenizer_speed.py                       # Shapes default + MUGEN-like
    python benchmarks/tokenizer_speed.py --sizes=shapes --frames=64 --iters=5

`shapes`: the default Shapes tokenizer (configs/shapes.py, 64 px, f8).
`mugen`: MMVID's taming f16 VQGAN at 256 px (ch 128, ch_mult (1,1,2,2,4), 2 res blocks,
attention at 16, 1024 codes x 256 dims), with random weights (speed does not depend on them).
Figures are recorded in docs/tokenizer.md.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402

from configs.shapes import get_config  # noqa: E402
from mmvid_jax.tokenizer.api import VideoTokenizer  # noqa: E402
from mmvid_jax.tokenizer.model import build_tokenizer  # noqa: E402


def mugen_like() -> tuple[ml_collections.ConfigDict, int]:
  tok = get_config("default").tokenizer
  tok.update(dict(quantizer="vq", codebook_size=1024, embed_dim=256, channels=128,
                  channel_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,),
                  l2_normalize=False))
  return tok, 256


def shapes_default() -> tuple[ml_collections.ConfigDict, int]:
  config = get_config("default")
  return config.tokenizer, config.data.image_size


def measure(name: str, tok, image_size: int, frames: int, iters: int) -> None:
  model = build_tokenizer(tok)
  variables = model.init(jax.random.key(0), jnp.zeros((1, image_size, image_size, 3)))
  tokenizer = VideoTokenizer(variables=variables, module=model, image_size=image_size)
  video = jax.random.uniform(jax.random.key(1), (1, frames, image_size, image_size, 3),
                             minval=-1, maxval=1)
  encode = jax.jit(lambda t, v: t.encode_to_codes(v))
  decode = jax.jit(lambda t, c: t.decode_from_codes(c))
  params = sum(x.size for x in jax.tree_util.tree_leaves(variables))
  for label, fn, arg in (("encode", encode, video), ("decode", decode, None)):
    if arg is None:
      arg = encode(tokenizer, video)
    start = time.perf_counter()
    jax.block_until_ready(fn(tokenizer, arg))  # compile + first run
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(iters):
      jax.block_until_ready(fn(tokenizer, arg))
    seconds = (time.perf_counter() - start) / iters
    print(f"{name:7s} {label}: {frames / seconds:8.2f} frames/s  ({seconds * 1000:.0f} ms per "
          f"{frames} frames, first call {compile_s:.1f} s, {params / 1e6:.1f} M params, "
          f"{image_size}px, {model.codebook_size} codes, device {jax.devices()[0].platform})",
          flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="shapes,mugen")
  parser.add_argument("--frames", type=int, default=0, help="frames per call (default: 32 / 2)")
  parser.add_argument("--iters", type=int, default=3)
  args = parser.parse_args()
  for name in args.sizes.split(","):
    tok, size = {"shapes": shapes_default, "mugen": mugen_like}[name]()
    frames = args.frames or (32 if name == "shapes" else 2)
    measure(name, tok, size, frames, args.iters)


if __name__ == "__main__":
  main()
