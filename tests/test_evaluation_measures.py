"""Evaluate-stage pieces: decoder names, metrics files, tokenizer reconstruction metrics."""

import json
import os

import ml_collections
import numpy as np
import pytest

from mmvid_jax.evaluation import decoder_specs
from mmvid_jax.evaluation import measures
from mmvid_jax.evaluation import metrics_io
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer


def test_decoder_names_parse_with_budget():
  spec = decoder_specs.parse("mask_predict_b4_s5", default_steps=20, default_candidates=1)
  assert (spec.decoder, spec.num_candidates, spec.steps) == ("mask_predict", 4, 5)
  assert decoder_specs.parse("mask_predict", 20, 2).num_candidates == 2
  assert decoder_specs.parse("maskgit_s12", 20, 4).num_candidates == 1
  assert decoder_specs.parse("maskgit_s12", 20, 4).steps == 12
  for bad in ("maskgit_b4", "beam", "mask_predict_b0", "mask_predict_x3",
              "mask_predict_b2.5", "mask_predict_c"):
    with pytest.raises(ValueError):
      decoder_specs.parse(bad, 20, 1)


def test_decoder_names_carry_a_guidance_scale():
  spec = decoder_specs.parse("mask_predict_b4_c2.5", 20, 1)
  assert (spec.num_candidates, spec.cfg_scale) == (4, 2.5)
  assert spec.guidance(0.0) == 2.5
  plain = decoder_specs.parse("maskgit_s8", 20, 1)
  assert plain.cfg_scale is None and plain.guidance(1.5) == 1.5  # the sample stage's scale
  assert decoder_specs.parse("maskgit_c0", 20, 1).guidance(3.0) == 0.0
  assert decoder_specs.parse("ar_c1.5", 20, 1).cfg_scale == 1.5  # ART-V is guided too
  predicted = decoder_specs.parse("mask_predict_c2_f2", 20, 1)
  assert (predicted.cfg_scale, predicted.given_frames) == (2.0, 2)
  assert decoder_specs.parse("maskgit", 20, 1).given_frames == 0


def test_decoder_names_carry_a_temperature():
  spec = decoder_specs.parse("mask_predict_c2_t0.5_f1", 20, 1)
  assert (spec.cfg_scale, spec.temperature, spec.given_frames) == (2.0, 0.5, 1)
  assert decoder_specs.parse("mask_predict", 20, 1).temperature is None  # config.sample's
  for bad in ("mask_predict_t0", "mask_predict_t", "mask_predict_t-1"):
    with pytest.raises(ValueError):
      decoder_specs.parse(bad, 20, 1)


def test_decoder_settings_default_to_the_sample_stage():
  config = ml_collections.ConfigDict({"evaluate": {"compare": ()},
                                      "sample": {"decoder": "maskgit", "steps": 8,
                                                 "num_candidates": 1}})
  (spec,) = decoder_specs.from_config(config)
  assert spec.name == "maskgit" and spec.steps == 8
  config.evaluate.compare = ("mask_predict, maskgit_s4",)  # a comma list from the command line
  assert [s.name for s in decoder_specs.from_config(config)] == ["mask_predict", "maskgit_s4"]
  config.evaluate.compare = ("mask_predict", "mask_predict")
  with pytest.raises(ValueError, match="twice"):
    decoder_specs.from_config(config)


def test_metrics_file_is_json_and_previous_results_are_kept(tmp_path):
  workdir = str(tmp_path)
  record = {"complete": True, "fvd": np.float32(3.5), "bad": float("nan"),
            "counts": np.arange(3), "caption": b"A red circle."}
  path = metrics_io.write_metrics(workdir, record)
  stored = json.load(open(path))
  assert stored["fvd"] == 3.5 and stored["bad"] is None and stored["counts"] == [0, 1, 2]
  assert stored["caption"] == "A red circle." and stored["format_version"] == 1
  assert metrics_io.read_metrics(workdir)["complete"] is True
  archived = metrics_io.archive_previous(workdir)
  assert os.path.exists(archived) and metrics_io.read_metrics(workdir) is None
  assert metrics_io.flatten_scalars({"a": {"b": 1, "c": None, "d": float("inf")}, "e": 2.0}) == {
      "a/b": 1.0, "e": 2.0}


def test_padded_batches_repeat_the_last_row():
  arrays = {"x": np.arange(5)}
  out = list(measures.padded_batches(arrays, 2))
  assert [valid for valid, _ in out] == [2, 2, 1]
  np.testing.assert_array_equal(out[-1][1]["x"], [4, 4])


def test_reconstruction_metrics_with_a_pseudo_tokenizer():
  tokenizer = PseudoTokenizer(image_size=32, patch_size=8, levels=4)
  rng = np.random.default_rng(0)
  # Patch-constant colours at the bin centres survive the round trip exactly.
  bins = rng.integers(0, 4, (3, 2, 4, 4, 3))  # (N, T, h, w, C) at 32 px
  centres = np.round(((bins + 0.5) / 4 * 2 - 1 + 1) * 127.5).astype(np.uint8)
  exact = np.repeat(np.repeat(centres, 8, axis=2), 8, axis=3)
  recon, metrics = measures.reconstruct(tokenizer, exact, batch_size=2)
  assert recon.shape == exact.shape and recon.dtype == np.uint8
  assert np.abs(recon.astype(int) - exact).max() <= 1
  assert metrics["psnr"] > 45 and metrics["ssim"] > 0.99 and metrics["lpips"] < 0.01
  noisy = rng.integers(0, 256, exact.shape, dtype=np.uint8)
  _, worse = measures.reconstruct(tokenizer, noisy, batch_size=2)
  assert worse["psnr"] < 15 and worse["ssim"] < metrics["ssim"] and worse["lpips"] > 0.05


def test_rel_scorer_on_tokens_equals_scoring_the_videos_those_tokens_encode_to():
  import jax
  import sampling_stubs
  from mmvid_jax.sampling import generate
  bundle = sampling_stubs.random_bundle(seed=4)
  tokenizer = PseudoTokenizer(16)
  videos = np.random.default_rng(0).integers(0, 256, (3, 3, 16, 16, 3), dtype=np.uint8)
  text = np.random.default_rng(1).integers(1, 20, (3, 5)).astype(np.int32)
  tokens = np.asarray(generate._uint8_to_codes(tokenizer, jax.numpy.asarray(videos)))  # pylint: disable=protected-access
  scorer = measures.RelScorer(bundle, tokenizer, batch_size=2)  # the last batch is padded
  from_pixels = scorer(videos, text, None)
  from_tokens = scorer.score_tokens(tokens.reshape(3, -1), text, None)
  assert from_pixels.shape == from_tokens.shape == (3,)
  np.testing.assert_allclose(from_tokens, from_pixels, rtol=1e-5, atol=1e-5)
  # Different tokens, different scores: the tokens are what is scored.
  shifted = (tokens.reshape(3, -1) + 1) % bundle.layout.codebook_size
  assert not np.allclose(scorer.score_tokens(shifted, text, None), from_tokens)
