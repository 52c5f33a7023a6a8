"""Transformer training-step and sampling-pass speed (MSM + REL + VID, 3 passes per sample).

    python benchmarks/transformer_speed.py --size=mmvox --batch=2 --steps=3
    python benchmarks/transformer_speed.py --size=shapes --batch=32 --steps=3

Sizes:
- `mmvox`: MMVID's MM-VoxCeleb text->video model (width 768, 12 layers, 12 heads, MLP 3072,
  L_txt 50 + 8 frames of 8x8 = 565 tokens, CLIP-BPE text table 49408 + 50 rows).
- `shapes`: the `configs/shapes.py` default transformer with the default tokenizer's latent grid.

The frozen tokenizer is the pseudo tokenizer (patch-mean colour), so the time is the
transformer's (plus a negligible pixel-space VID negative and re-tokenization); with a real
VQGAN add its two encoder passes. Variants:
- `fused` (ours, the default): one trunk call over the 3 passes of every sample, vocabulary head
  only on the positive pass, last block of the two negative passes only at [REL]/[VID];
- `split`: `negatives="split"`, 2 passes per sample (half the batch gets the REL negative, the
  other half the VID one);
- `separate`: three trunk calls, the vocabulary head on every pass (what MMVID's PyTorch code
  does), for comparison.
Reports step time, tokens/s (sequence tokens of the positive pass per second, B*S/step),
XLA's FLOP count of the step (compiled with the loop-free attention: the model's FLOPs; see
`model_flops`), achieved FLOP/s and its fraction of a dense fp32 matmul measured in the same
process, and the process's peak RSS. Kept short: the machine is shared.
"""

import argparse
import ast
import dataclasses
import importlib.util
import os
import resource
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmvid_jax.infra import profile_summary  # pylint: disable=wrong-import-position
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import layers  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import losses  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import masking  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import train_step as step_lib  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import trainer  # pylint: disable=wrong-import-position
from mmvid_jax.transformer.model import count_params  # pylint: disable=wrong-import-position
from mmvid_jax.transformer.model import make_model  # pylint: disable=wrong-import-position
from mmvid_jax.transformer.vocab import Layout  # pylint: disable=wrong-import-position


