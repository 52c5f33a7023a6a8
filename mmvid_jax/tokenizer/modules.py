"""Per-frame VQGAN encoder and decoder (taming-transformers layout, channels last).

Both act on images (N, H, W, C); `model.py` folds the time axis into the batch so the same
weights see every frame. Downsampling factor = 2 ** (len(channel_mult) - 1).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _group_norm(channels: int) -> nn.GroupNorm:
  # taming uses 32 groups; small test models have fewer channels than that.
  groups = 32
  while channels % groups:
    groups //= 2
  return nn.GroupNorm(num_groups=groups, epsilon=1e-6)


class ResBlock(nn.Module):
  """GroupNorm → swish → 3x3 conv, twice, with a 1x1 shortcut when the width changes."""
  features: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.swish(_group_norm(x.shape[-1])(x))
    h = nn.Conv(self.features, (3, 3))(h)
    h = nn.swish(_group_norm(self.features)(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = nn.Conv(self.features, (3, 3))(h)
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), name="shortcut")(x)
    return x + h


class AttnBlock(nn.Module):
  """Single-head spatial self-attention with a residual connection."""

  @nn.compact
  def __call__(self, x):
    n, h, w, c = x.shape
    y = _group_norm(c)(x)
    q = nn.Dense(c, name="q")(y).reshape(n, h * w, c)
    k = nn.Dense(c, name="k")(y).reshape(n, h * w, c)
    v = nn.Dense(c, name="v")(y).reshape(n, h * w, c)
    weights = jax.nn.softmax(jnp.einsum("nqc,nkc->nqk", q, k) / jnp.sqrt(c).astype(x.dtype), axis=-1)
    out = jnp.einsum("nqk,nkc->nqc", weights, v).reshape(n, h, w, c)
    return x + nn.Dense(c, name="proj_out")(out)


class Downsample(nn.Module):
  """Stride-2 3x3 conv (taming pads right/bottom by one, i.e. 'SAME'-like)."""

  @nn.compact
  def __call__(self, x):
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    return nn.Conv(x.shape[-1], (3, 3), strides=(2, 2), padding="VALID")(x)


class Upsample(nn.Module):
  """Nearest-neighbour x2 followed by a 3x3 conv."""

  @nn.compact
  def __call__(self, x):
    n, h, w, c = x.shape
    x = jax.image.resize(x, (n, 2 * h, 2 * w, c), method="nearest")
    return nn.Conv(c, (3, 3))(x)


class MidBlock(nn.Module):
  features: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ResBlock(self.features, self.dropout)(x, train)
    x = AttnBlock()(x)
    return ResBlock(self.features, self.dropout)(x, train)


class Encoder(nn.Module):
  """Images (N, H, W, 3) in [-1, 1] → latents (N, H/f, W/f, z_channels)."""
  channels: int
  channel_mult: Sequence[int]
  num_res_blocks: int
  attn_resolutions: Sequence[int]
  z_channels: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.Conv(self.channels, (3, 3), name="conv_in")(x)
    resolution = x.shape[1]
    for level, mult in enumerate(self.channel_mult):
      for _ in range(self.num_res_blocks):
        h = ResBlock(self.channels * mult, self.dropout)(h, train)
        if resolution in self.attn_resolutions:
          h = AttnBlock()(h)
      if level != len(self.channel_mult) - 1:
        h = Downsample()(h)
        resolution //= 2
    h = MidBlock(h.shape[-1], self.dropout)(h, train)
    h = nn.swish(_group_norm(h.shape[-1])(h))
    return nn.Conv(self.z_channels, (3, 3), name="conv_out")(h)


class Decoder(nn.Module):
  """Latents (N, h, w, z_channels) → features before the output conv, (N, H, W, channels).

  The output conv (`conv_out`, 3 channels) is kept outside (see `model.py`) because the
  adaptive GAN weight needs gradients with respect to exactly that layer.
  """
  channels: int
  channel_mult: Sequence[int]
  num_res_blocks: int
  attn_resolutions: Sequence[int]
  dropout: float = 0.0

  @nn.compact
  def __call__(self, z, train: bool = False):
    top = self.channels * self.channel_mult[-1]
    h = nn.Conv(top, (3, 3), name="conv_in")(z)
    h = MidBlock(top, self.dropout)(h, train)
    resolution = z.shape[1]
    for level in reversed(range(len(self.channel_mult))):
      for _ in range(self.num_res_blocks + 1):
        h = ResBlock(self.channels * self.channel_mult[level], self.dropout)(h, train)
        if resolution in self.attn_resolutions:
          h = AttnBlock()(h)
      if level != 0:
        h = Upsample()(h)
        resolution *= 2
    return nn.swish(_group_norm(h.shape[-1])(h))
