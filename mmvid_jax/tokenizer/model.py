"""The per-frame VQGAN: encoder → quant_conv → quantizer → post_quant_conv → decoder → conv_out.

Every method accepts images with any leading axes, `(..., H, W, 3)`, e.g. video `(B, T, H, W, 3)`:
the leading axes are folded into one batch so all frames share the weights.
`build_tokenizer(config.tokenizer)` is the one factory from config to module.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from mmvid_jax.tokenizer.modules import Decoder, Encoder
from mmvid_jax.tokenizer.quantizers import FiniteScalarQuantizer, VectorQuantizer

QUANTIZERS = ("vq", "fsq")


def _fold(x, inner_dims: int):
  lead = x.shape[:x.ndim - inner_dims]
  return x.reshape((int(np.prod(lead)),) + x.shape[x.ndim - inner_dims:]), lead


class VQGAN(nn.Module):
  """Frame tokenizer; images in [-1, 1], reconstructions unclipped (clip for display)."""
  channels: int
  channel_mult: Sequence[int]
  num_res_blocks: int
  attn_resolutions: Sequence[int]
  quantizer_type: str
  codebook_size_vq: int
  embed_dim: int
  fsq_levels: Sequence[int] = (8, 5, 5, 5)
  beta: float = 0.25
  l2_normalize: bool = False
  ema: bool = False
  ema_decay: float = 0.99
  usage_decay: float = 0.95
  dropout: float = 0.0
  encoder_context: str = "global"

  def setup(self):
    arch = dict(channels=self.channels, channel_mult=tuple(self.channel_mult),
                num_res_blocks=self.num_res_blocks, attn_resolutions=tuple(self.attn_resolutions),
                dropout=self.dropout)
    self.encoder = Encoder(z_channels=self.latent_dim, context=self.encoder_context, **arch)
    self.quant_conv = nn.Conv(self.latent_dim, (1, 1))
    if self.quantizer_type == "fsq":
      self.quantizer = FiniteScalarQuantizer(levels=tuple(self.fsq_levels))
    else:
      self.quantizer = VectorQuantizer(
          codebook_size=self.codebook_size_vq, embed_dim=self.embed_dim, beta=self.beta,
          l2_normalize=self.l2_normalize, ema=self.ema, ema_decay=self.ema_decay,
          usage_decay=self.usage_decay)
    self.post_quant_conv = nn.Conv(self.latent_dim, (1, 1))
    self.decoder = Decoder(**arch)
    self.conv_out = nn.Conv(3, (3, 3))

  @property
  def latent_dim(self) -> int:
    return len(self.fsq_levels) if self.quantizer_type == "fsq" else self.embed_dim

  @property
  def codebook_size(self) -> int:
    return int(np.prod(self.fsq_levels)) if self.quantizer_type == "fsq" else self.codebook_size_vq

  def encode(self, images, train: bool = False):
    """(..., H, W, 3) → quantized latents (..., h, w, D) and the quantizer's aux dict."""
    x, lead = _fold(images, 3)
    z = self.quant_conv(self.encoder(x, train))
    quantized, aux = self.quantizer(z, train)
    aux = dict(aux, indices=aux["indices"].reshape(lead + aux["indices"].shape[1:]))
    return quantized.reshape(lead + quantized.shape[1:]), aux

  def decoder_features(self, quantized, train: bool = False):
    """Quantized latents → the features that `conv_out` maps to pixels."""
    q, lead = _fold(quantized, 3)
    h = self.decoder(self.post_quant_conv(q), train)
    return h.reshape(lead + h.shape[1:])

  def decode(self, quantized, train: bool = False):
    return self.conv_out(self.decoder_features(quantized, train))

  def encode_indices(self, images):
    return self.encode(images, train=False)[1]["indices"]

  def decode_indices(self, indices):
    return self.decode(self.quantizer.indices_to_embeddings(indices), train=False)

  def __call__(self, images, train: bool = False):
    """Returns (reconstruction, aux); aux adds `decoder_features` (input of conv_out)."""
    quantized, aux = self.encode(images, train)
    features = self.decoder_features(quantized, train)
    return self.conv_out(features), dict(aux, decoder_features=features)


def build_tokenizer(tok: ml_collections.ConfigDict) -> VQGAN:
  """config.tokenizer → VQGAN module."""
  if tok.quantizer not in QUANTIZERS:
    raise ValueError(f"unknown quantizer {tok.quantizer!r}; choose one of {QUANTIZERS}")
  return VQGAN(
      channels=int(tok.channels), channel_mult=tuple(int(m) for m in tok.channel_mult),
      num_res_blocks=int(tok.num_res_blocks),
      attn_resolutions=tuple(int(r) for r in tok.attn_resolutions),
      quantizer_type=tok.quantizer, codebook_size_vq=int(tok.codebook_size),
      embed_dim=int(tok.embed_dim), fsq_levels=tuple(int(l) for l in tok.fsq_levels),
      beta=float(tok.beta), l2_normalize=bool(tok.l2_normalize), ema=bool(tok.ema),
      ema_decay=float(tok.ema_decay), usage_decay=float(tok.get("usage_decay", 0.95)),
      dropout=float(tok.get("dropout", 0.0)),
      # Exports written before the option existed used taming's global encoder.
      encoder_context=str(tok.get("encoder_context", "global")))


def codebook_size_of(tok: ml_collections.ConfigDict) -> int:
  """Number of distinct codes the config asks for (prod(levels) for FSQ)."""
  return int(np.prod(tok.fsq_levels)) if tok.quantizer == "fsq" else int(tok.codebook_size)
