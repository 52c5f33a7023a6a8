"""MMVID's evaluation protocol: FVD and PRD measured the way the paper measured them.

    python -m mmvid_jax.evaluation.protocol --workdir=runs/vox [--eval_num=2048] \
        [--decoders=mmvid,artv] [--ar_workdir=runs/vox_artv] [--split=test] [--out=DIR]
    python -m mmvid_jax.main --config=... --workdir=runs/vox --config.stage=evaluate \
        --config.evaluate.protocol=mmvid

Both run `run()` and write `<out>/protocol_mmvid.json` and `protocol_mmvid.md` (default out:
`<workdir>/evaluation`). The protocol (spec §5.5, §8.6; settings in `protocol_spec`): the first
`eval_num` clips of the split in loader order, one generated video per clip from its caption
and controls, videos at 128 px, clips shorter than 16 frames bounced to 15, I3D logits in
batches of 16, FVD in float64, PRD (20 clusters, 1001 angles, 10 runs) in MMVID's and in the
conventional argument order. The decoding is the paper's, not config.sample's.
"""

import argparse
import dataclasses
import logging as pylogging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from absl import logging  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mmvid_jax.errors import UserError  # noqa: E402
from mmvid_jax.evaluation import fvd as fvd_lib  # noqa: E402
from mmvid_jax.evaluation import measures  # noqa: E402
from mmvid_jax.evaluation import metrics_io  # noqa: E402
from mmvid_jax.evaluation import prd as prd_lib  # noqa: E402
from mmvid_jax.evaluation import protocol_report  # noqa: E402
from mmvid_jax.evaluation import protocol_spec as spec  # noqa: E402
from mmvid_jax.infra.logging_utils import Progress  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Request:
  eval_num: int
  decoders: tuple[str, ...]   # empty: every method a trained model exists for
  split: str
  ar_workdir: str


SPLITS = ("train", "validation", "test")


def request_from_config(config) -> Request:
  ev = config.evaluate
  if str(ev.get("split", "test")) not in SPLITS:
    raise UserError(f"unknown split {ev.split!r}. Fix: use one of {', '.join(SPLITS)}.")
  return Request(eval_num=spec.check_eval_num(ev.get("eval_num", spec.DEFAULT_EVAL_NUM)),
                 decoders=spec.split_names(ev.get("protocol_decoders", ())),
                 split=str(ev.get("split", "test")),
                 ar_workdir=str(ev.get("ar_workdir", "") or ""))


def default_out_dir(workdir: str) -> str:
  return metrics_io.evaluation_dir(workdir)


def settings(request: Request) -> dict:
  """What the stored result depends on besides the trained models: compared on resume."""
  return {"protocol": spec.NAME, **dataclasses.asdict(request),
          "decoders": list(request.decoders)}


def is_complete(config, workdir: str) -> bool:
  record = protocol_report.read(default_out_dir(workdir))
  try:
    wanted = settings(request_from_config(config))
  except UserError:
    return False
  return bool(record and record.get("complete") and record.get("settings") == wanted
              and record.get("transformer_step") == _transformer_step(workdir))


def load_models(config, workdir: str, request: Request):
  """(tokenizer, MMVID bundle or None, ART-V bundle or None); UserError for untrained stages."""
  from mmvid_jax.tokenizer import api as tokenizer_api
  from mmvid_jax.transformer import api as transformer_api
  tokenizer = tokenizer_api.load_tokenizer(workdir, expected_config=config.tokenizer,
                                           expected_image_size=int(config.data.image_size))
  bundle = transformer_api.load_transformer(workdir)
  artv = bundle if bundle.is_causal else None
  if request.ar_workdir:
    if not os.path.isdir(request.ar_workdir):
      raise UserError(f"ar_workdir {request.ar_workdir!r} does not exist. Fix: point it at the "
                      "workdir of a finished ART-V run.")
    artv = transformer_api.load_transformer(request.ar_workdir)
    if not artv.is_causal:
      raise UserError(f"ar_workdir {request.ar_workdir!r} holds an MMVID transformer, not ART-V. "
                      "Fix: point it at a run trained with transformer.objective='artv'.")
  mmvid = None if bundle.is_causal else bundle
  for model in (mmvid, artv):
    if model is not None and model.layout.codebook_size != tokenizer.codebook_size:
      raise UserError(f"a transformer expects {model.layout.codebook_size} codes but this run's "
                      f"tokenizer has {tokenizer.codebook_size}. Fix: train the transformer on "
                      "this run's tokenizer.")
  return tokenizer, mmvid, artv


