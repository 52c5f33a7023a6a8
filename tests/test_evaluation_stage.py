"""The evaluate stage end to end on a tiny run: metrics.json content, resume, user errors.

The fixture builds a real (tiny) workdir once per session: the Shapes stream, an exported
VQGAN tokenizer (its initial weights: training it is the tokenizer stage's job and would
only slow this test down) and the real transformer trainer for a couple of steps.
"""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax import configuration
from mmvid_jax.errors import ConfigError, UserError
from mmvid_jax.evaluation import metrics_io
from mmvid_jax.evaluation import stage
from mmvid_jax.tokenizer import api as tokenizer_api
from mmvid_jax.tokenizer.model import build_tokenizer
from mmvid_jax.transformer import api as transformer_api

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config():
  spec = importlib.util.spec_from_file_location("shapes_config",
                                                os.path.join(_ROOT, "configs", "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  config.data.source = "stream"
  config.data.num_test = 16
  config.transformer.num_steps = 2
  config.transformer.batch_size = 8
  config.transformer.eval_every = 2
  config.transformer.checkpoint_every = 2
  config.transformer.log_every = 1
  config.sample.steps = 3
  config.evaluate.num_videos = 6
  config.evaluate.batch_size = 4
  config.evaluate.num_gallery = 2
  config.evaluate.compare = ("mask_predict", "maskgit_s2_c1_f1")
  return config


def _export_initial_tokenizer(config, workdir):
  module = build_tokenizer(config.tokenizer)
  size = int(config.data.image_size)
  variables = jax.jit(module.init)(jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.float32))
  tokenizer_api.save_tokenizer(tokenizer_api.export_dir(workdir), config.tokenizer, size,
                               variables, step=0)


def _export_initial_transformer(config, workdir, export_to=None):
  import flax.linen as nn
  import numpy as np
  from mmvid_jax.transformer import api as transformer_api
  from mmvid_jax.transformer import trainer
  from mmvid_jax.transformer import train_step
  tokenizer = tokenizer_api.load_tokenizer(workdir)
  layout, model, text_encoder, settings = trainer.build(config, workdir, tokenizer)
  text_ids, controls, video, features = trainer.init_inputs(layout, text_encoder)
  if settings.objective == "artv":
    init = jax.jit(lambda key: model.init(key, text_ids, controls, video))
  else:
    init = jax.jit(lambda key: model.init(key, text_ids, controls, video, features,
                                         method=type(model).tokens_to_logits))
  variables = init(jax.random.key(0))
  params = jax.tree_util.tree_map(np.asarray, nn.unbox(variables["params"]))
  bundle = transformer_api.TransformerBundle(
      params=params, text_encoder=text_encoder, layout=layout, model=model,
      control_modes=settings.control_modes, objective=settings.objective)
  transformer_api.save_transformer(transformer_api.export_dir(export_to or workdir), bundle, 0,
                                   str(config.transformer.text_encoder))
  del train_step


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory):
  """A workdir with exported (untrained) tokenizer and transformer: fast, fully real I/O."""
  workdir = str(tmp_path_factory.mktemp("eval_run"))
  config = tiny_config()
  configuration.validate(config)
  _export_initial_tokenizer(config, workdir)
  _export_initial_transformer(config, workdir)
  return workdir


