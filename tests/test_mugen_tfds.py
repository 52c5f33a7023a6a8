"""TFDS builder `mugen` (a tiny real build) and the MUGEN tf.data input, both sources."""

import os

import ml_collections
import numpy as np
import pytest

from mmvid_jax.data import mugen
from mmvid_jax.data import mugen_input
from mmvid_jax.data import mugen_tfds
from mmvid_jax.errors import UserError
from tests import fixtures_mugen as fx


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return fx.write_mugen_tree(str(tmp_path_factory.mktemp("mugen")))


def _config(tree, tmp, **data):
  d = ml_collections.ConfigDict(dict(
      name="mugen", source="tfds", manual_dir=tree["manual_dir"], asset_dir=tree["asset_dir"],
      root_dir="", data_dir=os.path.join(tmp, "tfds"), image_size=32, num_frames=4,
      frame_step=3, random_start=False, use_downsampled_train=False, text_source="both",
      build_workers=1, render_workers=1, text_tokenizer="bert", text_seq_len=16,
      drop_sentence=False, null_caption_prob=0.0, shuffle_buffer=8, prefetch=1))
  d.update(data)
  return ml_collections.ConfigDict({"data": d, "seed": 0})


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
  config = _config(tree, str(tmp_path_factory.mktemp("build")))
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  builder = mugen_tfds.build(config, "unused-workdir")
  return config, builder


