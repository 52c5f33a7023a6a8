"""generate_videos and the ART-V decoder on tiny random transformers and the pseudo tokenizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.sampling import autoregressive
from mmvid_jax.sampling import common
from mmvid_jax.sampling import generate
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
import sampling_stubs

TOKENIZER = PseudoTokenizer(image_size=16, patch_size=8, levels=4)  # 64 codes on a 2x2 grid
TEXT = np.asarray([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0]], np.int32)


@pytest.fixture(scope="module")
def bundle():
  return sampling_stubs.random_bundle()


@pytest.fixture(scope="module")
def control_bundle():
  return sampling_stubs.random_bundle(num_controls=1, seed=1)


@pytest.fixture(scope="module")
def causal_bundle():
  return sampling_stubs.random_bundle(causal=True, seed=2)


@pytest.mark.parametrize("decoder,extra", [
    ("mask_predict", {}), ("mask_predict", {"num_candidates": 2, "cfg_scale": 1.5}),
    ("maskgit", {"cfg_scale": 1.0})])
def test_generate_videos_shapes(bundle, decoder, extra):
  videos, info = generate.generate_videos(bundle, TOKENIZER, TEXT, None, jax.random.key(0),
                                          decoder=decoder, steps=3, return_info=True, **extra)
  assert videos.shape == (2, 3, 16, 16, 3) and videos.dtype == np.uint8
  assert info["steps"].shape == (2,)
  assert np.isfinite(info["score"]).all() == (extra.get("num_candidates", 1) > 1)
  # The tokens returned are the ones the videos were decoded from.
  assert info["tokens"].shape == (2, bundle.layout.video_len)
  np.testing.assert_array_equal(
      generate.tokens_to_video(TOKENIZER, jax.numpy.asarray(info["tokens"]), bundle.layout),
      videos)


@pytest.mark.parametrize("decoder", ["mask_predict", "maskgit", "ar"])
def test_given_frames_are_kept_and_the_rest_generated(bundle, causal_bundle, decoder):
  model = causal_bundle if decoder == "ar" else bundle
  rng = np.random.default_rng(3)
  given = rng.integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
  reconstructed = np.asarray(generate.tokens_to_video(
      TOKENIZER, TOKENIZER.encode_to_codes(jnp.asarray(given, jnp.float32) / 127.5 - 1.0
                                           ).reshape(2, -1), model.layout))
  outputs = [generate.generate_videos(model, TOKENIZER, TEXT, None, jax.random.key(seed),
                                      decoder=decoder, steps=3, given_video=given,
                                      num_given_frames=2) for seed in (0, 1)]
  for videos in outputs:
    np.testing.assert_array_equal(videos[:, :2], reconstructed[:, :2])  # kept exactly
  assert not np.array_equal(outputs[0][:, 2], reconstructed[:, 2]) or \
      not np.array_equal(outputs[1][:, 2], reconstructed[:, 2])  # the last frame is generated
  with pytest.raises(UserError, match="between 1 and 2"):
    generate.generate_videos(model, TOKENIZER, TEXT, None, jax.random.key(0), decoder=decoder,
                             steps=2, given_video=given, num_given_frames=3)
  with pytest.raises(UserError, match="needs given_video"):
    generate.generate_videos(model, TOKENIZER, TEXT, None, jax.random.key(0), decoder=decoder,
                             steps=2, num_given_frames=1)


def test_bfloat16_compute_close_to_float32(bundle):
  half = generate.with_compute_dtype(bundle, "bfloat16")
  tokens = jnp.full((2, bundle.layout.video_len), bundle.layout.mask_id, jnp.int32)
  full_logits = bundle.tokens_to_logits(bundle.params, tokens, {"text_ids": jnp.asarray(TEXT)})[0]
  half_logits = half.tokens_to_logits(half.params, tokens, {"text_ids": jnp.asarray(TEXT)})[0]
  half_logits = np.asarray(half_logits, np.float32)
  assert not np.array_equal(half_logits, full_logits)  # really computed in bfloat16
  np.testing.assert_allclose(half_logits, full_logits, atol=0.15)
  videos = generate.generate_videos(half, TOKENIZER, TEXT, None, jax.random.key(0), steps=2)
  assert videos.shape == (2, 3, 16, 16, 3)
  with pytest.raises(UserError, match="dtype"):
    generate.with_compute_dtype(bundle, "float16")


def test_generate_with_controls_and_missing_controls(control_bundle):
  controls = np.random.default_rng(0).integers(0, 255, (2, 1, 16, 16, 3), dtype=np.uint8)
  with_controls = generate.generate_videos(control_bundle, TOKENIZER, TEXT, controls,
                                           jax.random.key(1), steps=2)
  missing = generate.generate_videos(control_bundle, TOKENIZER, TEXT, None, jax.random.key(1),
                                     steps=2)
  assert with_controls.shape == missing.shape == (2, 3, 16, 16, 3)


def test_preserved_frames_never_change_with_the_real_model(bundle):
  layout = bundle.layout
  preserve = common.frame_preserve_mask(3, 4, [0, 1])
  given = jnp.asarray(np.random.default_rng(2).integers(0, 64, (2, layout.video_len)), jnp.int32)
  for decoder in ("mask_predict", "maskgit"):
    options = generate.DecodeOptions(decoder=decoder, steps=3)
    tokens, _ = generate.decode_tokens(bundle, TEXT, None, jax.random.key(3), options, given,
                                       preserve)
    np.testing.assert_array_equal(tokens[:, :8], given[:, :8])


def test_long_video_and_interpolation_through_generate(bundle):
  long = generate.generate_long_videos(bundle, TOKENIZER, TEXT, None, jax.random.key(4),
                                       num_clips=3, t_overlap=2, steps=2)
  assert long.shape == (2, 3 + 2 * 1, 16, 16, 3)
  real = np.random.default_rng(5).integers(0, 255, (2, 2, 16, 16, 3), dtype=np.uint8)
  doubled = generate.interpolate_videos(bundle, TOKENIZER, TEXT, None, real, jax.random.key(5),
                                        levels=1, steps=2)
  assert doubled.shape == (2, 4, 16, 16, 3)
  # The real frames come back (through the tokenizer) at the even positions.
  reconstructed = np.asarray(TOKENIZER.decode_from_codes(TOKENIZER.encode_to_codes(
      jnp.asarray(real, jnp.float32) / 127.5 - 1.0)))
  expected = np.clip(np.round((reconstructed + 1) * 127.5), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(doubled[:, 0::2], expected)


def test_clear_errors(bundle, causal_bundle):
  image = np.zeros((2, 1, 16, 16, 3), np.uint8)
  with pytest.raises(UserError, match="no control slots"):
    generate.generate_videos(bundle, TOKENIZER, TEXT, image, jax.random.key(0), steps=1)
  with pytest.raises(UserError, match="ART-V"):
    generate.generate_videos(bundle, TOKENIZER, TEXT, None, jax.random.key(0), decoder="ar")
  with pytest.raises(UserError, match="--decoder=ar"):
    generate.generate_videos(causal_bundle, TOKENIZER, TEXT, None, jax.random.key(0))
  with pytest.raises(UserError, match="unknown decoder"):
    generate.DecodeOptions(decoder="beam")
  with pytest.raises(UserError, match="only the mask_predict"):
    generate.DecodeOptions(decoder="maskgit", num_candidates=2)
  with pytest.raises(UserError, match="tokenizer"):
    generate.generate_videos(bundle, PseudoTokenizer(image_size=32, patch_size=8), TEXT, None,
                             jax.random.key(0), steps=1)


def test_forward_pass_budget():
  assert generate.DecodeOptions(steps=20).forward_passes() == 20
  assert generate.DecodeOptions(steps=20, num_candidates=4).forward_passes() == 1 + 19 * 8
  assert generate.DecodeOptions(steps=20, cfg_scale=2.0).forward_passes() == 40  # + null caption
  assert generate.DecodeOptions(decoder="maskgit", steps=8, cfg_scale=1.0).forward_passes() == 16
  assert generate.DecodeOptions(steps=20, num_candidates=4,
                                score_on="masked").forward_passes() == 1 + 19 * 4


# ---- ART-V with a KV cache ---------------------------------------------------------------------
def test_cached_decoding_equals_the_uncached_forward(causal_bundle):
  bundle = causal_bundle
  layout = bundle.layout
  text = jnp.asarray(TEXT)
  prefill_fn, step_fn = autoregressive.causal_fns(bundle, bundle.params, text)
  greedy = autoregressive.AutoregressiveConfig(top_k=1)
  tokens, _ = jax.jit(lambda k: autoregressive.autoregressive_decode(
      prefill_fn, step_fn, layout.video_len, k, config=greedy))(jax.random.key(6))
  # Teacher forcing on the decoded tokens: the full causal forward, no cache.
  full = bundle.model.apply({"params": bundle.params}, text, None, tokens)["video"]
  np.testing.assert_array_equal(tokens, jnp.argmax(full, axis=-1))
  # And the cached logits themselves match the uncached ones.
  logits, cache = jax.jit(prefill_fn)()
  step = jax.jit(step_fn)
  cached = [logits]
  for index in range(layout.video_len - 1):
    logits, cache = step(cache, tokens[:, index], index)
    cached.append(logits)
  np.testing.assert_allclose(jnp.stack(cached, axis=1), full, atol=1e-4, rtol=1e-4)


def test_ar_sampling_keeps_preserved_prefix_and_generates(causal_bundle):
  given = jnp.full((2, causal_bundle.layout.video_len), 9, jnp.int32)
  preserve = common.frame_preserve_mask(3, 4, [0])
  options = generate.DecodeOptions(decoder="ar", top_k=5, cfg_scale=1.0)
  tokens, info = generate.decode_tokens(causal_bundle, TEXT, None, jax.random.key(7), options,
                                        given, preserve)
  np.testing.assert_array_equal(tokens[:, :4], 9)
  assert np.all((np.asarray(tokens) >= 0) & (np.asarray(tokens) < 64))
  np.testing.assert_array_equal(info["steps"], [12, 12])


def test_top_k_filter():
  logits = jnp.asarray([[1.0, 5.0, 3.0, 4.0]])
  filtered = autoregressive.filter_top_k(logits, 2)
  assert np.isinf(filtered[0, [0, 2]]).all() and np.isfinite(filtered[0, [1, 3]]).all()
  np.testing.assert_array_equal(autoregressive.filter_top_k(logits, 0), logits)
