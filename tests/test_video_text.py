"""A user's own folder of captioned videos: scanning, splits, the TFDS build, the input."""

import os

import ml_collections
import numpy as np
import pytest

from mmvid_jax import configuration
from mmvid_jax.data import pipeline
from mmvid_jax.data import video_text_data as vtd
from mmvid_jax.data import video_text_tfds
from mmvid_jax.errors import UserError
from tests import build_helpers
from tests import fixtures_video_text as fx


def _config(root, tmp, **data):
  from configs import video_text as video_text_config
  config = video_text_config.get_config("tiny")
  config.data.update(dict(manual_dir=root, data_dir=os.path.join(tmp, "tfds"), build_workers=2,
                          split_fractions=(1.0, 0.0, 0.0), drop_sentence=False,
                          null_caption_prob=0.0, prefetch=1))
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return fx.write_folder(str(tmp_path_factory.mktemp("videos")))


@pytest.fixture(scope="module")
def built(folder, tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("run"))
  config = _config(folder["root"], tmp)
  builder, messages = build_helpers.build_logging(video_text_tfds.build, config, tmp)
  return config, tmp, builder, messages


def test_scan_txt_and_csv_captions(folder, tmp_path):
  items, uncaptioned = vtd.scan(folder["root"])
  by_path = {item.relative_path: item for item in items}
  assert uncaptioned == 1 and folder["uncaptioned"] not in by_path
  for relative, captions in folder["good"].items():
    assert list(by_path[relative].captions) == captions
  assert by_path["frames/e"].is_frames_folder and not by_path["c.gif"].is_frames_folder
  csv_folder = fx.write_folder(str(tmp_path / "csv"), captions_as="csv")
  csv_items, csv_uncaptioned = vtd.scan(csv_folder["root"])
  assert csv_uncaptioned == 1
  assert {i.relative_path: i.captions for i in csv_items} == {
      i.relative_path: i.captions for i in items}


def test_layout_rules_hidden_files_and_thumbnails(tmp_path):
  fx.write_mp4(str(tmp_path / "clips" / "a.mp4"), 4)
  fx.write_captions(str(tmp_path / "clips" / "a.mp4"), ["a"])
  fx.write_frames_folder(str(tmp_path / "clips"), 1, ".jpg")  # a thumbnail beside the video
  fx.write_gif(str(tmp_path / ".hidden" / "b.gif"), 4)
  fx.write_captions(str(tmp_path / ".hidden" / "b.gif"), ["b"])
  (tmp_path / "._a.mp4").write_bytes(b"macOS metadata")
  items, uncaptioned = vtd.scan(str(tmp_path))
  assert [i.relative_path for i in items] == ["clips/a.mp4"] and uncaptioned == 0


def test_jsonl_captions_and_table_errors(tmp_path):
  fx.write_gif(str(tmp_path / "x.gif"), 4)
  (tmp_path / "captions.jsonl").write_text(
      '{"file": "x.gif", "caption": ["one", "two"]}\n{"file": "x.gif", "caption": "three"}\n')
  items, _ = vtd.scan(str(tmp_path))
  assert items[0].captions == ("one", "two", "three")
  (tmp_path / "captions.jsonl").write_text('{"file": "x.gif", "caption": "one"\n')
  with pytest.raises(UserError, match=r"captions.jsonl' line 1: not valid JSON"):
    vtd.scan(str(tmp_path))
  (tmp_path / "captions.jsonl").unlink()
  (tmp_path / "other.csv").write_text("x.gif\n")
  with pytest.raises(UserError, match=r"row 1: expected 'file,caption'"):
    vtd.scan(str(tmp_path))


def test_hash_split_is_stable_and_follows_fractions():
  paths = [f"dir/video_{i}.mp4" for i in range(2000)]
  splits = [vtd.split_of(p, (0.8, 0.1, 0.1), by_folder=False) for p in paths]
  assert splits == [vtd.split_of(p, (0.8, 0.1, 0.1), by_folder=False) for p in paths]
  share = {s: splits.count(s) / len(paths) for s in vtd.SPLITS}
  assert abs(share["train"] - 0.8) < 0.04 and abs(share["test"] - 0.1) < 0.03
  # Growing the validation fraction only moves videos out of test, never out of train.
  wider = [vtd.split_of(p, (0.8, 0.2, 0.0), by_folder=False) for p in paths]
  assert all(w == s for w, s in zip(wider, splits) if s == "train")
  assert vtd.split_of("val/x.gif", (1, 0, 0), by_folder=True) == "validation"
  assert vtd.split_of("other/x.gif", (1, 0, 0), by_folder=True) is None