def test_builder_fields_shapes_and_splits(tree, built):
  config, builder = built
  assert builder.builder_config.name == "r32_t4_s3"
  # The 4-frame "shield" clip is too short for 4 frames at step 3 and is skipped.
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      "train": 2, "validation": 1, "test": 1}
  import tensorflow_datasets as tfds
  examples = {ex["id"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
  walk = examples["walk_0"]
  assert walk["video"].shape == (4, 32, 32, 3) and walk["video"].dtype == np.uint8
  assert [c.decode() for c in walk["captions"]] == [fx.CLIPS["walk"][3]] + fx.CLIPS["walk"][4]
  assert [c.decode() for c in walk["characters"]] == ["mugen", "monster"]
  assert list(examples["fade_1"]["game_events"]) == [b"collect_coin"]
  assert examples["fade_1"]["world_theme"] == 1
  # Pixels are the renderer's, frames 0, 3, 6, 9.
  game_json = os.path.join(os.path.dirname(tree["manual_dir"]), "data", "walk.json")
  np.testing.assert_array_equal(walk["video"], mugen.render_clip(game_json, tree["asset_dir"],
                                                                 32, 0, 4, 3))
  assert mugen_tfds.is_built(config, "unused-workdir")


def test_parallel_build_gives_the_same_pixels(tree, built, tmp_path):
  config, builder = built
  tasks = [(tree["asset_dir"], 32, os.path.join(os.path.dirname(tree["manual_dir"]), "data",
                                                f"{name}.json"), np.arange(0, 12, 3))
           for name in ("walk", "fade", "val_walk")]
  serial = list(mugen.render_many(tasks, 1))
  parallel = list(mugen.render_many(iter(tasks), 2))
  for a, b in zip(serial, parallel):
    np.testing.assert_array_equal(a, b)


def _all_examples(builder):
  import tensorflow_datasets as tfds
  return {split: list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
          for split in builder.info.splits}


def _assert_same_examples(a, b):
  examples_a, examples_b = _all_examples(a), _all_examples(b)
  assert list(examples_a) == list(examples_b)
  for split in examples_a:
    assert len(examples_a[split]) == len(examples_b[split]) > 0
    for x, y in zip(examples_a[split], examples_b[split]):
      assert set(x) == set(y)
      for key in x:
        np.testing.assert_array_equal(x[key], y[key])


def test_beam_build_gives_the_local_builds_examples(tree, built, tmp_path):
  # apache-beam is in requirements.txt: this runs (never skips) in the default selection.
  local_config, local = built
  config = _config(tree, str(tmp_path), beam_pipeline_options=(
      "runner=DirectRunner,direct_num_workers=1,direct_running_mode=in_memory"))
  beam_built = mugen_tfds.build(config, "unused-workdir")
  assert beam_built.data_dir != local.data_dir
  _assert_same_examples(local, beam_built)


def test_beam_options_mistakes_are_clear_errors(tree, tmp_path, monkeypatch):
  from mmvid_jax.data import mugen_beam
  assert mugen_beam.pipeline_options("  ") is None
  assert mugen_beam.apache_beam_available()  # Installed by requirements.txt.
  with pytest.raises(UserError, match="bad item '--runner=DirectRunner'.*without '--'"):
    mugen_beam.pipeline_options("--runner=DirectRunner")
  with pytest.raises(UserError, match="Beam knows no option 'direct_num_wrokers'"):
    mugen_beam.pipeline_options("runner=DirectRunner,direct_num_wrokers=2")
  monkeypatch.setitem(__import__("sys").modules, "apache_beam", None)  # As if not installed.
  config = _config(tree, str(tmp_path), beam_pipeline_options="runner=DirectRunner")
  with pytest.raises(UserError, match="apache-beam is not installed.*beam_pipeline_options=''"):
    mugen_tfds.build(config, "unused-workdir")
  assert not os.path.exists(os.path.join(tmp_path, "tfds"))  # Stopped before any work.


def test_standard_config_names_and_build_command_errors(tree, monkeypatch, capsys):
  d = _config(tree, "unused", image_size=128, num_frames=16, frame_step=6).data
  assert mugen_tfds.builder_config(d) == "r128_t16_s6"  # The registered config, by name.
  assert mugen_tfds.config_name(_config(tree, "unused").data) == "r32_t4_s3"
  monkeypatch.delenv(mugen_tfds.ENV_ASSET_DIR, raising=False)
  assert mugen.main(["build", "--manual_dir=x"]) == 2
  assert "no sprite tree. Fix: pass --asset_dir" in capsys.readouterr().err
  with pytest.raises(UserError, match="no --manual_dir"):
    mugen_tfds.tfds_build([f"--asset_dir={tree['asset_dir']}"])


@pytest.mark.slow
def test_tfds_build_command_on_beam_multiprocessing(tree, built, tmp_path, monkeypatch):
  """`python -m mmvid_jax.data.mugen build` (TFDS's build) on 2 DirectRunner processes."""
  _, local = built
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  monkeypatch.setenv(mugen_tfds.ENV_ASSET_DIR, "")  # Restored after the command sets it.
  config = ('{"name": "r32_t4_s3", "version": "1.0.0", "image_size": 32, "num_frames": 4, '
            '"frame_step": 3}')
  assert mugen.main(["build", f"--asset_dir={tree['asset_dir']}", f"--config={config}",
                     f"--manual_dir={tree['manual_dir']}", f"--data_dir={tmp_path}",
                     "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,"
                     "direct_running_mode=multi_processing"]) == 0
  import tensorflow_datasets as tfds
  _assert_same_examples(local, tfds.builder_from_directory(
      os.path.join(tmp_path, "mugen", "r32_t4_s3", "1.0.0")))


def test_clips_and_sprites_read_from_a_remote_filesystem(tree):
  """Beam workers on a cluster read from buckets: gs://-style paths go through TF's gfile
  (here its in-memory ram:// filesystem) and render the same pixels as local files."""
  import tensorflow as tf
  local_json = os.path.join(os.path.dirname(tree["manual_dir"]), "data", "walk.json")
  for folder, _, files in os.walk(tree["asset_dir"]):
    for name in files:
      relative = os.path.relpath(os.path.join(folder, name), tree["asset_dir"])
      tf.io.gfile.makedirs(os.path.dirname(f"ram://mugen/assets/{relative}"))
      tf.io.gfile.copy(os.path.join(folder, name), f"ram://mugen/assets/{relative}", True)
  tf.io.gfile.copy(local_json, "ram://mugen/walk.json", True)
  remote = mugen.render_clip("ram://mugen/walk.json", "ram://mugen/assets", 32, 0, 4, 3)
  np.testing.assert_array_equal(remote, mugen.render_clip(local_json, tree["asset_dir"], 32,
                                                          0, 4, 3))
  with pytest.raises(UserError, match="ram://mugen/missing.json' does not exist"):
    mugen.render_clip("ram://mugen/missing.json", "ram://mugen/assets", 32, 0, 4, 3)


def test_unbuilt_dataset_is_a_clear_error(tree, tmp_path):
  with pytest.raises(UserError, match="holds no mugen/r32_t4_s3 dataset.*source=render"):
    mugen_tfds.built_builder(_config(tree, str(tmp_path)), "unused")


def _batches(config, split="train", deterministic=False, count=2, batch_size=2, **kwargs):
  iterator = mugen_input.make_dataset(config, split, "unused-workdir", batch_size=batch_size,
                                      deterministic=deterministic, process_index=0,
                                      process_count=1, **kwargs)
  return [batch for _, batch in zip(range(count), iterator)]


def test_input_from_tfds_follows_the_batch_contract(built):
  config, _ = built
  for deterministic in (False, True):
    (batch,) = _batches(config, deterministic=deterministic, count=1)
    assert batch["video"].shape == (2, 4, 32, 32, 3) and batch["video"].dtype == np.uint8
    assert batch["text_ids"].shape == (2, 16) and batch["text_ids"].dtype == np.int32
    assert batch["caption"].shape == (2,)
  manual = ml_collections.ConfigDict(config.to_dict())
  manual.data.text_source = "manual"
  # Only "walk" has manual text: every caption is one of its manual ones.
  for batch in _batches(manual, count=3, batch_size=1):
    assert batch["caption"][0].decode() in fx.CLIPS["walk"][4]


def test_input_rendered_on_the_fly_random_starts_and_resume(tree, tmp_path, built):
  config = _config(tree, str(tmp_path), source="render", random_start=True)
  batches = _batches(config, count=4)
  assert all(b["video"].shape == (2, 4, 32, 32, 3) for b in batches)
  resumed = _batches(config, count=2, start_step=2)
  for a, b in zip(batches[2:], resumed):  # start_step=k continues exactly.
    np.testing.assert_array_equal(a["video"], b["video"])
    np.testing.assert_array_equal(a["text_ids"], b["text_ids"])
  # Evaluation: frames 0, 3, 6, 9 (as built) and one ordered pass over the split.
  built_config, _ = built
  rendered = _batches(_config(tree, str(tmp_path), source="render"), "validation", True,
                      count=5, batch_size=1)
  from_tfds = _batches(built_config, "validation", True, count=5, batch_size=1)
  assert len(rendered) == len(from_tfds) == 1
  np.testing.assert_array_equal(rendered[0]["video"], from_tfds[0]["video"])


def test_input_checks(tree, tmp_path):
  with pytest.raises(UserError, match="random_start=True needs.*source=render"):
    mugen_input.check(_config(tree, str(tmp_path), random_start=True))
  with pytest.raises(UserError, match="not a MUGEN source"):
    mugen_input.check(_config(tree, str(tmp_path), source="stream"))
  with pytest.raises(UserError, match="no usable clip"):
    _batches(_config(tree, str(tmp_path), source="render", num_frames=20))


@pytest.mark.slow
def test_tiny_config_trains_tokenizer_and_transformer(tmp_path):
  """configs/mugen.py:tiny from the fixture: data build, 2 tokenizer and 2 transformer steps."""
  from configs import mugen as mugen_config
  from mmvid_jax import configuration
  from mmvid_jax.data import stage as data_stage
  from mmvid_jax.tokenizer import stage as tokenizer_stage
  from mmvid_jax.transformer import stage as transformer_stage
  paths = fx.write_mugen_tree(str(tmp_path / "mugen"), extra_eval_clips=8)
  config = mugen_config.get_config("tiny")
  config.data.update(manual_dir=paths["manual_dir"], asset_dir=paths["asset_dir"],
                     text_source="both", build_workers=1, render_workers=1)
  for section in (config.tokenizer, config.transformer):
    section.update(num_steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2)
  configuration.validate(config)
  workdir = str(tmp_path / "run")
  data_stage.run(config, workdir)
  assert data_stage.is_complete(config, workdir)
  tokenizer_stage.run(config, workdir)
  assert tokenizer_stage.is_complete(config, workdir)
  transformer_stage.run(config, workdir)
  assert transformer_stage.is_complete(config, workdir)
