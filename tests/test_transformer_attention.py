"""Fused attention (`config.transformer.attention`) equals the einsum path.

On CPU the fused code path (padding to 64, mask extension, one `jax.nn.dot_product_attention`
call) runs with XLA's kernel (`implementation="xla"`); cuDNN itself needs a GPU. All comparisons
are fp32 with atol 1e-5 (outputs) / 1e-5 relative to the gradient scale (gradients).
"""

import functools
import importlib.util
import os

from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax import configuration
from mmvid_jax.errors import ConfigError
from mmvid_jax.transformer import layers
from mmvid_jax.transformer.model import ARTVTransformer, MMVIDTransformer, make_model
from mmvid_jax.transformer.vocab import Layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = Layout(codebook_size=16, text_vocab_size=10, text_len=5, num_frames=2, latent_height=2,
                latent_width=2, num_controls=1)
DIMS = dict(width=32, depth=2, num_heads=2, mlp_dim=64)
ATOL = 1e-5
ATTENTION_NAMES = ("auto", "xla", "cudnn")
fused_xla = functools.partial(layers._fused_attention, implementation="xla")  # pylint: disable=protected-access


def qkv(batch=2, q_len=LAYOUT.seq_len, kv_len=LAYOUT.seq_len, heads=2, head_dim=8, seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(keys[0], (batch, q_len, heads, head_dim)),
          jax.random.normal(keys[1], (batch, kv_len, heads, head_dim)),
          jax.random.normal(keys[2], (batch, kv_len, heads, head_dim)))


def einsum(q, k, v, allowed):
  return layers.einsum_attention(q, k, v, allowed, jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def output_and_grads(fn, q, k, v, allowed):
  cotangent = jax.random.normal(jax.random.key(7), q.shape)
  loss = lambda *x: jnp.sum(fn(*x, allowed) * cotangent)
  return fn(q, k, v, allowed), jax.grad(loss, argnums=(0, 1, 2))(q, k, v)


def assert_same_output_and_grads(q, k, v, allowed, fn=fused_xla, reference=einsum):
  out, grads = output_and_grads(fn, q, k, v, allowed)
  ref_out, ref_grads = output_and_grads(reference, q, k, v, allowed)
  np.testing.assert_allclose(out, ref_out, atol=ATOL)
  for name, a, b in zip("qkv", grads, ref_grads):
    scale = float(jnp.abs(b).max())
    assert scale > 0, name
    np.testing.assert_allclose(a, b, atol=ATOL * scale, err_msg=f"d{name}")


def test_full_sequence_with_the_mmvid_mask():
  allowed = jnp.asarray(LAYOUT.attention_allowed())
  assert LAYOUT.seq_len % 64 and not bool(allowed.all())  # padding and masking both exercised
  assert_same_output_and_grads(*qkv(), allowed)


def test_mask_free_kernel_with_the_restricted_rows_recomputed():
  # MMVID's mask restricts [ST1] and [VID] only: the kernel runs without a mask tensor.
  allowed = jnp.asarray(LAYOUT.attention_allowed())
  rows = LAYOUT.masked_attention_rows()
  assert rows == (LAYOUT.st1_index, LAYOUT.vid_index)
  fused = functools.partial(fused_xla, masked_rows=rows)
  out, _ = output_and_grads(fused, *qkv(), allowed)
  unmasked, _ = output_and_grads(functools.partial(fused_xla, masked_rows=()), *qkv(), allowed)
  # Without the row fix-up the restricted rows differ (the test can fail), the others do not.
  assert float(jnp.abs(out - unmasked)[:, jnp.asarray(rows)].max()) > 1e-3
  np.testing.assert_allclose(np.delete(np.asarray(out), rows, axis=1),
                             np.delete(np.asarray(unmasked), rows, axis=1), atol=ATOL)
  fused_out, fused_grads = output_and_grads(fused, *qkv(), allowed)
  einsum_out, einsum_grads = output_and_grads(einsum, *qkv(), allowed)
  np.testing.assert_allclose(fused_out, einsum_out, atol=ATOL)
  for a, b in zip(fused_grads, einsum_grads):
    np.testing.assert_allclose(a, b, atol=ATOL * float(jnp.abs(b).max()))


def test_mask_free_kernel_on_a_row_subset():
  # The pruned last block: queries [REL] (unrestricted) and [VID] (restricted, local row 1).
  rows = jnp.asarray([LAYOUT.rel_index, LAYOUT.vid_index])
  q, k, v = qkv()
  allowed = jnp.asarray(LAYOUT.attention_allowed())[rows]
  fused = functools.partial(fused_xla, masked_rows=(1,))
  fused_out, fused_grads = output_and_grads(fused, q[:, rows], k, v, allowed)
  einsum_out, einsum_grads = output_and_grads(einsum, q[:, rows], k, v, allowed)
  np.testing.assert_allclose(fused_out, einsum_out, atol=ATOL)
  for a, b in zip(fused_grads, einsum_grads):
    np.testing.assert_allclose(a, b, atol=ATOL * float(jnp.abs(b).max()))


def pad_rows(x, n, axis=1):
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, n)
  return jnp.pad(x, widths)