def test_evaluate_stage_writes_metrics(tiny_workdir):
  config = tiny_config()
  assert not stage.is_complete(config, tiny_workdir)
  stage.run(config, tiny_workdir)
  assert stage.is_complete(config, tiny_workdir)
  with open(metrics_io.metrics_path(tiny_workdir)) as f:
    record = json.load(f)
  assert record["complete"] and record["num_videos"] == 6 and record["split"] == "test"
  # The real clips read back perfectly: the oracle works on this data.
  assert record["real"]["oracle"]["all"] == 1.0
  assert record["real"]["oracle"]["detected"] == 1.0
  assert record["real"]["oracle"]["template_iou"] > 0.9
  assert 0.0 <= record["real"]["rel"]["mean_probability"] <= 1.0
  recon = record["reconstruction"]
  assert recon["psnr"] > 0 and -1.0 <= recon["ssim"] <= 1.0 and recon["lpips"] >= 0
  assert set(record["decoders"]) == {"mask_predict", "maskgit_s2_c1_f1"}
  mask_predict = record["decoders"]["mask_predict"]
  assert mask_predict["settings"]["steps"] == 3
  assert mask_predict["settings"]["forward_passes_per_video"] == 3
  guided = record["decoders"]["maskgit_s2_c1_f1"]["settings"]
  assert guided["steps"] == 2 and guided["cfg_scale"] == 1.0
  assert guided["forward_passes_per_video"] == 4  # caption and null caption
  for result in record["decoders"].values():
    for key in ("shape", "color", "size", "direction", "all"):
      assert 0.0 <= result["oracle"][key] <= 1.0
    assert 0.0 <= result["rel"]["mean_probability"] <= 1.0
    assert result["seconds"] > 0
  assert "fvd" not in mask_predict  # the tiny config leaves FVD off
  assert record["settings"]["evaluate"]["num_videos"] == 6
  evaluation = metrics_io.evaluation_dir(tiny_workdir)
  with open(os.path.join(evaluation, metrics_io.PER_VIDEO_FILE)) as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 6 and rows[0]["real_oracle"] == rows[0]["attributes"]
  assert "mask_predict_oracle" in rows[0] and "maskgit_s2_c1_f1_rel" in rows[0]
  assert os.path.exists(os.path.join(evaluation, "mask_predict_vs_real.gif"))
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(evaluation))
  # The main job's closing summary reads these figures back.
  from mmvid_jax import pipeline
  summary = "\n".join(pipeline.summary_lines(tiny_workdir))
  assert f"{metrics_io.metrics_path(tiny_workdir)} (6 test clips)" in summary
  for name, result in record["decoders"].items():
    assert f"  {name}: Shapes oracle all-correct {result['oracle']['all']:.3f}" in summary
  assert "real clips: Shapes oracle all-correct 1.000" in summary

  # Changing an evaluation setting makes the stage incomplete (it runs again, keeping the old
  # metrics.json under a time-stamped name: see test_evaluation_measures).
  config.evaluate.compare = ("mask_predict",)
  assert not stage.is_complete(config, tiny_workdir)
  # So does a transformer trained further (its export records a later step).
  config.evaluate.compare = tiny_config().evaluate.compare
  assert stage.is_complete(config, tiny_workdir)
  spec_path = os.path.join(transformer_api.export_dir(tiny_workdir), transformer_api.SPEC_FILE)
  with open(spec_path) as f:
    spec = json.load(f)
  spec["step"] = int(spec.get("step", 0)) + 100
  with open(spec_path, "w") as f:
    json.dump(spec, f)
  assert not stage.is_complete(config, tiny_workdir)


def test_same_keys_give_the_same_videos(tiny_workdir):
  config = tiny_config()
  real = stage.load_real_clips(config, tiny_workdir)
  again = stage.load_real_clips(config, tiny_workdir)
  assert (real["video"] == again["video"]).all() and list(real["caption"]) == list(again["caption"])


def test_ar_without_an_artv_model_is_a_user_error(tiny_workdir):
  config = tiny_config()
  config.evaluate.compare = ("ar",)
  with pytest.raises(UserError, match="ART-V"):
    stage.run(config, tiny_workdir)


@pytest.mark.slow
def test_mmvid_against_artv_from_another_workdir(tiny_workdir, tmp_path):
  config = tiny_config()
  config.transformer.objective = "artv"
  ar_workdir = str(tmp_path / "artv")
  _export_initial_transformer(config, tiny_workdir, export_to=ar_workdir)
  config = tiny_config()
  config.evaluate.num_videos = 4
  config.evaluate.compare = ("mask_predict_s2", "ar")
  config.evaluate.ar_workdir = ar_workdir
  configuration.validate(config)
  stage.run(config, tiny_workdir)
  record = metrics_io.read_metrics(tiny_workdir)
  ar = record["decoders"]["ar"]
  assert ar["settings"]["decoder"] == "ar"
  latent = config.data.image_size // config.tokenizer.downsample_factor
  # One cached pass per video token.
  assert ar["settings"]["forward_passes_per_video"] == config.data.num_frames * latent ** 2
  assert 0.0 <= ar["oracle"]["all"] <= 1.0
  # ART-V videos are scored by this run's MMVID [REL] head.
  assert 0.0 <= ar["rel"]["mean_probability"] <= 1.0


