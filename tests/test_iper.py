"""iPER: layouts, captions and their augmentation, MMVID's split, the speed augmentation,
the TFDS build and the input pipeline."""

import os
import random

import numpy as np
import pytest

from mmvid_jax.data import frame_folders
from mmvid_jax.data import iper_data
from mmvid_jax.data import iper_tfds
from mmvid_jax.data import pipeline
from mmvid_jax.errors import UserError
from tests import build_helpers
from tests import fixtures_iper as fx


def _config(root, tmp, **data):
  from configs import iper as iper_config
  config = iper_config.get_config("tiny")
  config.data.update(dict(manual_dir=root, data_dir=os.path.join(tmp, "tfds"), build_workers=2,
                          prefetch=1))
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return fx.write_tree(str(tmp_path_factory.mktemp("iper")))


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("run"))
  config = _config(tree["root"], tmp)
  builder, messages = build_helpers.build_logging(iper_tfds.build, config, tmp)
  return config, tmp, builder, messages


def test_scan_reads_every_layout_and_counts_what_it_skips(tree):
  videos, skipped = iper_data.scan(tree["root"])
  names = [v.key.name for v in videos]
  assert set(names) == set(tree["videos"]) | {"006_1_2"}  # 006_1_2 fails only when decoded
  by_name = {v.key.name: v for v in videos}
  assert by_name["003_10_1"].sources[0].relative_path == "images_HD/003/10/1"
  assert by_name["004_1_2"].key == iper_data.VideoKey("004", "1", "2")
  assert by_name["005_1_1"].starts == (0, 12)  # MMVID clip folders, in start order
  # Two whole copies of 001_1_1: the first in path order is read.
  assert [s.relative_path for s in by_name["001_1_1"].sources] == ["frames_256/001_1_1"]
  counts = skipped.counts()
  assert counts == {"duplicate": 1, "unnamed": 1, "empty_folder": 1, "other_file": 1}


def test_captions_and_the_rebuild_augmentation():
  a_pose, random_pose = iper_data.VideoKey("001", "10", "1"), iper_data.VideoKey("030", "2", "2")
  assert iper_data.caption(a_pose) == "Person 001 dressed in 10 is performing 'A' pose."
  assert iper_data.caption(random_pose) == "Person 030 dressed in 2 is performing random pose."
  assert iper_data.evaluation_caption(a_pose) == "Person 001 dressed in 10 is performing 'A' pose,"
  rebuild = iper_data.rebuild_caption
  assert rebuild(a_pose, (0.7, 0.5, 0.7)) == "person 001 dressed in 10 is performing 'A' pose,"
  assert rebuild(a_pose, (0.2, 0.05, 0.2)) == "a person is performing some pose,"
  assert rebuild(random_pose, (0.2, 0.5, 0.9)) == "a person dressed in 2 is performing random pose,"


def _mmvid_validation(keys, val_num=10):
  """MMVID's split_train_val.py, with lists in place of its set (whose order is random)."""
  pids = sorted({k.person for k in keys}, key=iper_data.natural_key)
  outfits = {}
  for k in sorted(keys, key=lambda k: iper_data.natural_key(k.outfit)):
    if k.type == "1":
      outfits.setdefault(k.person, [])
      if k.outfit not in outfits[k.person]:
        outfits[k.person].append(k.outfit)
  random.seed(42)
  random.shuffle(pids)
  return {iper_data.VideoKey(p, random.choice(outfits[p]), "1") for p in pids[:val_num]
          if p in outfits}


def test_split_draws_ten_persons_with_seed_42():
  keys = [iper_data.VideoKey(f"{p:03d}", str(o), str(t)) for p in range(1, 31)
          for o in range(1, 2 + p % 3) for t in (1, 2)]
  held_out = iper_data.validation_keys(keys)
  assert held_out == _mmvid_validation(keys)
  assert len(held_out) == 10 and len({k.person for k in held_out}) == 10
  assert all(k.type == "1" for k in held_out)
  # Fixed forever: the first persons Python's random.seed(42) shuffle gives for 30 ids.
  persons = [f"{p:03d}" for p in range(1, 31)]
  random.Random(42).shuffle(persons)
  assert {k.person for k in held_out} == set(persons[:10])
  videos = [iper_data.Video(k, (), ()) for k in keys]
  split = iper_data.split_videos(videos, 10, 42)
  assert len(split["train"]) + len(split["validation"]) == len(keys)
  assert {v.key for v in split["validation"]} == held_out