def test_valid_length_with_keys_padded_by_the_caller():
  # The trunk pads its sequence once; the kernel then only hears how many keys are real.
  allowed = jnp.asarray(LAYOUT.attention_allowed())
  rows = LAYOUT.masked_attention_rows()
  seq, padding = LAYOUT.seq_len, -LAYOUT.seq_len % 64
  q, k, v = qkv()
  # Padded rows hold noise, not zeros: they must not reach the real rows either way.
  noise = jax.random.normal(jax.random.key(5), (2, padding) + q.shape[2:])
  padded = [jnp.concatenate([x, noise], axis=1) for x in (q, k, v)]
  padded_allowed = pad_rows(pad_rows(allowed, padding, 0), padding, 1)
  fused = functools.partial(fused_xla, masked_rows=rows, valid_length=seq)
  fused_out = fused(*padded, padded_allowed)
  assert fused_out.shape[1] == seq + padding
  assert bool(jnp.isfinite(fused_out).all())  # padded query rows attend the real keys
  np.testing.assert_allclose(fused_out[:, :seq], einsum(q, k, v, allowed), atol=ATOL)
  # Padded keys and values are never attended: the real rows do not depend on them.
  moved = [x.at[:, seq:].add(3.0) for x in padded]
  np.testing.assert_allclose(fused(*moved, padded_allowed)[:, :seq], fused_out[:, :seq],
                             atol=ATOL)
  # Gradients through the real rows (the trunk slices the padding off at its end): the einsum
  # path's at real rows, none at padded keys.
  cotangent = jax.random.normal(jax.random.key(7), q.shape)
  real_rows = lambda fn, *x: jnp.sum(fn(*x)[:, :seq] * cotangent)
  fused_grads = jax.grad(lambda *x: real_rows(fused, *x, padded_allowed), (0, 1, 2))(*padded)
  einsum_grads = jax.grad(lambda *x: real_rows(einsum, *x, allowed), (0, 1, 2))(q, k, v)
  for name, a, b in zip("qkv", fused_grads, einsum_grads):
    np.testing.assert_allclose(a[:, :seq], b, atol=ATOL * float(jnp.abs(b).max()),
                               err_msg=f"d{name}")
    assert not bool(a[:, seq:].any()), f"d{name} at padded rows"
  # The pruned last block: 2 query rows against the padded keys.
  subset = jnp.asarray([LAYOUT.rel_index, LAYOUT.vid_index])
  pruned = functools.partial(fused_xla, masked_rows=(1,), valid_length=seq)
  np.testing.assert_allclose(pruned(padded[0][:, subset], *padded[1:], padded_allowed[subset]),
                             einsum(q[:, subset], k, v, allowed[subset]), atol=ATOL)
  with pytest.raises(ValueError, match="valid_length"):
    fused_xla(q, k, v, allowed, masked_rows=rows, valid_length=seq)  # keys not padded
  with pytest.raises(ValueError, match="valid_length"):
    fused_xla(*padded, padded_allowed, valid_length=seq)  # no masked_rows: the mask path


