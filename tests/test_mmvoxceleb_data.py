"""Multimodal VoxCeleb: folder reader, skip counts, split, TFDS build, input per mode, errors."""

import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from mmvid_jax import configuration
from mmvid_jax.data import mmvoxceleb_data as vox
from mmvid_jax.data import mmvoxceleb_input
from mmvid_jax.data import mmvoxceleb_tfds
from mmvid_jax.data import pipeline
from mmvid_jax.errors import ConfigError, UserError
from tests import build_helpers
from tests import fixtures_mmvoxceleb as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(mode, root, tmp, **data):
  from configs import mmvoxceleb as vox_config
  config = vox_config.get_config(mode + "_tiny")
  config.data.update(dict(manual_dir=root, data_dir=os.path.join(tmp, "tfds"), build_workers=2,
                          split_fractions=(1.0, 0.0, 0.0), prefetch=1))
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return fx.write_folder(str(tmp_path_factory.mktemp("mmvox")))


@pytest.fixture(scope="module")
def built(folder, tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("run"))
  builder, messages = build_helpers.build_logging(
      mmvoxceleb_tfds.build, _config("text_mask", folder["root"], tmp), tmp)
  return tmp, builder, messages


def _batch(mode, folder, tmp, *, deterministic, batch_size=8, **data):
  config = _config(mode, folder["root"], tmp, **data)
  if mode == "image_video":  # its own builder config (7 frames, step 1)
    mmvoxceleb_tfds.build(config, tmp)
  batches = pipeline.make_dataset(config, "train", tmp, batch_size=batch_size,
                                  deterministic=deterministic, process_index=0, process_count=1)
  return next(iter(batches))


def _codes(images):
  """(red = clip code, green = frame value, blue = modality) of flat images (..., H, W, 3)."""
  return images[..., 4, 4, :].astype(int)


def _pid_of_code(folder):
  return {code: vox.pid_of(key) for key, code in folder["good"].items()}


def test_scan_counts_and_pids(folder):
  items, counts = vox.scan(folder["root"])
  broken = folder["broken"]
  # The corrupt PNG is found when decoding (the build), not while scanning.
  assert [i.key for i in items] == sorted(list(folder["good"]) + [broken["corrupt"]])
  assert counts.no_label == [broken["no_label"]] and counts.bad_label == [broken["bad_label"]]
  assert counts.no_frames == [broken["empty"]]
  item = {i.key: i for i in items}[fx.clip_keys()[0]]
  assert item.pid == "id10001#aaaa1111" and len(item.frame_paths) == fx.NUM_FRAMES
  assert [os.path.basename(p) for p in item.frame_paths][-2:] == ["8.png", "9.png"]
  assert len(item.mask_paths) == len(item.draw_paths) == fx.NUM_FRAMES
  assert item.labels == tuple(fx.labels_of(0))
  no_controls = {i.key: i for i in items}[folder["no_controls"]]
  assert no_controls.mask_paths == () and no_controls.draw_paths == ()
  assert vox.pid_of("id11248#yDqlBD8m_b8#00004.txt#000.mp4") == "id11248#yDqlBD8m_b8"
  with pytest.raises(ValueError):
    vox.parse_labels("1,0,2" + ",0" * 37)


def test_folder_errors_are_one_line(tmp_path):
  for manual_dir, message in (("", "manual_dir is not set"),
                              (str(tmp_path / "missing"), "is not a folder"),
                              (str(tmp_path), "has no video or label/ folder")):
    with pytest.raises(UserError, match=message) as info:
      vox.scan(manual_dir)
    assert "\n" not in str(info.value) and "label/<key>.txt" in str(info.value)
  (tmp_path / "video").mkdir()
  (tmp_path / "label").mkdir()
  with pytest.raises(UserError, match="video/ holds no clip folders"):
    vox.scan(str(tmp_path))


