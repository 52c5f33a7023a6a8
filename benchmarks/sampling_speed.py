"""Seconds per video: MMVID mask-predict vs ART-V with a KV cache, same model size, same run.

    python benchmarks/sampling_speed.py --preset=shapes            # configs/shapes.py default size
    python benchmarks/sampling_speed.py --preset=mmvox --batch=1   # MMVID's MM-Vox T2V size

Random weights (speed does not depend on them). Each decoder is compiled once (reported
separately), then timed over `--iters` calls on a fixed batch; seconds per video = call time /
batch. Keep runs short on shared machines. Results are recorded in docs/sampling.md.
"""

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import linen as nn  # noqa: E402

from configs import shapes as shapes_config  # noqa: E402
from mmvid_jax.evaluation import decoder_specs  # noqa: E402
from mmvid_jax.sampling import generate  # noqa: E402
from mmvid_jax.transformer import api  # noqa: E402
from mmvid_jax.transformer import model as model_lib  # noqa: E402
from mmvid_jax.transformer.vocab import Layout  # noqa: E402

# (layout fields, model fields). MM-Vox T2V (spec §3.1/§3.6): 50 text + 512 video tokens, S = 565,
# CLIP ViT-B/32 trunk. `shapes64`: the Shapes default of an earlier release (64 px, 16 frames,
# 8x8 latents), kept so the GPU rows of docs/sampling.md can be rerun. `shapes` is read from
# configs/shapes.py (see shapes_preset), so it is always the current default.
PRESETS = {
    "shapes64": (dict(codebook_size=512, text_vocab_size=96, text_len=20, num_frames=16,
                      latent_height=8, latent_width=8),
                 dict(width=256, depth=6, num_heads=8, mlp_dim=1024)),
    "mmvox": (dict(codebook_size=1024, text_vocab_size=49408, text_len=50, num_frames=8,
                   latent_height=8, latent_width=8),
              dict(width=768, depth=12, num_heads=12, mlp_dim=3072)),
}


def shapes_preset() -> tuple[dict, dict]:
  """The `configs/shapes.py` default's layout and trunk."""
  config = shapes_config.get_config("default")
  tok, tr = config.tokenizer, config.transformer
  layout = dict(codebook_size=tok.codebook_size,
                text_vocab_size=config.data.sentencepiece_vocab_size,
                text_len=config.data.text_seq_len, num_frames=config.data.num_frames,
                latent_height=tok.latent_size, latent_width=tok.latent_size)
  model = dict(width=tr.width, depth=tr.depth, num_heads=tr.num_heads, mlp_dim=tr.mlp_dim,
               activation=tr.activation)
  return layout, model


PRESETS["shapes"] = shapes_preset()


def make_bundle(layout: Layout, fields: dict, causal: bool, dtype) -> api.TransformerBundle:
  cls = model_lib.ARTVTransformer if causal else model_lib.MMVIDTransformer
  module = cls(layout, dtype=dtype, **fields)
  text = jnp.ones((1, layout.text_len), jnp.int32)
  video = jnp.zeros((1, layout.video_len), jnp.int32)
  init = (lambda k: module.init(k, text, None, video)) if causal else (
      lambda k: module.init(k, text, None, video,
                            method=model_lib.MMVIDTransformer.tokens_to_logits))
  params = nn.meta.unbox(jax.jit(init)(jax.random.key(0))["params"])
  return api.TransformerBundle(params=params, text_encoder=None, layout=layout, model=module,
                               objective="artv" if causal else "mmvid")


