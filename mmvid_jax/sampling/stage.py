"""Stage 3, sample: videos for held-out test captions (and their controls), with a gallery.

Takes the first `config.sample.num_prompts` clips of the test split (deterministic order),
generates `config.sample.num_samples` videos for each caption + control set with the decoder
settings of `config.sample`, and writes them to `<workdir>/samples/` (MP4 + GIF, control images,
`index.html`, `manifest.jsonl`). The stage is complete when the manifest lists every video, the
files exist and every line carries the current settings (decoder options, seed, the exported
transformer's step); an interrupted or stale run simply starts again (short and deterministic).
"""

import os

from absl import logging
import jax
import numpy as np

from mmvid_jax.errors import UserError
from mmvid_jax.infra.logging_utils import Progress
from mmvid_jax.sampling import generate
from mmvid_jax.sampling import outputs

SAMPLES_DIR = "samples"
# Salt of the sampling keys, so the sample stage never shares randomness with training/evaluation.
_SAMPLE_KEY_SALT = 3


def samples_dir(workdir: str) -> str:
  return os.path.join(workdir, SAMPLES_DIR)


def _expected_videos(config) -> int:
  return int(config.sample.num_prompts) * int(config.sample.num_samples)


def _settings(config, workdir: str) -> dict:
  """What the samples depend on besides the caption: copied into every manifest line, and
  compared on resume (other decoder options, or a transformer trained further, sample again)."""
  from mmvid_jax.transformer import api as transformer_api
  options = decode_options(config)
  defaults = generate.DecodeOptions()
  return {"decoder": options.get("decoder", "mask_predict"), "seed": int(config.seed),
          "steps": int(options.get("steps", 20)), "cfg": float(options.get("cfg_scale", 0.0)),
          "candidates": int(options.get("num_candidates", 1)),
          "temperature": float(options.get("temperature", defaults.temperature)),
          "transformer_step": transformer_api.exported_step(workdir)}


def is_complete(config, workdir: str) -> bool:
  return outputs.manifest_complete(samples_dir(workdir), _expected_videos(config),
                                   _settings(config, workdir))


def decode_options(config) -> dict:
  """Keyword options for generate_videos from config.sample (only DecodeOptions fields)."""
  sample = config.sample
  names = set(generate.DecodeOptions.__dataclass_fields__)
  options = {name: sample[name] for name in sorted(names) if name in sample}
  if options.get("decoder", "mask_predict") != "mask_predict":
    options["num_candidates"] = 1
  return options


def _test_prompts(config, workdir: str) -> dict:
  from mmvid_jax.data import pipeline as data_pipeline  # imports TensorFlow lazily
  num_prompts = int(config.sample.num_prompts)
  batches = data_pipeline.make_dataset(config, "test", workdir, batch_size=num_prompts,
                                       deterministic=True, process_index=0, process_count=1)
  batch = next(iter(batches), None)
  if batch is None:
    raise UserError(f"the test split has fewer than config.sample.num_prompts={num_prompts} "
                    "clips. Fix: lower config.sample.num_prompts or raise config.data.num_test.")
  return batch


def run(config, workdir: str) -> None:
  from mmvid_jax.tokenizer import api as tokenizer_api
  from mmvid_jax.transformer import api as transformer_api
  from mmvid_jax.transformer import controls as controls_lib

  options = decode_options(config)
  generate.DecodeOptions(**options)  # fail on a bad setting before loading anything
  tokenizer = tokenizer_api.load_tokenizer(workdir, expected_config=config.tokenizer,
                                           expected_image_size=int(config.data.image_size))
  bundle = generate.with_compute_dtype(transformer_api.load_transformer(workdir),
                                      str(config.sample.get("dtype", "float32")))
  prompts = _test_prompts(config, workdir)
  num_samples = int(config.sample.num_samples)
  captions = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in prompts["caption"]]
  controls = prompts.get("controls")
  rows = np.repeat(prompts["text_ids"], num_samples, axis=0)
  row_controls = None if controls is None else np.repeat(controls, num_samples, axis=0)

  progress = Progress(total=len(rows), name="sample", unit="videos")
  key = jax.random.fold_in(jax.random.key(int(config.seed)), _SAMPLE_KEY_SALT)
  videos, info = generate.generate_in_batches(
      bundle, tokenizer, rows, row_controls, key,
      batch_size=int(config.sample.get("batch_size", 8)), progress=progress, **options)
  progress.close()

  slots = [source for source, _ in controls_lib.parse_slots(config.transformer.get("controls", ()))]
  results = []
  for p, caption in enumerate(captions):
    part = slice(p * num_samples, (p + 1) * num_samples)
    results.append(outputs.PromptResult(
        text=caption, videos=videos[part], controls=None if controls is None else controls[p],
        control_labels=tuple(slots), scores=info["score"][part]))
  settings = _settings(config, workdir)
  path = outputs.write_samples(samples_dir(workdir), results, settings,
                               title=f"mmvid-jax samples: {config.get('experiment', '')}")
  logging.info("Sample: wrote %d videos for %d test captions; open %s.", len(rows), len(captions),
               os.path.join(os.path.dirname(path), outputs.INDEX))
