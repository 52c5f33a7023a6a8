"""Transformer train-step throughput and model FLOP utilisation (MFU) on one accelerator.

    python benchmarks/transformer_mfu.py                            # MUGEN, bf16, batch 4
    python benchmarks/transformer_mfu.py --batch=8 --dtype=float32
    python benchmarks/transformer_mfu.py --variant=tiny --steps=1   # CPU smoke run
    python benchmarks/transformer_mfu.py --variant=gpu --batch=8 --attention=cudnn  # mugen.py:gpu

The step is the MMVID training step of `configs/mugen.py` (12 x 768, 4096 video + 67 condition
tokens, MSM + REL + VID: 3 trunk passes per sample, remat, scanned layers) with the frozen
tokenizer replaced by the pseudo tokenizer on the same 16 x 16 latent grid (1000 codes for
MUGEN's 1024), so the time is the transformer's. The default batch 4 is MUGEN's per-chip
share on a TPU v4-8 (global batch 16 over 4 chips).

Model FLOPs are counted analytically (matmuls and attention of every pass, the vocabulary head
on the positive pass, x3 for forward + backward; remat's recomputation not counted), so
MFU = model FLOPs / step time / peak. (XLA's cost analysis is no substitute here: it counts a
scanned layer once and fused-attention custom calls not at all.) Peak: 989 TFLOP/s, an H100
SXM's dense bf16 tensor-core rate; pass --peak_tflops for another device.
`--attention` sets the model's `config.transformer.attention`: `xla` the einsum attention,
`cudnn` one `jax.nn.dot_product_attention` call per block (cuDNN flash attention, padded to a
multiple of 64; needs a CUDA GPU and bf16: with fp32 the model falls back to einsum), `auto`
what a training run picks by default. `--mask=full` passes MMVID's whole attention mask to the
fused kernel (the model's earlier behaviour) instead of running it mask-free with the [ST1]/[VID]
rows recomputed (`--mask=none` drops that recomputation: a diagnostic of its cost, not MMVID);
`--fused_pad` changes the padding multiple (1: none). `--remat_policy` sets
what a rematerialised block keeps (`layers.remat_policy`), `--residuals` prints that list for the
real block, `--prevent_cse=on` restores the CSE barriers inside the scan; `--entry_pad=off`
restores the fused kernel's per-layer padding of q, k, v (the trunk otherwise pads its sequence
once, `Trunk.entry_padding`). Several variants in one lease:
`benchmarks/transformer_mfu_sweep.sh`. `--profile=DIR` traces 3 more steps and prints where the
device time goes (per kernel and per XLA op, ms per step).
Imports only JAX, Flax, optax and ml_collections (no TensorFlow), so it runs on a bare GPU box.
"""

import argparse
import importlib.util
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from flax import linen as nn  # pylint: disable=wrong-import-position
from mmvid_jax.infra import profile_summary  # pylint: disable=wrong-import-position
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import layers  # pylint: disable=wrong-import-position
from mmvid_jax.transformer import train_step as step_lib  # pylint: disable=wrong-import-position
from mmvid_jax.transformer.model import count_params  # pylint: disable=wrong-import-position
from mmvid_jax.transformer.model import make_model  # pylint: disable=wrong-import-position
from mmvid_jax.transformer.vocab import Layout  # pylint: disable=wrong-import-position