def test_entry_padding_rule(monkeypatch):
  trunk = layers.Trunk(depth=1, num_heads=2, mlp_dim=64, attention="auto",
                       masked_rows=(1, 2), dtype=jnp.bfloat16)
  pad = lambda t, seq=4163, keep_kv=False: t.entry_padding(seq, 32, keep_kv)
  assert pad(trunk) == 0  # CPU: the einsum path, nothing to pad for
  monkeypatch.setattr(layers, "_cuda_gpu", lambda: True)
  monkeypatch.setattr(layers, "_cudnn_supports", lambda dtype, head_dim: True)
  assert pad(trunk) == 4224 - 4163
  assert pad(trunk, seq=4224) == 0  # already a multiple of 64
  assert pad(trunk, keep_kv=True) == 0  # KV caches keep S rows
  assert pad(trunk.clone(masked_rows=None)) == 0  # a general mask: per-call padding
  assert pad(trunk.clone(attention="xla")) == 0
  spec = layers.rotary_lib.RotarySpec(3, (2, 2, 2), 16)
  assert pad(trunk.clone(rotary=spec)) == 0  # angles laid out for S positions


def test_padded_mask_values_and_no_mask_pad_in_the_program(fused_on_cpu):
  allowed = LAYOUT.attention_allowed()
  pad_mask = layers._pad_mask  # pylint: disable=protected-access
  padded = np.asarray(pad_mask(allowed, 3))
  traced = np.asarray(jax.jit(lambda a: pad_mask(a, 3))(allowed))
  for mask in (padded, traced):
    np.testing.assert_array_equal(mask[:LAYOUT.seq_len, :LAYOUT.seq_len], allowed)
    assert not mask[LAYOUT.seq_len:].any() and not mask[:, LAYOUT.seq_len:].any()
  # The model hands the trunk its numpy mask: no boolean pad for XLA to constant-fold (at
  # S = 4163 that took over a second per compile).
  model = MMVIDTransformer(LAYOUT, attention="cudnn", **DIMS)
  text, controls = jnp.ones((2, 5), jnp.int32), jnp.zeros((2, 1, 2, 2), jnp.int32)
  video = jnp.zeros((2, LAYOUT.video_len), jnp.int32)
  variables = model.init(jax.random.key(0), text, controls, video,
                         method=MMVIDTransformer.tokens_to_logits)
  hlo = jax.jit(lambda v: model.apply(v, text, controls, video,
                                      method=MMVIDTransformer.tokens_to_logits)).lower(
                                          variables).as_text()
  assert fused_on_cpu and set(fused_on_cpu.valid_length) == {LAYOUT.seq_len}
  pads = [line for line in hlo.splitlines() if "stablehlo.pad" in line]
  assert pads  # the hidden states are padded...
  assert not [line for line in pads if "i1>" in line]  # ...not the mask


@pytest.mark.parametrize("mask_shape", [(2, 1), (1, 2)])
def test_full_sequence_with_a_per_batch_or_per_head_mask(mask_shape):
  s = LAYOUT.seq_len
  random = jax.random.bernoulli(jax.random.key(3), 0.6, mask_shape + (s, s))
  allowed = random | jnp.eye(s, dtype=bool)  # every row keeps a key
  assert_same_output_and_grads(*qkv(), allowed)


def test_query_rows_subset():
  # The pruned last block of the negative passes: queries at [REL] and [VID] only.
  rows = jnp.asarray([LAYOUT.rel_index, LAYOUT.vid_index])
  q, k, v = qkv()
  allowed = jnp.asarray(LAYOUT.attention_allowed())[rows]
  assert_same_output_and_grads(q[:, rows], k, v, allowed)


def test_kv_cache_decode_step():
  # ART-V decoding: 7 of 70 cache slots written, the new key at 7, attend over the whole cache.
  max_len, position = 70, 7
  q, k_new, v_new = qkv(q_len=1, kv_len=1, seed=1)
  _, k_old, v_old = qkv(q_len=1, kv_len=max_len, seed=2)
  filled = (jnp.arange(max_len) < position)[None, :, None, None]
  cache = (jnp.where(filled, k_old, 0.0), jnp.where(filled, v_old, 0.0))
  start = (0, position, 0, 0)
  k = jax.lax.dynamic_update_slice(cache[0], k_new, start)
  v = jax.lax.dynamic_update_slice(cache[1], v_new, start)
  allowed = (jnp.arange(max_len) <= position)[None, :]
  assert_same_output_and_grads(q, k, v, allowed)


