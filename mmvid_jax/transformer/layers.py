"""The transformer trunk shared by MMVID (bidirectional) and ART-V (causal): pre-LN blocks.

Block: `x = x + MHA(LN1(x)); x = x + MLP(LN2(x))`, no final LayerNorm (each head has its own),
LayerNorm eps 1e-5 in fp32, QuickGELU by default (CLIP ViT-B/32, spec §3.4). Parameters carry
logical axis names (embed, heads, kv, mlp, vocab, layers) so the mesh rules can shard them.

Attention takes a boolean `allowed[q, k]` (broadcast over batch and heads). With a KV cache the
block writes its new keys/values at `cache_index` and attends over the whole cache.

`attention` picks how scores, mask and softmax are computed (`config.transformer.attention`):
"xla" is the einsum path (fp32 scores materialised, every backend); "cudnn" is one
`jax.nn.dot_product_attention` call (cuDNN flash attention: no S x S buffers); "auto" takes cuDNN
on a CUDA GPU when the call allows it (bf16/fp16, supported head dim, >= 64 query rows) and the
einsum path otherwise. See `attention_path` for the per-call rule and its fallbacks.
"""

import contextlib
from typing import Any

from absl import logging
from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax.ad_checkpoint import checkpoint_name

from mmvid_jax.errors import ConfigError
from mmvid_jax.transformer import rotary as rotary_lib
from mmvid_jax.transformer import video_conv as video_conv_lib

Array = jax.Array
KVCache = tuple[Array, Array]  # keys, values: (B, S_max, heads, head_dim)

NEG_INF = -1e9  # large negative, never -inf: a fully masked row could otherwise give NaN

ATTENTION_CHOICES = ("auto", "xla", "cudnn")
FUSED_LENGTH_MULTIPLE = 64  # cuDNN flash attention wants sequence lengths padded to this
# "auto" keeps shorter queries (a KV-cache decode step, the 2 pruned rows of the negative passes)
# on the einsum path: their score tensors are small, and padding them to 64 rows costs more.
FUSED_MIN_QUERY_ROWS = 64


def quick_gelu(x: Array) -> Array:
  return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": nn.gelu}


DENSE_INITS = ("lecun", "normal")


def dense_init(scheme: str = "normal"):
  """Kernel initializer of every trunk and head matrix.

  "normal": N(0, 0.02) whatever the width (CLIP / GPT-2; MMVID itself starts from trained CLIP
  weights). "lecun": N(0, 1/fan_in), so q.k logits start with unit spread at any width; at width
  128 this is 4.4x the 0.02 std and the caption binds hundreds of steps sooner
  (docs/transformer.md, "Initialisation").
  """
  if scheme == "lecun":
    return nn.initializers.lecun_normal()
  if scheme == "normal":
    return nn.initializers.normal(stddev=0.02)
  raise ValueError(f"unknown dense_init {scheme!r}; use one of {DENSE_INITS}")


REMAT_POLICIES = ("full", "attention", "dots")
# Attention tensors the "attention" and "dots" remat policies keep for the backward pass.
ATTENTION_SAVE_NAMES = ("attention_query", "attention_key", "attention_value", "attention_out")


def _fused_attention_forward(prim, *_, **__) -> bool:
  """cuDNN's forward kernel: its outputs (attention output, softmax statistics) are what its
  backward kernel reads, so keeping them means the forward kernel never runs twice."""
  return prim.name.startswith("dot_product_attention_fwd")


def remat_policy(name: str):
  """What a rematerialised block keeps for the backward pass (`transformer.remat_policy`).

  "full": only the block's input; the whole block runs again in the backward pass (least memory).
  "attention": also q, k, v and the attention output (and cuDNN's softmax statistics), so
  attention's forward never runs twice; the MLP, the output projection and LayerNorms do.
  "dots": also every matmul output without batch dims (q/k/v, projections, MLP), so only
  elementwise work is recomputed (close to remat off in memory).
  """
  if name == "full":
    return None
  policies = jax.checkpoint_policies
  attention = policies.save_from_both_policies(
      policies.save_only_these_names(*ATTENTION_SAVE_NAMES), _fused_attention_forward)
  if name == "attention":
    return attention
  if name == "dots":
    return policies.save_from_both_policies(attention, policies.dots_with_no_batch_dims_saveable)
  raise ConfigError("transformer.remat_policy", f"unknown remat policy {name!r}",
                    f"use one of {', '.join(REMAT_POLICIES)}")


