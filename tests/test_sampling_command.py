"""The sampling command and the sample stage end to end on a tiny trained workdir, and their
clear errors.

The session fixture builds a real tiny workdir once: the Shapes stream with a background control
slot, an exported VQGAN tokenizer (its initial weights: training it is the tokenizer stage's job)
and the real transformer trainer for two steps.
"""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from mmvid_jax import configuration
from mmvid_jax import pipeline
from mmvid_jax import sample as sample_cli
from mmvid_jax.sampling import outputs
from mmvid_jax.sampling import stage
from mmvid_jax.tokenizer import api as tokenizer_api
from mmvid_jax.tokenizer.model import build_tokenizer

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTION = "A small red circle is moving north."


def tiny_config(controls=("background:shape_4x4",)):
  spec = importlib.util.spec_from_file_location("shapes_config",
                                                os.path.join(_ROOT, "configs", "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  config.data.source = "stream"
  config.data.num_test = 16
  config.data.background = "random" if controls else "plain"
  config.transformer.controls = controls
  config.transformer.num_steps = 2
  config.transformer.eval_every = 2
  config.transformer.checkpoint_every = 2
  config.transformer.log_every = 1
  config.sample.steps = 3
  config.sample.num_prompts = 2
  config.sample.num_samples = 2
  config.sample.batch_size = 4
  return config


def _export_initial_tokenizer(config, workdir):
  module = build_tokenizer(config.tokenizer)
  size = int(config.data.image_size)
  variables = module.init(jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.float32))
  tokenizer_api.save_tokenizer(tokenizer_api.export_dir(workdir), config.tokenizer, size,
                               variables, step=0)


def _export_initial_transformer(config, workdir):
  """The transformer's initial weights, exported as the transformer stage would."""
  from flax import linen as nn
  from mmvid_jax.data import text as text_lib
  from mmvid_jax.transformer import api as transformer_api
  from mmvid_jax.transformer import model as model_lib
  from mmvid_jax.transformer import vocab
  tok = config.tokenizer
  text_vocab = text_lib.get_text_tokenizer(config, workdir).vocab_size
  layout = vocab.layout_from_config(config, tok.codebook_size, tok.latent_size, text_vocab)
  module = model_lib.make_model(config.transformer, layout)
  text = jnp.ones((1, layout.text_len), jnp.int32)
  controls = (jnp.zeros((1, layout.num_controls, layout.latent_height, layout.latent_width),
                        jnp.int32) if layout.num_controls else None)
  variables = module.init(jax.random.key(1), text, controls,
                          jnp.zeros((1, layout.video_len), jnp.int32),
                          method=model_lib.MMVIDTransformer.tokens_to_logits)
  modes = tuple(entry.split(":")[1] for entry in config.transformer.controls)
  bundle = transformer_api.TransformerBundle(
      params=nn.meta.unbox(variables["params"]), text_encoder=None, layout=layout, model=module,
      control_modes=modes)
  transformer_api.save_transformer(transformer_api.export_dir(workdir), bundle, 0, "learned")


@pytest.fixture(scope="module")
def exported_workdir(tmp_path_factory):
  """Fast: both stages exported with their initial weights (no training)."""
  workdir = str(tmp_path_factory.mktemp("sample_exported"))
  config = tiny_config()
  configuration.validate(config)
  pipeline.save_resolved_config(config, workdir)
  _export_initial_tokenizer(config, workdir)
  _export_initial_transformer(config, workdir)
  return workdir


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
  """Slow: the real transformer trainer for two steps."""
  from mmvid_jax.transformer import stage as transformer_stage
  workdir = str(tmp_path_factory.mktemp("sample_trained"))
  config = tiny_config()
  configuration.validate(config)
  pipeline.save_resolved_config(config, workdir)
  _export_initial_tokenizer(config, workdir)
  transformer_stage.run(config, workdir)
  return workdir


def _html_sources(path):
  import html.parser

  class Parser(html.parser.HTMLParser):
    sources = []

    def handle_starttag(self, tag, attrs):
      self.sources += [v for k, v in attrs if k == "src"]

  parser = Parser()
  with open(path) as f:
    parser.feed(f.read())
  return parser.sources


def test_command_end_to_end(exported_workdir, tmp_path, caplog):
  _end_to_end(exported_workdir, tmp_path, caplog)


@pytest.mark.slow
def test_command_end_to_end_on_a_trained_workdir(trained_workdir, tmp_path, caplog):
  _end_to_end(trained_workdir, tmp_path, caplog)


def _end_to_end(workdir, tmp_path, caplog):
  image = tmp_path / "background.png"
  Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(image)  # not 32x32: resized
  out = tmp_path / "out"
  code = sample_cli.main([f"--workdir={workdir}", f"--text={CAPTION}",
                          "--text=A large blue square is moving west.", f"--image={image}",
                          "--num_samples=2", "--steps=2", "--candidates=2", "--cfg=1.0",
                          "--seed=5", f"--out={out}"])
  assert code == 0
  assert "resized" in caplog.text
  lines = outputs.read_manifest(str(out))
  assert len(lines) == 4
  assert {l["text"] for l in lines} == {CAPTION, "A large blue square is moving west."}
  first = lines[0]
  assert (first["decoder"], first["seed"], first["steps"], first["cfg"], first["candidates"]) == (
      "mask_predict", 5, 2, 1.0, 2)
  assert 0.0 <= first["score"] <= 1.0 and first["conditions"] == ["prompt000_control0.png"]
  for line in lines:
    assert (out / line["file"]).stat().st_size > 0 and (out / line["gif"]).stat().st_size > 0
  sources = _html_sources(out / "index.html")
  assert sources and all((out / s).is_file() for s in sources)


def test_command_maskgit_without_image(exported_workdir, tmp_path, caplog):
  out = tmp_path / "mg"
  assert sample_cli.main([f"--workdir={exported_workdir}", "--text=",
                          "--num_samples=1", "--steps=2", "--decoder=maskgit", "--dtype=bfloat16",
                          f"--out={out}"]) == 0
  assert "missing" in caplog.text
  assert len(outputs.read_manifest(str(out))) == 1
  # --temperature is validated by the decoder options (above) and recorded in the manifest.
  cold = tmp_path / "cold"
  assert sample_cli.main([f"--workdir={exported_workdir}", "--text=", "--num_samples=1",
                          "--steps=2", "--decoder=maskgit", "--temperature=0.5",
                          f"--out={cold}"]) == 0
  assert outputs.read_manifest(str(cold))[0]["temperature"] == 0.5


def _error(capsys, argv):
  assert sample_cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.count("\n") == 0 and err.startswith("error: ") and "Traceback" not in err
  return err


def test_command_clear_errors(exported_workdir, tmp_path, capsys):
  wd = f"--workdir={exported_workdir}"
  assert "does not exist" in _error(capsys, [wd, "--text=x", "--image=nope.png"])
  bad = tmp_path / "bad.png"
  bad.write_text("not an image")
  assert "cannot read image" in _error(capsys, [wd, "--text=x", f"--image={bad}"])
  assert "control slot" in _error(capsys, [wd, "--text=x", f"--image={bad}", f"--image={bad}"])
  assert "no config.json" in _error(capsys, [f"--workdir={tmp_path}", "--text=x"])
  assert "does not exist" in _error(capsys, [f"--workdir={tmp_path / 'nowhere'}", "--text=x"])
  assert "candidates" in _error(capsys, [wd, "--text=x", "--decoder=maskgit", "--candidates=3"])
  assert "needs an ART-V" in _error(capsys, [wd, "--text=x", "--decoder=ar"])
  assert ">= 1" in _error(capsys, [wd, "--text=x", "--steps=0"])
  assert "temperature must be > 0" in _error(capsys, [wd, "--text=x", "--temperature=0"])
  # A workdir whose stages have not run, and a text-only model given an image.
  untrained = tmp_path / "untrained"
  pipeline.save_resolved_config(tiny_config(controls=()), str(untrained))
  assert "no trained transformer" in _error(capsys, [f"--workdir={untrained}", "--text=x"])
  image = tmp_path / "ok.png"
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
  assert "no control slots" in _error(capsys, [f"--workdir={untrained}", "--text=x",
                                               f"--image={image}"])


def test_long_caption_is_truncated_with_a_warning(exported_workdir, tmp_path, caplog):
  long = " ".join(["A small red circle is moving north."] * 6)
  assert sample_cli.main([f"--workdir={exported_workdir}", f"--text={long}", "--num_samples=1",
                          "--steps=1", f"--out={tmp_path / 'long'}"]) == 0
  assert "truncated" in caplog.text


def test_command_as_a_process_fails_with_one_line(tmp_path):
  result = subprocess.run([sys.executable, "-m", "mmvid_jax.sample",
                           f"--workdir={tmp_path}", "--text=x"], capture_output=True, text=True,
                          cwd=_ROOT, timeout=300)
  assert result.returncode == 2
  assert result.stderr.strip().startswith("error: ") and "Traceback" not in result.stderr


def test_sample_stage_writes_gallery_and_manifest(exported_workdir):
  config = tiny_config()
  assert not stage.is_complete(config, exported_workdir)
  stage.run(config, exported_workdir)
  assert stage.is_complete(config, exported_workdir)
  directory = stage.samples_dir(exported_workdir)
  lines = outputs.read_manifest(directory)
  assert len(lines) == 4 and all(l["text"] for l in lines)
  assert lines[0]["text"] == lines[1]["text"]  # num_samples videos per test caption
  assert lines[0]["conditions"] == ["prompt000_control0.png"]
  assert all(os.path.isfile(os.path.join(directory, s))
             for s in _html_sources(os.path.join(directory, "index.html")))
  with open(os.path.join(directory, "manifest.jsonl")) as f:
    assert json.loads(f.readline())["steps"] == 3
  # Other decoder settings make the stored samples stale: the stage runs again.
  config.sample.steps = 4
  assert not stage.is_complete(config, exported_workdir)
  config.sample.steps = 3
  assert stage.is_complete(config, exported_workdir)
  config.sample.temperature = 0.5
  assert not stage.is_complete(config, exported_workdir)
