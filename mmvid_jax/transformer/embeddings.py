"""Input embeddings (spec §3.2): all summed, no scaling, no input LayerNorm.

- text: `text_emb[id] + text_pos[i]`, padding (id 0) at position i uses the pad id text_vocab + i;
  with a frozen BERT: projected token states (pad positions use a learned per-position vector), or
  one mean-pooled token with no positional embedding (MMVID's RoBERTa option);
- controls: `E[code] + row_k[y] + col_k[x]` with an independent 2-D axial table per slot k;
  an optional [SEP] after each slot gets no positional embedding;
- video: `E[code] + A_t[t] + A_y[y] + A_x[x]` (3-D summed axial), also at [MASK] positions.
"""

from typing import Any

from flax import linen as nn
import jax
import jax.numpy as jnp

from mmvid_jax.transformer.vocab import Layout

Array = jax.Array


def embed_init(std: float):
  return nn.initializers.normal(stddev=std)


def table(module: nn.Module, name: str, shape: tuple[int, ...], axes: tuple, std: float):
  return module.param(name, nn.with_logical_partitioning(embed_init(std), axes), shape)


class TextEmbedding(nn.Module):
  """Caption ids (or frozen BERT states) -> (B, text_tokens, d)."""
  layout: Layout
  width: int
  encoder: str = "learned"  # "learned" | "bert_pooled" | "bert_tokens"
  init_std: float = 0.02
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, text_ids: Array, text_features: Array | None = None) -> Array:
    layout = self.layout
    is_pad = text_ids == 0
    if self.encoder == "bert_pooled":
      # Mean over real tokens; a null caption (all padding) pools to zeros.
      weights = (~is_pad).astype(jnp.float32)[..., None]
      pooled = (text_features * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
      return nn.Dense(self.width, dtype=self.dtype, name="bert_proj",
                      kernel_init=nn.with_logical_partitioning(
                          nn.initializers.lecun_normal(), (None, "embed")))(pooled)[:, None, :]
    positions = table(self, "text_pos", (layout.text_len, self.width), (None, "embed"),
                      self.init_std)
    if self.encoder == "learned":
      pad_ids = layout.text_vocab_size + jnp.arange(layout.text_len, dtype=text_ids.dtype)
      ids = jnp.where(is_pad, pad_ids, text_ids)
      emb = table(self, "text_emb", (layout.text_table_size, self.width), ("vocab", "embed"),
                  self.init_std)
      tokens = jnp.take(emb, ids, axis=0)
    else:  # bert_tokens: every token state projected, pads get a learned per-position vector
      projected = nn.Dense(self.width, dtype=self.dtype, name="bert_proj",
                           kernel_init=nn.with_logical_partitioning(
                               nn.initializers.lecun_normal(), (None, "embed")))(text_features)
      pad = table(self, "text_pad", (layout.text_len, self.width), (None, "embed"), self.init_std)
      tokens = jnp.where(is_pad[..., None], pad[None], projected)
    return (tokens + positions[None]).astype(self.dtype)


class ControlPositions(nn.Module):
  """One independent 2-D summed axial table per control slot -> (n_ctrl, h*w, d)."""
  layout: Layout
  width: int
  init_std: float = 0.02

  @nn.compact
  def __call__(self) -> Array:
    h, w = self.layout.latent_height, self.layout.latent_width
    rows = table(self, "rows", (self.layout.num_controls, h, 1, self.width),
                 (None, None, None, "embed"), self.init_std)
    cols = table(self, "cols", (self.layout.num_controls, 1, w, self.width),
                 (None, None, None, "embed"), self.init_std)
    return (rows + cols).reshape(self.layout.num_controls, h * w, self.width)


POSITION_INITS = ("normal", "sincos")


def sincos_axis_init(axis: int, num_axes: int, std: float):
  """Initializer for one learned axial table: sin/cos of the position along `axis` in the
  axis's own third (of `num_axes`) of the channels, zeros elsewhere, scaled to std `std`.

  The sum of the tables is then a 3-D sin-cos code in which nearby positions start out similar,
  so attention can favour neighbours from the first step instead of discovering locality.
  """
  def init(key, shape, dtype=jnp.float32):
    del key
    length, width = shape[axis], shape[-1]
    band = width // num_axes
    pairs = max(1, band // 2)
    positions = jnp.arange(length, dtype=jnp.float32)[:, None]
    frequencies = 1.0 / (length ** (jnp.arange(pairs, dtype=jnp.float32) / pairs))
    angles = positions * frequencies[None] * jnp.pi / 2
    code = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)[:, :band]
    first = axis * band
    values = jnp.zeros((length, width), jnp.float32).at[:, first:first + code.shape[1]].set(code)
    values = values * (std * jnp.sqrt(float(num_axes)))
    view = [1] * len(shape)
    view[axis], view[-1] = length, width
    return values.reshape(view).astype(dtype)
  return init


class VideoPositions(nn.Module):
  """3-D summed axial table A_t[t] + A_y[y] + A_x[x] -> (N, d), frame-major then raster.

  `position_init` "normal" is MMVID's N(0, std); "sincos" starts the same learned tables from
  a 3-D sin-cos code (see `sincos_axis_init`)."""
  layout: Layout
  width: int
  init_std: float = 0.02
  position_init: str = "normal"

  @nn.compact
  def __call__(self) -> Array:
    if self.position_init not in POSITION_INITS:
      raise ValueError(f"unknown position_init {self.position_init!r}; use one of {POSITION_INITS}")
    t, h, w = self.layout.num_frames, self.layout.latent_height, self.layout.latent_width
    axes = (None, None, None, "embed")

    def axial(name, axis, shape):
      init = (sincos_axis_init(axis, 3, self.init_std) if self.position_init == "sincos"
              else embed_init(self.init_std))
      return self.param(name, nn.with_logical_partitioning(init, axes), shape)

    axis_t = axial("t", 0, (t, 1, 1, self.width))
    axis_y = axial("y", 1, (1, h, 1, self.width))
    axis_x = axial("x", 2, (1, 1, w, self.width))
    return (axis_t + axis_y + axis_x).reshape(t * h * w, self.width)


def embed_controls(layout: Layout, code_table: Array, positions: Array,
                   control_codes: Array) -> Array:
  """Control codes (B, n_ctrl, h, w) or (B, n_ctrl, h*w), [MASK] allowed -> (B, V, d)."""
  batch = control_codes.shape[0]
  codes = control_codes.reshape(batch, layout.num_controls, layout.tokens_per_frame)
  emb = jnp.take(code_table, codes, axis=0) + positions[None]
  if layout.insert_sep:
    sep = jnp.broadcast_to(code_table[layout.sep_id],
                           (batch, layout.num_controls, 1, emb.shape[-1]))
    emb = jnp.concatenate([emb, sep], axis=2)
  return emb.reshape(batch, layout.control_len, emb.shape[-1])
