"""The transformer trunk shared by MMVID (bidirectional) and ART-V (causal): pre-LN blocks.

Block: `x = x + MHA(LN1(x)); x = x + MLP(LN2(x))`, no final LayerNorm (each head has its own),
LayerNorm eps 1e-5 in fp32, QuickGELU by default (CLIP ViT-B/32, spec §3.4). Parameters carry
logical axis names (embed, heads, kv, mlp, vocab, layers) so the mesh rules can shard them.

Attention takes a boolean `allowed[q, k]` (broadcast over batch and heads). With a KV cache the
block writes its new keys/values at `cache_index` and attends over the whole cache.
"""

from typing import Any

from flax import linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
KVCache = tuple[Array, Array]  # keys, values: (B, S_max, heads, head_dim)

NEG_INF = -1e9  # large negative, never -inf: a fully masked row could otherwise give NaN


def quick_gelu(x: Array) -> Array:
  return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": nn.gelu}


def dense_init(std: float = 0.02):
  return nn.initializers.normal(stddev=std)


def layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=1e-5, dtype=jnp.float32, name=name,
                      scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


class Attention(nn.Module):
  """Multi-head attention; queries may be a subset of rows (`x_q`) of the key/value sequence."""
  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_q: Array, x_kv: Array, allowed: Array,
               cache: KVCache | None = None, cache_index: Array | None = None
               ) -> tuple[Array, KVCache]:
    width = x_q.shape[-1]
    head_dim = width // self.num_heads
    kernel = lambda axes: nn.with_logical_partitioning(dense_init(), axes)
    bias = lambda axes: nn.with_logical_partitioning(nn.initializers.zeros, axes)
    query = nn.DenseGeneral((self.num_heads, head_dim), dtype=self.dtype, name="query",
                            kernel_init=kernel(("embed", "heads", "kv")),
                            bias_init=bias(("heads", "kv")))(x_q)
    key_value = nn.DenseGeneral((2, self.num_heads, head_dim), dtype=self.dtype, name="key_value",
                                kernel_init=kernel(("embed", None, "heads", "kv")),
                                bias_init=bias((None, "heads", "kv")))(x_kv)
    key, value = key_value[..., 0, :, :], key_value[..., 1, :, :]
    if cache is not None:
      start = (0, cache_index, 0, 0)
      key = jax.lax.dynamic_update_slice(cache[0], key.astype(cache[0].dtype), start)
      value = jax.lax.dynamic_update_slice(cache[1], value.astype(cache[1].dtype), start)
    scores = jnp.einsum("bqhd,bkhd->bhqk", query * (head_dim ** -0.5), key,
                        preferred_element_type=jnp.float32)
    scores = jnp.where(allowed, scores, NEG_INF)
    weights = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, value)
    out = nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, name="out",
                          kernel_init=kernel(("heads", "kv", "embed")),
                          bias_init=bias(("embed",)))(out)
    return out, (key, value)


class Mlp(nn.Module):
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    width = x.shape[-1]
    h = nn.Dense(self.mlp_dim, dtype=self.dtype, name="fc1",
                 kernel_init=nn.with_logical_partitioning(dense_init(), ("embed", "mlp")),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)))(x)
    h = ACTIVATIONS[self.activation](h)
    h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
    return nn.Dense(width, dtype=self.dtype, name="fc2",
                    kernel_init=nn.with_logical_partitioning(dense_init(), ("mlp", "embed")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))(h)


class Block(nn.Module):
  """One pre-LN block. `query_rows` (static) restricts the output to those positions."""
  num_heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, allowed: Array, cache: KVCache | None = None,
               cache_index: Array | None = None, deterministic: bool = True,
               query_rows: tuple[int, ...] | None = None) -> tuple[Array, KVCache]:
    normed = layer_norm("ln1")(x).astype(self.dtype)
    if query_rows is not None:
      rows = jnp.asarray(query_rows)
      x, normed_q, allowed = x[:, rows], normed[:, rows], allowed[..., rows, :]
    else:
      normed_q = normed
    attended, kv = Attention(self.num_heads, self.dtype, name="attention")(
        normed_q, normed, allowed, cache, cache_index)
    x = x + nn.Dropout(self.dropout)(attended, deterministic=deterministic)
    mlp = Mlp(self.mlp_dim, self.activation, self.dropout, self.dtype, name="mlp")(
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

  @nn.compact
  def __call__(self, x, cache, allowed, cache_index, deterministic):
    block_cls = nn.remat(Block, static_argnums=(5, 6)) if self.remat else Block
    x, kv = block_cls(self.num_heads, self.mlp_dim, self.activation, self.dropout, self.dtype,
                      name="block")(x, allowed, cache, cache_index, deterministic, None)
    return x, (kv if self.return_kv else None)


class Trunk(nn.Module):
  """`depth` blocks, optionally scanned (params stacked on a `layers` axis) and rematerialised.

  Returns (hidden states, per-layer KV) where the KV is a tuple over layers (unscanned) or
  stacked on a leading layer axis (scanned), and None unless `return_kv` or a cache is given.
  `final_query_rows` (unscanned only) computes the last block only at those positions; with
  `split_passes=(P, F)` the rows are B samples x P passes (pass-minor) and only passes [F:] are
  pruned, so the result is a pair (full (B, F, S, d) or None, pruned (B, P-F, rows, d)).
  """
  depth: int
  num_heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  scan_layers: bool = False
  remat: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, allowed: Array, cache=None, cache_index=None,
               deterministic: bool = True, return_kv: bool = False,
               final_query_rows: tuple[int, ...] | None = None,
               split_passes: tuple[int, int] | None = None):
    keep_kv = return_kv or cache is not None
    if self.scan_layers:
      scanned = nn.scan(
          _ScanBlock, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
          in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast), length=self.depth,
          metadata_params={nn.PARTITION_NAME: "layers"})
      x, kv = scanned(self.num_heads, self.mlp_dim, self.activation, self.dropout, self.dtype,
                      self.remat, keep_kv, name="layers")(x, cache, allowed, cache_index,
                                                          deterministic)
      if final_query_rows is not None:
        x = x[:, jnp.asarray(final_query_rows)]
      return x, kv
    block_cls = nn.remat(Block, static_argnums=(5, 6)) if self.remat else Block
    kvs = []
    for i in range(self.depth):
      block = block_cls(self.num_heads, self.mlp_dim, self.activation, self.dropout, self.dtype,
                        name=f"block_{i}")
      last = i == self.depth - 1
      if last and split_passes is not None:
        return self._split_last_block(block, x, allowed, deterministic, final_query_rows,
                                      split_passes), None
      rows = final_query_rows if last else None
      layer_cache = None if cache is None else cache[i]
      x, kv = block(x, allowed, layer_cache, cache_index, deterministic, rows)
      kvs.append(kv)
    return x, (tuple(kvs) if keep_kv else None)

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

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = layer_norm("ln")(x).astype(self.dtype)
    kernel_axes = ("embed", self.out_axis)
    return nn.Dense(self.features, dtype=self.dtype, name="dense",
                    kernel_init=nn.with_logical_partitioning(dense_init(), kernel_axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                                           (self.out_axis,)))(x).astype(jnp.float32)
