"""A pseudo tokenizer with the `VideoTokenizer` interface and no training (for tests).

Each `patch x patch` block of a frame becomes one code: its mean colour, every channel quantised
to `levels` bins, `code = r * levels**2 + g * levels + b` (codebook = levels**3). Decoding paints
each patch with its bin centres. Deterministic and jittable, so transformer and sampling tests
need no trained VQ model, yet codes still follow the content (colour, position, motion).
"""

from flax import struct
import jax
import jax.numpy as jnp


class PseudoTokenizer(struct.PyTreeNode):
  image_size: int = struct.field(pytree_node=False)
  patch_size: int = struct.field(pytree_node=False, default=8)
  levels: int = struct.field(pytree_node=False, default=4)

  @property
  def codebook_size(self) -> int:
    return self.levels ** 3

  @property
  def downsample_factor(self) -> int:
    return self.patch_size

  @property
  def latent_size(self) -> int:
    return self.image_size // self.patch_size

  def encode_to_codes(self, video: jax.Array) -> jax.Array:
    """Video (B, T, H, W, 3) in [-1, 1] -> int32 codes (B, T, h, w)."""
    b, t, h, w, c = video.shape
    p = self.patch_size
    patches = jnp.asarray(video, jnp.float32).reshape(b, t, h // p, p, w // p, p, c)
    mean = patches.mean(axis=(3, 5))  # (B, T, h, w, 3)
    bins = jnp.clip(jnp.floor((mean + 1.0) / 2.0 * self.levels), 0, self.levels - 1)
    bins = bins.astype(jnp.int32)
    return bins[..., 0] * self.levels ** 2 + bins[..., 1] * self.levels + bins[..., 2]

  def decode_from_codes(self, codes: jax.Array) -> jax.Array:
    """int codes (B, T, h, w) -> float32 video (B, T, H, W, 3) in [-1, 1]."""
    codes = jnp.clip(jnp.asarray(codes, jnp.int32), 0, self.codebook_size - 1)
    bins = jnp.stack([codes // self.levels ** 2, (codes // self.levels) % self.levels,
                      codes % self.levels], axis=-1)
    colour = (bins.astype(jnp.float32) + 0.5) / self.levels * 2.0 - 1.0
    p = self.patch_size
    return jnp.repeat(jnp.repeat(colour, p, axis=2), p, axis=3)
