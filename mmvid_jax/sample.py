"""The sampling command: your captions (and control images) -> videos, a gallery and a manifest.

    python -m mmvid_jax.sample --workdir=runs/shapes --text="A small red circle is moving north."
    python -m mmvid_jax.sample --workdir=runs/shapes_image --text="..." --image=background.png \
        --num_samples=4 --decoder=mask_predict --candidates=4 --cfg=2.0 --out=my_videos

Long videos (spec 5.4): `--num_clips=100 --t_overlap=7` extrapolates (each clip keeps the last
7 frames of the previous one: 8 + 99 = 107 frames); `--interpolate=clip.mp4 --interp_levels=2`
keeps the real frames of a video (or a folder of frames) and generates the frames between,
doubling the frame rate per level (4x).

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
  parser.add_argument("--temperature", type=float, default=None,
                      help="softmax temperature of the token draws (1 = MMVID; default: the "
                           "workdir's sample.temperature)")
  parser.add_argument("--dynamic_stop", action="store_true",
                      help="mask-predict: keep the best-scoring video, stop after 5 flat steps")
  parser.add_argument("--num_clips", type=int, default=None,
                      help="long video: clips chained by preserving --t_overlap frames "
                           "(default: config sample.num_clips, 1 = a normal video)")
  parser.add_argument("--t_overlap", type=int, default=None,
                      help="long video: frames kept from the previous clip "
                           "(default: config sample.t_overlap)")
  parser.add_argument("--interpolate", default=None, metavar="PATH",
                      help="interpolation: a video file or a folder of frames whose first T "
                           "frames are kept; the frames between them are generated")
  parser.add_argument("--interp_levels", type=int, default=None,
                      help="interpolation: frame-rate doublings (default: config "
                           "sample.interp_levels, 2 = 4x)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                      help="transformer compute precision (default: config sample.dtype)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--fps", type=float, default=8.0)
  parser.add_argument("--out", default=None, help="output folder (default WORKDIR/generated)")
  return parser


def _check_positive(args):
  for name in ("num_samples", "steps", "candidates", "batch_size", "num_clips", "interp_levels"):
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


def _long_video_mode(args, config) -> dict:
  """The mode and its settings: flags, else the workdir's `sample` section."""
  sample, num_frames = config.get("sample", {}), int(config.data.num_frames)
  if args.interpolate is not None:
    for flag in ("num_clips", "t_overlap"):
      if getattr(args, flag) is not None:
        raise UserError(f"--interpolate cannot be combined with --{flag} (extrapolation). Fix: "
                        "run them as two commands.")
    return {"mode": "interpolate", "interp_levels": int(
        args.interp_levels or sample.get("interp_levels", 2)), "source": args.interpolate}
  if args.interp_levels is not None:
    raise UserError("--interp_levels was given without --interpolate. Fix: add "
                    "--interpolate=VIDEO (a video file or a folder of frames).")
  num_clips = int(args.num_clips or sample.get("num_clips", 1))
  if num_clips == 1:
    return {"mode": "sample"}
  t_overlap = int(sample.get("t_overlap", -1) if args.t_overlap is None else args.t_overlap)
  if t_overlap == -1:  # the default: keep half the clip, as the Python API does
    t_overlap = num_frames // 2
  if not 0 <= t_overlap < num_frames:
    raise UserError(f"--t_overlap must be in [0, {num_frames - 1}] for the model's "
                    f"{num_frames}-frame clips, got {t_overlap}. Fix: pass a smaller value.")
  if t_overlap == 0:
    log.info("t_overlap is 0: the %d clips are generated independently (MMVID keeps %d "
             "frames: --t_overlap=%d).", num_clips, num_frames - 1, num_frames - 1)
  return {"mode": "extrapolate", "num_clips": num_clips, "t_overlap": t_overlap}


def run(args) -> str:
  """Generates and writes everything; returns the output folder."""
  _check_positive(args)
  from mmvid_jax.sampling import inputs
  workdir = args.workdir
  config = inputs.load_config(workdir)
  mode = _long_video_mode(args, config)
  image_paths = _assign_images(args, inputs.control_slots(config))
  real_frames = None
  if mode["mode"] == "interpolate":
    real_frames = inputs.load_real_frames(args.interpolate, int(config.data.image_size),
                                          int(config.data.num_frames))
  settings = inputs.resolve_settings(config, decoder=args.decoder, steps=args.steps,
                                     candidates=args.candidates, cfg=args.cfg,
                                     num_samples=args.num_samples)
  decoder, steps, candidates, cfg = (settings.decoder, settings.steps, settings.candidates,
                                     settings.cfg)
  num_samples = settings.num_samples

  temperature = (float(args.temperature) if args.temperature is not None
                 else float(config.get("sample", {}).get("temperature", 1.0)))

  from mmvid_jax.sampling import generate
  options = generate.DecodeOptions(decoder=decoder, steps=steps, num_candidates=candidates,
                                   cfg_scale=cfg, dynamic_stop=args.dynamic_stop,
                                   temperature=temperature)
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
  kwargs = dict(decoder=decoder, steps=steps, dynamic_stop=args.dynamic_stop,
                temperature=temperature)
  if mode["mode"] == "extrapolate":
    videos = generate.generate_long_videos(
        bundle, tokenizer, rows, row_controls, key, num_clips=mode["num_clips"],
        t_overlap=mode["t_overlap"], num_candidates=candidates, cfg_scale=cfg, **kwargs)
    scores = np.full((len(rows),), np.nan)
  elif mode["mode"] == "interpolate":
    videos = generate.interpolate_videos(
        bundle, tokenizer, rows, row_controls, np.repeat(real_frames[None], len(rows), axis=0),
        key, levels=mode["interp_levels"], num_candidates=candidates, cfg_scale=cfg, **kwargs)
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
                       "candidates": candidates, "temperature": temperature, **mode}
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
