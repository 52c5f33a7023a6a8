"""The tokenizer's pure loss functions on toy inputs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.tokenizer import losses
from mmvid_jax.tokenizer.train_step import last_layer_grad, sample_frames


def test_reconstruction_losses():
  a, b = jnp.zeros((2, 2)), jnp.array([[1.0, -1.0], [2.0, 0.0]])
  np.testing.assert_allclose(losses.reconstruction_loss(a, b, "l1"), 1.0)
  np.testing.assert_allclose(losses.reconstruction_loss(a, b, "l2"), 1.5)


def test_hinge_and_non_saturating_values():
  real, fake = jnp.array([2.0, 0.0]), jnp.array([-2.0, 0.0])
  np.testing.assert_allclose(losses.discriminator_loss(real, fake, "hinge"), 0.5)
  np.testing.assert_allclose(losses.generator_adversarial_loss(fake, "hinge"), 1.0)
  sp = np.log1p(np.exp(-2.0))
  np.testing.assert_allclose(losses.discriminator_loss(real, fake, "non_saturating"),
                             0.5 * ((sp + np.log(2)) / 2 + (sp + np.log(2)) / 2), rtol=1e-6)
  np.testing.assert_allclose(losses.generator_adversarial_loss(fake, "non_saturating"),
                             (np.log1p(np.exp(2.0)) + np.log(2)) / 2, rtol=1e-6)


def test_adaptive_weight_formula_and_clipping():
  rec_grad, gan_grad = jnp.array([3.0, 4.0]), jnp.array([0.0, 1.0])
  np.testing.assert_allclose(losses.adaptive_generator_weight(rec_grad, gan_grad, 0.8),
                             5.0 / (1.0 + 1e-4) * 0.8, rtol=1e-6)
  np.testing.assert_allclose(losses.adaptive_generator_weight(rec_grad, jnp.zeros(2), 0.5),
                             1e4 * 0.5, rtol=1e-6)


def test_last_layer_grad_matches_autograd():
  h = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  conv = nn.Conv(3, (3, 3))
  params = conv.init(jax.random.key(1), h)["params"]
  weights = jax.random.normal(jax.random.key(2), (2, 6, 6, 3))
  loss_of_output = lambda y: jnp.sum(jnp.sin(y) * weights)
  expected = jax.grad(lambda k: loss_of_output(conv.apply({"params": {**params, "kernel": k}}, h)))(
      params["kernel"])
  y = conv.apply({"params": params}, h)
  got = last_layer_grad(h, params["kernel"], params["bias"], jax.grad(loss_of_output)(y))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_r1_and_lecam():
  # D(x) = sum(2x) per image: gradient 2 everywhere, so ||∇||² = 4 * pixels.
  disc = lambda x: 2.0 * jnp.sum(x, axis=(1, 2, 3))
  np.testing.assert_allclose(losses.r1_penalty(disc, jnp.ones((3, 2, 2, 1))), 16.0)
  value = losses.lecam_regularizer(jnp.array([1.0]), jnp.array([0.0]), ema_real=0.5, ema_fake=0.25)
  np.testing.assert_allclose(value, 0.75 ** 2 + 0.5 ** 2)


def test_sample_frames_picks_frames_of_each_clip():
  video = jnp.arange(2 * 5).reshape(2, 5, 1, 1, 1) * jnp.ones((1, 1, 2, 2, 3), jnp.int32)
  frames = sample_frames(video, 3, jax.random.key(0))
  assert frames.shape == (6, 2, 2, 3)
  ids = np.asarray(frames[:, 0, 0, 0])
  assert np.all(ids[:3] < 5) and np.all(ids[3:] >= 5)
  assert sample_frames(video, 9, jax.random.key(0)).shape == (10, 2, 2, 3)
