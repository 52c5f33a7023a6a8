"""Quantizers behind one interface: `quantizer(z, train) -> (quantized, aux)`.

`aux` always holds `indices` (int32, z.shape[:-1]), `loss` (the codebook/commitment term, 0 for
FSQ), `perplexity` and `usage` (fraction of the codebook hit by this batch). Both quantizers also
expose `codebook_size` and `indices_to_embeddings(indices)` for decoding.

Variable collections used by `VectorQuantizer`:
  params/codebook          the codes when trained by gradients (ema=False)
  vq_ema/{codebook, cluster_size, embed_sum}   the codes when trained by EMA (ema=True)
  vq_stats/usage           EMA of assignment probabilities, drives dead-code restart
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _l2_normalize(x, eps=1e-6):
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


def codebook_stats(indices, codebook_size: int):
  """Perplexity (exp of the assignment entropy) and the fraction of codes used."""
  counts = jnp.bincount(indices.reshape(-1), length=codebook_size).astype(jnp.float32)
  probs = counts / jnp.maximum(counts.sum(), 1.0)
  perplexity = jnp.exp(-jnp.sum(probs * jnp.log(probs + 1e-10)))
  usage = jnp.mean((counts > 0).astype(jnp.float32))
  return probs, perplexity, usage


class VectorQuantizer(nn.Module):
  """Nearest-code VQ with straight-through gradients (taming `VectorQuantizer2`, legacy beta).

  loss = ||sg[z_q] - z||^2 + beta * ||z_q - sg[z]||^2 (the codebook term is absent with EMA).
  """
  codebook_size: int
  embed_dim: int
  beta: float = 0.25
  l2_normalize: bool = False
  ema: bool = False
  ema_decay: float = 0.99
  usage_decay: float = 0.95
  epsilon: float = 1e-5

  def _init_codebook(self, key, shape):
    limit = 1.0 / self.codebook_size
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)

  def setup(self):
    shape = (self.codebook_size, self.embed_dim)
    if self.ema:
      self.ema_codebook = self.variable("vq_ema", "codebook",
                                        lambda: self._init_codebook(self.make_rng("params"), shape))
      self.cluster_size = self.variable("vq_ema", "cluster_size",
                                        lambda: jnp.zeros((self.codebook_size,), jnp.float32))
      self.embed_sum = self.variable("vq_ema", "embed_sum", lambda: self.ema_codebook.value)
    else:
      self.param_codebook = self.param("codebook", self._init_codebook, shape)
    self.usage = self.variable("vq_stats", "usage",
                               lambda: jnp.full((self.codebook_size,), 1.0 / self.codebook_size, jnp.float32))

  def codebook(self):
    codes = self.ema_codebook.value if self.ema else self.param_codebook
    return _l2_normalize(codes) if self.l2_normalize else codes

  def indices_to_embeddings(self, indices):
    return jnp.take(self.codebook(), indices, axis=0)

  def __call__(self, z, train: bool = False):
    z = z.astype(jnp.float32)
    if self.l2_normalize:
      z = _l2_normalize(z)
    codes = self.codebook()
    flat = z.reshape(-1, self.embed_dim)
    distances = (jnp.sum(flat ** 2, axis=1, keepdims=True) - 2 * flat @ codes.T
                 + jnp.sum(codes ** 2, axis=1)[None, :])
    indices = jnp.argmin(distances, axis=1).astype(jnp.int32)
    z_q = jnp.take(codes, indices, axis=0).reshape(z.shape)

    commitment = jnp.mean((jax.lax.stop_gradient(z_q) - z) ** 2)
    if self.ema:
      loss = commitment
    else:
      loss = commitment + self.beta * jnp.mean((z_q - jax.lax.stop_gradient(z)) ** 2)

    probs, perplexity, usage = codebook_stats(indices, self.codebook_size)
    if train and self.is_mutable_collection("vq_stats"):
      self.usage.value = self.usage_decay * self.usage.value + (1 - self.usage_decay) * probs
    if train and self.ema and self.is_mutable_collection("vq_ema"):
      self._ema_update(jax.lax.stop_gradient(flat), indices)

    quantized = z + jax.lax.stop_gradient(z_q - z)  # straight-through estimator
    aux = {"indices": indices.reshape(z.shape[:-1]), "loss": loss, "perplexity": perplexity,
           "usage": usage, "latents": flat,
           "errors": jax.lax.stop_gradient(jnp.maximum(jnp.min(distances, axis=1), 0.0))}
    return quantized, aux

  def _ema_update(self, flat, indices):
    one_hot = jax.nn.one_hot(indices, self.codebook_size, dtype=jnp.float32)
    decay = self.ema_decay
    self.cluster_size.value = decay * self.cluster_size.value + (1 - decay) * one_hot.sum(0)
    self.embed_sum.value = decay * self.embed_sum.value + (1 - decay) * one_hot.T @ flat
    # Laplace smoothing keeps never-used codes from dividing by zero.
    n = self.cluster_size.value.sum()
    smoothed = (self.cluster_size.value + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
    self.ema_codebook.value = self.embed_sum.value / smoothed[:, None]


def restart_dead_codes(codebook, usage, latents, key, threshold: float, errors=None):
  """Replaces codes whose usage EMA fell below `threshold / K` with random encoder outputs.

  With `errors` (each latent's squared distance to its code) the latents are drawn with
  probability proportional to their error, as in k-means++ seeding: codes go where the codebook
  fits worst (on Shapes: the objects, not the background that fills most of every frame).
  Pure function: returns (new_codebook, new_usage, dead_mask). Restarted codes get the uniform
  usage 1/K so they have time to win assignments before being judged again.
  """
  num_codes = codebook.shape[0]
  dead = usage < threshold / num_codes
  if errors is None:
    picks = jax.random.randint(key, (num_codes,), 0, latents.shape[0])
  else:
    picks = jax.random.categorical(key, jnp.log(errors + 1e-12), shape=(num_codes,))
  replacement = jnp.take(latents, picks, axis=0).astype(codebook.dtype)
  new_codebook = jnp.where(dead[:, None], replacement, codebook)
  new_usage = jnp.where(dead, 1.0 / num_codes, usage)
  return new_codebook, new_usage, dead


class FiniteScalarQuantizer(nn.Module):
  """FSQ (Mentzer et al. 2023): bound each channel, round to `levels[i]` values, no codebook.

  Codebook size = prod(levels); indices are the mixed-radix number of the per-channel levels.
  """
  levels: Sequence[int]
  eps: float = 1e-3

  @property
  def codebook_size(self) -> int:
    return int(np.prod(self.levels))

  def _bound(self, z):
    levels = jnp.asarray(self.levels, jnp.float32)
    half_l = (levels - 1) * (1 - self.eps) / 2
    offset = jnp.where(levels % 2 == 0, 0.5, 0.0)
    shift = jnp.arctanh(offset / half_l)
    return jnp.tanh(z + shift) * half_l - offset

  def _half_width(self):
    return jnp.asarray([l // 2 for l in self.levels], jnp.float32)

  def _basis(self):
    return jnp.asarray(np.concatenate([[1], np.cumprod(self.levels[:-1])]), jnp.int32)

  def codes_to_indices(self, codes):
    digits = jnp.round(codes * self._half_width() + self._half_width()).astype(jnp.int32)
    return jnp.sum(digits * self._basis(), axis=-1).astype(jnp.int32)

  def indices_to_embeddings(self, indices):
    levels = jnp.asarray(self.levels, jnp.int32)
    digits = (indices[..., None] // self._basis()) % levels
    return (digits.astype(jnp.float32) - self._half_width()) / self._half_width()

  def __call__(self, z, train: bool = False):
    if z.shape[-1] != len(self.levels):
      raise ValueError(f"FSQ expects {len(self.levels)} channels, got {z.shape[-1]}")
    bounded = self._bound(z.astype(jnp.float32))
    rounded = bounded + jax.lax.stop_gradient(jnp.round(bounded) - bounded)
    quantized = rounded / self._half_width()
    indices = self.codes_to_indices(quantized)
    _, perplexity, usage = codebook_stats(indices, self.codebook_size)
    aux = {"indices": indices, "loss": jnp.zeros((), jnp.float32), "perplexity": perplexity,
           "usage": usage, "latents": quantized.reshape(-1, len(self.levels))}
    return quantized, aux
