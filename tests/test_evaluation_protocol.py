"""MMVID's evaluation protocol (`--config.evaluate.protocol=mmvid`, `python -m
mmvid_jax.evaluation.protocol`): frame extension, fixed I3D batches, PRD argument order, the
table on a tiny workdir, and the user errors.

I3D costs ~2.5 s per clip on a CPU and the protocol's batch is fixed at 16, so anything that
runs it is marked slow; the fast tests cover every other piece on the same tiny workdir.
"""

import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax import configuration
from mmvid_jax import pipeline
from mmvid_jax.errors import ConfigError, UserError
from mmvid_jax.evaluation import fvd
from mmvid_jax.evaluation import prd
from mmvid_jax.evaluation import protocol
from mmvid_jax.evaluation import protocol_report
from mmvid_jax.evaluation import protocol_spec as spec
from mmvid_jax.evaluation import stage
from tests import test_evaluation_stage as stage_fixtures


def protocol_config(eval_num=spec.MIN_CLIPS):
  config = stage_fixtures.tiny_config()
  config.evaluate.protocol = "mmvid"
  config.evaluate.eval_num = eval_num
  return config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny exported run (untrained tokenizer and transformer) with its config.json."""
  workdir = str(tmp_path_factory.mktemp("protocol_run"))
  config = protocol_config()
  configuration.validate(config)
  pipeline.save_resolved_config(config, workdir)
  stage_fixtures._export_initial_tokenizer(config, workdir)  # pylint: disable=protected-access
  stage_fixtures._export_initial_transformer(config, workdir)  # pylint: disable=protected-access
  return workdir


def _mmvid_extend_video(video: np.ndarray, num: int) -> np.ndarray:
  """MMVID's utils_eval.extend_video, restated: the clip, then alternately the reversed and the
  forward clip without their first frame, `num` segments in all (time axis 1)."""
  segments = [video]
  for n in range(1, num):
    segments.append((video if n % 2 == 0 else video[:, ::-1])[:, 1:])
  return np.concatenate(segments, axis=1)


def test_eight_frames_bounce_to_fifteen_exact_frames():
  frames = np.arange(8, dtype=np.uint8) * 10
  videos = frames[None, :, None, None, None] * np.ones((2, 1, 3, 3, 3), np.uint8)
  out = fvd.extend_for_i3d(videos)
  assert out.shape == (2, 15, 3, 3, 3)
  np.testing.assert_array_equal(out[1, :, 2, 1, 0],
                                [0, 10, 20, 30, 40, 50, 60, 70, 60, 50, 40, 30, 20, 10, 0])
  assert spec.i3d_frames(8) == 15 and fvd.palindrome_repeats(8, 15) == 2


@pytest.mark.parametrize("num_frames", [2, 3, 4, 5, 7, 8, 10, 15, 16, 24])
def test_extension_equals_mmvid_extend_video(num_frames):
  video = np.arange(num_frames)[None, :]
  length = spec.i3d_frames(num_frames)
  assert length == fvd.i3d_length(num_frames)
  if num_frames < length:
    num = fvd.palindrome_repeats(num_frames, length)
    expected = _mmvid_extend_video(video, num)[:, :length]
    assert expected.shape[1] == length  # num segments are always enough
  else:
    expected = video[:, :length]
  np.testing.assert_array_equal(fvd.extend_for_i3d(video[..., None, None, None])[0, :, 0, 0, 0],
                                expected[0])


def test_fixed_batch_padding_gives_the_same_outputs_and_drops_the_pad():
  calls = []

  @jax.jit
  def per_row(x):  # a non-trivial function of each row alone
    return jnp.tanh(x.reshape(x.shape[0], -1) @ jnp.linspace(-1.0, 1.0, 12)) + x.sum((1, 2))

  def fn(batch):
    calls.append(batch.shape[0])
    return per_row(jnp.asarray(batch))

  rows = np.random.default_rng(0).normal(size=(21, 3, 4)).astype(np.float32)
  padded = fvd.map_fixed_batches(fn, rows, spec.I3D_BATCH)
  assert calls == [16, 16] and padded.shape == (21,)
  np.testing.assert_allclose(padded, np.asarray(per_row(jnp.asarray(rows))), rtol=1e-6)


def test_float_videos_are_checked():
  extractor = object.__new__(fvd.I3DFeatures)  # the checks run before any I3D weights are used
  with pytest.raises(UserError, match="float videos"):
    extractor.from_float(np.zeros((2, 8, 16, 16, 3), np.uint8))
  with pytest.raises(UserError, match=r"\[0, 255\]"):
    extractor.from_float(np.full((2, 8, 16, 16, 3), -1.0, np.float32))


def _modes(rng, mode_ids, per_mode, dim=24):
  centres = np.eye(20, dim) * 20.0
  return np.concatenate([centres[m] + rng.normal(size=(per_mode, dim)) for m in mode_ids])


def test_prd_argument_order_is_really_swapped():
  rng = np.random.default_rng(2)
  real = _modes(rng, range(20), 10)  # all 20 modes
  generated = _modes(rng, range(10), 20)  # same size, half the modes: precise, poor recall
  kwargs = dict(num_runs=3, num_init=2, seed=0)
  conventional = prd.prd_from_features(real, generated, **kwargs)
  mmvid = prd.prd_mmvid_argument_order(real, generated, **kwargs)
  assert conventional.f_beta < 0.6 < 0.9 < conventional.f_beta_inv  # F8 recall-like, low
  assert mmvid.f_beta > 0.9 > 0.6 > mmvid.f_beta_inv  # MMVID's F8 reads as precision
  assert mmvid.f_beta == pytest.approx(conventional.f_beta_inv, abs=0.05)
  assert mmvid.f_beta_inv == pytest.approx(conventional.f_beta, abs=0.05)
  # The protocol reports both, labelled, plus FVD.
  result = protocol.measure(real, generated)
  assert result["prd_mmvid_order"]["f8"] > 0.9 > 0.6 > result["prd_mmvid_order"]["f1_8"]
  assert result["prd_conventional"]["f1_8"] > 0.9 > 0.6 > result["prd_conventional"]["f8"]
  assert result["fvd"] > 1.0


def test_methods_use_the_papers_decoding():
  methods = spec.resolve_methods((), has_mmvid_model=True, has_artv_model=True)
  assert [m.name for m in methods] == ["mmvid", "artv"]
  mmvid, artv = methods
  options = mmvid.decode_options()
  assert (options["decoder"], options["steps"], options["num_candidates"]) == ("mask_predict",
                                                                               20, 1)
  assert not options["dynamic_stop"] and options["cfg_scale"] == 0.0
  assert options["noise_schedule"] == (0.0, 0.0, 0.0, 0.0)
  assert artv.decode_options()["decoder"] == "ar" and artv.decode_options()["top_k"] == 0
  assert mmvid.is_paper_setting and not spec.parse_method("mmvid_s10").is_paper_setting
  assert spec.parse_method("mmvid_b4").spec.num_candidates == 4
  assert [m.name for m in spec.resolve_methods("", True, False)] == ["mmvid"]
  assert [m.name for m in spec.resolve_methods((), False, True)] == ["artv"]
  with pytest.raises(UserError, match="ART-V model"):
    spec.resolve_methods("mmvid,artv", True, False)
  with pytest.raises(UserError, match="unknown decoder"):
    spec.resolve_methods(("beam",), True, False)
  with pytest.raises(UserError, match="twice"):
    spec.resolve_methods(("mmvid", "mmvid"), True, False)


@pytest.mark.parametrize("eval_num", [0, -3, 4, True, 2.5])
def test_bad_eval_num_is_a_user_error(eval_num):
  with pytest.raises(UserError, match="eval_num"):
    spec.check_eval_num(eval_num)


def test_bad_protocol_settings_fail_validation():
  for key, value, match in (("eval_num", 0, "eval_num"), ("eval_num", 5, "eval_num"),
                            ("protocol", "fancy", "evaluate.protocol"),
                            ("protocol_decoders", ("artv",), "protocol_decoders")):
    config = protocol_config()
    config.evaluate[key] = value
    with pytest.raises(ConfigError, match=match):
      configuration.validate(config)
  config = protocol_config()
  config.data.num_frames = 1
  config.data.clip_frames = 12
  with pytest.raises(ConfigError, match="num_frames"):
    configuration.validate(config)
  configuration.validate(protocol_config())


def test_incompatible_frame_counts_are_user_errors(workdir):
  with pytest.raises(UserError, match="at least 2"):
    spec.check_frames(1)
  config = protocol_config()
  config.data.num_frames = 4  # the model was exported for 8 frames
  with pytest.raises(UserError, match="generates 8 frames"):
    protocol.prepare(config, workdir)


@pytest.fixture(scope="module")
def artv_workdir(workdir, tmp_path_factory):
  """An exported ART-V transformer trained (here: initialised) on the same data and tokenizer."""
  ar_workdir = str(tmp_path_factory.mktemp("protocol_artv"))
  config = protocol_config()
  config.transformer.objective = "artv"
  stage_fixtures._export_initial_transformer(  # pylint: disable=protected-access
      config, workdir, export_to=ar_workdir)
  return ar_workdir


def test_an_artv_run_adds_its_row(workdir, artv_workdir):
  config = protocol_config()
  config.evaluate.ar_workdir = artv_workdir
  prepared = protocol.prepare(config, workdir)
  assert [m.name for m in prepared.methods] == ["mmvid", "artv"]
  assert prepared.model_for(prepared.methods[1]).is_causal
  assert not prepared.model_for(prepared.methods[0]).is_causal
  config.evaluate.ar_workdir = workdir  # an MMVID run is no ART-V baseline
  with pytest.raises(UserError, match="not ART-V"):
    protocol.prepare(config, workdir)


def test_command_errors_are_one_line(workdir, tmp_path, capsys):
  assert protocol.main([f"--workdir={tmp_path / 'nothing'}"]) == 2
  assert "does not exist" in capsys.readouterr().err
  untrained = tmp_path / "untrained"
  pipeline.save_resolved_config(protocol_config(), str(untrained))
  assert protocol.main([f"--workdir={untrained}"]) == 2
  assert "no trained tokenizer" in capsys.readouterr().err
  for flag, message in (("--eval_num=0", "positive"), ("--decoders=artv", "ART-V model"),
                        ("--split=dev", "unknown split"),
                        ("--ar_workdir=" + str(tmp_path / "none"), "does not exist")):
    assert protocol.main([f"--workdir={workdir}", flag]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_table_on_the_tiny_workdir(workdir, tmp_path):
  """The real clip loader, the record and the table; synthetic features stand in for I3D's."""
  config = protocol_config(eval_num=spec.DEFAULT_EVAL_NUM)
  prepared = protocol.prepare(config, workdir)
  clips = protocol.load_clips(config, workdir, prepared.request)
  # The tiny test split holds 16 clips: all are used, and the table says so.
  assert len(clips["video"]) == config.data.num_test == 16
  again = protocol.load_clips(config, workdir, prepared.request)
  np.testing.assert_array_equal(clips["video"], again["video"])  # deterministic order
  record = protocol.describe(config, workdir, prepared, len(clips["video"]))
  rng = np.random.default_rng(0)
  real = rng.normal(size=(16, 400))
  protocol.add_result(record, prepared.methods[0], protocol.measure(real, real + 0.5), 1.0)
  record["complete"] = True
  json_path, md_path = protocol_report.write(str(tmp_path), record)
  with open(json_path) as f:
    stored = json.load(f)
  assert stored["num_clips"] == 16 and stored["eval_num"] == 2048
  assert stored["resolution"] == 128 and stored["resized"] and stored["model_image_size"] == 32
  assert (stored["num_frames"], stored["i3d_frames"], stored["palindrome_segments"]) == (8, 15, 2)
  result = stored["methods"]["mmvid"]
  assert result["fvd"] == pytest.approx(0.25 * 400, rel=1e-6)  # a pure shift: the mean term
  assert result["published_fvd"] is None  # Shapes: no published numbers
  with open(md_path) as f:
    lines = f.read().splitlines()
  header = next(line for line in lines if line.startswith("| Method"))
  assert [c.strip() for c in header.strip("|").split("|")] == list(protocol_report.COLUMNS)
  rows = [line for line in lines if line.startswith("| MMVID")]
  assert len(rows) == 1
  cells = [c.strip() for c in rows[0].strip("|").split("|")]
  assert cells[1] == f"{result['fvd']:.2f}" and cells[6] == "16"
  assert cells[7] == "128 px (from 32)" and cells[8] == "8 → 15 (palindrome)"
  assert cells[9] == "–"
  text = "\n".join(lines)
  assert "Fewer clips than asked" in text and "Resized" in text and "argument order" in text


