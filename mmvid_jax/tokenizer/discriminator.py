"""PatchGAN discriminator (taming `NLayerDiscriminator`), per frame, channels last.

taming uses BatchNorm; here the normalisation is GroupNorm (or none), which needs no running
statistics, behaves the same in training and evaluation and keeps the train step a pure function.
"""

import flax.linen as nn
import jax.numpy as jnp

_INIT = nn.initializers.normal(0.02)


class NLayerDiscriminator(nn.Module):
  """Images (N, H, W, 3) → patch logits (N, h, w, 1)."""
  ndf: int = 64
  num_layers: int = 3
  norm: str = "group"  # "group" or "none"

  def _normalize(self, x):
    if self.norm == "none":
      return x
    groups = 32
    while x.shape[-1] % groups:
      groups //= 2
    return nn.GroupNorm(num_groups=groups)(x)

  @nn.compact
  def __call__(self, x):
    pad = ((1, 1), (1, 1))
    x = nn.Conv(self.ndf, (4, 4), strides=2, padding=pad, kernel_init=_INIT)(x)
    x = nn.leaky_relu(x, 0.2)
    for n in range(1, self.num_layers + 1):
      stride = 2 if n < self.num_layers else 1
      features = self.ndf * min(2 ** n, 8)
      x = nn.Conv(features, (4, 4), strides=stride, padding=pad, use_bias=self.norm == "none",
                  kernel_init=_INIT)(x)
      x = nn.leaky_relu(self._normalize(x), 0.2)
    return nn.Conv(1, (4, 4), strides=1, padding=pad, kernel_init=_INIT)(x)