def load_clips(config, workdir: str, request: Request) -> dict:
  """The first eval_num clips of the split in loader order (all of them when it has fewer).

  Read one clip at a time so that no clip is dropped by a partial last batch."""
  from mmvid_jax.data import pipeline as data_pipeline
  batches = data_pipeline.make_dataset(config, request.split, workdir, batch_size=1,
                                       deterministic=True, process_index=0, process_count=1)
  collected: dict[str, list] = {}
  count = 0
  for batch in batches:
    for key, value in batch.items():
      collected.setdefault(key, []).append(value)
    count += len(batch["video"])
    if count >= request.eval_num:
      break
  if count < spec.MIN_CLIPS:
    raise UserError(f"the {request.split} split holds only {count} clips; PRD's "
                    f"{spec.PRD_CLUSTERS} clusters need at least {spec.MIN_CLIPS}. Fix: "
                    "evaluate on a larger split (--split or config.evaluate.split).")
  if count < request.eval_num:
    logging.warning("Protocol: eval_num=%d but the %s split holds %d clips; using all %d.",
                    request.eval_num, request.split, count, count)
  return {key: np.concatenate(values)[:request.eval_num] for key, values in collected.items()}


@jax.jit
def _tokens_to_frames(tokenizer, codes):
  """Video codes -> float frames in [0, 255], unrounded: MMVID clamps its decoder's output to
  [-1, 1], maps it to [0, 1] and multiplies by 255."""
  return (jnp.clip(tokenizer.decode_from_codes(codes), -1.0, 1.0) + 1.0) * 127.5


def real_features(extractor, videos: np.ndarray) -> np.ndarray:
  """I3D features of uint8 clips, converted to float one batch at a time (2048 clips at 128 px
  would take 3 GiB as float32)."""
  progress = Progress(total=len(videos), name="protocol: I3D (real clips)", unit="clips")
  out = []
  for start in range(0, len(videos), spec.I3D_BATCH):
    chunk = videos[start:start + spec.I3D_BATCH].astype(np.float32)
    out.append(extractor.from_float(chunk))
    progress.update(len(chunk))
  progress.close()
  return np.concatenate(out)


def generated_features(method, model, tokenizer, clips: dict, extractor) -> np.ndarray:
  """One video per clip, in batches of 16 with keys fold_in(key(42), batch) for every method
  (paired comparison); I3D features of each batch as it is made."""
  from mmvid_jax.sampling import generate
  options = generate.DecodeOptions(**method.decode_options())
  generate.check_compatible(model, tokenizer, options)
  layout = model.layout
  arrays = {"text_ids": generate.check_text_ids(model, clips["text_ids"])}
  if layout.num_controls:
    count = 0 if "controls" not in clips else clips["controls"].shape[1]
    if count != layout.num_controls:
      raise UserError(f"{method.label} takes {layout.num_controls} control image(s) but the "
                      f"data gives {count}. Fix: evaluate with the transformer.controls the "
                      "model was trained with.")
    arrays["controls"] = clips["controls"]
  base_key = jax.random.key(spec.SEED)
  progress = Progress(total=len(clips["video"]), name=f"protocol: {method.name}", unit="videos")
  features = []
  for index, (valid, batch) in enumerate(measures.padded_batches(arrays, spec.I3D_BATCH)):
    control_codes = generate.control_codes_for(model, tokenizer, batch.get("controls"),
                                               spec.I3D_BATCH)
    tokens, _ = generate.decode_tokens(model, batch["text_ids"], control_codes,
                                       jax.random.fold_in(base_key, index), options)
    codes = jnp.asarray(tokens).reshape(spec.I3D_BATCH, layout.num_frames, layout.latent_height,
                                        layout.latent_width)
    frames = np.asarray(_tokens_to_frames(tokenizer, codes))[:valid]
    features.append(extractor.from_float(frames))
    progress.update(valid)
  progress.close()
  return np.concatenate(features)