# Inside `nn.scan` the loop already keeps XLA from merging the recomputation back into the
# forward pass, so CSE prevention (optimization barriers, which also block fusion) is off there.
PREVENT_CSE_IN_SCAN = False


def remat_block(block_cls, policy: str, scanned: bool):
  """`block_cls` rematerialised with `policy` (see `remat_policy`)."""
  return nn.remat(block_cls, static_argnums=(5, 6), policy=remat_policy(policy),
                  prevent_cse=PREVENT_CSE_IN_SCAN if scanned else True)


def layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=1e-5, dtype=jnp.float32, name=name,
                      scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


def einsum_attention(query: Array, key: Array, value: Array, allowed: Array,
                     dtype: Any) -> Array:
  """softmax(q k^T / sqrt(d) masked by `allowed`) v with fp32 scores; (B, Q, H, D) out.

  The gradient is written by hand: the softmax's row term of the backward pass comes from
  dO . O (B x Q x H numbers), as in flash attention, instead of one more pass over the S x S
  probabilities. On CPU, when the score tensors outgrow the caches, the attention runs over a
  few (sample, head) pairs at a time and the backward pass recomputes their probabilities from
  the saved log-sum-exp: the S x S tensors then stay in cache instead of streaming through
  memory (docs/transformer.md, "The attention's backward pass, written by hand"). Elsewhere
  the probabilities are kept for the backward pass.
  """
  allowed = jnp.asarray(allowed, bool)
  allowed = allowed.reshape((1,) * (4 - allowed.ndim) + allowed.shape)
  batch, q_len, heads, _ = query.shape
  pairs = batch * heads
  chunk = _pairs_per_chunk(pairs, q_len, key.shape[1])
  if chunk < pairs and allowed.shape[:2] == (1, 1) and _CHUNKING[0] and _single_cpu_device():
    return _chunked_attention(query, key, value, allowed[0, 0], jnp.dtype(dtype), chunk)
  return _einsum_attention(query, key, value, allowed, jnp.dtype(dtype))


# (sample, head) pairs per step of the chunked CPU attention: their fp32 score blocks fill about
# this many bytes, so with the probabilities and their gradient they stay within the two cores'
# L2 caches (at S = 535, 2-4 pairs ran fastest; docs/transformer.md).
CHUNK_SCORE_BYTES = 5_000_000


_CHUNKING = [True]


@contextlib.contextmanager
def unchunked_attention():
  """Traces inside use the loop-free attention. For counting a program's FLOPs: XLA's cost
  analysis counts a loop's body once, and the chunked backward pass recomputes the scores."""
  _CHUNKING[0] = False
  try:
    yield
  finally:
    _CHUNKING[0] = True


def _single_cpu_device() -> bool:
  """Chunk only on one CPU device: on a mesh the batch is sharded, and a loop over its
  (sample, head) pairs would gather it."""
  return jax.default_backend() == "cpu" and jax.device_count() == 1