def test_missing_stages_are_user_errors(tmp_path):
  with pytest.raises(UserError, match="tokenizer"):
    stage.run(tiny_config(), str(tmp_path))
  from mmvid_jax import pipeline
  assert pipeline.summary_lines(str(tmp_path)) == []  # nothing to point the user at


def test_bad_evaluate_settings_fail_validation():
  config = tiny_config()
  config.evaluate.compare = ("mask_predict_b2", "beam_search")
  with pytest.raises(ConfigError, match="evaluate.compare"):
    configuration.validate(config)
  config = tiny_config()
  config.evaluate.num_videos = 40
  with pytest.raises(ConfigError, match="evaluate.num_videos"):
    configuration.validate(config)
  config = tiny_config()
  config.evaluate.fvd = True
  config.evaluate.num_videos = 4
  with pytest.raises(ConfigError, match="prd_clusters"):
    configuration.validate(config)


@pytest.mark.slow
def test_evaluate_stage_with_fvd_and_prd(tiny_workdir):
  config = tiny_config()
  config.evaluate.fvd = True
  config.evaluate.num_videos = 10  # PRD's 20 clusters need 20 feature vectors
  config.evaluate.batch_size = 5
  config.evaluate.i3d_batch_size = 10
  config.evaluate.prd_runs = 2
  config.evaluate.compare = ("mask_predict",)
  configuration.validate(config)
  stage.run(config, tiny_workdir)
  record = metrics_io.read_metrics(tiny_workdir)
  assert record["complete"] and record["num_videos"] == 10
  assert record["reconstruction"]["fvd"] >= 0.0
  result = record["decoders"]["mask_predict"]
  # Untrained models generate videos far from the real clips.
  assert result["fvd"] > 1.0
  prd = result["prd"]
  for key in ("f_8_recall", "f_1_8_precision"):
    assert 0.0 <= prd[key] <= 1.0
  assert prd["mmvid_f8"] == prd["f_1_8_precision"] and prd["mmvid_f1_8"] == prd["f_8_recall"]
  assert record["timings"]["i3d_references"] > 0 and result["feature_seconds"] > 0


@pytest.mark.slow
def test_full_tiny_pipeline_ends_with_metrics(tmp_path):
  """All five stages through `pipeline.run`, a few steps each, then metrics.json."""
  from mmvid_jax import pipeline
  config = tiny_config()
  config.tokenizer.num_steps = 4
  config.tokenizer.warmup_steps = 2
  config.transformer.warmup_steps = 2
  config.tokenizer.eval_every = 4
  config.tokenizer.checkpoint_every = 4
  config.tokenizer.log_every = 2
  config.transformer.num_steps = 4
  config.transformer.eval_every = 4
  config.transformer.checkpoint_every = 4
  config.evaluate.compare = ()
  workdir = str(tmp_path)
  assert pipeline.run(config, workdir) == list(pipeline.ORDER)
  record = metrics_io.read_metrics(workdir)
  assert record["complete"] and list(record["decoders"]) == [config.sample.decoder]
  assert record["real"]["oracle"]["all"] == 1.0
  assert record["transformer_step"] == 4
  # A second run finds every stage complete and changes nothing.
  before = os.path.getmtime(metrics_io.metrics_path(workdir))
  pipeline.run(config, workdir)
  assert os.path.getmtime(metrics_io.metrics_path(workdir)) == before


def test_gallery_sizes_do_not_invalidate_the_evaluation():
  config = tiny_config()
  settings = stage._settings(config)
  config.sample.num_samples = 7
  assert stage._settings(config) == settings
  config.sample.steps = 9
  assert stage._settings(config) != settings


def test_datasets_without_shapes_attributes_skip_the_oracle():
  import numpy as np
  videos = np.zeros((2, 8, 32, 32, 3), np.uint8)
  assert stage._read_oracle(videos, {"video": videos}, "real clips") == (None, None)
  reading, summary = stage._read_oracle(videos, {"attributes": np.zeros((2, 4), np.int32)}, "x")
  assert summary["detected"] == 0.0 and reading.attributes.shape == (2, 4)