def test_auto_on_cpu_picks_einsum(monkeypatch):
  assert jax.default_backend() == "cpu"
  for dtype in (jnp.float32, jnp.bfloat16):
    for attention in ATTENTION_NAMES:  # "cudnn" without a CUDA GPU falls back too
      assert layers.attention_path(attention, dtype, 64, 4163) == "xla"
  # The whole model, traced (not compiled) in bf16: no call reaches the fused helper.
  calls = []
  monkeypatch.setattr(layers, "_fused_attention", lambda *a, **k: calls.append(a))
  text, video = jnp.ones((2, 5), jnp.int32), jnp.ones((2, LAYOUT.video_len), jnp.int32)
  controls = jnp.zeros((2, 1, 2, 2), jnp.int32)
  for attention in ("auto", "cudnn"):
    model = MMVIDTransformer(LAYOUT, attention=attention, dtype=jnp.bfloat16, **DIMS)
    out = jax.eval_shape(lambda m=model: m.init_with_output(
        jax.random.key(0), text, controls, video, method=MMVIDTransformer.tokens_to_logits)[0])
    assert out[0].shape == (2, LAYOUT.video_len, 16)
  assert not calls
  with pytest.raises(ConfigError, match="config.transformer.attention: unknown"):
    layers.attention_path("flash", jnp.bfloat16, 64, 4163)


def test_selection_rule_on_a_cuda_gpu(monkeypatch):
  monkeypatch.setattr(layers, "_cuda_gpu", lambda: True)
  path = layers.attention_path
  assert path("auto", jnp.bfloat16, 64, 4163) == "cudnn"
  assert path("auto", jnp.float16, 64, 64) == "cudnn"
  assert path("auto", jnp.float32, 64, 4163) == "xla"    # cuDNN flash attention: bf16/fp16 only
  assert path("auto", jnp.bfloat16, 12, 4163) == "xla"   # head dim not a multiple of 8
  assert path("auto", jnp.bfloat16, 64, 1) == "xla"      # a KV-cache decode step
  assert path("auto", jnp.bfloat16, 64, 2) == "xla"      # the 2 pruned rows
  assert path("cudnn", jnp.bfloat16, 64, 1) == "cudnn"   # explicit: short queries too
  assert path("cudnn", jnp.float32, 64, 4163) == "xla"   # explicit, fp32: per-call fallback
  assert path("xla", jnp.bfloat16, 64, 4163) == "xla"


@pytest.fixture
def fused_on_cpu(monkeypatch):
  """Makes the model take the fused path on CPU in fp32 (XLA's kernel) and counts its calls."""

  class Calls(list):
    """Query shapes of the fused calls; `masked_rows` and `valid_length` hold each call's
    arguments of those names."""

    def __init__(self):
      super().__init__()
      self.masked_rows = []
      self.valid_length = []

    def clear(self):
      super().clear()
      self.masked_rows.clear()
      self.valid_length.clear()

  calls = Calls()

  def fused(*args, **kwargs):
    calls.append(args[0].shape)
    calls.masked_rows.append(kwargs.get("masked_rows"))
    calls.valid_length.append(kwargs.get("valid_length"))
    return fused_xla(*args, **kwargs)

  monkeypatch.setattr(layers, "_cuda_gpu", lambda: True)
  monkeypatch.setattr(layers, "_cudnn_supports", lambda dtype, head_dim: True)
  monkeypatch.setattr(layers, "_fused_attention", fused)
  return calls


