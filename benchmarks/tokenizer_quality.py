"""Tokenizer quality after N training steps, for comparing settings quickly (validation PSNR).

    python benchmarks/tokenizer_quality.py --steps=1500                        # the default
    python benchmarks/tokenizer_quality.py --steps=400 --set=recon_loss=l1     # taming's L1
    python benchmarks/tokenizer_quality.py --steps=150 --set=learning_rate=5e-4 --set=l2_normalize=False

Trains the Shapes default tokenizer (configs/shapes.py) with the trainer's own jitted step on
`--train_clips` clips held in memory (no dataset build, no checkpoints, no GAN), then reports
the validation PSNR of the raw and the EMA weights on `--val_clips` clips (every 8th frame),
and writes a side-by-side PNG of 8 frames (top: real, bottom: reconstruction) with `--png`.
Figures are recorded in docs/tokenizer.md.
"""

import argparse
import ast
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs.shapes import get_config  # noqa: E402
from mmvid_jax.data import shapes_generator  # noqa: E402
from mmvid_jax.evaluation import image_metrics  # noqa: E402
from mmvid_jax.tokenizer import train_step  # noqa: E402
from mmvid_jax.tokenizer.model import build_tokenizer  # noqa: E402


def parse_overrides(pairs: list[str]) -> dict:
  """["recon_loss=l1", "learning_rate=5e-4"] -> {"recon_loss": "l1", "learning_rate": 5e-4}."""
  out = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep:
      raise SystemExit(f"--set {pair!r}: use key=value, e.g. --set=recon_loss=l1")
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out


def save_grid(path: str, real: np.ndarray, recon: np.ndarray, count: int = 8, scale: int = 3):
  import imageio.v3 as iio
  rows = [np.concatenate(list(images[:count]), axis=1) for images in (real, recon)]
  grid = ((np.concatenate(rows, axis=0) + 1) * 127.5).clip(0, 255).astype(np.uint8)
  iio.imwrite(path, grid.repeat(scale, 0).repeat(scale, 1))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config.tokenizer override, or SECTION.KEY=VALUE for another "
                           "section, e.g. data.image_size=32 (repeatable)")
  parser.add_argument("--train_clips", type=int, default=512)
  parser.add_argument("--val_clips", type=int, default=32)
  parser.add_argument("--log_every", type=int, default=50)
  parser.add_argument("--png", default="", help="write real/reconstruction frames here")
  args = parser.parse_args()

  config = get_config("default")
  tok = config.tokenizer
  for key, value in parse_overrides(args.set).items():
    section, _, name = key.rpartition(".")
    if section not in ("", *config.keys()) or name not in (config[section] if section else tok):
      raise SystemExit(f"--set {key}: not a config key (tokenizer keys need no prefix)")
    target = config[section] if section else tok
    target[name] = value
  tok.downsample_factor = 2 ** (len(tok.channel_mult) - 1)
  tok.latent_size = config.data.image_size // tok.downsample_factor
  tok.num_steps = args.steps
  spec = shapes_generator.ShapesSpec.from_config(config.data)
  train = shapes_generator.generate_clips(spec, "train", 0, args.train_clips)["video"]
  val = shapes_generator.generate_clips(spec, "validation", 0, args.val_clips)["video"]
  val = val[:, ::max(1, val.shape[1] // 3)]
  val = train_step.video_to_float(jnp.asarray(val.reshape((-1,) + val.shape[2:])))

  model = build_tokenizer(tok)
  optimizer = train_step.build_optimizer(tok, float(tok.learning_rate))
  state = train_step.init_state(model, None, optimizer, None, jax.random.key(config.seed),
                                config.data.image_size)
  step_fn = jax.jit(train_step.make_train_step(tok, model, None, optimizer, None, None,
                                               jax.random.key(config.seed + 1)))
  rng = np.random.default_rng(config.seed)
  start = time.perf_counter()
  for step in range(args.steps):
    batch = {"video": train[rng.integers(0, len(train), int(tok.batch_size))]}
    state, metrics = step_fn(state, batch, step, None)
    if step % args.log_every == 0 or step == args.steps - 1:
      print(f"step {step}: train PSNR {float(metrics['psnr']):.2f} dB, "
            f"codes used {float(metrics['code_usage']):.0%}", flush=True)
  seconds = time.perf_counter() - start
  settings = ", ".join(args.set) or "defaults"
  for name, params in (("weights", state.params), ("EMA weights", state.ema_params)):
    recon, _ = model.apply({"params": params, **state.model_state}, val)
    recon = jnp.clip(recon, -1, 1)
    print(f"{settings}, {args.steps} steps: validation PSNR ({name}) "
          f"{float(jnp.mean(image_metrics.psnr(val, recon))):.2f} dB")
    codes = np.asarray(model.apply({"params": params, **state.model_state}, val,
                                   method=model.encode_indices))
    f = tok.downsample_factor
    patches = np.asarray(val).reshape(len(val), codes.shape[1], f, codes.shape[2], f, 3)
    blank = patches.max(axis=(2, 4, 5)) <= -1.0 + 1e-3  # all-background (black) patches
    if blank.any():
      values, counts = np.unique(codes[blank], return_counts=True)
      print(f"  background patches ({blank.mean():.0%} of tokens): {len(values)} distinct codes, "
            f"the commonest holds {counts.max() / counts.sum():.0%}")
    if args.png and name == "weights":
      save_grid(args.png, np.asarray(val), np.asarray(recon))
  print(f"{args.steps} steps in {seconds:.0f} s ({args.steps / seconds:.2f} steps/s, incl. compile)")


if __name__ == "__main__":
  main()