def time_decoder(bundle, options: generate.DecodeOptions, batch: int, iters: int) -> dict:
  text = jnp.ones((batch, bundle.layout.text_len), jnp.int32)

  def call(seed):
    tokens, _ = generate.decode_tokens(bundle, text, None, jax.random.key(seed), options)
    return jax.block_until_ready(tokens)

  start = time.perf_counter()
  call(0)
  compile_s = time.perf_counter() - start
  times = []
  for i in range(iters):
    start = time.perf_counter()
    call(i + 1)
    times.append(time.perf_counter() - start)
  best = min(times)
  steps = bundle.layout.video_len if options.decoder == "ar" else options.steps
  return {"decoder": options.decoder, "steps": steps, "batch": batch,
          "first_call_s": round(compile_s, 3), "call_s": [round(t, 4) for t in times],
          "seconds_per_video": round(best / batch, 5)}


def time_uncached_ar(bundle, batch: int, iters: int) -> dict:
  """The official ART-V sampler re-runs the whole sequence once per video token (no cache):
  seconds per video = N x (one full causal forward), timed here on one forward."""
  layout = bundle.layout
  text = jnp.ones((batch, layout.text_len), jnp.int32)
  video = jnp.zeros((batch, layout.video_len), jnp.int32)
  forward = jax.jit(lambda p, v: bundle.model.apply({"params": p}, text, None, v)["video"])
  start = time.perf_counter()
  jax.block_until_ready(forward(bundle.params, video))
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(max(iters, 3)):
    start = time.perf_counter()
    jax.block_until_ready(forward(bundle.params, video))
    times.append(time.perf_counter() - start)
  best = min(times)
  return {"decoder": "ar_uncached_estimate", "steps": layout.video_len, "batch": batch,
          "first_call_s": round(compile_s, 3), "forward_s": round(best, 5),
          "seconds_per_video": round(best * layout.video_len / batch, 5)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", choices=sorted(PRESETS), default="shapes")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--iters", type=int, default=2)
  parser.add_argument("--decoders", default="mask_predict,ar",
                      help="comma list of decoder settings (mask_predict, mask_predict_b4, "
                      "maskgit, ar, ar_uncached; see mmvid_jax/evaluation/decoder_specs.py)")
  parser.add_argument("--score_on", choices=("completed", "masked"), default="completed",
                      help="where mask-predict candidates are scored (B > 1)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  parser.add_argument("--json", default="", help="also append the results to this JSON-lines file")
  args = parser.parse_args(argv)

  layout_fields, model_fields = PRESETS[args.preset]
  layout = Layout(**layout_fields)
  dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
  device = jax.devices()[0]
  print(f"preset={args.preset} S={layout.seq_len} N={layout.video_len} width="
        f"{model_fields['width']} depth={model_fields['depth']} batch={args.batch} "
        f"dtype={args.dtype} device={device.device_kind} ({jax.default_backend()}, "
        f"{os.cpu_count()} cpus, {platform.machine()})", flush=True)
  results = []
  for name in args.decoders.split(","):
    causal = name.startswith("ar")
    bundle = make_bundle(layout, model_fields, causal, dtype)
    if name == "ar_uncached":
      result = time_uncached_ar(bundle, args.batch, args.iters)
    else:
      spec = decoder_specs.parse(name, args.steps, 1)
      options = generate.DecodeOptions(decoder=spec.decoder, steps=spec.steps,
                                       num_candidates=spec.num_candidates, score_on=args.score_on)
      result = time_decoder(bundle, options, args.batch, args.iters)
      result.update(name=name, candidates=spec.num_candidates, score_on=args.score_on,
                    forward_passes=options.forward_passes())
    result.update(preset=args.preset, dtype=args.dtype, device=device.device_kind)
    results.append(result)
    print(json.dumps(result), flush=True)
    del bundle
  by_name = {r.get("name", r["decoder"]): r["seconds_per_video"] for r in results}
  for other in ("ar", "ar_uncached_estimate"):
    if other in by_name and "mask_predict" in by_name:
      print(f"{other} / mask_predict seconds per video: "
            f"{by_name[other] / by_name['mask_predict']:.1f}x", flush=True)
  if args.json:
    with open(args.json, "a") as f:
      for result in results:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
  main()
