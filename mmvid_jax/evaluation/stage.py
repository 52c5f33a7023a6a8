"""Stage 4, evaluate: generate one video per held-out clip and measure it.

For the first `config.evaluate.num_videos` clips of `config.evaluate.split` (deterministic:
start frame 0, stored caption, in order), each decoder setting in `config.evaluate.compare`
generates one video conditioned on that clip's caption (and controls). Then:

- Shapes oracle accuracies (shape, colour, size, direction, all) of the generated videos,
  and of the real clips and their tokenizer reconstructions as references (Shapes only);
- mean [REL] relevance of generated and real videos (the MMVID transformer's own judgement);
- tokenizer reconstruction PSNR / SSIM / LPIPS on the real clips;
- with `config.evaluate.fvd`: FVD and PRD against the real clips (I3D features), and the
  FVD of the reconstructions (the floor the tokenizer sets).

Writes `<workdir>/evaluation/metrics.json`, `per_video.jsonl`, comparison GIFs and
TensorBoard events. The stage is complete when metrics.json holds a finished evaluation made
with the same evaluate/sample settings.
"""

import dataclasses
import hashlib
import json
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from mmvid_jax.data import pipeline as data_pipeline
from mmvid_jax.data import shapes
from mmvid_jax.data import shapes_generator
from mmvid_jax.errors import ConfigError, UserError
from mmvid_jax.evaluation import decoder_specs
from mmvid_jax.evaluation import fvd as fvd_lib
from mmvid_jax.evaluation import measures
from mmvid_jax.evaluation import metrics_io
from mmvid_jax.evaluation import oracle
from mmvid_jax.infra.logging_utils import Progress
from mmvid_jax.sampling import generate
from mmvid_jax.tokenizer import api as tokenizer_api
from mmvid_jax.transformer import api as transformer_api

# Salt of the generation keys, so evaluation never reuses the sample stage's randomness.
_EVAL_KEY_SALT = 4


# Under <workdir>/evaluation: I3D features of the reference videos, one file per set of clips.
I3D_CACHE_DIR = "i3d_cache"


def cached_features(extractor: "fvd_lib.I3DFeatures", videos: np.ndarray, cache_dir: str,
                    what: str) -> np.ndarray:
  """I3D features of reference videos (real clips, reconstructions), kept in `cache_dir` under
  a digest of the videos' bytes and the extractor's input size: a later evaluate run on the
  same clips and tokenizer (another decoder, another guidance scale) skips I3D for them, ~50 s
  per 64 clips on a 2-core CPU. Different clips or a retrained tokenizer give new digests."""
  videos = np.ascontiguousarray(videos)
  digest = hashlib.sha256(repr((videos.shape, str(videos.dtype), extractor.input_size)).encode())
  digest.update(videos.tobytes())
  path = os.path.join(cache_dir, digest.hexdigest()[:40] + ".npy")
  if os.path.exists(path):
    try:
      features = np.load(path)
      if features.shape == (videos.shape[0], fvd_lib.FEATURE_DIM):
        logging.info("Evaluate: I3D features of the %s from %s.", what, path)
        return features
    except (OSError, ValueError):
      pass  # unreadable (a run stopped while writing it): compute again
    logging.warning("Evaluate: ignoring the unreadable I3D cache file %s.", path)
  features = extractor(videos, progress_name=f"evaluate: I3D ({what})")
  os.makedirs(cache_dir, exist_ok=True)
  partial = path + ".partial.npy"
  np.save(partial, features)
  os.replace(partial, path)
  return features


def _settings(config: ml_collections.ConfigDict) -> dict:
  """What the stored result depends on (besides the trained stages): compared on resume.

  The evaluate section, the seed, and the sample stage's decoding options (not its gallery
  sizes, which do not change the evaluation)."""
  decoding = {"decoder", "steps", "num_candidates", "cfg_scale"}
  decoding |= {f.name for f in dataclasses.fields(generate.DecodeOptions)}
  sample = json.loads(config.sample.to_json_best_effort())
  return {"evaluate": json.loads(config.evaluate.to_json_best_effort()),
          "sample": {k: v for k, v in sample.items() if k in decoding},
          "seed": int(config.seed)}


def _uses_paper_protocol(config: ml_collections.ConfigDict) -> bool:
  """--config.evaluate.protocol=mmvid: MMVID's FVD/PRD protocol (evaluation/protocol.py)."""
  return config.evaluate.get("protocol", "default") == "mmvid"