def test_published_numbers_only_for_mmvoxceleb_text_to_video():
  published = protocol._published  # pylint: disable=protected-access
  config = protocol_config()
  methods = spec.resolve_methods((), True, True)
  assert published(config, methods, None) == ({}, None)
  config.data.name = "mmvoxceleb"
  shown, note = published(config, methods, None)
  assert shown == {"mmvid": 59.46, "artv": 70.95} and "README" in note
  shown, _ = published(config, (spec.parse_method("mmvid_s10"),), None)
  assert shown == {}  # not the paper's decoding: no reference beside it
  with_controls = types.SimpleNamespace(layout=types.SimpleNamespace(num_controls=1))
  shown, note = published(config, methods, with_controls)
  assert shown == {} and "text-to-video only" in note


def test_stage_dispatches_to_the_protocol(workdir, tmp_path):
  config = protocol_config()
  assert not stage.is_complete(config, workdir)
  record = {"complete": True, "settings": protocol.settings(protocol.request_from_config(config)),
            "transformer_step": 0}
  out = protocol.default_out_dir(str(tmp_path))
  os.makedirs(out)
  with open(os.path.join(out, protocol_report.JSON_FILE), "w") as f:
    json.dump(record, f)
  assert stage.is_complete(config, str(tmp_path))
  config.evaluate.eval_num = 20
  assert not stage.is_complete(config, str(tmp_path))