def test_config_names_manual_dir_and_layout(folder, tmp_path):
  from configs import mmvoxceleb as vox_config
  config = vox_config.get_config("text_mask_tiny")
  with pytest.raises(ConfigError, match=r"data.manual_dir: is not set.*video/<key>/\*.png"):
    configuration.validate(config)
  config.data.manual_dir = str(tmp_path)
  with pytest.raises(ConfigError, match="has no video/"):
    configuration.validate(config)
  config.data.manual_dir = folder["root"]
  configuration.validate(config)
  for mode in vox_config.MODES:
    for variant, devices in ((mode, 4), (mode + "_tiny", 1)):
      checked = vox_config.get_config(variant)
      checked.data.manual_dir = folder["root"]
      configuration.validate(checked, num_devices=devices)
  with pytest.raises(ValueError, match="unknown variant"):
    vox_config.get_config("text_mask_huge")
  from configs import shapes as shapes_config
  shapes_cfg, vox_cfg = shapes_config.get_config(), vox_config.get_config()
  for section in ("tokenizer", "transformer", "sample", "evaluate", "mesh"):
    assert not set(shapes_cfg[section].keys()) - set(vox_cfg[section].keys()), section
  assert vox_cfg.tokenizer.latent_size == 8 and vox_cfg.transformer.width == 768