def is_complete(config: ml_collections.ConfigDict, workdir: str) -> bool:
  if _uses_paper_protocol(config):
    from mmvid_jax.evaluation import protocol
    return protocol.is_complete(config, workdir)
  record = metrics_io.read_metrics(workdir)
  if not (record and record.get("complete") and record.get("settings") == _settings(config)):
    return False
  # A transformer trained further since (a resumed run with more steps) makes it stale.
  step = transformer_api.exported_step(workdir)
  if record.get("transformer_step") != step:
    logging.info("Evaluate: the stored metrics are of transformer step %s, the exported "
                 "transformer is at step %d: evaluating again.", record.get("transformer_step"),
                 step)
    return False
  return True


def load_real_clips(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The first num_videos clips of the evaluation split, in order, as numpy arrays."""
  num_videos = int(config.evaluate.num_videos)
  batches = data_pipeline.make_dataset(config, str(config.evaluate.split), workdir,
                                       batch_size=int(config.evaluate.batch_size),
                                       deterministic=True, process_index=0, process_count=1)
  collected: dict[str, list] = {}
  count = 0
  for batch in batches:
    for key, value in batch.items():
      collected.setdefault(key, []).append(value)
    count += len(batch["video"])
    if count >= num_videos:
      break
  if count < num_videos:
    raise UserError(f"the {config.evaluate.split} split gave only {count} clips but "
                    f"config.evaluate.num_videos={num_videos}. Fix: lower num_videos or raise "
                    f"config.data.num_{config.evaluate.split}.")
  return {key: np.concatenate(values)[:num_videos] for key, values in collected.items()}


def _load_models(config, workdir, specs):
  """Tokenizer, this run's transformer and (when 'ar' is compared) an ART-V transformer."""
  tokenizer = tokenizer_api.load_tokenizer(workdir, expected_config=config.tokenizer,
                                           expected_image_size=int(config.data.image_size))
  bundle = transformer_api.load_transformer(workdir)
  if bundle.layout.codebook_size != tokenizer.codebook_size:
    raise UserError(f"the transformer in {workdir!r} expects {bundle.layout.codebook_size} codes "
                    f"but the tokenizer has {tokenizer.codebook_size}. Fix: retrain the "
                    "transformer stage after the tokenizer stage.")
  needs_ar = any(spec.decoder == "ar" for spec in specs)
  needs_mmvid = any(spec.decoder != "ar" for spec in specs)
  if needs_mmvid and bundle.is_causal:
    raise UserError(f"the transformer in {workdir!r} is ART-V (causal), which cannot run "
                    "mask-predict or MaskGIT. Fix: set --config.evaluate.compare=ar.")
  ar_bundle = None
  if needs_ar:
    ar_workdir = str(config.evaluate.get("ar_workdir", "") or "")
    if ar_workdir:
      ar_bundle = transformer_api.load_transformer(ar_workdir)
    elif bundle.is_causal:
      ar_bundle = bundle
    if ar_bundle is None or not ar_bundle.is_causal:
      raise UserError("config.evaluate.compare lists 'ar' but no ART-V transformer is available. "
                      "Fix: set --config.evaluate.ar_workdir to a workdir trained with the ART-V "
                      "objective (same data and tokenizer), or drop 'ar' from compare.")
    if ar_bundle.layout.codebook_size != tokenizer.codebook_size:
      raise UserError(f"the ART-V transformer expects {ar_bundle.layout.codebook_size} codes but "
                      f"this run's tokenizer has {tokenizer.codebook_size}. Fix: train the ART-V "
                      "run on this run's tokenizer.")
  return tokenizer, bundle, ar_bundle


def _generate_all(spec, bundle, tokenizer, real: dict, config
                  ) -> tuple[np.ndarray, np.ndarray, float]:
  """One video per real clip; same keys for every decoder setting (paired comparison).
  Returns (uint8 videos, the video tokens they were decoded from, seconds)."""
  batch_size = int(config.evaluate.batch_size)
  base_key = jax.random.fold_in(jax.random.key(int(config.seed)), _EVAL_KEY_SALT)
  arrays = {"text_ids": real["text_ids"]}
  if "controls" in real:
    arrays["controls"] = real["controls"]
  if spec.given_frames:
    arrays["video"] = real["video"]
  progress = Progress(total=len(real["video"]), name=f"evaluate: generating ({spec.name})",
                      unit="videos")
  outputs, tokens = [], []
  start = time.time()
  for index, (valid, batch) in enumerate(measures.padded_batches(arrays, batch_size)):
    videos, info = generate.generate_videos(
        bundle, tokenizer, batch["text_ids"], batch.get("controls"),
        jax.random.fold_in(base_key, index), decoder=spec.decoder, steps=spec.steps,
        num_candidates=spec.num_candidates, cfg_scale=spec.guidance(config.sample.cfg_scale),
        given_video=batch.get("video"), num_given_frames=spec.given_frames, return_info=True,
        **_extra_decode_options(config, spec))
    outputs.append(np.asarray(videos, np.uint8)[:valid])
    tokens.append(info["tokens"][:valid])
    progress.update(valid)
  progress.close()
  return np.concatenate(outputs), np.concatenate(tokens), time.time() - start


def _extra_decode_options(config, spec=None) -> dict:
  """Decoder options of config.sample besides decoder/steps/candidates/cfg (same as sampling);
  a setting's own temperature (`_t<T>`) replaces config.sample.temperature."""
  names = {f.name for f in dataclasses.fields(generate.DecodeOptions)}
  names -= {"decoder", "steps", "num_candidates", "cfg_scale"}
  options = {name: config.sample[name] for name in sorted(names) if name in config.sample}
  if spec is not None and spec.temperature is not None:
    options["temperature"] = spec.temperature
  return options


def _decode_options(spec, config) -> "generate.DecodeOptions":
  return generate.DecodeOptions(decoder=spec.decoder, steps=spec.steps,
                                num_candidates=spec.num_candidates,
                                cfg_scale=spec.guidance(config.sample.cfg_scale),
                                **_extra_decode_options(config, spec))


def _read_oracle(videos: np.ndarray, real: dict, what: str, motion_grid: int = 0):
  """(reading, summary) of the Shapes oracle; (None, None) for data without Shapes attributes."""
  if "attributes" not in real:
    return None, None
  reading = oracle.read_videos(videos, f"evaluate: oracle ({what})", motion_grid)
  return reading, oracle.summarize(reading, real["attributes"])


def _names(attributes: np.ndarray) -> list[str]:
  tables = (shapes.SHAPE_NAMES, shapes.COLOR_NAMES, shapes.SIZE_NAMES, shapes.DIRECTION_NAMES)
  return [table[a] if a >= 0 else "?" for table, a in zip(tables, attributes)]


def _evaluate_setting(spec, model, tokenizer, real, config, rel_scorer, extractor,
                      real_features):
  """Generates one video per clip with one decoder setting and measures them."""
  evaluate = config.evaluate
  options = _decode_options(spec, config)
  generated, tokens, seconds = _generate_all(spec, model, tokenizer, real, config)
  reading, oracle_summary = _read_oracle(generated, real, spec.name,
                                         shapes_generator.motion_grid_of(config.data))
  # ART-V: one cached pass per video token (twice with guidance: caption and null caption).
  passes = (model.layout.video_len * (2 if options.cfg_scale else 1) if spec.decoder == "ar"
            else options.forward_passes())
  result = {
      "settings": {**dataclasses.asdict(options), "forward_passes_per_video": passes},
      "oracle": oracle_summary,
      "seconds": seconds, "seconds_per_video": seconds / len(generated),
  }
  rel = None
  if rel_scorer is not None:
    # On the tokens the transformer produced: re-encoding the decoded frames changes many of
    # them, and REL rates such videos as mismatched whatever they show (measures.RelScorer).
    rel = rel_scorer.score_tokens(tokens, real["text_ids"], real.get("controls"))
  result["rel"] = None if rel is None else measures.summarize_rel(rel)
  if extractor is not None:
    t0 = time.time()
    features = extractor(generated, progress_name=f"evaluate: I3D ({spec.name})")
    result.update(measures.feature_metrics(real_features, features, int(evaluate.prd_clusters),
                                           int(evaluate.prd_angles), int(evaluate.prd_runs),
                                           int(config.seed)))
    result["feature_seconds"] = time.time() - t0
  logging.info("Evaluate %s: %s", spec.name, ", ".join(
      ([f"oracle all-correct {oracle_summary['all']:.3f}"] if oracle_summary else [])
      + ([f"FVD {result['fvd']:.2f}"] if "fvd" in result else [])
      + [f"{seconds:.1f}s"]))
  return result, generated, reading, rel


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  if _uses_paper_protocol(config):
    from mmvid_jax.evaluation import protocol
    protocol.run(config, workdir)
    return
  evaluate = config.evaluate
  try:
    specs = decoder_specs.from_config(config)
  except ValueError as e:
    raise ConfigError("evaluate.compare", str(e), "fix the listed names") from e
  run_start = time.time()
  timings: dict[str, float] = {}
  tokenizer, bundle, ar_bundle = _load_models(config, workdir, specs)
  real = load_real_clips(config, workdir)
  timings["load"] = time.time() - run_start
  controls = real.get("controls")
  num_videos = len(real["video"])
  batch_size = int(evaluate.batch_size)
  logging.info("Evaluate: %d %s clips, decoders %s.", num_videos, evaluate.split,
               ", ".join(s.name for s in specs))

  # References: the real clips and their tokenizer reconstructions.
  t0 = time.time()
  reconstructions, recon_metrics = measures.reconstruct(tokenizer, real["video"], batch_size,
                                                        str(evaluate.lpips_net))
  timings["reconstruction"] = time.time() - t0
  t0 = time.time()
  if config.data.name != "shapes":  # the oracle knows only the Shapes vocabulary
    real.pop("attributes", None)
  motion_grid = shapes_generator.motion_grid_of(config.data)
  real_reading, real_oracle = _read_oracle(real["video"], real, "real clips", motion_grid)
  recon_reading, recon_oracle = _read_oracle(reconstructions, real, "reconstructions",
                                             motion_grid)
  timings["oracle_references"] = time.time() - t0
  rel_scorer = None if bundle.is_causal else measures.RelScorer(bundle, tokenizer, batch_size)
  real_rel = None if rel_scorer is None else rel_scorer(real["video"], real["text_ids"], controls)
  record = {
      "complete": False, "settings": _settings(config),
      "config": json.loads(config.to_json_best_effort()),
      "num_videos": num_videos, "split": str(evaluate.split),
      "image_size": int(config.data.image_size), "num_frames": int(config.data.num_frames),
      "transformer_step": transformer_api.exported_step(workdir),
      "real": {"oracle": real_oracle,
               "rel": None if real_rel is None else measures.summarize_rel(real_rel)},
      "reconstruction": {**recon_metrics,
                         "oracle": recon_oracle},
      "decoders": {},
  }
  extractor, real_features = None, None
  if evaluate.fvd:
    if jax.default_backend() == "cpu":
      logging.warning("Evaluate: FVD runs I3D on the CPU, about 0.4 s per clip on 2 cores, for up "
                      "to %d clips; --config.evaluate.fvd=False skips it.",
                      num_videos * (len(specs) + 2))
    t0 = time.time()
    extractor = fvd_lib.I3DFeatures(int(evaluate.i3d_batch_size))
    cache_dir = os.path.join(metrics_io.evaluation_dir(workdir), I3D_CACHE_DIR)
    real_features = cached_features(extractor, real["video"], cache_dir, "real clips")
    recon_features = cached_features(extractor, reconstructions, cache_dir, "reconstructions")
    record["reconstruction"]["fvd"] = fvd_lib.frechet_distance(real_features, recon_features)
    timings["i3d_references"] = time.time() - t0

  per_video = [{"index": i, "caption": real["caption"][i],
                "real_rel": None if real_rel is None else float(real_rel[i])}
               for i in range(num_videos)]
  if real_reading is not None:
    for i, row in enumerate(per_video):
      row["attributes"] = _names(real["attributes"][i])
      row["real_oracle"] = _names(real_reading.attributes[i])
  gallery = {"real": real["video"][:int(evaluate.num_gallery)]}
  for spec in specs:
    model = ar_bundle if spec.decoder == "ar" else bundle
    result, generated, reading, rel = _evaluate_setting(spec, model, tokenizer, real, config,
                                                        rel_scorer, extractor, real_features)
    record["decoders"][spec.name] = result
    for i in range(num_videos):
      if reading is not None:
        per_video[i][f"{spec.name}_oracle"] = _names(reading.attributes[i])
      if rel is not None:
        per_video[i][f"{spec.name}_rel"] = float(rel[i])
    gallery[spec.name] = generated[:int(evaluate.num_gallery)]
    if jax.process_index() == 0 and len(gallery["real"]):
      metrics_io.write_comparison_grid(workdir, spec.name, gallery["real"], gallery[spec.name])

  record["timings"] = {**timings, "total": time.time() - run_start}
  record["complete"] = True
  if jax.process_index() == 0:
    if metrics_io.read_metrics(workdir) is not None:
      metrics_io.archive_previous(workdir)
    metrics_io.write_per_video(workdir, per_video)
    path = metrics_io.write_metrics(workdir, record)
    scalars = metrics_io.flatten_scalars({k: record[k] for k in ("real", "reconstruction",
                                                                  "decoders")})
    metrics_io.write_tensorboard(workdir, record["transformer_step"], scalars, gallery)
    logging.info("Evaluate: wrote %s.", path)