def mugen_config(variant: str):
  spec = importlib.util.spec_from_file_location("mugen_cfg", os.path.join(ROOT, "configs",
                                                                          "mugen.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def model_flops_per_step(layout: Layout, width: int, depth: int, mlp_dim: int, batch: int,
                         passes: int = 3, vocab_passes: int = 1,
                         pruned_last_layer: bool = False) -> float:
  """Forward + backward matmul/attention FLOPs of one MMVID step (3 x the forward)."""
  seq = layout.seq_len
  dense_per_token = 2 * (4 * width * width + 2 * width * mlp_dim)  # q, k, v, out; fc1, fc2
  attention_per_query = 2 * 2 * seq * width  # scores + weighted values
  layer = seq * (dense_per_token + attention_per_query)
  if pruned_last_layer:
    # Negative passes: the last block computes keys/values everywhere, the rest at 2 rows.
    rows = 2
    pruned = seq * 2 * 2 * width * width + rows * (
        dense_per_token - 2 * 2 * width * width + attention_per_query)
    trunk = passes * (depth - 1) * layer + vocab_passes * layer + (passes - vocab_passes) * pruned
  else:
    trunk = passes * depth * layer
  head = vocab_passes * 2 * layout.video_len * width * layout.codebook_size
  return 3.0 * batch * (trunk + head)


class _OneBlock(nn.Module):
  """One trunk block as the model builds it (a wrapper: Block's `init` field shadows `.init`)."""
  model: nn.Module
  masked_rows: tuple[int, ...]

  @nn.compact
  def __call__(self, x, allowed):
    m = self.model
    return layers.Block(m.num_heads, m.mlp_dim, m.activation, dtype=m.dtype,
                        attention=m.attention, masked_rows=self.masked_rows)(x, allowed)[0]


def print_block_residuals(model, layout: Layout):
  """What one block of `model`, rematerialised with its policy, keeps (abstract, full length)."""
  wrapper = _OneBlock(model, layout.masked_attention_rows())
  x = jax.ShapeDtypeStruct((1, layout.seq_len, model.width), model.dtype)
  allowed = jnp.asarray(layout.attention_allowed())
  variables = jax.eval_shape(wrapper.init, jax.random.key(0), x, allowed)
  loss = lambda v, x: wrapper.apply(v, x, allowed).astype(jnp.float32).sum()
  print(f"residuals kept by one block, remat_policy={model.remat_policy}:")
  jax.ad_checkpoint.print_saved_residuals(
      jax.checkpoint(loss, policy=layers.remat_policy(model.remat_policy)), variables, x)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--variant", choices=("default", "tiny", "gpu"), default="default",
                      help="configs/mugen.py variant (gpu: unrolled, no remat)")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
  parser.add_argument("--negatives", choices=("all", "split"), default="all")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1 runs)")
  parser.add_argument("--peak_tflops", type=float, default=989.0)
  parser.add_argument("--remat", choices=("config", "on", "off"), default="config",
                      help="recompute block activations in the backward pass (config: as MUGEN)")
  parser.add_argument("--remat_policy", choices=layers.REMAT_POLICIES + ("config",),
                      default="config",
                      help="with remat, what each block keeps (config: as MUGEN); see "
                           "layers.remat_policy")
  parser.add_argument("--prevent_cse", choices=("config", "on", "off"), default="config",
                      help="optimization barriers around the recomputation inside the scan "
                           "(config: layers.PREVENT_CSE_IN_SCAN)")
  parser.add_argument("--residuals", action="store_true",
                      help="print what one rematerialised block keeps for its backward pass "
                           "(shows whether the fused kernel's outputs are kept)")
  parser.add_argument("--attention", choices=("xla", "cudnn", "auto"), default="xla",
                      help="config.transformer.attention: xla = einsum + softmax; cudnn = one "
                           "fused jax.nn.dot_product_attention call; auto = cudnn where it "
                           "applies (CUDA GPU, bf16/fp16), else xla")
  parser.add_argument("--mask", choices=("rows", "full", "none"), default="rows",
                      help="fused attention: rows = mask-free kernel + [ST1]/[VID] rows on the "
                           "einsum path (the model's); full = the whole mask to the kernel; "
                           "none = a diagnostic, NOT MMVID's attention: the kernel alone, the "
                           "two restricted rows left unrestricted (what their recomputation costs)")
  parser.add_argument("--fused_pad", type=int, default=layers.FUSED_LENGTH_MULTIPLE,
                      help="pad fused-attention sequences to a multiple of this (1: no padding)")
  parser.add_argument("--scan", choices=("config", "on", "off"), default="config",
                      help="scan the layers (off: unrolled, and the negative passes prune the "
                           "last block to [REL]/[VID])")
  parser.add_argument("--entry_pad", choices=("on", "off"), default="on",
                      help="on: the trunk pads its sequence to a multiple of 64 once (the "
                           "model's); off: every fused attention call pads q, k, v and slices "
                           "its output (before)")
  parser.add_argument("--num_heads", type=int, default=0,
                      help="attention heads (0: the config's; head dim = width / heads)")
  parser.add_argument("--profile", default="",
                      help="a folder: trace 3 more steps there and print the device-time breakdown")
  args = parser.parse_args()
  layers.FUSED_LENGTH_MULTIPLE = args.fused_pad
  if args.prevent_cse != "config":
    layers.PREVENT_CSE_IN_SCAN = args.prevent_cse == "on"
  if args.mask == "full":
    Layout.masked_attention_rows = lambda self: None
  elif args.mask == "none":
    Layout.masked_attention_rows = lambda self: ()
  if args.entry_pad == "off":
    layers.Trunk.entry_padding = lambda self, seq_len, width, keep_kv: 0
  if args.attention == "cudnn" and jax.default_backend() != "gpu":
    parser.error(f"--attention=cudnn needs a CUDA GPU; this machine's backend is "
                 f"{jax.default_backend()} (the model would fall back to einsum)")

  config = mugen_config(args.variant)
  tr, data = config.transformer, config.data
  tr.negatives = args.negatives
  tr.attention = args.attention
  if args.num_heads:
    tr.num_heads = args.num_heads
  if args.scan != "config":
    tr.scan_layers = args.scan == "on"
  if args.remat != "config":
    tr.remat = args.remat == "on"
  if args.remat_policy != "config":
    tr.remat_policy = args.remat_policy
  image_size = int(data.image_size)
  patch = int(config.tokenizer.downsample_factor)
  levels = 5 if args.variant == "tiny" else 10  # 125 (or 1000) codes
  tokenizer = PseudoTokenizer(image_size=image_size, patch_size=patch, levels=levels)
  layout = Layout(tokenizer.codebook_size, int(data.sentencepiece_vocab_size),
                  int(data.text_seq_len), int(data.num_frames), tokenizer.latent_size,
                  tokenizer.latent_size)
  model = make_model(tr, layout).clone(dtype=jnp.dtype(args.dtype))
  if args.residuals:
    print_block_residuals(model, layout)
  settings = step_lib.settings_from_config(tr)
  tx = step_lib.build_optimizer(tr, 1000)
  zeros = lambda *shape: jnp.zeros(shape, jnp.int32)

  @jax.jit
  def init(key):
    params = nn.meta.unbox(model.init(key, zeros(2, layout.text_len), None,
                                      zeros(2, layout.video_len),
                                      method=model.tokens_to_logits)["params"])
    return step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=tx.init(params), tx=tx)

  state = init(jax.random.key(0))
  rng = np.random.default_rng(0)
  batch = {"video": jnp.asarray(rng.integers(0, 256, (args.batch, layout.num_frames, image_size,
                                                      image_size, 3), dtype=np.uint8)),
           "text_ids": jnp.asarray(rng.integers(1, layout.text_vocab_size,
                                                (args.batch, layout.text_len)), jnp.int32)}
  frozen = (tokenizer, None)
  step = jax.jit(step_lib.make_train_step(model, layout, settings, jax.random.key(1)),
                 donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, batch, frozen).compile()
  compile_s = time.perf_counter() - start
  for _ in range(max(args.warmup, 1)):
    state, metrics = compiled(state, batch, frozen)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, frozen)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  seconds = float(np.median(times))
  passes = 2 if args.negatives == "split" else 3
  flops = model_flops_per_step(layout, int(tr.width), int(tr.depth), int(tr.mlp_dim),
                               args.batch, passes=passes, vocab_passes=1,
                               pruned_last_layer=not bool(tr.scan_layers))
  peak = args.peak_tflops * 1e12
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  print(f"device: {device.device_kind} ({jax.default_backend()}), jax {jax.__version__}")
  print(f"config: mugen {args.variant}, {count_params(state.params) / 1e6:.1f}M params, "
        f"S={layout.seq_len}, batch {args.batch}, {passes} passes/sample, dtype {args.dtype}, "
        f"remat={bool(tr.remat)}, scan={bool(tr.scan_layers)}, {tr.num_heads} heads of "
        f"{tr.width // tr.num_heads}, attention {args.attention} "
        f"(mask {args.mask}, pad {args.fused_pad}, entry pad {args.entry_pad}); "
        f"compile {compile_s:.1f} s")
  print(f"step {seconds * 1e3:.1f} ms (median of {args.steps}; min {min(times) * 1e3:.1f} ms) | "
        f"{args.batch * layout.seq_len / seconds:,.0f} tokens/s (B*S) | "
        f"{args.batch * passes * layout.seq_len / seconds:,.0f} trunk tokens/s")
  print(f"model FLOPs {flops / 1e9:,.1f} GFLOP/step -> {flops / seconds / 1e12:.1f} TFLOP/s, "
        f"MFU {flops / seconds / peak:.1%} of {args.peak_tflops:.0f} TFLOP/s")
  if "peak_bytes_in_use" in stats:
    print(f"peak device memory {stats['peak_bytes_in_use'] / 2**30:.1f} GiB")
  print(f"loss {float(metrics['loss']):.3f}")
  if args.profile:
    with jax.profiler.trace(args.profile):
      for _ in range(3):
        state, metrics = compiled(state, batch, frozen)
      jax.block_until_ready(metrics)
    print(profile_summary.format_summary(profile_summary.summarize_trace(args.profile, 3)))


if __name__ == "__main__":
  main()
