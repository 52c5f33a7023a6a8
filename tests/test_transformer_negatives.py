"""REL swap and VID negatives: each corruption really differs from the positive as intended."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax.errors import ConfigError
from mmvid_jax.transformer import negatives

B, T, S = 4, 5, 16


def videos(seed=0, spread=0.2):
  # Distinct, smooth frames so warps and shifts are measurable; a wide ramp keeps some pixels
  # away from the [-1, 1] clamp for any colour shift.
  rng = np.random.default_rng(seed)
  base = rng.uniform(-0.8, 0.8, (B, T, 1, 1, 3)) * (1 - spread)
  ramp = np.linspace(-spread, spread, S)[None, None, :, None, None]
  return jnp.asarray(np.clip(base + ramp + 0.05 * rng.standard_normal((B, T, S, S, 3)), -1, 1),
                     jnp.float32)


def negatives_with(strategy, seed=0, spread=0.2):
  probs = [0.0] * 4
  probs[strategy] = 1.0
  video = videos(seed, spread)
  neg, strategies = jax.jit(lambda k, v: negatives.batch_vid_negatives(k, v, tuple(probs)))(
      jax.random.key(seed), video)
  assert (np.asarray(strategies) == strategy).all()
  return np.asarray(video), np.asarray(neg)


def changed_frames(video, neg):
  return np.abs(video - neg).max(axis=(2, 3, 4)) > 1e-6  # (B, T)


def test_rel_swap_pairs_halves():
  perm = np.asarray(negatives.rel_swap_permutation(6))
  assert perm.tolist() == [3, 4, 5, 0, 1, 2]
  assert (perm[perm] == np.arange(6)).all() and (perm != np.arange(6)).all()
  with pytest.raises(ConfigError, match="batch has 3 samples"):
    negatives.rel_swap_permutation(3)


def test_frame_swap_uses_a_frame_of_another_sample():
  for seed in range(3):
    video, neg = negatives_with(0, seed)
    changed = changed_frames(video, neg)
    assert (changed.sum(axis=1) == 1).all()
    for i in range(B):
      j = int(np.argmax(changed[i]))
      sources = [(o, f) for o in range(B) for f in range(T)
                 if np.array_equal(neg[i, j], video[o, f])]
      assert sources and all(o != i for o, _ in sources)


def test_shuffle_is_a_non_identity_permutation():
  video, neg = negatives_with(1)
  for i in range(B):
    perm = [int(np.argmax([np.array_equal(neg[i, t], video[i, s]) for s in range(T)]))
            for t in range(T)]
    assert sorted(perm) == list(range(T)) and perm != list(range(T))
    assert all(np.array_equal(neg[i, t], video[i, perm[t]]) for t in range(T))


def test_non_identity_permutation_for_two_frames():
  perms = [np.asarray(negatives.non_identity_permutation(jax.random.key(s), 2)).tolist()
           for s in range(10)]
  assert all(p == [1, 0] for p in perms)


def test_colour_shift_changes_one_frame_by_a_constant():
  video, neg = negatives_with(2, spread=0.95)
  changed = changed_frames(video, neg)
  assert (changed.sum(axis=1) <= 1).all() and changed.sum() >= B - 1  # |c| > 0 almost surely
  for i in range(B):
    if not changed[i].any():
      continue
    j = int(np.argmax(changed[i]))
    diff = neg[i, j] - video[i, j]
    inside = np.abs(neg[i, j]) < 1 - 1e-6  # away from the clamp
    per_channel = [np.unique(np.round(diff[..., c][inside[..., c]], 4)) for c in range(3)]
    shifted = [c for c in range(3) if len(per_channel[c]) and np.abs(per_channel[c]).max() > 0]
    assert shifted  # all channels or exactly one, each by one constant
    assert len(shifted) in (1, 3)
    for c in shifted:
      assert len(per_channel[c]) == 1 and abs(per_channel[c][0]) <= 1.0 + 1e-5


def test_affine_warps_one_frame():
  video, neg = negatives_with(3)
  changed = changed_frames(video, neg)
  assert (changed.sum(axis=1) == 1).all()


def test_affine_identity_and_translation():
  frame = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 8, 3)), jnp.float32)
  identity = jnp.array([[1.0, 0, 0], [0, 1.0, 0]])
  np.testing.assert_allclose(negatives.affine_warp(frame, identity), frame, atol=1e-6)
  # A shift of one pixel (2/W in normalised units) samples the neighbour column.
  shift = jnp.array([[1.0, 0, 2 / 8], [0, 1.0, 0]])
  out = np.asarray(negatives.affine_warp(frame, shift))
  np.testing.assert_allclose(out[:, :-1], np.asarray(frame)[:, 1:], atol=1e-5)
  # Reflection padding: the last column reflects back into the image (x = 7.5 -> 7, weight 1).
  np.testing.assert_allclose(out[:, -1], np.asarray(frame)[:, -1], atol=1e-5)


def test_negative_codes_equal_encoding_the_pixel_negatives():
  from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
  tokenizer = PseudoTokenizer(image_size=S, patch_size=4, levels=4)
  video = videos(5, spread=0.6)
  codes = tokenizer.encode_to_codes(video)
  key = jax.random.key(7)
  for probs in [(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (1, 1, 1, 1)]:
    pixel, strategies = negatives.batch_vid_negatives(key, video, probs)
    fast, fast_strategies = negatives.batch_vid_negative_codes(
        key, video, codes, tokenizer.encode_to_codes, probs)
    assert (np.asarray(strategies) == np.asarray(fast_strategies)).all()
    np.testing.assert_array_equal(fast, tokenizer.encode_to_codes(pixel))