@pytest.mark.parametrize("scan_layers", [False, True])
def test_mmvid_model_fused_equals_einsum(fused_on_cpu, scan_layers):
  rng = np.random.default_rng(0)
  text = jnp.asarray(rng.integers(1, 10, (2, 5)))
  controls = jnp.asarray(rng.integers(0, 17, (2, 1, 2, 2)))
  video = jnp.asarray(rng.integers(0, 17, (2, 3, LAYOUT.video_len)))
  # Unscanned, the one block is the split last block: full rows and 2 rows.
  dims = dict(DIMS, depth=1, scan_layers=scan_layers)
  models = {name: MMVIDTransformer(LAYOUT, attention=name, **dims) for name in ("xla", "cudnn")}
  params = nn.unbox(models["xla"].init(jax.random.key(0), text, controls, video[:, 0],
                                       method=MMVIDTransformer.tokens_to_logits)["params"])
  fused_on_cpu.clear()

  def loss(p, name):
    model = models[name]
    cond = model.apply({"params": p}, text, controls, method=MMVIDTransformer.embed_condition)
    cond = jnp.stack([cond, cond[::-1], cond], 1)
    logits, rel, vid = model.apply({"params": p}, cond, video, vocab_passes=1,
                                   prune_last_layer=True)
    return jnp.mean(logits ** 2) + jnp.sum(rel) + jnp.sum(vid ** 2), (logits, rel, vid)

  value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
  (value_x, out_x), grads_x = value_and_grad(params, "xla")
  assert not fused_on_cpu
  (value_c, out_c), grads_c = value_and_grad(params, "cudnn")
  # The trunk padded its sequence once, to 64 rows, and told the kernel the real length.
  padded = 64
  assert LAYOUT.seq_len < padded
  masked = (LAYOUT.st1_index, LAYOUT.vid_index)
  if scan_layers:  # all 6 passes (2 samples x 3) at every row (nn.scan may trace twice)
    assert fused_on_cpu and set(fused_on_cpu) == {(6, padded, 2, 16)}
    assert set(fused_on_cpu.masked_rows) == {masked}
    assert set(fused_on_cpu.valid_length) == {LAYOUT.seq_len}
  else:
    # The vocabulary pass at full rows, the 4 negative passes (2 samples x REL, VID) at [REL]
    # and [VID] only (their keys are the padded sequence).
    assert fused_on_cpu == [(2, padded, 2, 16), (4, 2, 2, 16)]
    # Mask-free kernel: [ST1] and [VID] are the restricted rows; of the pruned rows, [VID] (row 1).
    assert fused_on_cpu.masked_rows == [masked, (1,)]
    assert fused_on_cpu.valid_length == [LAYOUT.seq_len] * 2
  np.testing.assert_allclose(value_c, value_x, rtol=1e-5)
  for a, b in zip(out_c, out_x):
    np.testing.assert_allclose(a, b, atol=ATOL)
  for a, b in zip(jax.tree.leaves(grads_c), jax.tree.leaves(grads_x)):
    np.testing.assert_allclose(a, b, atol=ATOL * max(float(jnp.abs(b).max()), 1.0))


def test_artv_prefill_and_decode_fused_equals_einsum(fused_on_cpu):
  # Scanned layers (the unscanned blocks are covered by the MMVID test above).
  text = jnp.asarray(np.random.default_rng(1).integers(1, 10, (2, 5)))
  controls = jnp.zeros((2, 1, 2, 2), jnp.int32)
  codes = jax.random.randint(jax.random.key(1), (2, LAYOUT.video_len), 0, 16)
  models = {name: ARTVTransformer(LAYOUT, scan_layers=True, attention=name, **DIMS)
            for name in ("xla", "cudnn")}
  variables = models["xla"].init(jax.random.key(0), text, controls, codes)

  @functools.partial(jax.jit, static_argnums=0)
  def prefill_and_decode(name):
    model = models[name]
    logits, cache = model.apply(variables, text, controls, method=ARTVTransformer.prefill)
    steps = [logits]
    for i in range(2):
      logits, cache = model.apply(variables, cache, codes[:, i], jnp.asarray(i),
                                  method=ARTVTransformer.decode_step)
      steps.append(logits)
    return jnp.stack(steps, 1), cache

  results = {name: prefill_and_decode(name) for name in models}
  assert set(fused_on_cpu.masked_rows) == {None}  # causal: the general mask path
  assert fused_on_cpu and all(shape[1] in (1, models["xla"].prefix_len)
                              for shape in fused_on_cpu)
  np.testing.assert_allclose(results["cudnn"][0], results["xla"][0], atol=ATOL)
  for a, b in zip(jax.tree.leaves(results["cudnn"][1]), jax.tree.leaves(results["xla"][1])):
    np.testing.assert_allclose(a, b, atol=ATOL)


