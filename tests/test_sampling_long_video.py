"""Long-video extrapolation and hierarchical interpolation keep the given frames fixed."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.sampling import long_video
from mmvid_jax.sampling import mask_predict as mp
from mmvid_jax.sampling import maskgit
import sampling_stubs
from sampling_stubs import MASK_ID

T, PER_FRAME = 4, 3


@functools.lru_cache(maxsize=None)
def _decoder(kind: str, preserve: bytes):
  stub = sampling_stubs.make_stub(T * PER_FRAME, strength=4.0)
  mask = np.frombuffer(preserve, bool)
  if kind == "maskgit":
    fn = lambda g, k: maskgit.maskgit_decode(stub, g, k, mask_id=MASK_ID, preserve_mask=mask,
                                             config=maskgit.MaskGitConfig(steps=3))[0]
  else:
    fn = lambda g, k: mp.mask_predict(stub, g, k, mask_id=MASK_ID, preserve_mask=mask,
                                      config=mp.MaskPredictConfig(steps=3))[0]
  return jax.jit(fn)


def _decode_fn(kind, calls):
  def decode(given, preserve, key):
    calls.append(preserve.copy())
    return _decoder(kind, np.asarray(preserve, bool).tobytes())(given, key)
  return decode


@pytest.mark.parametrize("kind", ["mask_predict", "maskgit"])
def test_extension_keeps_the_overlap_frames(kind):
  calls = []
  first = jnp.asarray(np.random.default_rng(0).integers(0, 8, (2, T, PER_FRAME)), jnp.int32)
  out = long_video.extend_video(_decode_fn(kind, calls), jax.random.key(0), batch=2,
                                num_frames=T, tokens_per_frame=PER_FRAME, t_overlap=3,
                                num_clips=4, first_tokens=first)
  assert out.shape == (2, long_video.extended_length(T, 3, 4), PER_FRAME) == (2, 7, PER_FRAME)
  np.testing.assert_array_equal(out[:, :T], first)
  assert len(calls) == 3 and all(c[:3 * PER_FRAME].all() and not c[3 * PER_FRAME:].any()
                                 for c in calls)
  assert np.all((np.asarray(out) >= 0) & (np.asarray(out) < sampling_stubs.K))


def test_extension_from_scratch_and_bad_overlap():
  calls = []
  out = long_video.extend_video(_decode_fn("mask_predict", calls), jax.random.key(1), batch=1,
                                num_frames=T, tokens_per_frame=PER_FRAME, t_overlap=2,
                                num_clips=2)
  assert out.shape == (1, 6, PER_FRAME) and not calls[0].any()
  with pytest.raises(UserError, match="t_overlap"):
    long_video.extend_video(_decode_fn("mask_predict", []), jax.random.key(1), batch=1,
                            num_frames=T, tokens_per_frame=PER_FRAME, t_overlap=T, num_clips=2)


def test_interpolation_windows_cover_every_gap():
  assert long_video.interpolation_windows(2, 2) == [0]
  assert long_video.interpolation_windows(5, 2) == [0, 1, 2, 3]
  assert long_video.interpolation_windows(7, 4) == [0, 3]
  assert long_video.interpolation_windows(8, 4) == [0, 3, 4]
  with pytest.raises(UserError):
    long_video.interpolation_windows(1, 2)


@pytest.mark.parametrize("kind", ["mask_predict", "maskgit"])
def test_interpolation_keeps_given_frames_at_even_positions(kind):
  calls = []
  given = jnp.asarray(np.random.default_rng(2).integers(0, 8, (2, 3, PER_FRAME)), jnp.int32)
  out = long_video.interpolate_video(_decode_fn(kind, calls), given, jax.random.key(3),
                                     num_frames=T, levels=2)
  assert out.shape == (2, 12, PER_FRAME)
  np.testing.assert_array_equal(out[:, 0::4], given)  # level 1 kept them, level 2 kept those
  level1 = long_video.interpolate_video(_decode_fn(kind, []), given, jax.random.key(3),
                                        num_frames=T, levels=1)
  np.testing.assert_array_equal(out[:, 0::2], level1)  # level 2 kept all of level 1's frames
  assert all((c.reshape(T, PER_FRAME).all(1) == [True, False, True, False]).all() for c in calls)