def shapes_config():
  spec = importlib.util.spec_from_file_location("shapes_cfg", os.path.join(ROOT, "configs",
                                                                           "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("default")


def setup(size: str, patch: int = 0):
  """(transformer config, layout, tokenizer, image size)."""
  if size == "mmvox":
    tr = shapes_config().transformer
    tr.update(dict(width=768, depth=12, num_heads=12, mlp_dim=3072, controls=()))
    # 128 px, 16x16 patches -> 8x8 grid; 10 colour levels -> 1000 codes (MMVID: 1024).
    tokenizer = PseudoTokenizer(image_size=128, patch_size=16, levels=10)
    layout = Layout(tokenizer.codebook_size, 49408, 50, 8, 8, 8)
    return tr, layout, tokenizer
  config = shapes_config()
  tok = config.tokenizer
  tokenizer = PseudoTokenizer(image_size=config.data.image_size,
                              patch_size=patch or tok.downsample_factor, levels=8)
  layout = Layout(tokenizer.codebook_size, int(config.data.sentencepiece_vocab_size),
                  int(config.data.text_seq_len), int(config.data.num_frames),
                  tokenizer.latent_size, tokenizer.latent_size)
  return config.transformer, layout, tokenizer


def separate_loss(model, params, inputs, settings):
  """MMVID's PyTorch structure: three full passes, each with the vocabulary head."""
  apply = lambda *a, **k: model.apply({"params": params}, *a, **k)
  batch = inputs["codes"].shape[0]
  cond = apply(inputs["text_ids"], inputs["control_codes"], inputs["text_features"],
               method=model.embed_condition)
  perm = (jnp.arange(batch) + batch // 2) % batch
  logits, rel_pos, vid_pos = apply(cond, inputs["masked"])
  _, rel_neg, _ = apply(cond[perm], inputs["masked"])
  _, _, vid_neg = apply(cond, inputs["masked_negative"])
  msm = losses.msm_loss(logits, inputs["codes"], inputs["keep"])[0]
  weights = ~masking.fully_masked(inputs["keep"])
  rel = losses.pair_bce_loss(rel_pos, rel_neg, weights)[0]
  vid = losses.pair_bce_loss(vid_pos, vid_neg, weights)[0]
  total = settings.beta_msm * msm + settings.beta_rel * rel + settings.beta_vid * vid
  return total, {"loss": total}


def matmul_flops_per_second(repeats: int = 5) -> float:
  a = jnp.asarray(np.random.default_rng(0).standard_normal((1130, 768)), jnp.float32)
  b = jnp.asarray(np.random.default_rng(1).standard_normal((768, 3072)), jnp.float32)
  f = jax.jit(lambda x, y: x @ y)
  f(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * 1130 * 768 * 3072 / best


def model_flops(fn, *args) -> float:
  """XLA's FLOP count of the step, traced with the loop-free attention (XLA counts a loop's body
  once, and the chunked CPU attention recomputes its scores in the backward pass): the model's
  FLOPs, the same whichever attention path the timed program takes."""
  with layers.unchunked_attention():
    cost = jax.jit(lambda *a: fn(*a)).lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0)) if cost else 0.0


def time_step(step, state, batch, frozen, steps: int):
  state, metrics = step(state, batch, frozen)  # compile + first run
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = step(state, batch, frozen)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return float(np.median(times)), state


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", choices=("mmvox", "shapes"), default="mmvox")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--variants", default="fused,split,separate")
  parser.add_argument("--sample_steps", type=int, default=20)
  parser.add_argument("--patch", type=int, default=0,
                      help="shapes: pseudo-tokenizer patch (default: the tokenizer's factor)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config.transformer override, e.g. --set=num_heads=2 (repeatable)")
  parser.add_argument("--profile", default="",
                      help="a folder: trace --steps more steps of the first variant there and print "
                           "where the time goes (ms per step by XLA op)")
  parser.add_argument("--cost_only", action="store_true",
                      help="compile and report XLA FLOPs only (no timing)")
  args = parser.parse_args()

  tr, layout, tokenizer = setup(args.size, args.patch)
  for pair in args.set:
    key, sep, value = pair.partition("=")
    if not sep or key not in tr:
      raise SystemExit(f"--set {pair!r}: use KEY=VALUE with a config.transformer key")
    tr[key] = ast.literal_eval(value) if value[:1].isdigit() or value[:1] in "([-" else value
  model = make_model(tr, layout)
  settings = step_lib.settings_from_config(tr)
  tx = step_lib.build_optimizer(tr, 1000)
  init_fn = trainer.make_init_fn(model, layout, tx, None)
  rng = np.random.default_rng(0)
  size = tokenizer.image_size
  batch = {"video": jnp.asarray(rng.integers(0, 256, (args.batch, layout.num_frames, size, size,
                                                      3), dtype=np.uint8)),
           "text_ids": jnp.asarray(rng.integers(1, layout.text_vocab_size,
                                                (args.batch, layout.text_len)), jnp.int32)}
  frozen = (tokenizer, None)
  dense = matmul_flops_per_second()
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, size={args.size}, "
        f"batch={args.batch}, S={layout.seq_len}, width={tr.width}, depth={tr.depth}, "
        f"heads={tr.num_heads}")
  print(f"dense fp32 matmul 1130x768x3072: {dense / 1e9:.1f} GFLOP/s")

  for variant in args.variants.split(","):
    state = jax.jit(lambda k: jax.tree_util.tree_map(
        lambda x: x.value if hasattr(x, "value") else x, init_fn(k),
        is_leaf=lambda x: hasattr(x, "value")))(jax.random.key(0))
    if variant == "split":
      fn = step_lib.make_train_step(model, layout, dataclasses.replace(settings, negatives="split"),
                                    jax.random.key(1))
    elif variant == "separate":
      original = step_lib.mmvid_loss
      step_lib.mmvid_loss = separate_loss
      fn = step_lib.make_train_step(model, layout, settings, jax.random.key(1))
      step_lib.mmvid_loss = original
    else:  # fused: all negatives, whatever the config's default
      fn = step_lib.make_train_step(model, layout, dataclasses.replace(settings, negatives="all"),
                                    jax.random.key(1))
    step = jax.jit(fn, donate_argnums=0)
    flops = model_flops(fn, state, batch, frozen)
    if args.cost_only:
      print(f"[{variant}] {flops / 1e9:.0f} GFLOP/step (XLA cost analysis)")
      continue
    seconds, state = time_step(step, state, batch, frozen, args.steps)
    if args.profile:  # separate, already-compiled steps, so the timing above is untraced
      with jax.profiler.trace(args.profile):
        for _ in range(args.steps):
          state, metrics = step(state, batch, frozen)
        jax.block_until_ready(metrics)
      print(profile_summary.format_summary(profile_summary.summarize_trace(
          args.profile, args.steps), top=40))
      args.profile = ""
    dense = max(dense, matmul_flops_per_second())  # same conditions as the step (shared CPU)
    print(f"[{variant}] params {count_params(state.params) / 1e6:.1f}M | step {seconds:.3f} s | "
          f"{args.batch * layout.seq_len / seconds:.0f} tokens/s | {flops / 1e9:.0f} GFLOP/step "
          f"(XLA) | {flops / seconds / 1e9:.1f} GFLOP/s = {flops / seconds / dense:.0%} of dense "
          f"matmul")
    del state

  if args.cost_only or args.sample_steps <= 0:
    return
  # Sampling: one mask-predict step = one forward pass at batch 1 with the condition reused.
  params = jax.jit(lambda k: jax.tree_util.tree_map(
      lambda x: x.value if hasattr(x, "value") else x, init_fn(k).params,
      is_leaf=lambda x: hasattr(x, "value")))(jax.random.key(0))
  cond = model.apply({"params": params}, batch["text_ids"][:1], None, None,
                     method=model.embed_condition)
  forward = jax.jit(lambda p, c, v: model.apply({"params": p}, c, v))
  tokens = jnp.full((1, layout.video_len), layout.mask_id, jnp.int32)
  jax.block_until_ready(forward(params, cond, tokens))
  start = time.perf_counter()
  for _ in range(args.sample_steps):
    out = forward(params, cond, tokens)
  jax.block_until_ready(out)
  print(f"sampling: {args.sample_steps} forward passes (one video, batch 1): "
        f"{time.perf_counter() - start:.2f} s")
  print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
  main()