def load_config(name, arg=None):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_config_key_is_threaded_and_checked():
  config = load_config("shapes", "tiny")
  assert config.transformer.attention == "auto"
  configuration.validate(config, num_devices=1)
  config.transformer.attention = "cudnn"
  model = make_model(config.transformer, LAYOUT)
  assert model.attention == "cudnn"
  config.transformer.attention = "flash"
  with pytest.raises(ConfigError, match="config.transformer.attention: unknown value 'flash'"):
    configuration.validate(config, num_devices=1)


# The einsum path's hand-written gradient and its chunked CPU form (layers.einsum_attention).

def autodiff_attention(q, k, v, allowed):
  """The attention written plainly, differentiated by JAX: the reference for the hand-written
  backward passes."""
  scores = jnp.einsum("bqhd,bkhd->bhqk", q * q.shape[-1] ** -0.5, k)
  weights = jax.nn.softmax(jnp.where(allowed, scores, layers.NEG_INF), axis=-1)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def assert_matches_autodiff(q, k, v, allowed):
  assert_same_output_and_grads(q, k, v, allowed, fn=einsum, reference=autodiff_attention)


def mmvid_allowed(q_rows=None):
  allowed = jnp.asarray(LAYOUT.attention_allowed())
  return allowed if q_rows is None else allowed[q_rows]


@pytest.mark.parametrize("case", ["shared", "per_batch", "row_subset", "fully_masked_row"])
def test_hand_written_gradient_equals_autodiff(case):
  s = LAYOUT.seq_len
  q, k, v = qkv(batch=3)
  allowed = mmvid_allowed()
  if case == "per_batch":
    allowed = jax.random.bernoulli(jax.random.key(4), 0.5, (3, 1, s, s)) | jnp.eye(s, dtype=bool)
  elif case == "row_subset":
    rows = jnp.asarray([LAYOUT.rel_index, LAYOUT.vid_index, s - 1])
    q, allowed = q[:, rows], allowed[rows]
  elif case == "fully_masked_row":  # a row that sees nothing attends uniformly, like softmax
    allowed = allowed.at[3].set(False)
  assert_matches_autodiff(q, k, v, allowed)


@pytest.fixture
def one_cpu_device(monkeypatch):
  """The chunked path runs on one CPU device; the test process has 8 fake ones (conftest)."""
  assert not layers._single_cpu_device()  # pylint: disable=protected-access
  monkeypatch.setattr(layers, "_single_cpu_device", lambda: True)


def test_pairs_per_chunk_rule(monkeypatch):
  monkeypatch.setattr(layers, "CHUNK_SCORE_BYTES", 4 * 100 * 100 * 3)  # 3 pairs of 100 x 100
  assert layers._pairs_per_chunk(12, 100, 100) == 3  # pylint: disable=protected-access
  assert layers._pairs_per_chunk(8, 100, 100) == 2  # the largest divisor of 8 within 3
  assert layers._pairs_per_chunk(7, 100, 100) == 1
  assert layers._pairs_per_chunk(3, 100, 100) == 3  # all pairs fit: no loop
  assert layers._pairs_per_chunk(4, 400, 400) == 1  # one pair is over the budget: one at a time


def lowered_text(fn, q, k, v, allowed):
  return jax.jit(lambda *x: jax.grad(lambda *y: jnp.sum(fn(*y, allowed)), argnums=(0, 1, 2))(*x)
                 ).lower(q, k, v).as_text()


