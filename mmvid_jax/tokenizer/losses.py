"""Pure loss functions of the VQGAN trainer (reconstruction, GAN, adaptive weight, regularisers)."""

from typing import Callable

import jax
import jax.numpy as jnp


def reconstruction_loss(target, recon, kind: str = "l1"):
  """Mean per-pixel L1 or L2 distance."""
  diff = recon.astype(jnp.float32) - target.astype(jnp.float32)
  if kind == "l1":
    return jnp.mean(jnp.abs(diff))
  if kind == "l2":
    return jnp.mean(diff ** 2)
  raise ValueError(f"unknown reconstruction loss {kind!r}; choose 'l1' or 'l2'")


def discriminator_loss(real_logits, fake_logits, kind: str = "hinge"):
  """taming's hinge `0.5(E relu(1-D(x)) + E relu(1+D(x̂)))` or the non-saturating logistic loss."""
  if kind == "hinge":
    return 0.5 * (jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits)))
  if kind == "non_saturating":
    return 0.5 * (jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits)))
  raise ValueError(f"unknown discriminator loss {kind!r}; choose 'hinge' or 'non_saturating'")


def generator_adversarial_loss(fake_logits, kind: str = "hinge"):
  """-E D(x̂) for hinge (taming), E softplus(-D(x̂)) for non-saturating."""
  if kind == "hinge":
    return -jnp.mean(fake_logits)
  if kind == "non_saturating":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  raise ValueError(f"unknown discriminator loss {kind!r}; choose 'hinge' or 'non_saturating'")


def adaptive_generator_weight(rec_grad, gan_grad, disc_weight: float, max_weight: float = 1e4):
  """VQGAN's λ = ||∇_last L_rec|| / (||∇_last L_G|| + 1e-4), clipped to [0, 1e4], × disc_weight.

  The gradients are those of the two losses with respect to the decoder's last layer; λ is a
  constant for the optimiser (stop_gradient), as in taming's `calculate_adaptive_weight`.
  """
  weight = jnp.linalg.norm(rec_grad) / (jnp.linalg.norm(gan_grad) + 1e-4)
  return jax.lax.stop_gradient(jnp.clip(weight, 0.0, max_weight) * disc_weight)


def r1_penalty(discriminator: Callable, real):
  """E ||∇_x D(x)||² on real images (Mescheder et al. 2018)."""
  grads = jax.grad(lambda x: jnp.sum(discriminator(x)))(real)
  return jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1))


def lecam_regularizer(real_logits, fake_logits, ema_real, ema_fake):
  """LeCAM (Tseng et al. 2021): E relu(D(x) - ema_fake)² + E relu(ema_real - D(x̂))²."""
  return (jnp.mean(jax.nn.relu(real_logits - ema_fake) ** 2)
          + jnp.mean(jax.nn.relu(ema_real - fake_logits) ** 2))
