"""Remat policies: same loss and gradients as no remat; each policy keeps what it says it keeps."""

import contextlib
import io

from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmvid_jax.errors import ConfigError
from mmvid_jax.transformer import layers
from mmvid_jax.transformer import model as model_lib
from mmvid_jax.transformer.model import MMVIDTransformer
from mmvid_jax.transformer.vocab import Layout

LAYOUT = Layout(codebook_size=16, text_vocab_size=10, text_len=5, num_frames=2, latent_height=2,
                latent_width=2)
DIMS = dict(width=32, depth=2, num_heads=2, mlp_dim=64)


def _inputs():
  rng = np.random.default_rng(0)
  text = jnp.asarray(rng.integers(1, 10, (2, LAYOUT.text_len)))
  video = jnp.asarray(rng.integers(0, 16, (2, LAYOUT.video_len)))
  return text, video


def _loss_fn(model, text, video):
  def loss(params):
    logits, rel, vid = model.apply({"params": params}, text, None, video,
                                   method=MMVIDTransformer.tokens_to_logits)
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), video[..., None], axis=-1)
    return -picked.mean() + jnp.mean(rel ** 2) + jnp.mean(vid ** 2)
  return loss


@pytest.mark.parametrize("scan", [False, True])
def test_every_policy_gives_the_loss_and_gradients_of_no_remat(scan):
  text, video = _inputs()
  plain = MMVIDTransformer(LAYOUT, scan_layers=scan, remat=False, **DIMS)
  params = nn.unbox(plain.init(jax.random.key(0), text, None, video,
                               method=MMVIDTransformer.tokens_to_logits)["params"])
  want_loss, want_grads = jax.value_and_grad(_loss_fn(plain, text, video))(params)
  for policy in layers.REMAT_POLICIES:
    model = MMVIDTransformer(LAYOUT, scan_layers=scan, remat=True, remat_policy=policy, **DIMS)
    loss, grads = jax.jit(jax.value_and_grad(_loss_fn(model, text, video)))(params)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    for got, want in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want_grads)):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


class _OneBlock(nn.Module):
  """A Block under a module whose `init` is the usual method (Block's `init` field shadows it)."""

  @nn.compact
  def __call__(self, x, allowed):
    return layers.Block(num_heads=2, mlp_dim=64, init="lecun")(x, allowed)


def _saved_names(policy):
  """Names of the residuals a rematerialised block keeps for its backward pass."""
  model = _OneBlock()
  x = jax.random.normal(jax.random.key(1), (2, 8, 32))
  allowed = jnp.ones((8, 8), bool)
  params = model.init(jax.random.key(0), x, allowed)["params"]

  def block_out(params, x):
    return model.apply({"params": params}, x, allowed)[0].sum()

  rematted = jax.checkpoint(block_out, policy=layers.remat_policy(policy))
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    jax.ad_checkpoint.print_saved_residuals(rematted, params, x)
  return printed.getvalue().splitlines()


def test_policies_keep_what_they_name():
  full, attention, dots = (_saved_names(p) for p in layers.REMAT_POLICIES)
  named = lambda notes, name: any(f"named '{name}'" in note for note in notes)
  for name in layers.ATTENTION_SAVE_NAMES:
    assert not named(full, name)
    assert named(attention, name) and named(dots, name)
  # "dots" also keeps the MLP's matmul outputs; "attention" recomputes them.
  count_dots = lambda notes: sum("dot_general" in note for note in notes)
  assert count_dots(dots) > count_dots(attention)
  assert len(full) < len(attention) < len(dots)


def test_unknown_policy_is_a_config_error():
  config = ml_collections.ConfigDict(dict(width=32, depth=2, num_heads=2, mlp_dim=64,
                                          activation="gelu", dropout=0.0, scan_layers=True,
                                          remat=True, remat_policy="everything"))
  with pytest.raises(ConfigError, match="transformer.remat_policy"):
    model_lib.model_kwargs(config)
  with pytest.raises(ConfigError, match="remat_policy"):
    layers.remat_policy("everything")
