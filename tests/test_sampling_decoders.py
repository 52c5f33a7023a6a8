"""Schedules, MMVID mask-predict, MaskGIT decoding and guidance, on stub logits functions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax.sampling import common
from mmvid_jax.sampling import guidance
from mmvid_jax.sampling import mask_predict as mp
from mmvid_jax.sampling import maskgit
from mmvid_jax.sampling import schedules
import sampling_stubs
from sampling_stubs import K, MASK_ID

N = 24  # 3 frames of 2x4 tokens


# ---- schedules ---------------------------------------------------------------------------------
def test_mmvid_counts_match_official_for_512_tokens_20_steps():
  counts = schedules.mmvid_remask_counts(512, 20)
  assert counts.tolist() == [460, 415, 369, 324, 278, 233, 187, 142, 96, 51] + [64] * 9


def test_mmvid_counts_use_free_tokens_and_extend_past_50_steps():
  assert schedules.mmvid_remask_counts(256, 3).tolist() == [230, 207]
  long = schedules.mmvid_remask_counts(512, 60)
  assert len(long) == 59 and long[19] == 64 and long[20] == 32 and long[-1] == 32
  assert schedules.mmvid_remask_counts(4, 30).min() >= 1


def test_maskgit_counts_decrease_to_zero():
  counts = schedules.maskgit_masked_counts(64, 8)
  assert counts[-1] == 0 and np.all(np.diff(counts) < 0) and counts[0] < 64
  assert schedules.maskgit_masked_counts(0, 4).tolist() == [0, 0, 0, 0]


# ---- selection primitives ----------------------------------------------------------------------
def test_proportional_keep_follows_confidence():
  confidence = jnp.asarray([[0.9, 0.6, 0.3, 0.1, 0.05, 0.9]])
  free = jnp.asarray([[True, True, True, True, True, False]])
  keys = jax.random.split(jax.random.key(0), 4000)
  keep = jax.vmap(lambda k: common.proportional_keep_mask(k, confidence, free, 2))(keys)[:, 0]
  assert np.all(keep.sum(-1) == 2)
  assert not np.any(keep[:, 5])  # not free: never chosen
  freq = np.asarray(keep.mean(0))
  assert freq[0] > freq[1] > freq[2] > freq[3] > freq[4]
  # One draw (num_keep=1) is a single categorical draw ∝ confidence.
  one = jax.vmap(lambda k: common.proportional_keep_mask(k, confidence, free, 1))(keys)[:, 0]
  expected = np.asarray([0.9, 0.6, 0.3, 0.1, 0.05]) / 1.95
  np.testing.assert_allclose(np.asarray(one.mean(0))[:5], expected, atol=0.03)


def test_select_candidates_takes_highest_score():
  tokens = jnp.arange(3 * 2 * 4).reshape(3, 2, 4)
  scores = jnp.asarray([[0.1, 0.9], [0.7, 0.2], [0.3, 0.4]])
  best, conf, score = mp.select_candidates(tokens, tokens.astype(jnp.float32), scores)
  np.testing.assert_array_equal(best, jnp.stack([tokens[1, 0], tokens[0, 1]]))
  np.testing.assert_allclose(score, [0.7, 0.9])
  np.testing.assert_array_equal(conf, best.astype(jnp.float32))


# ---- mask-predict ------------------------------------------------------------------------------
_COMPILED = {}


def _run_mp(stub, given, key, preserve=None, **kwargs):
  """Runs jitted mask-predict, compiling once per (stub, preserve mask, config)."""
  config = mp.MaskPredictConfig(**kwargs)
  cache_key = (id(stub), None if preserve is None else preserve.tobytes(), config)
  if cache_key not in _COMPILED:
    _COMPILED[cache_key] = (stub, jax.jit(lambda g, k: mp.mask_predict(
        stub, g, k, mask_id=MASK_ID, preserve_mask=preserve, config=config)))
  return _COMPILED[cache_key][1](given, key)


def test_mask_predict_fills_every_token_and_is_reproducible():
  stub = sampling_stubs.make_stub(N)
  given = jnp.zeros((3, N), jnp.int32)
  tokens, info = _run_mp(stub, given, jax.random.key(1), steps=6)
  again, _ = _run_mp(stub, given, jax.random.key(1), steps=6)
  assert tokens.shape == (3, N) and tokens.dtype == jnp.int32
  assert np.all((tokens >= 0) & (tokens < K))
  np.testing.assert_array_equal(tokens, again)
  np.testing.assert_array_equal(info["steps"], [6, 6, 6])
  other, _ = _run_mp(stub, given, jax.random.key(2), steps=6)
  assert not np.array_equal(tokens, other)


@pytest.mark.parametrize("candidates,dynamic,score_on", [(1, False, "completed"),
                                                         (3, True, "masked")])
def test_mask_predict_never_changes_preserved_frames(candidates, dynamic, score_on):
  stub = sampling_stubs.make_stub(N, strength=6.0)
  preserve = common.frame_preserve_mask(3, 8, [0])
  given = jnp.full((2, N), 7, jnp.int32).at[:, 8:].set(0)
  tokens, _ = _run_mp(stub, given, jax.random.key(3), preserve, steps=8,
                      num_candidates=candidates, dynamic_stop=dynamic, score_on=score_on)
  np.testing.assert_array_equal(tokens[:, :8], 7)
  assert not np.all(tokens[:, 8:] == 7)


def test_reranking_raises_the_score():
  stub = sampling_stubs.make_stub(N, strength=0.5)
  given = jnp.zeros((16, N), jnp.int32)

  def mean_score(candidates):
    tokens, info = _run_mp(stub, given, jax.random.key(4), steps=5, num_candidates=candidates)
    _, rel, vid = stub(tokens)
    if candidates > 1:  # the reported score is the score of the returned video
      np.testing.assert_allclose(info["score"], common.combined_score(rel, vid), rtol=1e-6)
    else:
      assert np.all(np.isnan(info["score"]))
    return float(common.combined_score(rel, vid).mean())

  assert mean_score(8) > mean_score(1) + 0.02


def test_dynamic_stop_stops_after_patience_steps_without_improvement():
  base = sampling_stubs.make_stub(N)
  constant = lambda t: (base(t)[0], jnp.zeros(t.shape[:1]), jnp.zeros(t.shape[:1]))
  given = jnp.zeros((2, N), jnp.int32)
  tokens, info = _run_mp(constant, given, jax.random.key(5), steps=20, dynamic_stop=True)
  # Step 1 sets the best score; steps 2..6 do not improve it: stop after step 6 (7 passes).
  np.testing.assert_array_equal(info["steps"], [7, 7])
  short, _ = _run_mp(constant, given, jax.random.key(5), steps=2)
  np.testing.assert_array_equal(tokens, short)  # best = the step-1 video


# ---- MaskGIT -----------------------------------------------------------------------------------
def test_maskgit_kept_tokens_never_change_and_all_get_filled():
  stub = sampling_stubs.make_stub(N)
  config = maskgit.MaskGitConfig(steps=6)
  given = jnp.zeros((2, N), jnp.int32)
  tokens, info = jax.jit(functools.partial(maskgit.maskgit_decode, stub, mask_id=MASK_ID,
                                           config=config, return_trajectory=True))(
                                               given, jax.random.key(6))
  trajectory = np.asarray(info["trajectory"])
  expected_masked = schedules.maskgit_masked_counts(N, 6)
  np.testing.assert_array_equal((trajectory == MASK_ID).sum(-1), np.tile(expected_masked[:, None], 2))
  for t in range(5):
    known = trajectory[t] != MASK_ID
    np.testing.assert_array_equal(trajectory[t + 1][known], trajectory[t][known])
  np.testing.assert_array_equal(tokens, trajectory[-1])
  assert np.all(np.asarray(tokens) < K)


def test_maskgit_never_changes_preserved_frames():
  stub = sampling_stubs.make_stub(N, strength=6.0)
  preserve = common.frame_preserve_mask(3, 8, [0, 2])
  given = jnp.full((2, N), 5, jnp.int32)
  tokens, _ = maskgit.maskgit_decode(stub, given, jax.random.key(7), mask_id=MASK_ID,
                                     preserve_mask=preserve, config=maskgit.MaskGitConfig(steps=4))
  np.testing.assert_array_equal(tokens[:, preserve], 5)


# ---- classifier-free guidance ------------------------------------------------------------------
def _conditional_stub():
  table = jax.random.normal(jax.random.key(8), (N, K))

  def tokens_to_logits(params, tokens, cond):
    text = cond["text_ids"].astype(jnp.float32)
    logits = params * table[None] + text.mean(1)[:, None, None] * jnp.arange(K)[None, None]
    zeros = jnp.zeros(tokens.shape[:1])
    return logits + 0.0 * tokens[..., None], zeros + text.mean(1), zeros

  return tokens_to_logits


def test_guidance_scale_zero_equals_unguided():
  fn = _conditional_stub()
  cond = {"text_ids": jnp.asarray([[3, 4, 0], [1, 0, 0]])}
  null = {"text_ids": jnp.zeros_like(cond["text_ids"])}
  tokens = jnp.full((2, N), MASK_ID)
  unguided = guidance.conditional_logits_fn(fn, 1.0, cond)
  batched = guidance.guided_logits_fn(fn, 1.0, cond, null, 0.0, skip_when_zero=False)
  np.testing.assert_array_equal(batched(tokens)[0], unguided(tokens)[0])
  for decoder, config in ((mp.mask_predict, mp.MaskPredictConfig(steps=3)),
                          (maskgit.maskgit_decode, maskgit.MaskGitConfig(steps=3))):
    decode = lambda f: jax.jit(lambda t, k: decoder(f, t, k, mask_id=MASK_ID, config=config)[0])(
        tokens, jax.random.key(9))
    np.testing.assert_array_equal(decode(batched), decode(unguided))
  guided = guidance.guided_logits_fn(fn, 1.0, cond, null, 2.0)
  logits, rel, _ = guided(tokens)
  cond_logits, uncond_logits = fn(1.0, tokens, cond)[0], fn(1.0, tokens, null)[0]
  np.testing.assert_allclose(logits, 3.0 * cond_logits - 2.0 * uncond_logits, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(rel, cond["text_ids"].mean(1))


def test_noise_schedule_changes_the_draws_and_zero_is_plain_sampling():
  stub = sampling_stubs.make_stub(N)
  given = jnp.zeros((2, N), jnp.int32)
  plain, _ = _run_mp(stub, given, jax.random.key(10), steps=3)
  zeros, _ = _run_mp(stub, given, jax.random.key(10), steps=3,
                     noise_schedule=schedules.ThreePhase(10, 5, 35, 0.0, 0.0, 0.0, 0.0))
  noisy, _ = _run_mp(stub, given, jax.random.key(10), steps=3,
                     noise_schedule=schedules.ThreePhase(10, 5, 35, 3.0, 1.0, 0.5, 0.1))
  np.testing.assert_array_equal(plain, zeros)
  assert not np.array_equal(plain, noisy)
  np.testing.assert_allclose(schedules.mmvid_noise_scales(12, schedules.ThreePhase(
      10, 5, 35, 1.0, 0.1, 0.5, 0.2))[[0, 9, 10, 11]], [1.0, 0.1, 0.5, 0.5], rtol=1e-6)


def test_mask_predict_temperature_sharpens_the_draws():
  stub = sampling_stubs.make_stub(N, strength=0.5)  # flat logits: temperature 1 draws widely
  given = jnp.zeros((4, N), jnp.int32)
  plain, _ = _run_mp(stub, given, jax.random.key(3), steps=1)
  cold, _ = _run_mp(stub, given, jax.random.key(3), steps=1, temperature=0.01)
  mode = np.asarray(jnp.argmax(stub(jnp.full((4, N), MASK_ID))[0], axis=-1))
  assert (np.asarray(cold) == mode).mean() > 0.95  # ~argmax (near-ties may still flip)
  assert (np.asarray(plain) != mode).mean() > 0.3
  with pytest.raises(ValueError, match="temperature"):
    mp.MaskPredictConfig(temperature=0.0)
