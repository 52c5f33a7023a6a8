"""Where the attention time goes at a given size: the score and value matmuls against the softmax.

    python benchmarks/attention_cpu.py                      # the Shapes default's training step
    python benchmarks/attention_cpu.py --heads=1 --head_dim=128
    python benchmarks/attention_cpu.py --batch=6 --seq=565 --heads=12 --head_dim=64   # MM-Vox

Times, for one layer, forward + backward with MMVID's [ST1]/[VID] mask, of: the attention
written plainly and differentiated by JAX (`autodiff`, what the project ran before its
hand-written backward pass), the project's attention (`layers.einsum_attention`) loop-free
(`hand-written`) and as it runs on CPU (`chunked` where the scores outgrow the caches), and the
same matmuls with the softmax replaced by the identity; then the rate of each of the attention's
matmuls on its own, next to the dense 1130x768x3072 product the other benchmarks use as the
machine's reference. The default batch is the Shapes default's training step: 8 samples x 2
passes (`negatives="split"`). Best of `--repeats` runs each, the variants interleaved.
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmvid_jax.transformer import layers  # pylint: disable=wrong-import-position


def best_seconds(fn, *args, repeats: int = 7) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return min(times)


def mmvid_mask(seq: int, text: int = 20) -> jax.Array:
  """Everything allowed except [ST1]/[VID] (rows text+1, text+2) reading earlier positions."""
  rows = jnp.arange(seq)[:, None]
  cols = jnp.arange(seq)[None, :]
  restricted = (rows == text + 1) | (rows == text + 2)
  return (~(restricted & (cols < rows)))[None, None]


def measure(batch: int, seq: int, heads: int, head_dim: int, repeats: int) -> dict:
  keys = jax.random.split(jax.random.key(0), 3)
  q, k, v = (jax.random.normal(key, (batch, seq, heads, head_dim)) for key in keys)
  allowed = mmvid_mask(seq)

  def autodiff_attention(q, k, v):
    scores = jnp.einsum("bqhd,bkhd->bhqk", q * q.shape[-1] ** -0.5, k)
    weights = jax.nn.softmax(jnp.where(allowed, scores, layers.NEG_INF), axis=-1)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, v)

  def identity_attention(q, k, v):  # the same matmuls, no mask and no softmax
    return jnp.einsum("bhqk,bkhd->bqhd", jnp.einsum("bqhd,bkhd->bhqk", q, k), v)

  project = lambda q, k, v: layers.einsum_attention(q, k, v, allowed, jnp.float32)
  variants = {"autodiff": autodiff_attention, "hand-written": project, "chunked": project,
              "no softmax": identity_attention}
  steps = {}
  for name, fn in variants.items():
    grad = jax.value_and_grad(lambda *x, fn=fn: jnp.sum(fn(*x) ** 2), argnums=(0, 1, 2))
    if name == "hand-written":
      with layers.unchunked_attention():
        steps[name] = jax.jit(lambda *x, grad=grad: grad(*x)).lower(q, k, v).compile()
    else:
      steps[name] = jax.jit(grad).lower(q, k, v).compile()
  layer_times = {name: float("inf") for name in steps}
  for name, step in steps.items():
    jax.block_until_ready(step(q, k, v))
  for _ in range(repeats):
    for name, step in steps.items():
      start = time.perf_counter()
      jax.block_until_ready(step(q, k, v))
      layer_times[name] = min(layer_times[name], time.perf_counter() - start)

  pair_flops = 2 * batch * heads * seq * seq * head_dim  # one S x S x head_dim matmul
  qt = jnp.transpose(q, (0, 2, 1, 3)).reshape(batch * heads, seq, head_dim)
  kt = jnp.transpose(k, (0, 2, 1, 3)).reshape(batch * heads, seq, head_dim)
  probs = jax.nn.softmax(jnp.einsum("bqd,bkd->bqk", qt, kt), axis=-1)
  scores = best_seconds(lambda a, b: jnp.einsum("bqd,bkd->bqk", a, b), qt, kt, repeats=repeats)
  values = best_seconds(lambda p, b: jnp.einsum("bqk,bkd->bqd", p, b), probs, kt,
                        repeats=repeats)
  softmax = best_seconds(lambda s: jax.nn.softmax(s, axis=-1), probs, repeats=repeats)
  a, b = jnp.ones((1130, 768)), jnp.ones((768, 3072))
  dense = best_seconds(lambda a, b: a @ b, a, b, repeats=repeats)
  return {
      "layer_s": layer_times,
      "scores_gflops": pair_flops / scores / 1e9,
      "values_gflops": pair_flops / values / 1e9,
      "softmax_forward_s": softmax,
      "dense_gflops": 2 * 1130 * 768 * 3072 / dense / 1e9,
      "layer_matmul_gflop": 6 * pair_flops / 1e9,  # forward 2, backward 4
  }


def trunk_matmuls(tokens: int, width: int, mlp_dim: int, repeats: int) -> tuple[float, float]:
  """(seconds, FLOPs) of one block's dense products, forward + backward, on `tokens` rows."""
  key = jax.random.key(1)
  seconds = flops = 0.0
  for fan_in, fan_out in ((width, 3 * width), (width, width), (width, mlp_dim), (mlp_dim, width)):
    x = jax.random.normal(key, (tokens, fan_in))
    w = jax.random.normal(key, (fan_in, fan_out))
    dy = jax.random.normal(key, (tokens, fan_out))
    seconds += best_seconds(lambda a, b: a @ b, x, w, repeats=repeats)           # forward
    seconds += best_seconds(lambda g, b: g @ b.T, dy, w, repeats=repeats)        # input gradient
    seconds += best_seconds(lambda a, g: a.T @ g, x, dy, repeats=repeats)        # weight gradient
    flops += 3 * 2 * tokens * fan_in * fan_out
  return seconds, flops


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=16, help="sequences (samples x passes)")
  parser.add_argument("--seq", type=int, default=535)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--head_dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--width", type=int, default=0,
                      help="also time one block's trunk matmuls at this width (0: skip)")
  parser.add_argument("--mlp_dim", type=int, default=0, help="default: 4 x width")
  args = parser.parse_args()
  m = measure(args.batch, args.seq, args.heads, args.head_dim, args.repeats)
  print(f"batch {args.batch}, S {args.seq}, {args.heads} heads of {args.head_dim}; "
        f"{jax.device_count()} {jax.default_backend()} device(s)")
  print(f"dense 1130x768x3072 matmul:        {m['dense_gflops']:7.1f} GFLOP/s")
  print(f"scores q k^T (reduces head_dim):   {m['scores_gflops']:7.1f} GFLOP/s")
  print(f"values p v (reduces S):            {m['values_gflops']:7.1f} GFLOP/s")
  print(f"softmax forward alone:             {m['softmax_forward_s'] * 1e3:7.1f} ms")
  matmul_gflop = m["layer_matmul_gflop"]
  for name, seconds in m["layer_s"].items():
    print(f"one layer, forward + backward, {name + ':':14s} {seconds * 1e3:7.1f} ms "
          f"({matmul_gflop / seconds:.1f} GFLOP/s of matmul work)")
  if args.width:
    mlp_dim = args.mlp_dim or 4 * args.width
    trunk_s, trunk_flops = trunk_matmuls(args.batch * args.seq, args.width, mlp_dim,
                                         args.repeats)
    print(f"one block's trunk matmuls (width {args.width}, MLP {mlp_dim}), forward + backward: "
          f"{trunk_s * 1e3:.1f} ms ({trunk_flops / trunk_s / 1e9:.1f} GFLOP/s)")
    block_s = trunk_s + m["layer_s"]["no softmax"]
    block_flops = trunk_flops + matmul_gflop * 1e9
    print(f"matmul-only bound for the block: {block_flops / 1e9:.2f} GFLOP in {block_s * 1e3:.1f} ms "
          f"= {block_flops / block_s / 1e9:.1f} GFLOP/s, {block_flops / block_s / 1e9 / m['dense_gflops']:.0%} "
          f"of dense")

if __name__ == "__main__":
  main()