def _pairs_per_chunk(pairs: int, q_len: int, kv_len: int) -> int:
  target = max(1, CHUNK_SCORE_BYTES // (4 * q_len * kv_len))
  if target >= pairs:
    return pairs
  return max(d for d in range(1, target + 1) if pairs % d == 0)


def _masked_scores(query: Array, key: Array, allowed: Array, spec: str) -> Array:
  scores = jnp.einsum(spec, query * (query.shape[-1] ** -0.5), key,
                      preferred_element_type=jnp.float32)
  return jnp.where(allowed, scores, NEG_INF)


def _scores_gradient(probs: Array, d_probs: Array, d_out: Array, out: Array, allowed: Array,
                     row_axis_spec: str) -> Array:
  """d scores of a softmax: p * (dp - sum_k p_k dp_k), the sum taken as dO . O (no S x S pass).
  Masked scores get none (a row with no allowed key has uniform p, yet its scores are constants)."""
  row_term = jnp.einsum(row_axis_spec, d_out.astype(jnp.float32), out.astype(jnp.float32))
  return jnp.where(allowed, probs.astype(jnp.float32) * (d_probs - row_term[..., None]), 0.0)


def _einsum_attention_fwd(query, key, value, allowed, dtype):
  scores = _masked_scores(query, key, allowed, "bqhd,bkhd->bhqk")
  probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
  out = jnp.einsum("bhqk,bkhd->bqhd", probs, value)
  return out, (query, key, value, allowed, probs, out)


def _einsum_attention_bwd(dtype, residuals, d_out):
  del dtype
  query, key, value, allowed, probs, out = residuals
  scale = query.shape[-1] ** -0.5
  d_value = jnp.einsum("bhqk,bqhd->bkhd", probs, d_out.astype(probs.dtype))
  d_probs = jnp.einsum("bqhd,bkhd->bhqk", d_out, value, preferred_element_type=jnp.float32)
  d_scores = _scores_gradient(probs, d_probs, d_out, out, allowed, "bqhd,bqhd->bhq")
  d_scores = d_scores.astype(query.dtype)
  d_query = jnp.einsum("bhqk,bkhd->bqhd", d_scores, key) * scale
  d_key = jnp.einsum("bhqk,bqhd->bkhd", d_scores, query) * scale
  return (d_query.astype(query.dtype), d_key.astype(key.dtype), d_value.astype(value.dtype),
          np.zeros(allowed.shape, jax.dtypes.float0))


_einsum_attention = jax.custom_vjp(
    lambda q, k, v, allowed, dtype: _einsum_attention_fwd(q, k, v, allowed, dtype)[0],
    nondiff_argnums=(4,))
_einsum_attention.defvjp(_einsum_attention_fwd, _einsum_attention_bwd)


def _to_chunks(x: Array, chunk: int) -> Array:
  """(B, S, H, D) -> (B*H/chunk, chunk, S, D): (sample, head) pairs, `chunk` per loop step."""
  batch, length, heads, dim = x.shape
  return jnp.transpose(x, (0, 2, 1, 3)).reshape(batch * heads // chunk, chunk, length, dim)


def _from_chunks(x: Array, like: Array) -> Array:
  batch, length, heads, dim = like.shape
  return jnp.transpose(x.reshape(batch, heads, length, dim), (0, 2, 1, 3)).astype(like.dtype)


def _chunked_attention_fwd(query, key, value, allowed, dtype, chunk):
  def step(inputs):
    q, k, v = inputs
    scores = _masked_scores(q, k, allowed, "cqd,ckd->cqk")
    top = jnp.max(scores, axis=-1, keepdims=True)
    exps = jnp.exp(scores - top)
    total = jnp.sum(exps, axis=-1, keepdims=True)
    out = jnp.einsum("cqk,ckd->cqd", (exps / total).astype(dtype), v)
    return out, (top + jnp.log(total))[..., 0]
  chunks = tuple(_to_chunks(x, chunk) for x in (query, key, value))
  out, log_sum_exp = jax.lax.map(step, chunks)
  return _from_chunks(out, query), (query, key, value, out, log_sum_exp, allowed)


def _chunked_attention_bwd(dtype, chunk, residuals, d_out):
  query, key, value, out, log_sum_exp, allowed = residuals
  scale = query.shape[-1] ** -0.5
  def step(inputs):
    q, k, v, o, lse, d_o = inputs
    probs = jnp.exp(_masked_scores(q, k, allowed, "cqd,ckd->cqk") - lse[..., None])
    d_value = jnp.einsum("cqk,cqd->ckd", probs.astype(dtype), d_o.astype(dtype))
    d_probs = jnp.einsum("cqd,ckd->cqk", d_o, v, preferred_element_type=jnp.float32)
    d_scores = _scores_gradient(probs, d_probs, d_o, o, allowed, "cqd,cqd->cq").astype(q.dtype)
    d_query = jnp.einsum("cqk,ckd->cqd", d_scores, k) * scale
    d_key = jnp.einsum("cqk,cqd->ckd", d_scores, q) * scale
    return d_query, d_key, d_value
  chunks = tuple(_to_chunks(x, chunk) for x in (query, key, value))
  grads = jax.lax.map(step, (*chunks, out, log_sum_exp, _to_chunks(d_out, chunk)))
  return (*(_from_chunks(g, x) for g, x in zip(grads, (query, key, value))),
          np.zeros(allowed.shape, jax.dtypes.float0))


_chunked_attention = jax.custom_vjp(
    lambda q, k, v, allowed, dtype, chunk: _chunked_attention_fwd(q, k, v, allowed, dtype,
                                                                  chunk)[0],
    nondiff_argnums=(4, 5))
_chunked_attention.defvjp(_chunked_attention_fwd, _chunked_attention_bwd)


def _fused_attention(query: Array, key: Array, value: Array, allowed: Array, *,
                     masked_rows: tuple[int, ...] | None = None,
                     valid_length: int | None = None,
                     implementation: str = "cudnn") -> Array:
  """The same attention as one `jax.nn.dot_product_attention` call; (B, Q, H, D) out.

  Sequence lengths are padded to a multiple of 64 (cuDNN's requirement).
  `masked_rows=None`: `allowed` goes to the kernel as a mask made 4-D, (B or 1, H or 1, Q, K), as
  the einsum path broadcasts it; padded keys are never attended and padded query rows see the
  real keys (no empty rows), then are sliced off. cuDNN turns a mask into an additive bias that
  every head reads and, in the backward pass, differentiates (a dbias reduction over batch and
  heads), which is slow at S = 4163.
  `masked_rows=(r, ...)` promises that every other query row of `allowed` is all True (MMVID: only
  [ST1] and [VID] are restricted). The kernel then runs mask-free, padding excluded by sequence
  lengths alone, and those few rows are recomputed on the einsum path with their mask.
  `valid_length=n` (with `masked_rows`) says the caller has already padded the keys to a
  multiple of 64 (the trunk pads its sequence once at its entry, see `Trunk`): only the first n
  keys are real, query rows the trunk padded attend them (finite rows, never read), and `allowed`
  must already be padded (False at padded keys).
  `implementation="xla"` runs the same padding and masking with XLA's kernel (CPU tests).
  """
  q_len, kv_len = query.shape[1], key.shape[1]
  q_pad, kv_pad = -q_len % FUSED_LENGTH_MULTIPLE, -kv_len % FUSED_LENGTH_MULTIPLE
  pad = lambda x, n: jnp.pad(x.astype(query.dtype), ((0, 0), (0, n), (0, 0), (0, 0)))
  mask = jnp.asarray(allowed, bool)
  mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
  if valid_length is not None and (masked_rows is None or kv_pad):
    raise ValueError(f"valid_length needs masked_rows and keys already padded to a multiple of "
                     f"{FUSED_LENGTH_MULTIPLE}; got {kv_len} keys")
  if masked_rows is not None:
    batch = query.shape[0]
    kv_valid = kv_len if valid_length is None else valid_length
    lengths = {}
    if q_pad or kv_pad or kv_valid < kv_len:
      lengths = dict(query_seq_lengths=jnp.full((batch,), q_len, jnp.int32),
                     key_value_seq_lengths=jnp.full((batch,), kv_valid, jnp.int32))
    out = jax.nn.dot_product_attention(pad(query, q_pad), pad(key, kv_pad), pad(value, kv_pad),
                                       implementation=implementation, **lengths)[:, :q_len]
    if not masked_rows:
      return out
    rows = jnp.asarray(masked_rows)
    restricted = einsum_attention(query[:, rows], key, value, mask[:, :, rows], query.dtype)
    return out.at[:, rows].set(restricted.astype(out.dtype))
  mask = jnp.broadcast_to(mask, mask.shape[:2] + (q_len, kv_len))
  mask = jnp.pad(mask, ((0, 0), (0, 0), (0, q_pad), (0, 0)), constant_values=True)
  mask = jnp.pad(mask, ((0, 0), (0, 0), (0, 0), (0, kv_pad)), constant_values=False)
  out = jax.nn.dot_product_attention(pad(query, q_pad), pad(key, kv_pad), pad(value, kv_pad),
                                     mask=mask, implementation=implementation)
  return out[:, :q_len]


def _cuda_gpu() -> bool:
  """Whether the default backend is a CUDA GPU (cuDNN exists only there)."""
  device = jax.devices()[0]
  return device.platform == "gpu" and "cuda" in device.client.platform_version.lower()


def _cudnn_supports(dtype: Any, head_dim: int) -> bool:
  """cuDNN flash attention's limits: bf16/fp16 inputs, head dim a multiple of 8 and <= 128
  (<= 256 from Hopper, compute capability 9.0, on)."""
  if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
    return False
  capability = getattr(jax.devices()[0], "compute_capability", "0.0")
  hopper = tuple(int(v) for v in str(capability).split(".")[:2]) >= (9, 0)
  return head_dim % 8 == 0 and head_dim <= (256 if hopper else 128)


def attention_path(attention: str, dtype: Any, head_dim: int, query_rows: int) -> str:
  """Which path one attention call takes: "xla" (einsum) or "cudnn" (fused). Decided at trace
  time from static facts (backend, dtype, shapes), so a compiled step has one fixed path.

  "xla": always the einsum path. "auto": the fused kernel on a CUDA GPU for calls cuDNN supports
  (bf16/fp16, head dim) with >= FUSED_MIN_QUERY_ROWS query rows; einsum otherwise (CPU, TPU,
  fp32, KV-cache decode steps, the 2 pruned rows). "cudnn": the fused kernel for every call it
  supports, short queries and KV-cache steps included; a call it cannot take (no CUDA GPU, fp32
  compute such as sampling with `sample.dtype="float32"`, an odd head dim) falls back to the
  einsum path with a warning, so a model exported with "cudnn" still runs on CPU/TPU.
  """
  if attention not in ATTENTION_CHOICES:
    raise ConfigError("transformer.attention", f"unknown attention {attention!r}",
                      f"use one of {', '.join(ATTENTION_CHOICES)}")
  if attention == "xla":
    return "xla"
  if not (_cuda_gpu() and _cudnn_supports(dtype, head_dim)):
    if attention == "cudnn":
      logging.warning("transformer.attention='cudnn' cannot run here (backend %s, dtype %s, head "
                      "dim %d): this attention call uses the einsum path.", jax.default_backend(),
                      jnp.dtype(dtype).name, head_dim)
    return "xla"
  if attention == "auto" and query_rows < FUSED_MIN_QUERY_ROWS:
    return "xla"
  return "cudnn"


class Attention(nn.Module):
  """Multi-head attention; queries may be a subset of rows (`x_q`) of the key/value sequence."""
  num_heads: int
  dtype: Any = jnp.float32
  attention: str = "auto"  # "auto" | "xla" | "cudnn", see attention_path
  # Query rows (of x_q) whose `allowed` row is not all True; None: unknown, any row may be masked.
  masked_rows: tuple[int, ...] | None = None
  init: str = "normal"  # dense_init scheme
  # Rows from here on are padding the trunk appended for the fused kernel (see Trunk); None: none.
  valid_length: int | None = None

  @nn.compact
  def __call__(self, x_q: Array, x_kv: Array, allowed: Array,
               cache: KVCache | None = None, cache_index: Array | None = None,
               rotary_angles: tuple[Array, Array] | None = None) -> tuple[Array, KVCache]:
    width = x_q.shape[-1]
    head_dim = width // self.num_heads
    kernel = lambda axes: nn.with_logical_partitioning(dense_init(self.init), axes)
    bias = lambda axes: nn.with_logical_partitioning(nn.initializers.zeros, axes)
    query = nn.DenseGeneral((self.num_heads, head_dim), dtype=self.dtype, name="query",
                            kernel_init=kernel(("embed", "heads", "kv")),
                            bias_init=bias(("heads", "kv")))(x_q)
    key_value = nn.DenseGeneral((2, self.num_heads, head_dim), dtype=self.dtype, name="key_value",
                                kernel_init=kernel(("embed", None, "heads", "kv")),
                                bias_init=bias((None, "heads", "kv")))(x_kv)
    key, value = key_value[..., 0, :, :], key_value[..., 1, :, :]
    if rotary_angles is not None:  # (query angles, key angles); the cache keeps rotated keys
      query = rotary_lib.rotate(query, rotary_angles[0])
      key = rotary_lib.rotate(key, rotary_angles[1] if cache is None
                              else jax.lax.dynamic_slice_in_dim(
                                  rotary_angles[1], cache_index, key.shape[1], axis=0))
    query = checkpoint_name(query, "attention_query")
    key = checkpoint_name(key, "attention_key")
    value = checkpoint_name(value, "attention_value")
    if cache is not None:
      start = (0, cache_index, 0, 0)
      key = jax.lax.dynamic_update_slice(cache[0], key.astype(cache[0].dtype), start)
      value = jax.lax.dynamic_update_slice(cache[1], value.astype(cache[1].dtype), start)
    if attention_path(self.attention, query.dtype, head_dim, query.shape[1]) == "cudnn":
      out = _fused_attention(query, key, value, allowed, masked_rows=self.masked_rows,
                             valid_length=self.valid_length)
    else:
      out = einsum_attention(query, key, value, allowed, self.dtype)
    out = checkpoint_name(out, "attention_out")
    out = nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, name="out",
                          kernel_init=kernel(("heads", "kv", "embed")),
                          bias_init=bias(("embed",)))(out)
    return out, (key, value)


class Mlp(nn.Module):
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  dtype: Any = jnp.float32
  init: str = "normal"  # dense_init scheme

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    width = x.shape[-1]
    h = nn.Dense(self.mlp_dim, dtype=self.dtype, name="fc1",
                 kernel_init=nn.with_logical_partitioning(dense_init(self.init), ("embed", "mlp")),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)))(x)
    h = ACTIVATIONS[self.activation](h)
    h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
    return nn.Dense(width, dtype=self.dtype, name="fc2",
                    kernel_init=nn.with_logical_partitioning(dense_init(self.init), ("mlp", "embed")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))(h)


