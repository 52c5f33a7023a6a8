"""The sampling command: your captions (and control images) -> videos, a gallery and a manifest.

    python -m mmvid_jax.sample --workdir=runs/shapes --text="A small red circle is moving north."
    python -m mmvid_jax.sample --workdir=runs/shapes_image --text="..." --image=background.png \
        --num_samples=4 --decoder=mask_predict --candidates=4 --cfg=2.0 --out=my_videos

Writes `<out>/promptNNN_sampleS.mp4` and `.gif`, the condition images, `index.html` (open it as a
local file) and `manifest.jsonl`. `--text` may be repeated. Defaults come from the workdir's
`config.json` (section `sample`). User mistakes print one line and exit with status 2.
"""

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from mmvid_jax.errors import UserError  # noqa: E402

log = logging.getLogger("mmvid_jax.sample")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m mmvid_jax.sample",
      description="Generate videos from captions (and control images) with a trained workdir.")
  parser.add_argument("--workdir", required=True, help="a workdir trained by mmvid_jax.main")
  parser.add_argument("--text", action="append", default=None, required=True,
                      help="a caption; repeat for several (\"\" = the null caption)")
  parser.add_argument("--image", action="append", default=[],
                      help="a control image, in slot order; repeat for several slots")
  parser.add_argument("--mask", default=None,
                      help="a control image for the slot whose source is 'mask'")
  parser.add_argument("--num_samples", type=int, default=None, help="videos per caption")
  parser.add_argument("--steps", type=int, default=None, help="decoding steps")
  parser.add_argument("--decoder", choices=("mask_predict", "maskgit", "ar"), default=None)
  parser.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale")
  parser.add_argument("--candidates", type=int, default=None,
                      help="mask-predict: candidate masks per step reranked by REL/VID")
  parser.add_argument("--dynamic_stop", action="store_true",
                      help="mask-predict: keep the best-scoring video, stop after 5 flat steps")
  parser.add_argument("--num_clips", type=int, default=1,
                      help="long video: clips chained by preserving --t_overlap frames")
  parser.add_argument("--t_overlap", type=int, default=None,
                      help="long video: frames kept from the previous clip (default T/2)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                      help="transformer compute precision (default: config sample.dtype)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--fps", type=float, default=8.0)
  parser.add_argument("--out", default=None, help="output folder (default WORKDIR/generated)")
  return parser


def _check_positive(args):
  for name in ("num_samples", "steps", "candidates", "batch_size", "num_clips"):
    value = getattr(args, name)
    if value is not None and value < 1:
      raise UserError(f"--{name} must be >= 1, got {value}. Fix: pass a positive number.")


def _assign_images(args, slots: list[str]) -> list[str | None]:
  """One image path (or None = missing control) per control slot."""
  from mmvid_jax.sampling import inputs
  given = list(args.image) + ([args.mask] if args.mask else [])
  if not slots:
    inputs.check_image_count(len(given), slots)
  paths: list[str | None] = [None] * len(slots)
  if args.mask:
    if "mask" not in slots:
      raise UserError(f"--mask was given, but no control slot takes a mask (slots: "
                      f"{', '.join(slots)}). Fix: pass the image with --image instead.")
    paths[slots.index("mask")] = args.mask
  free = [i for i, p in enumerate(paths) if p is None]
  if len(args.image) > len(free):
    raise UserError(f"{len(given)} control images were given but the model has {len(slots)} "
                    f"control slot(s) ({', '.join(slots)}). Fix: pass at most {len(slots)}.")
  for slot, path in zip(free, args.image):
    paths[slot] = path
  for path in given:
    if not os.path.isfile(path):
      raise UserError(f"image file {path!r} does not exist. Fix: check the path.")
  return paths


def run(args) -> str:
  """Generates and writes everything; returns the output folder."""
  _check_positive(args)
  from mmvid_jax.sampling import inputs
  workdir = args.workdir
  config = inputs.load_config(workdir)
  image_paths = _assign_images(args, inputs.control_slots(config))
  settings = inputs.resolve_settings(config, decoder=args.decoder, steps=args.steps,
                                     candidates=args.candidates, cfg=args.cfg,
                                     num_samples=args.num_samples)
  decoder, steps, candidates, cfg = (settings.decoder, settings.steps, settings.candidates,
                                     settings.cfg)
  num_samples = settings.num_samples

  from mmvid_jax.sampling import generate
  options = generate.DecodeOptions(decoder=decoder, steps=steps, num_candidates=candidates,
                                   cfg_scale=cfg, dynamic_stop=args.dynamic_stop)
  loaded = inputs.load_run(workdir, args.dtype, config=config)
  bundle, tokenizer, slots = loaded.bundle, loaded.tokenizer, loaded.slots
  generate.check_compatible(bundle, tokenizer, options)
  controls = inputs.controls_array(image_paths, slots, tokenizer.image_size)
  text_ids = inputs.encode_captions(loaded.text_tokenizer, args.text, bundle.layout.text_len)

  import jax
  rows = np.repeat(text_ids, num_samples, axis=0)
  row_controls = None if controls is None else np.repeat(controls[None], len(rows), axis=0)
  key = jax.random.key(args.seed)
  log.info("Generating %d video(s) with %s (%d steps, %d candidate(s), cfg %.2f) ...",
           len(rows), decoder, steps, candidates, cfg)
  kwargs = dict(decoder=decoder, steps=steps, dynamic_stop=args.dynamic_stop)
  if args.num_clips > 1:
    t_overlap = (bundle.layout.num_frames // 2 if args.t_overlap is None else args.t_overlap)
    videos = generate.generate_long_videos(
        bundle, tokenizer, rows, row_controls, key, num_clips=args.num_clips,
        t_overlap=t_overlap, num_candidates=candidates, cfg_scale=cfg, **kwargs)
    scores = np.full((len(rows),), np.nan)
  else:
    videos, info = generate.generate_in_batches(
        bundle, tokenizer, rows, row_controls, key, batch_size=args.batch_size,
        num_candidates=candidates, cfg_scale=cfg, **kwargs)
    scores = info["score"]

  from mmvid_jax.sampling import outputs
  out = args.out or os.path.join(workdir, "generated")
  results = []
  for p, text in enumerate(args.text):
    part = slice(p * num_samples, (p + 1) * num_samples)
    results.append(outputs.PromptResult(text=text, videos=videos[part], controls=controls,
                                        control_labels=tuple(slots), scores=scores[part]))
  manifest_settings = {"decoder": decoder, "seed": args.seed, "steps": steps, "cfg": cfg,
                       "candidates": candidates}
  outputs.write_samples(out, results, manifest_settings, fps=args.fps,
                        title=f"mmvid-jax samples ({os.path.basename(os.path.abspath(workdir))})")
  return out


def main(argv=None) -> int:
  # Other libraries' INFO lines (JAX backend probing) stay quiet; our notes (resized images,
  # missing controls, progress) are shown.
  logging.basicConfig(level=logging.WARNING, format="%(message)s")
  log.setLevel(logging.INFO)
  args = build_parser().parse_args(argv)
  try:
    out = run(args)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"Wrote {os.path.join(out, 'index.html')} and {os.path.join(out, 'manifest.jsonl')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
