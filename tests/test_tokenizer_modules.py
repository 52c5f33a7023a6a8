"""Shapes and behaviour of the tokenizer's modules and quantizers (tiny sizes)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmvid_jax.tokenizer import modules
from mmvid_jax.tokenizer.discriminator import NLayerDiscriminator
from mmvid_jax.tokenizer.model import build_tokenizer
from mmvid_jax.tokenizer.quantizers import (FiniteScalarQuantizer, VectorQuantizer,
                                            restart_dead_codes)


def tok_config(**overrides):
  tok = ml_collections.ConfigDict(dict(
      quantizer="vq", codebook_size=16, fsq_levels=(8, 5, 5, 5), embed_dim=4, channels=8,
      channel_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), beta=0.25,
      l2_normalize=False, ema=False, ema_decay=0.9))
  tok.update(overrides)
  return tok


def test_blocks_keep_or_change_shapes():
  x = jnp.ones((2, 8, 8, 4))
  key = jax.random.key(0)
  for block, expected in ((modules.ResBlock(6), (2, 8, 8, 6)), (modules.AttnBlock(), (2, 8, 8, 4)),
                          (modules.Downsample(), (2, 4, 4, 4)), (modules.Upsample(), (2, 16, 16, 4))):
    out = block.apply(block.init(key, x), x)
    assert out.shape == expected, type(block).__name__


@pytest.mark.parametrize("channel_mult,factor", [((1, 2), 2), ((1, 1, 2), 4), ((1, 1, 2, 2), 8)])
def test_encoder_decoder_shapes(channel_mult, factor):
  enc = modules.Encoder(channels=8, channel_mult=channel_mult, num_res_blocks=1,
                        attn_resolutions=(4,), z_channels=5)
  x = jnp.zeros((2, 16, 16, 3))
  z = enc.apply(enc.init(jax.random.key(0), x), x)
  assert z.shape == (2, 16 // factor, 16 // factor, 5)
  dec = modules.Decoder(channels=8, channel_mult=channel_mult, num_res_blocks=1, attn_resolutions=(4,))
  h = dec.apply(dec.init(jax.random.key(1), z), z)
  assert h.shape == (2, 16, 16, 8)


def test_discriminator_patch_logits():
  disc = NLayerDiscriminator(ndf=8, num_layers=3)
  x = jnp.zeros((2, 32, 32, 3))
  assert disc.apply(disc.init(jax.random.key(0), x), x).shape == (2, 2, 2, 1)


@pytest.mark.parametrize("quantizer,codes", [("vq", 16), ("fsq", 1000)])
def test_vqgan_video_shapes(quantizer, codes):
  model = build_tokenizer(tok_config(quantizer=quantizer))
  video = jax.random.uniform(jax.random.key(0), (2, 3, 16, 16, 3), minval=-1, maxval=1)
  variables = model.init(jax.random.key(1), video)
  recon, aux = model.apply(variables, video)
  assert recon.shape == video.shape
  assert aux["indices"].shape == (2, 3, 8, 8) and aux["indices"].dtype == jnp.int32
  assert model.codebook_size == codes
  assert int(aux["indices"].max()) < codes and int(aux["indices"].min()) >= 0
  decoded = model.apply(variables, aux["indices"], method=model.decode_indices)
  np.testing.assert_allclose(decoded, recon, atol=1e-4)


@pytest.mark.parametrize("quantizer", ["vq", "fsq"])
def test_straight_through_gradients_reach_the_encoder(quantizer):
  model = build_tokenizer(tok_config(quantizer=quantizer))
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  variables = model.init(jax.random.key(1), x)

  def loss(params):
    recon, aux = model.apply({**variables, "params": params}, x)
    return jnp.mean((recon - x) ** 2) + aux["loss"]

  grads = jax.grad(loss)(variables["params"])
  encoder_norm = sum(float(jnp.sum(g ** 2)) for g in jax.tree_util.tree_leaves(grads["encoder"]))
  assert encoder_norm > 0


def test_vq_picks_nearest_code_and_legacy_loss():
  vq = VectorQuantizer(codebook_size=3, embed_dim=2, beta=0.25)
  codebook = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  variables = {"params": {"codebook": codebook},
               "vq_stats": {"usage": jnp.full((3,), 1 / 3)}}
  z = jnp.array([[[[0.9, 0.1], [0.1, 0.8]]]])  # (1, 1, 2, 2)
  quantized, aux = vq.apply(variables, z)
  assert aux["indices"].tolist() == [[[1, 2]]]
  np.testing.assert_allclose(quantized, [[[[1.0, 0.0], [0.0, 1.0]]]], atol=1e-6)
  mse = float(jnp.mean((z - quantized) ** 2))
  np.testing.assert_allclose(float(aux["loss"]), 1.25 * mse, rtol=1e-5)


def test_vq_ema_update_moves_codes_toward_assigned_latents():
  vq = VectorQuantizer(codebook_size=4, embed_dim=2, ema=True, ema_decay=0.5)
  z = jnp.tile(jnp.array([3.0, -2.0]), (1, 4, 4, 1))
  variables = vq.init(jax.random.key(0), z)
  before = variables["vq_ema"]["codebook"]
  (_, aux), updated = vq.apply(variables, z, train=True, mutable=["vq_ema", "vq_stats"])
  chosen = int(aux["indices"][0, 0, 0])
  after = updated["vq_ema"]["codebook"]
  target = jnp.array([3.0, -2.0])
  assert float(jnp.linalg.norm(after[chosen] - target)) < float(jnp.linalg.norm(before[chosen] - target))
  assert float(updated["vq_stats"]["usage"][chosen]) > float(variables["vq_stats"]["usage"][chosen])
  assert "codebook" not in variables.get("params", {})


def test_dead_code_restart_replaces_only_unused_codes():
  codebook = jnp.zeros((4, 2))
  usage = jnp.array([0.5, 0.0, 0.5, 0.001])
  latents = jnp.array([[7.0, 7.0], [8.0, 8.0]])
  new, new_usage, dead = restart_dead_codes(codebook, usage, latents, jax.random.key(0), 0.03)
  assert dead.tolist() == [False, True, False, True]
  assert np.all(np.asarray(new[0]) == 0) and np.all(np.asarray(new[2]) == 0)
  for i in (1, 3):
    assert any(np.allclose(new[i], row) for row in np.asarray(latents))
  np.testing.assert_allclose(new_usage[1], 0.25)


def test_fsq_indices_round_trip_exactly():
  fsq = FiniteScalarQuantizer(levels=(8, 5, 5, 5))
  assert fsq.codebook_size == 1000
  indices = jnp.arange(1000, dtype=jnp.int32)
  codes = fsq.apply({}, indices, method=fsq.indices_to_embeddings)
  assert codes.shape == (1000, 4)
  assert np.asarray(fsq.apply({}, codes, method=fsq.codes_to_indices)).tolist() == list(range(1000))
  # Quantising the codes again is the identity (they are already on the grid) ...
  z = jax.random.normal(jax.random.key(0), (2, 4, 4, 4)) * 3
  quantized, aux = fsq.apply({}, z)
  again = fsq.apply({}, aux["indices"], method=fsq.indices_to_embeddings)
  np.testing.assert_allclose(again, quantized, atol=1e-6)
  # ... and every level of every channel is reachable.
  assert len(np.unique(np.asarray(codes[:, 0]))) == 8 and len(np.unique(np.asarray(codes[:, 1]))) == 5


def test_dead_code_restart_by_error_picks_badly_fitted_latents():
  codebook = jnp.zeros((8, 2))
  usage = jnp.zeros((8,))
  latents = jnp.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
  errors = jnp.array([0.0, 0.0, 50.0])  # only the last latent is badly represented
  new, _, dead = restart_dead_codes(codebook, usage, latents, jax.random.key(3), 0.03, errors)
  assert bool(jnp.all(dead))
  np.testing.assert_allclose(new, jnp.tile(jnp.array([[5.0, 5.0]]), (8, 1)))


def test_local_encoder_latents_ignore_content_outside_their_receptive_field():
  """A bright square in one corner must not move the far corner's latent with the local
  encoder (per-position norm, no attention); taming's global encoder lets it leak everywhere."""
  image = -jnp.ones((1, 64, 64, 3))
  spot = image.at[:, :6, :6, :].set(1.0)
  far = (slice(None), slice(-2, None), slice(-2, None))  # latents far outside the square's reach
  moved = {}
  for context in ("patch", "local", "global"):
    enc = modules.Encoder(channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(),
                          z_channels=4, context=context)
    variables = enc.init(jax.random.key(0), image)
    base, with_spot = enc.apply(variables, image), enc.apply(variables, spot)
    moved[context] = float(jnp.abs(base[far] - with_spot[far]).max())
    assert float(jnp.abs(base[:, :1, :1] - with_spot[:, :1, :1]).max()) > 1e-3, context
  assert moved["local"] == 0.0 and moved["patch"] == 0.0
  assert moved["global"] > 1e-4