class Block(nn.Module):
  """One pre-LN block. `query_rows` (static) restricts the output to those positions."""
  num_heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  dtype: Any = jnp.float32
  attention: str = "auto"
  masked_rows: tuple[int, ...] | None = None  # see Attention; positions of the full sequence
  init: str = "normal"  # dense_init scheme
  rotary: rotary_lib.RotarySpec | None = None  # 3-D rotary encoding of the video (rotary.py)
  valid_length: int | None = None  # see Attention
  video_conv: video_conv_lib.VideoConvSpec | None = None  # video_conv.py

  @nn.compact
  def __call__(self, x: Array, allowed: Array, cache: KVCache | None = None,
               cache_index: Array | None = None, deterministic: bool = True,
               query_rows: tuple[int, ...] | None = None) -> tuple[Array, KVCache]:
    if self.video_conv is not None:
      if cache is not None:
        raise ValueError("the video convolution needs the whole video; it has no KV-cache mode")
      # The x-axis kernel starts like the block's other kernels: 0.02 under the "normal" scheme.
      last_std = 0.02 if self.init == "normal" else 0.0
      x = x + video_conv_lib.VideoConv(self.video_conv, self.dtype, last_std,
                                       name="video_conv")(x)
    angles = None
    if self.rotary is not None:
      num_keys = x.shape[1] if cache is None else cache[0].shape[1]
      num_queries = x.shape[1] if query_rows is None else len(query_rows)
      angles = rotary_lib.query_key_angles(self.rotary, num_queries, num_keys, query_rows,
                                           cache_index)
    normed = layer_norm("ln1")(x).astype(self.dtype)
    masked_rows = self.masked_rows
    if query_rows is not None:
      rows = jnp.asarray(query_rows)
      x, normed_q, allowed = x[:, rows], normed[:, rows], allowed[..., rows, :]
      if masked_rows is not None:
        masked_rows = tuple(i for i, row in enumerate(query_rows) if row in masked_rows)
    else:
      normed_q = normed
    attend = Attention(self.num_heads, self.dtype, self.attention, masked_rows, self.init,
                       self.valid_length, name="attention")
    attended, kv = attend(normed_q, normed, allowed, cache, cache_index, angles)
    x = x + nn.Dropout(self.dropout)(attended, deterministic=deterministic)
    mlp = Mlp(self.mlp_dim, self.activation, self.dropout, self.dtype, self.init, name="mlp")(
        layer_norm("ln2")(x).astype(self.dtype), deterministic)
    x = x + nn.Dropout(self.dropout)(mlp, deterministic=deterministic)
    return x, kv


