"""A depthwise 3-D convolution over the video tokens at the start of every block (not in MMVID).

MMVID's video tokens know where they are only through summed absolute axial tables, and every
spatial or temporal relation ("the code one row up in the previous frame") must be learned by
attention separately for each position pair. With `transformer.video_conv=k` each block first
adds a depthwise k x k x k convolution (separable: one k-tap kernel per axis and channel) over
(t, y, x) of its layer-normed video states, a residual branch like CPVT's position generator or
a ConvNeXt block's spatial mixing: each channel sees its local neighbourhood with the same
weights everywhere, so neighbouring tokens of one object and the same object one frame on are
related from the first step.
Non-video positions ([REL], text, controls, [ST1], [VID]) pass unchanged. It needs the whole
video at once, so it is for the bidirectional MMVID model only (not ART-V's causal decoding).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.errors import ConfigError

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class VideoConvSpec:
  """Where the video sits in the sequence, its (T, h, w) grid and the kernel size (hashable)."""
  video_start: int
  grid: tuple[int, int, int]
  kernel: int

  @property
  def video_len(self) -> int:
    t, h, w = self.grid
    return t * h * w


class VideoConv(nn.Module):
  """Residual increment (B, S, d): zero outside the video, the convolution inside it.

  The k x k x k kernel of each channel is separable, the outer product of one k-tap kernel per
  axis (t, then y, then x): 3k taps instead of k^3. Any single offset, "the token one row up in
  the previous frame", is still one channel's kernel, and the backward pass is ~4x cheaper on
  XLA:CPU (its k^3 kernel-gradient reductions are separate passes over the activations).
  """
  spec: VideoConvSpec
  dtype: Any = jnp.float32
  # Std of the last (x) axis kernel; t and y keep the variance (1/sqrt(k)).
  last_axis_std: float = 0.0

  @nn.compact
  def __call__(self, x: Array) -> Array:
    spec = self.spec
    start, end = spec.video_start, spec.video_start + spec.video_len
    batch, width = x.shape[0], x.shape[-1]
    from mmvid_jax.transformer import layers  # layers imports this module
    video = layers.layer_norm("ln")(x[:, start:end]).astype(self.dtype)
    k = spec.kernel
    preserving = float(1.0 / np.sqrt(k))
    last_std = self.last_axis_std or preserving
    kernel = self.param("kernel", nn.with_logical_partitioning(
        _per_axis_normal((preserving, preserving, last_std)), (None, None, "embed")),
                        (3, k, width))
    bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
                      (width,))
    mixed = separable_conv3d(video.reshape((batch,) + spec.grid + (width,)),
                             kernel.astype(self.dtype))
    mixed = (mixed + bias.astype(self.dtype)).reshape(batch, spec.video_len, width)
    mixed = mixed.astype(x.dtype)
    return jnp.pad(mixed, ((0, 0), (start, x.shape[1] - end), (0, 0)))


def _per_axis_normal(stds: tuple[float, float, float]):
  def init(key, shape, dtype=jnp.float32):
    scale = jnp.asarray(stds, dtype).reshape(3, 1, 1)
    return jax.random.normal(key, shape, dtype) * scale
  return init


def separable_conv3d(x: Array, kernels: Array) -> Array:
  """x (B, T, h, w, d) convolved per channel along t, y, x in turn with kernels (3, k, d), zero
  "SAME" padding: the depthwise 3-D convolution whose kernel is their outer product."""
  for axis, kernel in zip((1, 2, 3), kernels):
    x = _conv_along(x, kernel, axis)
  return x


def _conv_along(x: Array, kernel: Array, axis: int) -> Array:
  k = kernel.shape[0]
  r, n = k // 2, x.shape[axis]
  widths = [(0, 0)] * x.ndim
  widths[axis] = (r, r)
  padded = jnp.pad(x, widths)
  out = jnp.zeros_like(x)
  for tap in range(k):
    out = out + jax.lax.slice_in_dim(padded, tap, tap + n, axis=axis) * kernel[tap]
  return out


def validate(kernel: int, objective: str = "mmvid") -> int:
  """The kernel size from `transformer.video_conv` (0 = off): ConfigError when unusable."""
  try:
    kernel = int(kernel)
  except (TypeError, ValueError):
    raise ConfigError("transformer.video_conv", f"{kernel!r} is not a kernel size",
                      "use 0 (off, MMVID) or an odd size such as 3") from None
  if kernel < 0 or (kernel and kernel % 2 == 0):
    raise ConfigError("transformer.video_conv", f"kernel size {kernel} is not 0 or odd",
                      "use 0 (off, MMVID) or an odd size such as 3")
  if kernel and objective == "artv":
    raise ConfigError("transformer.video_conv",
                      "the video convolution needs the whole video; ART-V decodes causally",
                      "set transformer.video_conv=0 for the artv objective")
  return kernel
