"""bf16 compute (`transformer.compute_dtype`): float32 parameters and optimizer state, bfloat16
matmuls and activations, and a loss within 2% (relative) of the float32 step on a tiny config."""

from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmvid_jax.errors import ConfigError
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
from mmvid_jax.transformer import train_step as step_lib
from mmvid_jax.transformer import trainer
from mmvid_jax.transformer.vocab import Layout

TOKENIZER = PseudoTokenizer(image_size=16, patch_size=4, levels=3)
LAYOUT = Layout(TOKENIZER.codebook_size, 12, 4, 2, 4, 4)
BATCH = 4
LOSS_RTOL = 2e-2  # bf16 has an 8-bit mantissa; LayerNorm, softmax and losses stay in fp32.


def tr_config(**overrides):
  tr = ml_collections.ConfigDict(dict(
      width=32, depth=2, num_heads=2, mlp_dim=64, activation="quick_gelu", dropout=0.0,
      scan_layers=False, remat=False, text_encoder="learned", embed_init_std=0.02, controls=(),
      mask_ratio_schedule="mmvid", msm_strategy_prob=(0.7, 0.1, 0.1, 0.1),
      msm_bernoulli_keep=(0.2, 0.2), vid_strategy_prob=(0.25, 0.25, 0.25, 0.25), beta_msm=7.0,
      beta_rel=0.5, beta_vid=0.5, lr_schedule="constant", learning_rate=1e-3, warmup_steps=1,
      min_learning_rate=1e-6, grad_clip_norm=1.0, compute_dtype="float32"))
  tr.update(overrides)
  return tr


def batch():
  rng = np.random.default_rng(0)
  text = rng.integers(1, 12, (BATCH, 4)).astype(np.int32)
  text[:, 3:] = 0
  return {"video": jnp.asarray(rng.integers(0, 256, (BATCH, 2, 16, 16, 3), dtype=np.uint8)),
          "text_ids": jnp.asarray(text)}


def two_steps(tr):
  model = trainer.training_model(tr, LAYOUT)
  tx = step_lib.build_optimizer(tr, 100)
  init_fn = trainer.make_init_fn(model, LAYOUT, tx, None)
  state = jax.jit(lambda k: nn.meta.unbox(init_fn(k)))(jax.random.key(0))
  step = jax.jit(step_lib.make_train_step(model, LAYOUT, step_lib.settings_from_config(tr),
                                          jax.random.key(1)))
  losses = []
  for _ in range(2):
    state, metrics = step(state, batch(), (TOKENIZER, None))
    losses.append(float(metrics["loss"]))
  return model, state, np.array(losses)


def test_bf16_loss_matches_fp32_and_parameters_stay_fp32():
  model_32, state_32, losses_32 = two_steps(tr_config())
  model_16, state_16, losses_16 = two_steps(tr_config(compute_dtype="bfloat16"))
  assert model_32.dtype == jnp.float32 and model_16.dtype == jnp.bfloat16
  np.testing.assert_allclose(losses_16, losses_32, rtol=LOSS_RTOL)
  assert not np.allclose(losses_16, losses_32, rtol=1e-6)  # bf16 really computed something else.
  for tree in (state_16.params, state_16.opt_state):
    dtypes = {leaf.dtype for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype,
                                                                             jnp.floating)}
    assert dtypes == {jnp.dtype(jnp.float32)}


def test_bf16_activations_inside_the_trunk():
  model = trainer.training_model(tr_config(compute_dtype="bfloat16"), LAYOUT)
  text = jnp.ones((1, LAYOUT.text_len), jnp.int32)
  video = jnp.zeros((1, LAYOUT.video_len), jnp.int32)
  params = jax.jit(lambda k: model.init(k, text, None, video,
                                        method=model.tokens_to_logits))(jax.random.key(0))
  condition = model.apply(params, text, None, None, method=model.embed_condition)
  logits, rel, _ = model.apply(params, condition, video)
  assert condition.dtype == jnp.bfloat16  # activations entering the trunk
  assert logits.dtype == jnp.float32 and rel.dtype == jnp.float32  # heads hand fp32 to losses


def test_unknown_compute_dtype_is_a_config_error():
  with pytest.raises(ConfigError, match="compute_dtype"):
    trainer.training_model(tr_config(compute_dtype="float16"), LAYOUT)