def measure(real: np.ndarray, generated: np.ndarray) -> dict:
  """FVD (float64) and PRD in MMVID's and in the conventional argument order."""
  prd_args = dict(num_clusters=spec.PRD_CLUSTERS, num_angles=spec.PRD_ANGLES,
                  num_runs=spec.PRD_RUNS, beta=spec.PRD_BETA, seed=spec.SEED)
  conventional = prd_lib.prd_from_features(real, generated, **prd_args)
  mmvid = prd_lib.prd_mmvid_argument_order(real, generated, **prd_args)
  return {"fvd": fvd_lib.frechet_distance(real, generated),
          "prd_mmvid_order": {"f8": mmvid.f_beta, "f1_8": mmvid.f_beta_inv},
          "prd_conventional": {"f8": conventional.f_beta, "f1_8": conventional.f_beta_inv}}


def _published(config, methods, mmvid_model) -> tuple[dict, str | None]:
  """Published FVDs to show beside ours, and a note saying where they come from."""
  if config.data.get("name") != spec.PUBLISHED_DATASET:
    return {}, None
  if mmvid_model is not None and mmvid_model.layout.num_controls:
    return {}, ("Published FVDs (MMVID 59.46, ART-V 70.95) are for text-to-video only; this "
                "model also takes controls, so none is shown.")
  shown = {m.name: spec.PUBLISHED_FVD[m.spec.decoder] for m in methods
           if m.spec.decoder in spec.PUBLISHED_FVD and m.is_paper_setting}
  return shown, f"Published FVD: {spec.PUBLISHED_SOURCE}; shown for comparison only."


def _transformer_step(workdir: str) -> int:
  from mmvid_jax.transformer import api as transformer_api
  return transformer_api.exported_step(workdir)


@dataclasses.dataclass
class Prepared:
  """Everything checked and loaded before any compute is spent."""
  request: Request
  tokenizer: object
  mmvid: object | None        # the MMVID transformer bundle
  artv: object | None         # the ART-V transformer bundle
  methods: tuple

  def model_for(self, method):
    return self.artv if method.uses_artv_model else self.mmvid


def prepare(config, workdir: str) -> Prepared:
  """Checks the request against the trained workdir; every user mistake is raised here."""
  request = request_from_config(config)
  num_frames = int(config.data.num_frames)
  spec.check_frames(num_frames)
  tokenizer, mmvid, artv = load_models(config, workdir, request)
  methods = spec.resolve_methods(request.decoders, mmvid is not None, artv is not None)
  prepared = Prepared(request, tokenizer, mmvid, artv, methods)
  for method in methods:
    spec.check_frames(num_frames, prepared.model_for(method).layout.num_frames)
  return prepared


def describe(config, workdir: str, prepared: Prepared, num_clips: int) -> dict:
  """The record's settings and context (before any result)."""
  request = prepared.request
  num_frames, model_size = int(config.data.num_frames), int(config.data.image_size)
  length = spec.i3d_frames(num_frames)
  record = {
      "complete": False, "protocol": spec.NAME, "settings": settings(request),
      "experiment": str(config.get("experiment", "")), "dataset": str(config.data.name),
      "split": request.split, "eval_num": request.eval_num, "num_clips": num_clips,
      "model_image_size": model_size, "resolution": spec.RESOLUTION,
      "resized": model_size != spec.RESOLUTION, "num_frames": num_frames, "i3d_frames": length,
      "palindrome_segments": (fvd_lib.palindrome_repeats(num_frames, length)
                              if num_frames < length else 1),
      "i3d_batch_size": spec.I3D_BATCH, "seed": spec.SEED,
      "prd": {"clusters": spec.PRD_CLUSTERS, "angles": spec.PRD_ANGLES,
              "runs": spec.PRD_RUNS, "beta": spec.PRD_BETA},
      "transformer_step": _transformer_step(workdir), "methods": {},
  }
  record["published"], record["published_note"] = _published(config, prepared.methods,
                                                              prepared.mmvid)
  return record