class _ScanBlock(nn.Module):
  """Adapter for nn.scan: carry = hidden states, scanned input/output = this layer's cache."""
  num_heads: int
  mlp_dim: int
  activation: str
  dropout: float
  dtype: Any
  remat: bool
  return_kv: bool
  attention: str = "auto"
  masked_rows: tuple[int, ...] | None = None
  init: str = "normal"
  remat_policy: str = "full"
  rotary: rotary_lib.RotarySpec | None = None
  valid_length: int | None = None
  video_conv: video_conv_lib.VideoConvSpec | None = None

  @nn.compact
  def __call__(self, x, cache, allowed, cache_index, deterministic):
    block_cls = remat_block(Block, self.remat_policy, scanned=True) if self.remat else Block
    block = block_cls(self.num_heads, self.mlp_dim, self.activation, self.dropout, self.dtype,
                      self.attention, self.masked_rows, self.init, self.rotary,
                      self.valid_length, self.video_conv, name="block")
    x, kv = block(x, allowed, cache, cache_index, deterministic, None)
    return x, (kv if self.return_kv else None)


def _pad_mask(allowed, padding: int) -> Array:
  """`allowed` with `padding` False rows and key columns appended. A numpy mask (MMVID's layout
  mask) is padded in numpy: XLA would constant-fold a 4224 x 4224 pad for over a second per
  compile, and log that as an error."""
  widths = ((0, 0),) * (jnp.ndim(allowed) - 2) + ((0, padding), (0, padding))
  if isinstance(allowed, jax.core.Tracer):
    return jnp.pad(jnp.asarray(allowed, bool), widths)
  return jnp.asarray(np.pad(np.asarray(allowed, bool), widths))