def test_main_without_manual_dir_stops_with_one_line(tmp_path):
  # One device (batch 20 of text_mask does not split over the tests' 8 fake devices).
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run(
      [sys.executable, "-m", "mmvid_jax.main", "--config=configs/mmvoxceleb.py:text_mask",
       f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in result.stderr
  for needed in ("manual_dir", "video/<key>", "label/<key>.txt", "mask/<key>"):
    assert needed in errors[0]


def test_split_holds_out_whole_pids():
  keys = [f"id{p // 7}#yt{p}#{c:05d}.txt#000.mp4" for p in range(700) for c in range(3)]
  splits = {}
  for key in keys:
    splits.setdefault(vox.pid_of(key), set()).add(vox.split_of(vox.pid_of(key),
                                                               (0.8, 0.1, 0.1)))
  assert all(len(s) == 1 for s in splits.values())  # no interview situation in two splits
  share = {s: sum(v == {s} for v in splits.values()) / len(splits) for s in vox.SPLITS}
  assert abs(share["train"] - 0.8) < 0.05 and abs(share["test"] - 0.1) < 0.04
  assert [vox.split_of(p, (0.8, 0.1, 0.1)) for p in splits] == [
      next(iter(s)) for s in splits.values()]


def test_builder_fields_shapes_and_skipped_counts(folder, built):
  _, builder, messages = built
  assert builder.name == "mmvoxceleb"
  assert builder.skipped == {"no_label": 1, "bad_label": 1, "no_frames": 1, "no_text": 0,
                             "unreadable": 1, "too_short": 0, "bad_control_frames": 0}
  assert builder.info.metadata["skipped"] == builder.skipped
  assert builder.without == builder.info.metadata["without"] == {"mask": 1, "draw": 1}
  import tensorflow_datasets as tfds
  examples = {ex["id"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
  assert sorted(examples) == sorted(folder["good"])
  for index, key in enumerate(fx.clip_keys()):
    ex, code = examples[key], folder["good"][key]
    assert ex["pid"].decode() == vox.pid_of(key)
    assert ex["video"].shape == (8, 32, 32, 3)  # clip_frames of the 10
    np.testing.assert_array_equal(_codes(ex["video"]),
                                  [[code, fx.frame_value(t), 100] for t in range(8)])
    assert len(ex["captions"]) == 20
    np.testing.assert_array_equal(ex["labels"], fx.labels_of(index))
    expected_controls = 0 if key == folder["no_controls"] else 4
    assert ex["mask"].shape == (expected_controls, 32, 32, 3) == ex["draw"].shape
    if expected_controls:  # 4 frames spread over the 10: 0, 3, 6, 9
      np.testing.assert_array_equal(_codes(ex["mask"])[:, 1],
                                    [fx.frame_value(t) for t in (0, 3, 6, 9)])
      assert set(_codes(ex["draw"])[:, 2]) == {255}
    pool_codes = {c for c, k in ((folder["good"][k], k) for k in folder["good"])
                  if vox.pid_of(k) == vox.pid_of(key)}
    assert ex["pid_frames"].shape == (4, 32, 32, 3)
    assert set(_codes(ex["pid_frames"])[:, 0]) <= pool_codes
    assert set(_codes(ex["pid_draws"])[:, 0]) <= pool_codes
  assert sum("without label/<key>.txt" in m for m in messages) == 1
  assert sum("not 40 comma-separated" in m for m in messages) == 1
  assert sum("empty frame folder" in m for m in messages) == 1
  assert sum("1 clips have no mask frames and 1 no drawing" in m for m in messages) == 1
  assert sum("could not be decoded" in m and folder["broken"]["corrupt"] in m
             for m in messages) == 1


def test_built_splits_are_pid_disjoint(folder, tmp_path):
  import tensorflow_datasets as tfds
  config = _config("text_video", folder["root"], str(tmp_path), split_fractions=(0.5, 0.25, 0.25))
  builder = mmvoxceleb_tfds.build(config, str(tmp_path))
  pids = {split: {ex["pid"].decode() for ex in tfds.as_numpy(builder.as_dataset(split=split))}
          for split in builder.info.splits}
  for split, found in pids.items():
    assert found == {p for p in map(vox.pid_of, folder["good"])
                     if vox.split_of(p, (0.5, 0.25, 0.25)) == split}
  assert sum(len(p) for p in pids.values()) == len(set().union(*pids.values()))


@pytest.mark.parametrize("mode", ["text_video", "text_mask", "text_draw", "text_partial",
                                  "draw_mask", "image_mask", "image_video", "text_aug"])
def test_input_per_mode(mode, folder, built):
  tmp = built[0]
  pid = _pid_of_code(folder)
  test = _batch(mode, folder, tmp, deterministic=True)
  train = _batch(mode, folder, tmp, deterministic=False, batch_size=16)
  frames = 7 if mode == "image_video" else 4
  step = 1 if mode == "image_video" else 2
  no_controls = folder["good"][folder["no_controls"]]
  for batch in (test, train):
    assert batch["video"].shape[1:] == (frames, 32, 32, 3) and batch["video"].dtype == np.uint8
    assert batch["text_ids"].dtype == np.int32
    video = _codes(batch["video"])
    np.testing.assert_array_equal(np.diff(video[..., 1], axis=1), 12 * step)
  # Evaluation: start 0, first caption, clips in key order.
  assert (_codes(test["video"])[:, 0, 1] == fx.frame_value(0)).all()
  expected = [folder["good"][k] for k in sorted(folder["good"])
              if mode in ("text_video", "text_partial", "image_video", "text_aug")
              or k != folder["no_controls"]][:8]
  assert list(_codes(test["video"])[:, 0, 0]) == expected
  if mode == "text_video":
    assert "controls" not in test
    assert test["caption"][0].decode() == _first_caption(folder)
  for batch, training in ((test, False), (train, True)):
    own = _codes(batch["video"])[:, 0, 0]
    if "controls" not in batch:
      continue
    controls = _codes(batch["controls"])
    if mode in ("text_mask", "text_draw"):
      assert (controls[:, 0, 0] == own).all() and no_controls not in own
      assert (controls[:, 0, 2] == (0 if mode == "text_mask" else 255)).all()
      if not training:
        assert (controls[:, 0, 1] == fx.frame_value(0)).all()
    elif mode == "text_partial":
      assert (controls[:, 0, 2] == 100).all()
      assert all(pid[c] == pid[o] for c, o in zip(controls[:, 0, 0], own))
    elif mode in ("draw_mask", "image_mask"):
      assert (controls[:, 0, 2] == (255 if mode == "draw_mask" else 100)).all()
      assert all(pid[c] == pid[o] for c, o in zip(controls[:, 0, 0], own))
      assert (controls[:, 1, 0] == own).all() and (controls[:, 1, 2] == 0).all()
      words = "draw" if mode == "draw_mask" else "appearance"
      captions = {c.decode() for c in batch["caption"]}
      assert captions <= {f"A person with {words} in image one and mask in image two is talking",
                          f"A person with mask in image two and {words} in image one is talking"}
      assert len(captions) == (2 if training else 1)
    elif mode == "image_video":
      assert (controls[:, 0, 0] == own).all() and (controls[:, 0, 2] == 100).all()
      if not training:  # motion colour only in training
        np.testing.assert_array_equal(batch["controls"][:, 1:], batch["video"][:, [0, 3, 6]])
  if mode == "text_aug":  # BERT ids and sentence dropout: shorter training captions
    assert (test["text_ids"][:, 0] == 101).all()
    assert np.mean([c.count(b".") for c in train["caption"]]) < np.mean(
        [c.count(b".") for c in test["caption"]]) + 1


def _first_caption(folder):
  from mmvid_jax.data import mmvoxceleb_captions as cap
  key = sorted(folder["good"])[0]
  return cap.pcfg_captions(fx.labels_of(fx.clip_keys().index(key)), key)[0]


def test_training_resumes_exactly_and_null_caption(folder, built):
  tmp = built[0]
  config = _config("text_partial", folder["root"], tmp)
  batches = pipeline.make_dataset(config, "train", tmp, batch_size=8, deterministic=False,
                                  process_index=0, process_count=1)
  seen = [next(batches) for _ in range(3)]
  resumed = next(iter(pipeline.make_dataset(config, "train", tmp, batch_size=8,
                                            deterministic=False, start_step=2,
                                            process_index=0, process_count=1)))
  for key in ("video", "controls", "text_ids"):
    np.testing.assert_array_equal(resumed[key], seen[2][key])
  captions = {c for b in seen for c in b["caption"]}
  assert len(captions) > 8  # random captions of the 20
  config.data.null_caption_prob = 1.0
  batch = next(iter(pipeline.make_dataset(config, "train", tmp, batch_size=4,
                                          deterministic=False, process_index=0,
                                          process_count=1)))
  assert (batch["text_ids"] == 0).all()


def test_mode_errors(folder, built, tmp_path):
  tmp = built[0]
  config = _config("text_mask", folder["root"], tmp)
  config.transformer.controls = ("background:keep",)
  with pytest.raises(UserError, match="not available for mmvoxceleb"):
    mmvoxceleb_input.check(config)
  config = _config("image_video", folder["root"], tmp, num_frames=4)
  with pytest.raises(UserError, match="target frame 6 but clips have 4 frames"):
    mmvoxceleb_input.check(config)
  config = _config("text_mask", folder["root"], tmp, captions="template")
  with pytest.raises(UserError, match="no template caption"):
    mmvoxceleb_input.check(config)
  bare = tmp_path / "bare"
  (bare / "video" / "a#b#c").mkdir(parents=True)
  (bare / "label").mkdir()
  with pytest.raises(UserError, match="has no mask/ folder"):
    mmvoxceleb_input.check(_config("text_mask", str(bare), tmp))
  with pytest.raises(UserError, match=r"holds no mmvoxceleb/r32_t4_s2_c8_k4_p4_h.* dataset"):
    _batch("text_video", folder, str(tmp_path), deterministic=True)


def test_motion_color_is_a_per_sample_shift_of_the_motion_slots():
  rng = np.random.default_rng(0)
  controls = np.full((64, 4, 2, 2, 3), 128, np.uint8)
  slots = [False, True, True, True]
  out = mmvoxceleb_input.motion_color(controls, slots, np.random.default_rng(1), prob=1.0)
  np.testing.assert_array_equal(out[:, 0], controls[:, 0])  # appearance untouched
  for b in range(64):
    moved = out[b, 1:].astype(int) - 128
    assert (moved == moved[0, 0, 0]).all()  # the same shift for every motion frame and pixel
    changed = np.flatnonzero(moved[0, 0, 0])
    assert len(changed) in (0, 1, 3)  # one channel or all
    assert np.abs(moved).max() <= 128
  shifted = out[:, 1, 0, 0].astype(int) - 128
  assert (np.count_nonzero(shifted, axis=1) == 3).mean() == pytest.approx(0.25, abs=0.15)
  same = mmvoxceleb_input.motion_color(controls, slots, rng, prob=0.0)
  assert same is controls
  pair = controls[:2]
  hits = sum(mmvoxceleb_input.motion_color(pair, slots, np.random.default_rng(s)) is not pair
             for s in range(400)) / 400
  assert abs(hits - 0.9) < 0.05  # one draw per batch, p=0.9
  bright = np.full((8, 2, 1, 1, 3), 250, np.uint8)
  assert mmvoxceleb_input.motion_color(bright, [False, True], rng, prob=1.0).max() <= 255


def test_mask2_and_face2_erasing():
  import jax
  import jax.numpy as jnp
  from mmvid_jax.transformer import controls as controls_lib
  codes = jnp.zeros((1, 4, 8, 8), jnp.int32)
  face2 = controls_lib.erase_controls(codes, ("face2_8x8",) * 4, 99)
  assert (face2[0, 0] == 0).all()  # appearance whole
  for slot in range(1, 4):  # motion frames keep only the centre [2:6, 2:6]
    keep = np.asarray(face2[0, slot] == 0)
    assert keep[2:6, 2:6].all() and keep.sum() == 16
  # mask2_8x8: the same pattern for both slots in every training draw (one draw per call).
  patterns = set()
  for seed in range(40):
    out = np.asarray(controls_lib.erase_controls(codes[:, :2], ("mask2_8x8", "mask2_8x8"), 99,
                                                 key=jax.random.key(seed), train=True))
    np.testing.assert_array_equal(out[0, 0], out[0, 1])
    patterns.add(int((out[0, 0] == 0).sum()))
  assert patterns == {64, 16, 36}
  test = np.asarray(controls_lib.erase_controls(codes[:, :1], ("mask2_8x8",), 99))
  assert (test[0, 0] == 0).sum() == 36  # evaluation keeps [1:7, 1:7]
  config = ml_collections.ConfigDict({"transformer": {"controls": ("mask:mask2_8x8",)}})
  assert pipeline.control_sources(config) == ("mask",)


def test_release_captions_from_txt(folder, tmp_path):
  """caption_source='release' reads txt/<key>.txt (the captions MMVID trained on); clips
  without one are skipped and counted."""
  import shutil
  import tensorflow_datasets as tfds
  root = str(tmp_path / "release")
  shutil.copytree(folder["root"], root)
  keys = sorted(folder["good"])
  os.makedirs(os.path.join(root, "txt"))
  for key in keys[1:]:
    with open(os.path.join(root, "txt", key + ".txt"), "w") as f:
      f.write(f"Release caption one of {key}.\nRelease caption two.\n\n")
  config = _config("text_video", root, str(tmp_path), caption_source="release")
  configuration.validate(config)
  builder = mmvoxceleb_tfds.build(config, str(tmp_path))
  # keys[0] and the corrupt clip have no txt/ file.
  assert builder.builder_config.name.endswith("_txt") and builder.skipped["no_text"] == 2
  examples = {ex["id"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
  assert sorted(examples) == keys[1:]
  assert [c.decode() for c in examples[keys[1]]["captions"]] == [
      f"Release caption one of {keys[1]}.", "Release caption two."]
  assert "Release caption two." in vox.training_captions(config.data)
  with pytest.raises(UserError, match="has no txt/ folder"):
    vox.scan(folder["root"], "release")
  config.data.caption_source = "other"
  with pytest.raises(ConfigError, match="caption_source"):
    configuration.validate(config)