def add_result(record: dict, method, result: dict, seconds: float) -> None:
  record["methods"][method.name] = {
      "label": method.label, "decode_options": method.decode_options(), **result,
      "published_fvd": record["published"].get(method.name), "seconds": seconds}


def run(config, workdir: str, out_dir: str | None = None) -> dict:
  """Runs the protocol on a trained workdir and writes the JSON and the table; returns the
  record. Every user mistake is reported before any video is generated."""
  prepared = prepare(config, workdir)
  start = time.time()
  clips = load_clips(config, workdir, prepared.request)
  record = describe(config, workdir, prepared, len(clips["video"]))
  if record["resized"]:
    logging.warning("Protocol: the model makes %d px videos; real and generated clips are "
                    "resized to %d px before I3D.", record["model_image_size"], spec.RESOLUTION)
  logging.info("Protocol: %d %s clips, methods %s.", record["num_clips"], record["split"],
               ", ".join(m.name for m in prepared.methods))
  extractor = fvd_lib.I3DFeatures(spec.I3D_BATCH, input_size=spec.RESOLUTION)
  real = real_features(extractor, clips["video"])
  for method in prepared.methods:
    t0 = time.time()
    generated = generated_features(method, prepared.model_for(method), prepared.tokenizer,
                                   clips, extractor)
    result = measure(real, generated)
    add_result(record, method, result, time.time() - t0)
    logging.info("Protocol %s: FVD %.2f, PRD (MMVID order) F8 %.3f F1/8 %.3f.", method.name,
                 result["fvd"], result["prd_mmvid_order"]["f8"],
                 result["prd_mmvid_order"]["f1_8"])
  record["seconds"] = time.time() - start
  record["complete"] = True
  if jax.process_index() == 0:
    paths = protocol_report.write(out_dir or default_out_dir(workdir), record)
    logging.info("Protocol: wrote %s and %s.", *paths)
  return record


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m mmvid_jax.evaluation.protocol",
      description="FVD and PRD of a trained workdir under MMVID's evaluation protocol.")
  parser.add_argument("--workdir", required=True, help="a workdir trained by mmvid_jax.main")
  parser.add_argument("--eval_num", type=int, default=None,
                      help=f"clips to evaluate (default {spec.DEFAULT_EVAL_NUM})")
  parser.add_argument("--decoders", default=None,
                      help="comma-separated methods: mmvid, artv, or decoder names such as "
                           "maskgit (default: every method a trained model exists for)")
  parser.add_argument("--ar_workdir", default=None, help="workdir of an ART-V run for 'artv'")
  parser.add_argument("--split", default=None, help="split to evaluate on (default: the "
                                                    "workdir's config.evaluate.split)")
  parser.add_argument("--out", default=None, help="output folder (default WORKDIR/evaluation)")
  return parser


def config_for(args):
  """The workdir's resolved config with the command's options applied."""
  from mmvid_jax.sampling import inputs
  config = inputs.load_config(args.workdir)
  ev = config.evaluate
  ev.protocol = spec.NAME
  if args.eval_num is not None:
    ev.eval_num = args.eval_num
  elif "eval_num" not in ev:  # a workdir made before the protocol existed
    ev.eval_num = spec.DEFAULT_EVAL_NUM
  if args.decoders is not None:
    names = spec.split_names(args.decoders)
    # config.json stores tuples as lists; a ConfigDict keeps each field's type.
    ev.protocol_decoders = list(names) if isinstance(ev.get("protocol_decoders"), list) else names
  for key, value in (("ar_workdir", args.ar_workdir), ("split", args.split)):
    if value is not None:
      ev[key] = value
  return config


def main(argv=None) -> int:
  pylogging.getLogger("jax._src.xla_bridge").setLevel(pylogging.WARNING)
  logging.set_verbosity(logging.INFO)
  args = build_parser().parse_args(argv)
  try:
    config = config_for(args)
    run(config, args.workdir, args.out)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