class Trunk(nn.Module):
  """`depth` blocks, optionally scanned (params stacked on a `layers` axis) and rematerialised.

  Returns (hidden states, per-layer KV) where the KV is a tuple over layers (unscanned) or
  stacked on a leading layer axis (scanned), and None unless `return_kv` or a cache is given.
  `final_query_rows` (unscanned only) computes the last block only at those positions; with
  `split_passes=(P, F)` the rows are B samples x P passes (pass-minor) and only passes [F:] are
  pruned, so the result is a pair (full (B, F, S, d) or None, pruned (B, P-F, rows, d)).

  Where every full-length attention call takes the fused kernel mask-free (`masked_rows` known,
  the cuDNN path chosen, see `entry_padding`), the sequence is padded to a multiple of 64 once
  here and sliced back at the end: the blocks then hand the kernel q, k, v and take its output
  as they are, with no padding and slicing copies per layer (and their gradients). Padded rows
  are never attended (the kernel's key lengths, False in `allowed`) and get no gradient.
  """
  depth: int
  num_heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  scan_layers: bool = False
  remat: bool = False
  dtype: Any = jnp.float32
  attention: str = "auto"
  # Rows whose `allowed` row is not all True, when the caller knows them (MMVID: [ST1], [VID]):
  # the fused attention then needs no mask tensor. None: any row may be masked (ART-V).
  masked_rows: tuple[int, ...] | None = None
  init: str = "normal"  # dense_init scheme of every block
  remat_policy: str = "full"  # with remat: what each block keeps (REMAT_POLICIES)
  rotary: rotary_lib.RotarySpec | None = None  # 3-D rotary encoding of the video (rotary.py)
  video_conv: video_conv_lib.VideoConvSpec | None = None  # per-block video convolution

  @nn.compact
  def __call__(self, x: Array, allowed: Array, cache=None, cache_index=None,
               deterministic: bool = True, return_kv: bool = False,
               final_query_rows: tuple[int, ...] | None = None,
               split_passes: tuple[int, int] | None = None):
    keep_kv = return_kv or cache is not None
    seq_len = x.shape[1]
    padding = self.entry_padding(seq_len, x.shape[-1], keep_kv)
    valid_length = None
    if padding:
      valid_length = seq_len
      x = jnp.pad(x, ((0, 0), (0, padding), (0, 0)))
      allowed = _pad_mask(allowed, padding)
    allowed = jnp.asarray(allowed)
    if self.scan_layers:
      scanned = nn.scan(
          _ScanBlock, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
          in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast), length=self.depth,
          metadata_params={nn.PARTITION_NAME: "layers"})
      layers = scanned(self.num_heads, self.mlp_dim, self.activation, self.dropout, self.dtype,
                       self.remat, keep_kv, self.attention, self.masked_rows, self.init,
                       self.remat_policy, self.rotary, valid_length, self.video_conv,
                       name="layers")
      x, kv = layers(x, cache, allowed, cache_index, deterministic)
      if final_query_rows is not None:
        return x[:, jnp.asarray(final_query_rows)], kv
      return x[:, :seq_len], kv
    block_cls = remat_block(Block, self.remat_policy, scanned=False) if self.remat else Block
    kvs = []
    for i in range(self.depth):
      block = block_cls(self.num_heads, self.mlp_dim, self.activation, self.dropout, self.dtype,
                        self.attention, self.masked_rows, self.init, self.rotary,
                        valid_length, self.video_conv, name=f"block_{i}")
      last = i == self.depth - 1
      if last and split_passes is not None:
        full, pruned = self._split_last_block(block, x, allowed, deterministic, final_query_rows,
                                              split_passes)
        return (None if full is None else full[:, :, :seq_len], pruned), None
      rows = final_query_rows if last else None
      layer_cache = None if cache is None else cache[i]
      x, kv = block(x, allowed, layer_cache, cache_index, deterministic, rows)
      kvs.append(kv)
    if final_query_rows is None:
      x = x[:, :seq_len]
    return x, (tuple(kvs) if keep_kv else None)

  def entry_padding(self, seq_len: int, width: int, keep_kv: bool) -> int:
    """Rows to append at the entry (0: none; each attention call pads for itself if it must).

    Only where the full-length calls take the fused kernel mask-free: `masked_rows` known (MMVID),
    the cuDNN path chosen (`attention_path`). Not with a KV cache or `return_kv` (caches keep S
    rows) nor with the rotary encoding (its angles are laid out for S positions).
    """
    padding = -seq_len % FUSED_LENGTH_MULTIPLE
    if not padding or keep_kv or self.masked_rows is None or self.rotary is not None:
      return 0
    path = attention_path(self.attention, self.dtype, width // self.num_heads, seq_len)
    return padding if path == "cudnn" else 0

  @staticmethod
  def _split_last_block(block, x, allowed, deterministic, rows, split_passes):
    """The same last block on full passes [:F] and on pruned passes [F:] (shared weights)."""
    passes, full_passes = split_passes
    seq, width = x.shape[1], x.shape[2]
    x = x.reshape(-1, passes, seq, width)
    full = None
    if full_passes:
      full, _ = block(x[:, :full_passes].reshape(-1, seq, width), allowed, None, None,
                      deterministic, None)
      full = full.reshape(-1, full_passes, seq, width)
    pruned, _ = block(x[:, full_passes:].reshape(-1, seq, width), allowed, None, None,
                      deterministic, rows)
    return full, pruned.reshape(-1, passes - full_passes, len(rows), width)


class Head(nn.Module):
  """LayerNorm -> Linear, one per output (video codes, [REL], [VID], ART-V text/control)."""
  features: int
  out_axis: str | None = "vocab"
  dtype: Any = jnp.float32
  init: str = "normal"  # dense_init scheme

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = layer_norm("ln")(x).astype(self.dtype)
    kernel_axes = ("embed", self.out_axis)
    return nn.Dense(self.features, dtype=self.dtype, name="dense",
                    kernel_init=nn.with_logical_partitioning(dense_init(self.init), kernel_axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                                           (self.out_axis,)))(x).astype(jnp.float32)