@pytest.mark.parametrize("pairs_per_step", [1, 2, 3])
@pytest.mark.usefixtures("one_cpu_device")
def test_chunked_cpu_attention_equals_autodiff(monkeypatch, pairs_per_step):
  s = LAYOUT.seq_len
  monkeypatch.setattr(layers, "CHUNK_SCORE_BYTES", 4 * s * s * pairs_per_step)
  q, k, v = qkv(batch=3)  # 6 (sample, head) pairs
  allowed = mmvid_allowed()
  assert "while" in lowered_text(einsum, q, k, v, allowed)  # the chunked path, as a loop
  assert_matches_autodiff(q, k, v, allowed)
  # Per-sample masks and short query sets keep the loop-free path.
  per_batch = jnp.broadcast_to(allowed, (3, 1, s, s))
  assert "while" not in lowered_text(einsum, q, k, v, per_batch)
  assert_matches_autodiff(q, k, v, per_batch)
  with layers.unchunked_attention():
    assert "while" not in lowered_text(einsum, q, k, v, allowed)
  assert "while" in lowered_text(einsum, q, k, v, allowed)  # restored on exit


def test_no_chunking_on_a_mesh(monkeypatch):
  # The test process has 8 CPU devices: the loop-free path, whatever the sizes.
  monkeypatch.setattr(layers, "CHUNK_SCORE_BYTES", 4 * LAYOUT.seq_len ** 2)
  assert jax.device_count() > 1
  assert "while" not in lowered_text(einsum, *qkv(batch=3), mmvid_allowed())


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.usefixtures("one_cpu_device")
def test_bf16_attention_close_to_fp32(monkeypatch, chunked):
  if chunked:
    monkeypatch.setattr(layers, "CHUNK_SCORE_BYTES", 4 * LAYOUT.seq_len ** 2)
  q, k, v = qkv()
  allowed = mmvid_allowed()
  bf16 = lambda *x: layers.einsum_attention(*(y.astype(jnp.bfloat16) for y in x[:3]), x[3],
                                            jnp.bfloat16)
  out, grads = output_and_grads(bf16, q, k, v, allowed)
  ref_out, ref_grads = output_and_grads(autodiff_attention, q, k, v, allowed)
  assert out.dtype == jnp.bfloat16 and all(g.dtype == jnp.float32 for g in grads)
  np.testing.assert_allclose(out.astype(jnp.float32), ref_out, atol=3e-2)
  for a, b in zip(grads, ref_grads):
    np.testing.assert_allclose(a, b, atol=3e-2 * float(jnp.abs(b).max()))


@pytest.mark.parametrize("scan_layers", [False, True])
@pytest.mark.usefixtures("one_cpu_device")
def test_mmvid_model_chunked_equals_unchunked(monkeypatch, scan_layers):
  # The training loss (all 3 passes, pruned last block) and its gradients, with the chunked CPU
  # attention one pair at a time against the loop-free path.
  rng = np.random.default_rng(0)
  text = jnp.asarray(rng.integers(1, 10, (2, 5)))
  controls = jnp.asarray(rng.integers(0, 17, (2, 1, 2, 2)))
  video = jnp.asarray(rng.integers(0, 17, (2, 3, LAYOUT.video_len)))
  model = MMVIDTransformer(LAYOUT, attention="xla", **dict(DIMS, scan_layers=scan_layers))
  params = nn.unbox(model.init(jax.random.key(0), text, controls, video[:, 0],
                               method=MMVIDTransformer.tokens_to_logits)["params"])

  def loss(p):
    cond = model.apply({"params": p}, text, controls, method=MMVIDTransformer.embed_condition)
    cond = jnp.stack([cond, cond[::-1], cond], 1)
    logits, rel, vid = model.apply({"params": p}, cond, video, vocab_passes=1,
                                   prune_last_layer=not scan_layers)
    return jnp.mean(logits ** 2) + jnp.sum(rel) + jnp.sum(vid ** 2)

  monkeypatch.setattr(layers, "CHUNK_SCORE_BYTES", 4 * LAYOUT.seq_len ** 2)
  chunked_fn = jax.jit(jax.value_and_grad(loss))
  assert "while" in chunked_fn.lower(params).as_text()
  value_c, grads_c = chunked_fn(params)
  with layers.unchunked_attention():
    value_u, grads_u = jax.jit(jax.value_and_grad(lambda p: loss(p)))(params)
  np.testing.assert_allclose(value_c, value_u, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(grads_c), jax.tree.leaves(grads_u)):
    np.testing.assert_allclose(a, b, atol=ATOL * max(float(jnp.abs(b).max()), 1.0))