def test_speed_steps_and_needed_frames():
  assert iper_data.speed_steps(8) == (4, 8, 12)
  assert iper_data.needed_frames(8, 8, slow=True) == 85
  assert iper_data.needed_frames(8, 8, slow=False) == 57


def test_clear_errors_for_manual_dir(tmp_path):
  with pytest.raises(UserError, match="manual_dir is not set"):
    iper_data.scan("")
  with pytest.raises(UserError, match="is not a folder"):
    iper_data.scan(str(tmp_path / "missing"))
  fx.write_frame_folder(str(tmp_path / "holiday" / "beach"), 3)
  with pytest.raises(UserError, match="holds no iPER video.*<person>_<outfit>_<type>"):
    iper_data.scan(str(tmp_path))


def test_builder_fields_shapes_and_skipped_counts(tree, built):
  import tensorflow_datasets as tfds
  _, _, builder, messages = built
  assert builder.builder_config.name == "r32_c12_m10"
  assert builder.info.metadata["skipped"] == tree["skipped"]
  examples = {split: {ex["id"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split))}
              for split in ("train", "validation")}
  ids = set(examples["train"]) | set(examples["validation"])
  expected = {f"{name}#{12 * i}" for name, n in tree["videos"].items() for i in range(n)}
  assert ids == expected and not set(examples["train"]) & set(examples["validation"])
  keys = {iper_data.VideoKey(*i.split("#")[0].split("_")) for i in ids}
  held_out = {k.name for k in _mmvid_validation(keys | {iper_data.VideoKey("006", "1", "2")})}
  assert {i.split("#")[0] for i in examples["validation"]} == held_out
  ex = examples["train"].get("004_1_2#12") or examples["validation"]["004_1_2#12"]
  assert ex["video"].shape == (12, 32, 32, 3) and ex["video"].dtype == np.uint8
  assert ex["caption"].decode() == "Person 004 dressed in 1 is performing random pose."
  assert (ex["person"], ex["outfit"], ex["pose"]) == (b"004", b"1", b"random pose")
  first_values = ex["video"][:, 8:24, 8:24].mean(axis=(1, 2, 3))
  np.testing.assert_allclose(first_values, [fx.frame_value(12 + t) for t in range(12)], atol=3)
  for text in ("skipped 1 duplicate copies", "skipped 1 empty folders",
               "skipped 1 files that are neither", "skipped 1 videos or frame folders not named"):
    assert sum(text in m for m in messages) == 1, text
  assert sum("clips shorter than 10 frames" in m for m in messages) == 2  # one per split
  assert any("skipped 1 videos or frame folders that could not be decoded" in m
             and "006_1_2#0" in m for m in messages)


def _frame_indices(video):
  values = video[:, :, 8:24, 8:24].reshape(video.shape[:2] + (-1,)).mean(-1)
  return np.round((values - fx.frame_value(0)) / 8).astype(int)


def test_training_speed_matches_caption_and_resume(built):
  config, workdir, _, _ = built
  batches = pipeline.make_dataset(config, "train", workdir, batch_size=8, deterministic=False,
                                  process_index=0, process_count=1)
  seen = [next(batches) for _ in range(4)]
  steps_of = {"slow speed.": 1, "normal speed.": 2, "fast speed.": 3}
  steps_seen = set()
  for batch in seen:
    assert batch["video"].shape == (8, 4, 32, 32, 3) and batch["text_ids"].shape == (8, 20)
    for video, caption in zip(batch["video"], batch["caption"]):
      caption = caption.decode()
      suffix = " ".join(caption.split(" ")[-2:])
      step = int(np.unique(np.diff(_frame_indices(video[None])[0]))[0])
      assert steps_of[suffix] == step
      steps_seen.add(step)
      body = caption[:-len(suffix) - 1]
      assert body.endswith(",") and (body.startswith("a person") or body.startswith("person "))
      assert "is performing" in body
  assert steps_seen == {1, 2, 3}
  resumed = next(pipeline.make_dataset(config, "train", workdir, batch_size=8,
                                       deterministic=False, start_step=3, process_index=0,
                                       process_count=1))
  np.testing.assert_array_equal(resumed["video"], seen[3]["video"])
  assert list(resumed["caption"]) == list(seen[3]["caption"])


