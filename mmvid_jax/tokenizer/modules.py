"""Per-frame VQGAN encoder and decoder (taming-transformers layout, channels last).

Both act on images (N, H, W, C); `model.py` folds the time axis into the batch so the same
weights see every frame. Downsampling factor = 2 ** (len(channel_mult) - 1).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


ENCODER_CONTEXTS = ("global", "local", "patch")


def _group_norm(channels: int) -> nn.GroupNorm:
  # taming uses 32 groups; small test models have fewer channels than that.
  groups = 32
  while channels % groups:
    groups //= 2
  return nn.GroupNorm(num_groups=groups, epsilon=1e-6)


def _norm(channels: int, local: bool) -> nn.Module:
  # GroupNorm mixes statistics over the whole image; a per-position LayerNorm over channels
  # keeps a patch's features independent of what happens elsewhere in the frame.
  return nn.LayerNorm(epsilon=1e-6) if local else _group_norm(channels)


class ResBlock(nn.Module):
  """GroupNorm → swish → 3x3 conv, twice, with a 1x1 shortcut when the width changes.

  `local_norm` swaps GroupNorm for a per-position LayerNorm (the "local" encoder)."""
  features: int
  dropout: float = 0.0
  local_norm: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.swish(_norm(x.shape[-1], self.local_norm)(x))
    h = nn.Conv(self.features, (3, 3))(h)
    h = nn.swish(_norm(self.features, self.local_norm)(h))
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
  """Images (N, H, W, 3) in [-1, 1] → latents (N, H/f, W/f, z_channels).

  context "global" is taming's encoder (GroupNorm, a mid block with attention): every latent
  sees the whole frame. "local" (per-position LayerNorm, no mid block, no attention, 1x1 output
  conv) gives each latent only its conv receptive field. "patch" sees only its own f x f patch,
  so identical patches get identical codes: far easier codes for the transformer to predict.
  """
  channels: int
  channel_mult: Sequence[int]
  num_res_blocks: int
  attn_resolutions: Sequence[int]
  z_channels: int
  dropout: float = 0.0
  context: str = "global"

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.context not in ENCODER_CONTEXTS:
      raise ValueError(f"unknown encoder context {self.context!r}; use one of {ENCODER_CONTEXTS}")
    if self.context == "patch":
      return self._patch_encoder(x)
    local = self.context == "local"
    h = nn.Conv(self.channels, (3, 3), name="conv_in")(x)
    resolution = x.shape[1]
    for level, mult in enumerate(self.channel_mult):
      for _ in range(self.num_res_blocks):
        h = ResBlock(self.channels * mult, self.dropout, local_norm=local)(h, train)
        if resolution in self.attn_resolutions and not local:
          h = AttnBlock()(h)
      if level != len(self.channel_mult) - 1:
        h = Downsample()(h)
        resolution //= 2
    if local:
      h = nn.swish(_norm(h.shape[-1], True)(h))
      return nn.Conv(self.z_channels, (1, 1), name="conv_out")(h)
    h = MidBlock(h.shape[-1], self.dropout)(h, train)
    h = nn.swish(_group_norm(h.shape[-1])(h))
    return nn.Conv(self.z_channels, (3, 3), name="conv_out")(h)

  def _patch_encoder(self, x):
    # Each f x f patch alone → its latent (space-to-depth, then a residual MLP): equal patches
    # get exactly equal latents, hence equal codes, wherever they are and whatever surrounds them.
    n, height, width, c = x.shape
    f = 2 ** (len(self.channel_mult) - 1)
    h = x.reshape(n, height // f, f, width // f, f, c).transpose(0, 1, 3, 2, 4, 5)
    h = nn.Dense(self.channels * self.channel_mult[-1], name="patch_in")(
        h.reshape(n, height // f, width // f, f * f * c))
    for _ in range(len(self.channel_mult) * self.num_res_blocks):
      y = nn.Dense(4 * h.shape[-1])(nn.LayerNorm(epsilon=1e-6)(h))
      h = h + nn.Dense(h.shape[-1])(nn.swish(y))
    h = nn.swish(nn.LayerNorm(epsilon=1e-6)(h))
    return nn.Dense(self.z_channels, name="conv_out")(h)


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
