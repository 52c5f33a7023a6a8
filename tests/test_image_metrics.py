"""PSNR / SSIM against hand-computed values and LPIPS sanity (packaged weights)."""

import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.evaluation import image_metrics


def test_psnr_hand_computed():
  a = jnp.zeros((2, 4, 4, 3))
  b = jnp.full((2, 4, 4, 3), 0.1)
  np.testing.assert_allclose(image_metrics.psnr(a, b, data_range=1.0), [20.0, 20.0], rtol=1e-5)
  # [-1, 1] images: an error of 0.2 on a range of 2 is the same 20 dB.
  np.testing.assert_allclose(image_metrics.psnr(a, b * 2, data_range=2.0), [20.0, 20.0], rtol=1e-5)
  assert np.isinf(float(image_metrics.psnr(a[0], a[0])))


def test_ssim_of_constant_images_is_the_luminance_term():
  a = jnp.full((1, 12, 12, 1), 0.2)
  b = jnp.full((1, 12, 12, 1), 0.6)
  c1 = (0.01 * 1.0) ** 2
  expected = (2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1)
  np.testing.assert_allclose(image_metrics.ssim(a, b, data_range=1.0), [expected], rtol=1e-3)  # float32 variance rounding
  np.testing.assert_allclose(image_metrics.ssim(a, a, data_range=1.0), [1.0], rtol=1e-6)


def _ssim_reference(a, b, data_range):
  """Direct 2-D Gaussian-window SSIM in numpy (no separable filtering)."""
  size, sigma = 11, 1.5
  g = np.exp(-((np.arange(size) - 5) ** 2) / (2 * sigma ** 2))
  window = np.outer(g, g) / np.outer(g, g).sum()
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  values = []
  for ch in range(a.shape[-1]):
    for y in range(a.shape[0] - size + 1):
      for x in range(a.shape[1] - size + 1):
        pa, pb = a[y:y + size, x:x + size, ch], b[y:y + size, x:x + size, ch]
        ma, mb = (window * pa).sum(), (window * pb).sum()
        va, vb = (window * pa * pa).sum() - ma ** 2, (window * pb * pb).sum() - mb ** 2
        cov = (window * pa * pb).sum() - ma * mb
        values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
  return np.mean(values)


def test_ssim_matches_a_direct_reference():
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (14, 13, 2)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1).astype(np.float32)
  np.testing.assert_allclose(image_metrics.ssim(a[None], b[None], data_range=2.0),
                             [_ssim_reference(a, b, 2.0)], rtol=1e-4)


def test_lpips_zero_for_identical_and_grows_with_noise():
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)
  noise = jax.random.normal(jax.random.key(1), x.shape)
  same = image_metrics.lpips(x, x)
  small = image_metrics.lpips(x, jnp.clip(x + 0.05 * noise, -1, 1))
  large = image_metrics.lpips(x, jnp.clip(x + 0.5 * noise, -1, 1))
  assert same.shape == (2,)
  np.testing.assert_allclose(same, 0.0, atol=1e-6)
  assert np.all(np.asarray(small) > 0) and np.all(np.asarray(large) > np.asarray(small))
  # Leading axes are kept: video (B, T, H, W, 3) gives (B, T).
  video = x.reshape(1, 2, 32, 32, 3)
  assert image_metrics.lpips(video, video).shape == (1, 2)
