"""MUG: layout variations, expression captions, the subject-disjoint split, the TFDS build,
the input pipeline and the face3_8x8 controls of the expression-transfer variant."""

import os

import jax
import numpy as np
import pytest

from mmvid_jax.data import mug_data
from mmvid_jax.data import mug_tfds
from mmvid_jax.data import pipeline
from mmvid_jax.errors import UserError
from mmvid_jax.transformer import controls
from tests import build_helpers
from tests import fixtures_mug as fx


def _config(root, tmp, variant="tiny", **data):
  from configs import mug as mug_config
  config = mug_config.get_config(variant)
  config.data.update(dict(manual_dir=root, data_dir=os.path.join(tmp, "tfds"), build_workers=2,
                          null_caption_prob=0.0, prefetch=1))
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return fx.write_tree(str(tmp_path_factory.mktemp("mug")))


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("run"))
  config = _config(tree["root"], tmp)
  builder, messages = build_helpers.build_logging(mug_tfds.build, config, tmp)
  return config, tmp, builder, messages


def test_scan_tolerates_layout_variations_and_counts_skips(tree):
  takes, skipped = mug_data.scan(tree["root"])
  found = {t.relative_path: (t.subject, t.expression) for t in takes}
  # Usable takes plus the two that fail only when decoded (too short, corrupt frame).
  assert found == dict(tree["takes"], **{"subjects3/004/neutral/take000": ("004", "neutral"),
                                         "subjects3/005/sadness/take001": ("005", "sadness")})
  assert skipped.counts() == {"other_file": 1, "empty_folder": 1, "no_expression": 1,
                              "no_subject": 1}


def test_expression_names_and_aliases():
  assert mug_data.expression_of("SURPRISE") == "surprise"
  assert mug_data.expression_of("Happy") == "happiness"
  assert mug_data.expression_of("take000") is None


def test_captions_are_seeded_paraphrases_of_the_expression():
  for expression in mug_data.EXPRESSIONS:
    phrasings = mug_data.all_captions(expression)
    assert len(phrasings) >= 30
    caps = mug_data.captions(expression, "001/x/take000", 8)
    assert len(caps) == len(set(caps)) == 8
    assert caps == mug_data.captions(expression, "001/x/take000", 8)  # deterministic
    assert set(caps[1:]) <= set(phrasings)
    assert all(c[0].isupper() and c.endswith(".") for c in caps)
  assert mug_data.captions("happiness", "a", 3)[0] == "A person shows happiness."
  assert mug_data.captions("neutral", "a", 1) == ["A person shows no emotion."]
  assert mug_data.captions("anger", "a", 8) != mug_data.captions("anger", "b", 8)
  assert "The person makes an angry face." in mug_data.all_captions("anger")
  with pytest.raises(UserError, match="unknown MUG expression"):
    mug_data.captions("joy", "a", 2)


def test_split_is_subject_disjoint_and_deterministic():
  subjects = [f"{i:03d}" for i in range(1, 87)]
  split = mug_data.split_subjects(subjects, (0.8, 0.1, 0.1))
  assert split == mug_data.split_subjects(list(reversed(subjects)), (0.8, 0.1, 0.1))
  assert sorted(sum(split.values(), [])) == subjects
  assert (len(split["test"]), len(split["validation"])) == (9, 9)
  few = mug_data.split_subjects(["a", "b", "c"], (0.8, 0.1, 0.1))
  assert [len(few[s]) for s in mug_data.SPLITS] == [1, 1, 1]
  takes = [mug_data.Take(f"{s}/anger/take{k}", "", True, s, "anger") for s in subjects
           for k in range(3)]
  by_split = mug_data.split_takes(takes, (0.8, 0.1, 0.1))
  owners = [{t.subject for t in by_split[s]} for s in mug_data.SPLITS]
  assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])