@pytest.mark.slow
def test_i3d_batch_of_16_with_padding_matches_unpadded():
  videos = np.random.default_rng(1).uniform(0, 255, (3, 8, 32, 32, 3)).astype(np.float32)
  padded = fvd.I3DFeatures(spec.I3D_BATCH, input_size=spec.RESOLUTION).from_float(videos)
  unpadded = fvd.I3DFeatures(3, input_size=spec.RESOLUTION).from_float(videos)
  assert padded.shape == (3, 400)
  np.testing.assert_allclose(padded, unpadded, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_protocol_command_writes_the_table(workdir):
  assert protocol.main([f"--workdir={workdir}", f"--eval_num={spec.MIN_CLIPS}"]) == 0
  out = protocol.default_out_dir(workdir)
  with open(os.path.join(out, protocol_report.JSON_FILE)) as f:
    record = json.load(f)
  assert record["complete"] and record["num_clips"] == spec.MIN_CLIPS
  result = record["methods"]["mmvid"]
  assert result["fvd"] > 1.0  # untrained models are far from the data
  for order in ("prd_mmvid_order", "prd_conventional"):
    assert all(0.0 <= v <= 1.0 for v in result[order].values())
  with open(os.path.join(out, protocol_report.MARKDOWN_FILE)) as f:
    assert sum(line.startswith("| MMVID") for line in f) == 1
  # The evaluate stage with the same settings finds it complete and leaves it alone.
  config = protocol_config()
  config.stage = "evaluate"
  assert stage.is_complete(config, workdir)
  before = os.path.getmtime(os.path.join(out, protocol_report.JSON_FILE))
  assert pipeline.run(config, workdir) == ["evaluate"]
  assert os.path.getmtime(os.path.join(out, protocol_report.JSON_FILE)) == before


@pytest.mark.slow
def test_artv_row_under_the_protocol(workdir, artv_workdir, tmp_path):
  assert protocol.main([f"--workdir={workdir}", f"--eval_num={spec.MIN_CLIPS}",
                        "--decoders=artv", f"--ar_workdir={artv_workdir}",
                        f"--out={tmp_path}"]) == 0
  record = protocol_report.read(str(tmp_path))
  assert list(record["methods"]) == ["artv"]
  artv = record["methods"]["artv"]
  assert artv["decode_options"]["decoder"] == "ar" and artv["fvd"] > 1.0
  with open(os.path.join(str(tmp_path), protocol_report.MARKDOWN_FILE)) as f:
    assert sum(line.startswith("| ART-V") for line in f) == 1
