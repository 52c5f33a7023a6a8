"""Stub `tokens_to_logits` functions for the sampling tests (no trained model needed)."""

import jax
import jax.numpy as jnp

K = 8          # codebook size of the stubs
MASK_ID = K    # [MASK] = K, as in the transformer's Layout


def make_stub(num_tokens: int, seed: int = 0, strength: float = 2.0):
  """tokens (B, N) -> (logits (B, N, K), rel (B,), vid (B,)).

  Logits depend on the position (a fixed random table) and on the visible left neighbour, so
  decoding is input-dependent. REL rewards code 0, VID rewards agreement between neighbours.
  """
  table = strength * jax.random.normal(jax.random.key(seed), (num_tokens, K))

  def tokens_to_logits(tokens):
    visible = tokens != MASK_ID
    left = jnp.roll(jnp.where(visible, tokens, 0), 1, axis=1)
    left_visible = jnp.roll(visible, 1, axis=1)
    logits = table[None] + 1.5 * jax.nn.one_hot(left, K) * left_visible[..., None]
    rel = 8.0 * (jnp.mean((tokens == 0) & visible, axis=1) - 0.2)
    vid = 4.0 * (jnp.mean((tokens == jnp.roll(tokens, 1, axis=1)) & visible, axis=1) - 0.2)
    return logits, rel, vid

  return tokens_to_logits


def random_bundle(num_controls: int = 0, causal: bool = False, seed: int = 0, *,
                  codebook_size: int = 64, text_vocab_size: int = 20, text_len: int = 5,
                  num_frames: int = 3, latent: int = 2):
  """A TransformerBundle with random weights on a tiny layout (matches PseudoTokenizer(16))."""
  from flax import linen as nn
  from mmvid_jax.transformer import api
  from mmvid_jax.transformer import model as model_lib
  from mmvid_jax.transformer.vocab import Layout

  layout = Layout(codebook_size=codebook_size, text_vocab_size=text_vocab_size,
                  text_len=text_len, num_frames=num_frames, latent_height=latent,
                  latent_width=latent, num_controls=num_controls)
  kwargs = dict(width=32, depth=2, num_heads=2, mlp_dim=64, embed_init_std=0.5)
  text = jnp.ones((1, text_len), jnp.int32)
  controls = (jnp.zeros((1, num_controls, latent, latent), jnp.int32) if num_controls else None)
  video = jnp.zeros((1, layout.video_len), jnp.int32)
  key = jax.random.key(seed)
  if causal:
    module = model_lib.ARTVTransformer(layout, **kwargs)
    variables = module.init(key, text, controls, video)
  else:
    module = model_lib.MMVIDTransformer(layout, **kwargs)
    variables = module.init(key, text, controls, video,
                            method=model_lib.MMVIDTransformer.tokens_to_logits)
  params = nn.meta.unbox(variables["params"])
  modes = ("shape_4x4",) * num_controls
  return api.TransformerBundle(params=params, text_encoder=None, layout=layout, model=module,
                               control_modes=modes, objective="artv" if causal else "mmvid")
