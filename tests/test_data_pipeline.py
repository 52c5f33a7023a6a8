"""Input pipeline: batch contract, frame sampling, determinism, resume, controls, sharding, errors."""

import importlib.util
import itertools
import os

import numpy as np
import pytest

from mmvid_jax.data import augment
from mmvid_jax.data import pipeline
from mmvid_jax.data import shapes
from mmvid_jax.data import shapes_generator as generator
from mmvid_jax.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**data):
  spec = importlib.util.spec_from_file_location("shapes_config", os.path.join(ROOT, "configs", "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  config.data.num_train, config.data.num_validation, config.data.num_test = 48, 16, 16
  config.data.shuffle_buffer = 16
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A workdir with the tiny TFDS dataset and SentencePiece model built by the data stage."""
  from mmvid_jax.data import stage
  path = str(tmp_path_factory.mktemp("work"))
  config = tiny_config()
  assert not stage.is_complete(config, path)
  stage.run(config, path)
  assert stage.is_complete(config, path)
  stage.run(config, path)  # Idempotent.
  return path


def take(iterator, n):
  return list(itertools.islice(iterator, n))


@pytest.mark.parametrize("source", ["tfds", "stream"])
def test_batch_contract(workdir, source):
  config = tiny_config(source=source)
  batch = next(pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=False))
  assert set(batch) == {"video", "text_ids", "attributes", "centers", "caption"}
  assert batch["video"].shape == (4, 8, 32, 32, 3) and batch["video"].dtype == np.uint8
  assert batch["text_ids"].shape == (4, 20) and batch["text_ids"].dtype == np.int32
  assert batch["attributes"].shape == (4, 4) and batch["attributes"].dtype == np.int32
  assert batch["centers"].shape == (4, 8, 2) and batch["centers"].dtype == np.float32
  assert batch["caption"].shape == (4,) and isinstance(batch["caption"][0], bytes)
  from mmvid_jax.data import text
  vocab = text.get_text_tokenizer(config, workdir).vocab_size
  assert batch["text_ids"].min() >= 0 and batch["text_ids"].max() < vocab
  assert (batch["centers"] >= 0).all() and (batch["centers"] <= 32).all()
  import tensorflow as tf
  assert tf.config.get_visible_devices("GPU") == []


def test_frame_step_sampling_takes_the_right_frames(workdir):
  config = tiny_config(source="stream", num_frames=4, frame_step=3)
  stored = generator.generate_clips(generator.ShapesSpec.from_config(config.data), "train", 0, 8)
  det = next(pipeline.make_dataset(config, "train", workdir, batch_size=8, deterministic=True))
  np.testing.assert_allclose(det["centers"], stored["centers"][:, [0, 3, 6, 9]])
  np.testing.assert_array_equal(det["video"], stored["video"][:, [0, 3, 6, 9]])
  # Training: a random start in [0, 12 - 10], then every third frame.
  train = next(pipeline.make_dataset(config, "train", workdir, batch_size=8, deterministic=False))
  starts = []
  for i in range(8):
    matches = [s for s in range(3) if np.allclose(train["centers"][i], stored["centers"][i, s:s + 10:3])]
    assert len(matches) == 1
    starts.append(matches[0])
    np.testing.assert_array_equal(train["video"][i], stored["video"][i, starts[-1]:starts[-1] + 10:3])
  assert len(set(starts)) > 1


@pytest.mark.parametrize("source", ["tfds", "stream"])
def test_deterministic_mode_is_one_ordered_pass(workdir, source):
  config = tiny_config(source=source)
  first = list(pipeline.make_dataset(config, "validation", workdir, batch_size=4, deterministic=True))
  again = list(pipeline.make_dataset(config, "validation", workdir, batch_size=4, deterministic=True))
  assert len(first) == 4
  stored = generator.generate_clips(generator.ShapesSpec.from_config(config.data), "validation", 0, 16)
  for i, (a, b) in enumerate(zip(first, again)):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a["attributes"], stored["attributes"][4 * i:4 * i + 4])
    assert [c.decode() for c in a["caption"]] == stored["caption"][4 * i:4 * i + 4]
  assert all((b["text_ids"] > 0).any(axis=1).all() for b in first)  # No null captions in eval.


@pytest.mark.parametrize("source", ["tfds", "stream"])
def test_start_step_resume_equals_continuing(workdir, source):
  config = tiny_config(source=source, null_caption_prob=0.5)
  run = take(pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=False), 15)
  same = take(pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=False), 15)
  resumed = take(pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=False,
                                       start_step=13), 2)
  for a, b in zip(run, same):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  for a, b in zip(run[13:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  if source == "tfds":  # 15 batches of 4 span more than one epoch of 48 clips: reshuffled.
    assert not np.array_equal(run[0]["centers"], run[12]["centers"])


def test_null_caption_only_in_training(workdir):
  config = tiny_config(null_caption_prob=1.0)
  train = next(pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=False))
  assert (train["text_ids"] == 0).all() and list(train["caption"]) == [b""] * 4
  evaluation = next(pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=True))
  assert (evaluation["text_ids"] > 0).any(axis=1).all()
  config = tiny_config(null_caption_prob=0.3, source="stream")
  batches = take(pipeline.make_dataset(config, "train", workdir, batch_size=8, deterministic=False), 10)
  null = np.concatenate([(b["text_ids"] == 0).all(axis=1) for b in batches])
  assert 0.1 < null.mean() < 0.5


def test_sentence_dropout():
  caption = "A red circle moves. It is small. The background is black."
  rng = np.random.default_rng(0)
  seen = set()
  for _ in range(200):
    out = augment.drop_sentences(caption, rng, training=True)
    kept = out.split(". ")
    sentences = caption.split(". ")
    assert 1 <= len(kept) <= 3 and kept == [s for s in sentences if s in kept]
    seen.add(len(kept))
  assert seen == {1, 2, 3}
  assert augment.drop_sentences(caption, rng, training=False) == "A red circle moves."
  assert augment.drop_sentences("Hair is brown, and eyes are blue. Smiles.", rng,
                                training=False) == "Hair is brown."
  # In the pipeline single-sentence Shapes captions pass through unchanged.
  captions = augment.augment_captions([b"A red circle moves north."], np.zeros((1, 4), int), rng,
                                      sources=(), training=True, drop_sentence=True,
                                      null_caption_prob=0.0)
  assert captions == ["A red circle moves north."]


def test_controls(workdir):
  config = tiny_config(source="stream", background="random")
  config.transformer.controls = ("first_frame:keep", "random_frame:keep", "background:shape_4x4",
                                 "same_color:keep", "same_shape:keep")
  stored = generator.generate_clips(generator.ShapesSpec.from_config(config.data), "validation", 0, 4)
  batch = next(pipeline.make_dataset(config, "validation", workdir, batch_size=4, deterministic=True))
  assert batch["controls"].shape == (4, 5, 32, 32, 3) and batch["controls"].dtype == np.uint8
  np.testing.assert_array_equal(batch["controls"][:, 0], batch["video"][:, 0])
  np.testing.assert_array_equal(batch["controls"][:, 1], stored["video"][:, 6])
  np.testing.assert_array_equal(batch["controls"][:, 2], stored["background"])
  assert batch["controls"][:, 2].max() <= shapes.BACKGROUND_MAX  # No object in the background.
  np.testing.assert_array_equal(batch["controls"][:, 3], stored["same_color"])
  np.testing.assert_array_equal(batch["controls"][:, 4], stored["same_shape"])
  # Colour and shape from other clips: captions name the slots.
  assert batch["caption"][0].decode().startswith(
      "An object with background in image three, color in image four, shape in image five is")
  train = next(pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=False))
  assert train["controls"].shape == (4, 5, 32, 32, 3)


def test_process_split_and_global_arrays(workdir):
  import jax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  config = tiny_config()
  whole = list(pipeline.make_dataset(config, "test", workdir, batch_size=8, deterministic=True))
  parts = [list(pipeline.make_dataset(config, "test", workdir, batch_size=8, deterministic=True,
                                      process_index=p, process_count=2)) for p in range(2)]
  assert all(b["video"].shape[0] == 4 for part in parts for b in part)
  key = lambda batches: sorted(c.tobytes() for b in batches for c in b["centers"])
  assert key(parts[0] + parts[1]) == key(whole)
  assert not set(key(parts[0])) & set(key(parts[1]))

  assert jax.device_count() == 8
  mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  batch = whole[0]
  arrays = pipeline.to_global(batch, sharding)
  assert set(arrays) == set(batch) - {"caption"}
  for name, array in arrays.items():
    assert array.shape == batch[name].shape and array.sharding == sharding
    np.testing.assert_array_equal(np.asarray(array), batch[name])
  assert arrays["video"].addressable_shards[0].data.shape == (2, 8, 32, 32, 3)


def test_clear_errors(tmp_path, workdir):
  config = tiny_config()
  with pytest.raises(UserError, match="missing or empty.*run the data stage"):
    pipeline.make_dataset(config, "train", str(tmp_path / "empty"), batch_size=4, deterministic=True)
  other = tiny_config(num_train=40)
  with pytest.raises(UserError, match="holds no shapes/s32_f12_plain_n40-16-16_seed1234"):
    pipeline.make_dataset(other, "train", workdir, batch_size=4, deterministic=True)
  with pytest.raises(UserError, match="unknown split 'tain'"):
    pipeline.make_dataset(config, "tain", workdir, batch_size=4, deterministic=True)
  config.transformer.controls = ("colour:keep",)
  with pytest.raises(UserError, match="unknown control source 'colour'"):
    pipeline.make_dataset(config, "train", workdir, batch_size=4, deterministic=True)
  with pytest.raises(UserError, match="not a positive multiple of the 3 processes"):
    pipeline.make_dataset(tiny_config(), "train", workdir, batch_size=4, deterministic=True,
                          process_index=0, process_count=3)


@pytest.mark.parametrize("key, value, match", [
    ("data.source", "disk", "config.data.source: unknown value 'disk'"),
    ("data.background", "stars", "config.data.background: unknown value 'stars'"),
    ("data.text_tokenizer", "clip", "config.data.text_tokenizer: unknown value 'clip'"),
    ("data.null_caption_prob", 1.5, "config.data.null_caption_prob: 1.5 is not a probability"),
    ("transformer.controls", ("colour:keep",), "config.transformer.controls: unknown control source"),
])
def test_config_checks_name_the_key(key, value, match):
  from mmvid_jax import configuration
  from mmvid_jax.errors import ConfigError
  config = tiny_config()
  section, name = key.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=match):
    configuration.validate(config)


def test_abandoned_iterator_stops_its_thread(workdir):
  import gc
  iterator = pipeline.make_dataset(tiny_config(), "train", workdir, batch_size=4, deterministic=False)
  next(iterator)
  thread = iterator._thread
  del iterator
  gc.collect()
  thread.join(timeout=10)
  assert not thread.is_alive()


def test_resize_and_crop_maps_pixels_and_centres():
  tf = pipeline.import_tensorflow()
  attributes = np.array([[0, 0, 1, 2]])
  video, centers, _ = shapes.render_clips(attributes, np.array([[40.0, 30.0]]), 2, 64)
  wide = np.concatenate([np.zeros((1, 2, 64, 16, 3), np.uint8), video[0:1],
                         np.zeros((1, 2, 64, 16, 3), np.uint8)], axis=3)[0]  # 64 x 96.
  out, (scale, top, left) = pipeline._resize_square(tf, tf.constant(wide), 32)
  out = out.numpy()
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
  expected = (centers[0] + [0, 16]) * scale - [top, left]
  weight = out[..., 0].astype(np.float32)
  grid = np.arange(32) + 0.5
  cy = (weight * grid[None, :, None]).sum((1, 2)) / weight.sum((1, 2))
  cx = (weight * grid[None, None, :]).sum((1, 2)) / weight.sum((1, 2))
  np.testing.assert_allclose(np.stack([cy, cx], -1), expected, atol=0.3)


@pytest.mark.slow
def test_main_runs_the_data_stage_idempotently(tmp_path):
  import subprocess
  import sys
  command = [sys.executable, "-m", "mmvid_jax.main", "--config=configs/shapes.py:tiny",
             f"--workdir={tmp_path}", "--config.stage=data"]
  first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-2000:]
  assert "Data stage: TFDS shapes/s32_f12_plain_n512-64-64_seed1234" in first.stderr
  assert os.path.exists(tmp_path / "text" / "shapes_bpe192.model")
  second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert second.returncode == 0 and "Stage data: already complete" in second.stderr