def test_patch_encoder_sees_only_its_own_patch():
  """Equal patches get equal latents whatever their neighbours hold."""
  enc = modules.Encoder(channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(),
                        z_channels=4, context="patch")
  image = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3), minval=-1, maxval=1)
  variables = enc.init(jax.random.key(1), image)
  changed = image.at[:, 4:8, 4:8, :].set(1.0)  # exactly latent (1, 1) of the 4x4 grid
  diff = jnp.abs(enc.apply(variables, image) - enc.apply(variables, changed)).max(axis=-1)[0]
  assert float(diff[1, 1]) > 1e-4
  assert float(diff.at[1, 1].set(0.0).max()) == 0.0
  tiled = jnp.tile(image[:, :4, :4], (1, 4, 4, 1))  # one patch repeated everywhere
  z = enc.apply(variables, tiled)[0]
  np.testing.assert_allclose(z, jnp.broadcast_to(z[0, 0], z.shape), atol=1e-6)


def test_local_encoder_model_round_trips_and_rejects_unknown_context():
  model = build_tokenizer(tok_config(encoder_context="local", attn_resolutions=()))
  video = jax.random.uniform(jax.random.key(0), (1, 2, 16, 16, 3), minval=-1, maxval=1)
  variables = model.init(jax.random.key(1), video)
  assert "MidBlock_0" not in variables["params"]["encoder"]
  recon, aux = model.apply(variables, video)
  assert recon.shape == video.shape and aux["indices"].shape == (1, 2, 8, 8)
  enc = modules.Encoder(channels=8, channel_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                        z_channels=4, context="nearby")
  with pytest.raises(ValueError, match="encoder context"):
    enc.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