def test_clear_errors_for_manual_dir(tmp_path):
  with pytest.raises(UserError, match="manual_dir is not set"):
    mug_data.scan("")
  with pytest.raises(UserError, match="is not a folder"):
    mug_data.scan(str(tmp_path / "missing"))
  fx.write_take(str(tmp_path / "001" / "holidays" / "take000"))
  with pytest.raises(UserError, match="holds no MUG take.*<subject>/<expression>/take<k>"):
    mug_data.scan(str(tmp_path))


def test_builder_fields_shapes_and_skipped_counts(tree, built):
  import tensorflow_datasets as tfds
  _, _, builder, messages = built
  assert builder.builder_config.name == "r32_t4_s2_c8"
  assert builder.info.metadata["skipped"] == tree["skipped"]
  subjects = {}
  examples = {}
  for split in builder.info.splits:
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
      examples[ex["id"].decode()] = ex
      subjects.setdefault(split, set()).add(ex["subject"].decode())
  assert set(examples) == set(tree["takes"])
  assert sum(len(s) for s in subjects.values()) == len(set().union(*subjects.values()))
  names = builder.info.features["expression"].names
  for relative, (subject, expression) in tree["takes"].items():
    ex = examples[relative]
    assert ex["video"].shape == (8, 32, 32, 3) and ex["video"].dtype == np.uint8
    assert (ex["subject"].decode(), names[ex["expression"]]) == (subject, expression)
    assert [c.decode() for c in ex["captions"]] == mug_data.captions(expression, relative, 8)
  for text in ("skipped 1 takes outside an expression folder", "skipped 1 empty folders",
               "skipped 1 takes without a subject folder", "skipped 1 files that are neither",
               "skipped 1 takes shorter than 7 frames", "skipped 1 takes that could not be"):
    assert sum(text in m for m in messages) == 1, text


def _frame_indices(video):
  values = video[..., 8:24, 8:24, :].reshape(video.shape[:2] + (-1,)).mean(-1)
  return np.round((values - fx.frame_value(0)) / 20).astype(int)


def test_input_training_and_evaluation(built):
  config, workdir, builder, _ = built
  batches = pipeline.make_dataset(config, "train", workdir, batch_size=8, deterministic=False,
                                  process_index=0, process_count=1)
  seen = [next(batches) for _ in range(3)]
  for batch in seen:
    assert set(batch) == {"video", "text_ids", "caption"}
    assert batch["video"].shape == (8, 4, 32, 32, 3) and batch["text_ids"].shape == (8, 16)
    np.testing.assert_array_equal(np.diff(_frame_indices(batch["video"]), axis=1), 2)
  starts = np.concatenate([_frame_indices(b["video"])[:, 0] for b in seen])
  assert set(starts) == {0, 1}  # 8 stored frames, 7 needed
  captions = {c.decode() for b in seen for c in b["caption"]}
  assert len(captions) > 6  # paraphrases, not only the canonical captions
  resumed = next(pipeline.make_dataset(config, "train", workdir, batch_size=8,
                                       deterministic=False, start_step=2, process_index=0,
                                       process_count=1))
  np.testing.assert_array_equal(resumed["video"], seen[2]["video"])
  count = builder.info.splits["test"].num_examples
  test = next(pipeline.make_dataset(config, "test", workdir, batch_size=count,
                                    deterministic=True, process_index=0, process_count=1))
  np.testing.assert_array_equal(_frame_indices(test["video"])[:, 0], 0)
  assert {c.decode() for c in test["caption"]} <= {
      f"A person shows {n}." for n in ("disgust", "sadness")}