def test_summary_of_a_dataset_without_the_oracle(tmp_path):
  """MUGEN-style records (no Shapes oracle) still summarise: FVD and REL, no oracle text."""
  from mmvid_jax import pipeline
  metrics_io.write_metrics(str(tmp_path), {
      "complete": True, "num_videos": 4, "split": "validation",
      "real": {"oracle": None, "rel": None},
      "reconstruction": {"psnr": 27.25, "oracle": None},
      "decoders": {"mask_predict": {"oracle": None, "fvd": 312.46,
                                    "rel": {"mean_probability": 0.4}},
                   "ar": {"oracle": None, "rel": None}}})
  assert pipeline.summary_lines(str(tmp_path)) == [
      f"evaluation: {metrics_io.metrics_path(str(tmp_path))} (4 validation clips)",
      "  tokenizer reconstructions: PSNR 27.2 dB",
      "  ar: no figures",  # metrics.json keeps its keys sorted
      "  mask_predict: FVD 312.5, mean REL probability 0.40"]


def test_validation_metrics_script_on_the_tiny_workdir(tiny_workdir):
  """benchmarks/validation_metrics.py: the trainer's validation metrics, masked and on complete
  videos, deterministic for a seed."""
  import script_loader  # pylint: disable=import-outside-toplevel
  from mmvid_jax.transformer import train_step  # pylint: disable=import-outside-toplevel
  script = script_loader.load_script("benchmarks/validation_metrics.py", "validation_metrics")
  config = tiny_config()
  first = script.validation_metrics(tiny_workdir, batches=1, config=config)
  again = script.validation_metrics(tiny_workdir, batches=1, config=config)
  expected = {"loss", "msm_loss", "msm_accuracy", "rel_loss", "rel_accuracy", "vid_loss",
              "vid_accuracy"} | {f"{k}_unmasked" for k in train_step.UNMASKED_METRICS}
  assert expected <= set(first)
  for key in expected:
    assert 0.0 <= first[key] < 1e3 and first[key] == again[key], key
  other_seed = script.validation_metrics(tiny_workdir, batches=1, seed=12345, config=config)
  assert other_seed["msm_loss"] != first["msm_loss"]
  # One VID negative kind only: the VID figures change, the MSM ones (same masks) do not.
  colour = script.validation_metrics(tiny_workdir, batches=1, config=tiny_config(),
                                     vid_strategy="colour")
  assert colour["msm_loss"] == first["msm_loss"]
  assert colour["vid_loss_unmasked"] != first["vid_loss_unmasked"]
  with pytest.raises(UserError, match="frame_swap"):
    script.validation_metrics(tiny_workdir, batches=1, config=tiny_config(), vid_strategy="blur")


class CountingExtractor:
  """Stands in for I3DFeatures: features from the pixels, and a count of the clips it saw."""
  input_size = None

  def __init__(self):
    self.clips = 0

  def __call__(self, videos, progress_name=None):
    del progress_name
    self.clips += len(videos)
    means = videos.reshape(len(videos), -1).astype(np.float32).mean(axis=1, keepdims=True)
    return np.repeat(means, 400, axis=1) + np.arange(400, dtype=np.float32)


def test_reference_features_are_cached_by_content(tmp_path):
  rng = np.random.default_rng(0)
  videos = rng.integers(0, 256, (3, 4, 8, 8, 3), dtype=np.uint8)
  extractor = CountingExtractor()
  first = stage.cached_features(extractor, videos, str(tmp_path), "real clips")
  again = stage.cached_features(extractor, videos.copy(), str(tmp_path), "real clips")
  assert extractor.clips == 3  # the second call read the file
  np.testing.assert_array_equal(first, again)
  assert first.shape == (3, 400)
  changed = videos.copy()
  changed[1, 2, 3, 4, 0] ^= 1  # one pixel differs: new features
  other = stage.cached_features(extractor, changed, str(tmp_path), "real clips")
  assert extractor.clips == 6 and not np.array_equal(other, first)
  assert len(list(tmp_path.glob("*.npy"))) == 2
  # A cache file cut short by a stopped run is computed again and replaced.
  path = next(p for p in tmp_path.glob("*.npy")
              if np.array_equal(np.load(p), first))
  path.write_bytes(path.read_bytes()[:100])
  repaired = stage.cached_features(extractor, videos, str(tmp_path), "real clips")
  assert extractor.clips == 9
  np.testing.assert_array_equal(repaired, first)
  np.testing.assert_array_equal(np.load(path), first)
  assert not list(tmp_path.glob("*.partial*"))