def test_evaluation_clips_and_captions(built):
  config, workdir, builder, _ = built
  count = builder.info.splits["validation"].num_examples
  batch = next(pipeline.make_dataset(config, "test", workdir, batch_size=count,
                                     deterministic=True, process_index=0, process_count=1))
  for video, caption in zip(batch["video"], batch["caption"]):
    indices = _frame_indices(video[None])[0]
    np.testing.assert_array_equal(np.diff(indices), 2)  # normal speed, from the clip start
    assert indices[0] % 12 == 0
    assert caption.decode().endswith("is performing 'A' pose, normal speed.")
    assert caption.decode().startswith("Person ")


def test_input_checks(built, tmp_path):
  config, workdir, _, _ = built
  bad = _config(config.data.manual_dir, workdir, eval_speed="quick")
  with pytest.raises(UserError, match="eval_speed"):
    pipeline.make_dataset(bad, "train", workdir, batch_size=1, deterministic=True,
                          process_index=0, process_count=1)
  long = _config(config.data.manual_dir, workdir, num_frames=5)
  with pytest.raises(UserError, match="need 13 frames but clips have 12"):
    pipeline.make_dataset(long, "train", workdir, batch_size=1, deterministic=True,
                          process_index=0, process_count=1)
  unbuilt = _config(config.data.manual_dir, str(tmp_path))
  with pytest.raises(UserError, match=r"holds no iper/r32_c12_m10 dataset.*--config.stage"):
    pipeline.make_dataset(unbuilt, "train", str(tmp_path), batch_size=1, deterministic=True,
                          process_index=0, process_count=1)


def test_config_variants_and_long_video_length():
  from configs import iper as iper_config
  from mmvid_jax import configuration
  from mmvid_jax.sampling import long_video
  config = iper_config.get_config()
  d, tr = config.data, config.transformer
  assert (d.num_frames, d.frame_step, d.image_size, d.clip_frames) == (8, 8, 128, 100)
  assert d.slow and d.drop_sentence and tuple(tr.msm_bernoulli_keep) == (0.1, 0.3)
  assert tr.batch_size == 24
  # MMVID's long iPER videos: 100 clips keeping 7 of 8 frames -> 107 frames.
  assert long_video.extended_length(d.num_frames, 7, 100) == 107
  with pytest.raises(UserError, match=r"config.data.manual_dir: is not set.*<person>_<outfit>"):
    configuration.validate(config)
  from mmvid_jax.data import stage as data_stage
  with pytest.raises(UserError, match="manual_dir is not set.*Fix: pass --config.data.manual_dir"):
    data_stage.is_complete(config, "unused")
  with pytest.raises(ValueError, match="unknown variant"):
    iper_config.get_config("huge")


def test_config_sections_match_shapes(tree):
  from configs import iper as iper_config
  from configs import shapes as shapes_config
  from mmvid_jax import configuration
  shapes_cfg = shapes_config.get_config()
  for variant in iper_config.VARIANTS:
    config = iper_config.get_config(variant)
    config.data.manual_dir = tree["root"]  # validate() requires the user's copy
    configuration.validate(config)
    for section in ("tokenizer", "transformer", "sample", "evaluate", "mesh"):
      missing = set(shapes_cfg[section].keys()) - set(config[section].keys())
      assert not missing, (variant, section, missing)


@pytest.mark.slow
def test_tiny_config_trains_tokenizer_and_transformer(tmp_path):
  """configs/iper.py:tiny: data build, 2 tokenizer + 2 transformer steps."""
  from configs import iper as iper_config
  from mmvid_jax import configuration
  from mmvid_jax.data import stage as data_stage
  from mmvid_jax.tokenizer import stage as tokenizer_stage
  from mmvid_jax.transformer import stage as transformer_stage
  tree = fx.write_tree(str(tmp_path / "iper"))
  for person in range(7, 11):  # more held-out A-pose videos: a full evaluation batch of 8
    fx.write_mp4(os.path.join(tree["root"], "more", f"{person:03d}_1_1.mp4"))
  config = iper_config.get_config("tiny")
  config.data.update(manual_dir=tree["root"], build_workers=2)
  for section in (config.tokenizer, config.transformer):
    section.update(num_steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2)
  configuration.validate(config)
  workdir = str(tmp_path / "run")
  data_stage.run(config, workdir)
  assert data_stage.is_complete(config, workdir)
  tokenizer_stage.run(config, workdir)
  transformer_stage.run(config, workdir)
  assert transformer_stage.is_complete(config, workdir)
  assert iper_tfds.is_built(config, workdir)