def test_transfer_variant_controls_and_face3_erasing(tree, built):
  config, workdir, _, _ = built
  transfer = _config(tree["root"], workdir, variant="transfer_tiny")
  assert tuple(transfer.transformer.controls) == ("first_frame:face3_8x8",
                                                  "random_frame:face3_8x8")
  batch = next(pipeline.make_dataset(transfer, "train", workdir, batch_size=4,
                                     deterministic=False, process_index=0, process_count=1))
  assert batch["controls"].shape == (4, 2, 32, 32, 3)
  np.testing.assert_array_equal(batch["controls"][:, 0], batch["video"][:, 0])
  codes = jax.numpy.arange(2 * 2 * 8 * 8).reshape(2, 2, 8, 8)
  for train in (False, True):
    out = np.asarray(controls.erase_controls(codes, ("face3_8x8", "face3_8x8"), -1,
                                             jax.random.key(0), train))
    np.testing.assert_array_equal(out[:, 0], codes[:, 0])  # who: whole
    centre = np.zeros((8, 8), bool)
    centre[2:6, 2:6] = True
    np.testing.assert_array_equal(out[:, 1][:, centre], np.asarray(codes)[:, 1][:, centre])
    assert (out[:, 1][:, ~centre] == -1).all()


def test_input_checks(built, tmp_path):
  config, workdir, _, _ = built
  bad = _config(config.data.manual_dir, workdir, split_fractions=(0.5, 0.1, 0.1))
  with pytest.raises(UserError, match="split_fractions"):
    pipeline.make_dataset(bad, "train", workdir, batch_size=1, deterministic=True,
                          process_index=0, process_count=1)
  unbuilt = _config(config.data.manual_dir, str(tmp_path))
  with pytest.raises(UserError, match=r"holds no mug/r32_t4_s2_c8 dataset.*--config.stage"):
    pipeline.make_dataset(unbuilt, "train", str(tmp_path), batch_size=1, deterministic=True,
                          process_index=0, process_count=1)
  from configs import mug as mug_config
  from mmvid_jax import configuration
  from mmvid_jax.data import stage as data_stage
  default = mug_config.get_config()
  assert (default.data.image_size, default.tokenizer.disc_weight) == (128, 0.4)
  with pytest.raises(UserError, match=r"config.data.manual_dir: is not set.*<subject>/<expr"):
    configuration.validate(default)
  with pytest.raises(UserError, match="manual_dir is not set.*Fix: pass --config.data.manual_dir"):
    data_stage.is_complete(default, "unused")
  default.data.manual_dir = config.data.manual_dir
  configuration.validate(default)
  with pytest.raises(ValueError, match="unknown variant"):
    mug_config.get_config("huge")


def test_config_sections_match_shapes(tree):
  from configs import mug as mug_config
  from configs import shapes as shapes_config
  from mmvid_jax import configuration
  shapes_cfg = shapes_config.get_config()
  for variant in mug_config.VARIANTS:
    config = mug_config.get_config(variant)
    config.data.manual_dir = tree["root"]  # validate() requires the user's copy
    configuration.validate(config)
    for section in ("tokenizer", "transformer", "sample", "evaluate", "mesh"):
      missing = set(shapes_cfg[section].keys()) - set(config[section].keys())
      assert not missing, (variant, section, missing)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["tiny", "transfer_tiny"])
def test_tiny_configs_train_tokenizer_and_transformer(tmp_path, variant):
  """configs/mug.py:tiny and :transfer_tiny: data build, 2 tokenizer + 2 transformer steps."""
  from configs import mug as mug_config
  from mmvid_jax import configuration
  from mmvid_jax.data import stage as data_stage
  from mmvid_jax.tokenizer import stage as tokenizer_stage
  from mmvid_jax.transformer import stage as transformer_stage
  root = fx.write_subjects(str(tmp_path / "mug"))
  config = mug_config.get_config(variant)
  config.data.update(manual_dir=root, build_workers=2)
  for section in (config.tokenizer, config.transformer):
    section.update(num_steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2)
  configuration.validate(config)
  workdir = str(tmp_path / "run")
  data_stage.run(config, workdir)
  assert data_stage.is_complete(config, workdir)
  tokenizer_stage.run(config, workdir)
  transformer_stage.run(config, workdir)
  assert transformer_stage.is_complete(config, workdir)