def test_clear_errors_for_the_folder(tmp_path):
  with pytest.raises(UserError, match="manual_dir is not set"):
    vtd.scan("")
  with pytest.raises(UserError, match="is not a folder"):
    vtd.scan(str(tmp_path / "missing"))
  with pytest.raises(UserError, match="holds no videos"):
    vtd.scan(str(tmp_path))
  fx.write_gif(str(tmp_path / "x.gif"), 4)
  (tmp_path / "x.txt").write_bytes(b"\xff\xfe not utf-8 \xff")
  with pytest.raises(UserError, match=r"caption file .*x.txt' could not be read"):
    vtd.scan(str(tmp_path))


def test_config_checks_name_manual_dir(tmp_path):
  from configs import video_text as video_text_config
  config = video_text_config.get_config("tiny")
  with pytest.raises(UserError, match=r"config.data.manual_dir: is not set.*Fix: pass "
                                      r"--config.data.manual_dir="):
    configuration.validate(config)
  config.data.manual_dir = str(tmp_path)
  with pytest.raises(UserError, match="is empty"):
    configuration.validate(config)
  config.data.manual_dir = str(tmp_path / "missing")
  with pytest.raises(UserError, match="does not exist"):
    configuration.validate(config)
  fx.write_gif(str(tmp_path / "x.gif"), 4)
  config.data.manual_dir = str(tmp_path)
  configuration.validate(config)
  config.data.split_fractions = (0.5, 0.1, 0.1)
  with pytest.raises(UserError, match="split_fractions"):
    configuration.validate(config)


def test_read_frames_resize_crop_order_and_failures(folder, tmp_path):
  root = folder["root"]
  for relative, is_frames in (("clips/a.mp4", False), ("c.gif", False), ("frames/e", True)):
    frames = vtd.read_frames(os.path.join(root, relative), is_frames, 32, 10)
    assert frames.shape == (10, 32, 32, 3) and frames.dtype == np.uint8
    # Centre crop: the red and blue side bands are gone; grey values step frame by frame.
    means = frames.reshape(10, -1, 3).mean(axis=1)
    np.testing.assert_allclose(means, [[fx.frame_value(t)] * 3 for t in range(10)], atol=3)
  with pytest.raises(ValueError):
    vtd.read_frames(os.path.join(root, folder["corrupt"]), False, 32, 10)
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "0.png").write_bytes(b"not a png")
  with pytest.raises(ValueError):
    vtd.read_frames(str(bad), True, 32, 4)


def test_builder_fields_shapes_and_skipped_counts(folder, built):
  config, _, builder, messages = built
  assert builder.builder_config.name == "r32_t4_s2_c8"
  assert builder.skipped == {"no_caption": 1, "unreadable": 1, "too_short": 1}
  assert builder.info.metadata["skipped"] == builder.skipped
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 5}
  import tensorflow_datasets as tfds
  examples = {ex["id"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
  assert sorted(examples) == sorted(folder["good"])
  for relative, captions in folder["good"].items():
    assert examples[relative]["video"].shape == (8, 32, 32, 3)  # clip_frames of 12
    assert [c.decode() for c in examples[relative]["captions"]] == captions
  # One log line per kind of skipped video.
  assert sum("without a caption" in m for m in messages) == 1
  assert sum("could not be decoded" in m and "corrupt.mp4" in m for m in messages) == 1
  assert sum("shorter than 7 frames" in m and "short.gif" in m for m in messages) == 1
  assert video_text_tfds.is_built(config, "unused")


def _first_batch(config, workdir, **kwargs):
  batches = pipeline.make_dataset(config, "train", workdir, process_index=0, process_count=1,
                                  **kwargs)
  return next(iter(batches))


def _starts(video):
  """Start frame and step of each clip, read back from the grey values."""
  values = video[:, :, 8:24, 8:24].reshape(video.shape[:2] + (-1,)).mean(-1)
  frames = np.round((values - fx.frame_value(0)) / (fx.frame_value(1) - fx.frame_value(0)))
  return frames.astype(int)


def test_input_deterministic_follows_the_batch_contract(folder, built):
  config, workdir, _, _ = built
  batch = _first_batch(config, workdir, batch_size=5, deterministic=True)
  assert set(batch) == {"video", "text_ids", "caption"}
  assert batch["video"].shape == (5, 4, 32, 32, 3) and batch["video"].dtype == np.uint8
  assert batch["text_ids"].shape == (5, 24) and batch["text_ids"].dtype == np.int32
  np.testing.assert_array_equal(_starts(batch["video"]), np.tile([0, 2, 4, 6], (5, 1)))
  firsts = sorted(captions[0] for captions in folder["good"].values())
  assert sorted(c.decode() for c in batch["caption"]) == firsts
  assert (batch["text_ids"] > 0).any(axis=1).all()


def test_input_training_random_starts_captions_and_resume(folder, built):
  config, workdir, _, _ = built
  batches = pipeline.make_dataset(config, "train", workdir, batch_size=8, deterministic=False,
                                  process_index=0, process_count=1)
  seen = [next(batches) for _ in range(3)]
  starts = np.concatenate([_starts(b["video"]) for b in seen])
  np.testing.assert_array_equal(np.diff(starts, axis=1), 2)  # frame_step between frames
  assert set(starts[:, 0]) == {0, 1}  # 12-frame videos stored as 8: starts 0 or 1
  captions = {c.decode() for b in seen for c in b["caption"]}
  all_captions = {c for cs in folder["good"].values() for c in cs}
  assert captions <= all_captions and len(captions) > len(folder["good"])
  resumed = _first_batch(config, workdir, batch_size=8, deterministic=False, start_step=2)
  np.testing.assert_array_equal(resumed["video"], seen[2]["video"])
  assert list(resumed["caption"]) == list(seen[2]["caption"])


def test_input_augments_text_and_gives_first_frame_controls(built):
  config, workdir, _, _ = built
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.update(drop_sentence=True, null_caption_prob=1.0)
  config.transformer.controls = ("first_frame:keep",)
  batch = _first_batch(config, workdir, batch_size=4, deterministic=False)
  assert (batch["text_ids"] == 0).all() and set(batch["caption"]) == {b""}
  assert batch["controls"].shape == (4, 1, 32, 32, 3)
  np.testing.assert_array_equal(batch["controls"][:, 0], batch["video"][:, 0])
  config.transformer.controls = ("background:keep",)
  with pytest.raises(UserError, match="not available for video_text"):
    _first_batch(config, workdir, batch_size=4, deterministic=False)


def test_split_folders_and_missing_split(tmp_path):
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  root = str(tmp_path / "videos")
  layout = fx.write_split_folders(root, {"train": 3, "test": 2})
  fx.write_gif(os.path.join(root, "loose.gif"), 8)  # outside the split folders: unused
  fx.write_captions(os.path.join(root, "loose.gif"), ["unused"])
  config = _config(root, str(tmp_path))
  builder = video_text_tfds.build(config, str(tmp_path))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 3, "test": 2}
  ids = sorted(ex["id"].decode() for ex in tfds.as_numpy(builder.as_dataset(split="test")))
  assert ids == layout["test"]
  with pytest.raises(UserError, match="has no 'validation' split"):
    pipeline.make_dataset(config, "validation", str(tmp_path), batch_size=1,
                          deterministic=True, process_index=0, process_count=1)


def test_unbuilt_dataset_is_a_clear_error(folder, tmp_path):
  config = _config(folder["root"], str(tmp_path))
  with pytest.raises(UserError, match=r"holds no video_text/r32_t4_s2_c8 dataset.*--config.stage"):
    _first_batch(config, str(tmp_path), batch_size=1, deterministic=True)


@pytest.mark.slow
def test_tiny_config_trains_tokenizer_and_transformer(tmp_path):
  """configs/video_text.py:tiny from split folders: data build, 2 tokenizer + 2 transformer
  steps (SentencePiece trained on the folder's captions)."""
  from configs import video_text as video_text_config
  from mmvid_jax.data import stage as data_stage
  from mmvid_jax.tokenizer import stage as tokenizer_stage
  from mmvid_jax.transformer import stage as transformer_stage
  root = str(tmp_path / "videos")
  fx.write_split_folders(root)
  config = video_text_config.get_config("tiny")
  config.data.update(manual_dir=root, build_workers=2)
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
