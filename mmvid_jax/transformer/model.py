"""The MMVID bidirectional transformer (spec §3) and the ART-V causal baseline (§5.6).

MMVID: `[REL] text controls [ST1] [VID] video` -> video logits over the K codes, a [REL] logit and
a [VID] logit. The sequence is built in two halves so that decoders and the trainer can reuse the
condition block: `embed_condition` ([REL] + text + controls) and `embed_video` ([ST1] + [VID] +
video); `__call__` joins them and runs the trunk. The vocabulary head is computed only for the
passes that need it (or skipped), since the REL/VID negative passes need only the [REL]/[VID]
logits.

ART-V: `<bos> text controls video` with a causal mask, teacher forcing, and per-position-type
heads (text positions predict text ids, control positions control codes, video positions the K
codes), which equals MMVID's block-diagonal logit mask without computing the masked blocks.
`prefill` + `decode_step` give one-token-at-a-time decoding with a KV cache.
"""

from typing import Any

from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.transformer import embeddings as emb_lib
from mmvid_jax.transformer import rotary as rotary_lib
from mmvid_jax.transformer import video_conv as video_conv_lib
from mmvid_jax.errors import ConfigError
from mmvid_jax.transformer.layers import DENSE_INITS, Head, Trunk
from mmvid_jax.transformer.layers import remat_policy as policy_from_name
from mmvid_jax.transformer.vocab import NUM_SPECIAL, ST1_ID, VID_ID, REL_ID, Layout

Array = jax.Array


class MMVIDTransformer(nn.Module):
  layout: Layout
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  scan_layers: bool = False
  remat: bool = False
  text_encoder: str = "learned"
  separate_control_embedding: bool = False
  embed_init_std: float = 0.02
  position_init: str = "normal"  # video axial tables: "normal" (MMVID) | "sincos"
  dtype: Any = jnp.float32
  attention: str = "auto"  # "auto" | "xla" | "cudnn" (layers.attention_path)
  dense_init: str = "normal"  # trunk and head kernels: "normal" (N(0, 0.02)) | "lecun"
  remat_policy: str = "full"  # with remat: what each block keeps (layers.REMAT_POLICIES)
  rotary: str = "none"  # "video_3d": 3-D rotary encoding of video queries/keys (rotary.py)
  # Not in MMVID: every video token's input also gets a projection of the mean text embedding,
  # a direct conditioning path beside attention (docs/transformer.md, "Text summary").
  text_summary: bool = False
  # Not in MMVID: kernel size of a depthwise 3-D convolution over the video at the start of
  # every block, 0 = off (video_conv.py; docs/transformer.md, "Video convolution").
  video_conv: int = 0

  def setup(self):
    layout, width, std = self.layout, self.width, self.embed_init_std
    axes = nn.with_logical_partitioning(emb_lib.embed_init(std), ("vocab", "embed"))
    self.special_emb = self.param("special_emb", axes, (NUM_SPECIAL, width))
    # MMVID indexes a second "position" table with the special id (a redundant vector).
    self.special_pos_emb = self.param("special_pos_emb", axes, (NUM_SPECIAL, width))
    self.text = emb_lib.TextEmbedding(layout, width, self.text_encoder, std, self.dtype)
    self.video_emb = self.param("video_emb", axes, (layout.video_vocab_size, width))
    if layout.num_controls:
      if self.separate_control_embedding:
        self.control_emb = self.param("control_emb", axes, (layout.video_vocab_size, width))
      self.control_positions = emb_lib.ControlPositions(layout, width, std)
    self.video_positions = emb_lib.VideoPositions(layout, width, std, self.position_init)
    if self.text_summary:
      self.text_summary_proj = nn.Dense(
          width, dtype=self.dtype, name="text_summary",
          kernel_init=nn.with_logical_partitioning(nn.initializers.normal(std), (None, "embed")),
          bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))
    self.trunk = Trunk(self.depth, self.num_heads, self.mlp_dim, self.activation, self.dropout,
                       self.scan_layers, self.remat, self.dtype, self.attention,
                       masked_rows=layout.masked_attention_rows(), init=self.dense_init,
                       remat_policy=self.remat_policy,
                       rotary=_rotary_spec(self.rotary, layout, layout.video_slice.start,
                                           self.width // self.num_heads),
                       video_conv=_video_conv_spec(self.video_conv, layout))
    self.video_head = Head(layout.codebook_size, "vocab", self.dtype, self.dense_init)
    self.rel_head = Head(1, None, self.dtype, self.dense_init)
    self.vid_head = Head(1, None, self.dtype, self.dense_init)

  def _special(self, token_id: int) -> Array:
    return self.special_emb[token_id] + self.special_pos_emb[token_id]

  def embed_condition(self, text_ids: Array, control_codes: Array | None = None,
                      text_features: Array | None = None) -> Array:
    """[REL] + text + controls -> (B, condition_len, d). Controls may hold [MASK] (erased)."""
    batch = text_ids.shape[0]
    parts = [jnp.broadcast_to(self._special(REL_ID), (batch, 1, self.width)),
             self.text(text_ids, text_features)]
    if self.layout.num_controls:
      table = self.control_emb if self.separate_control_embedding else self.video_emb
      parts.append(emb_lib.embed_controls(self.layout, table, self.control_positions(),
                                          control_codes))
    return jnp.concatenate(parts, axis=1).astype(self.dtype)

  def embed_video(self, video_tokens: Array) -> Array:
    """[ST1] + [VID] + video tokens (B, N) with [MASK] -> (B, 2 + N, d)."""
    batch = video_tokens.shape[0]
    specials = jnp.stack([self._special(ST1_ID), self._special(VID_ID)])
    video = jnp.take(self.video_emb, video_tokens, axis=0) + self.video_positions()[None]
    return jnp.concatenate([jnp.broadcast_to(specials, (batch, 2, self.width)), video],
                           axis=1).astype(self.dtype)

  def __call__(self, condition: Array, video_tokens: Array, vocab_passes: int | None = None,
               deterministic: bool = True, prune_last_layer: bool = False):
    """Joins the condition embedding and the video, runs the trunk, applies the heads.

    Inputs are one pass, condition (B, C, d) and video (B, N), or several passes per sample,
    (B, P, C, d) and (B, P, N): the P sequences of a sample stay next to each other, so a batch
    sharded over devices needs no data movement.
    vocab_passes: the video head runs on passes [:vocab_passes] only (None = all, 0 = none).
    prune_last_layer: passes that do not need the video head compute the last block only at
      [REL] and [VID] (unscanned trunks only; the result is identical, with fewer FLOPs).
    Returns (logits (B, [P,] N, K) or None, rel (B, [P]), vid (B, [P])).
    """
    layout = self.layout
    single = video_tokens.ndim == 2
    if single:
      condition, video_tokens = condition[:, None], video_tokens[:, None]
    batch, passes = video_tokens.shape[:2]
    condition = condition.reshape((batch * passes,) + condition.shape[2:])
    video = self.embed_video(video_tokens.reshape(batch * passes, -1))
    if self.text_summary:
      # Mean of the text positions ([REL] excluded, pads included: they encode the length).
      text = condition[:, layout.text_slice].astype(jnp.float32).mean(axis=1)
      summary = self.text_summary_proj(text.astype(self.dtype))
      video = video.at[:, 2:].add(summary[:, None].astype(video.dtype))  # not [ST1], [VID]
    x = jnp.concatenate([condition, video], axis=1)
    allowed = layout.attention_allowed()  # numpy: the trunk pads it without constant folding
    vocab_passes = passes if vocab_passes is None else vocab_passes
    if prune_last_layer and vocab_passes < passes and not self.scan_layers:
      # Passes without the video head need the last block only at [REL] and [VID].
      (full, pruned), _ = self.trunk(x, allowed, deterministic=deterministic,
                                     final_query_rows=(layout.rel_index, layout.vid_index),
                                     split_passes=(passes, vocab_passes))
      rel_state, vid_state = pruned[:, :, 0], pruned[:, :, 1]
      logits = None
      if full is not None:
        rel_state = jnp.concatenate([full[:, :, layout.rel_index], rel_state], axis=1)
        vid_state = jnp.concatenate([full[:, :, layout.vid_index], vid_state], axis=1)
        logits = self.video_head(full[:, :, layout.video_slice])
    else:
      h, _ = self.trunk(x, allowed, deterministic=deterministic)
      h = h.reshape((batch, passes) + h.shape[1:])
      rel_state, vid_state = h[:, :, layout.rel_index], h[:, :, layout.vid_index]
      logits = (self.video_head(h[:, :vocab_passes, layout.video_slice]) if vocab_passes
                else None)
    rel = self.rel_head(rel_state)[..., 0]
    vid = self.vid_head(vid_state)[..., 0]
    if single:
      logits = None if logits is None else logits[:, 0]
      rel, vid = rel[:, 0], vid[:, 0]
    return logits, rel, vid

  def tokens_to_logits(self, text_ids: Array, control_codes: Array | None, video_tokens: Array,
                       text_features: Array | None = None):
    return self(self.embed_condition(text_ids, control_codes, text_features), video_tokens)


class ARTVTransformer(nn.Module):
  """Causal baseline: `<bos> + text + controls + video`, next-token prediction, KV cache."""
  layout: Layout
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  dropout: float = 0.0
  scan_layers: bool = False
  remat: bool = False
  embed_init_std: float = 0.02
  position_init: str = "normal"  # video axial tables: "normal" (MMVID) | "sincos"
  dtype: Any = jnp.float32
  attention: str = "auto"  # "auto" | "xla" | "cudnn" (layers.attention_path)
  dense_init: str = "normal"  # trunk and head kernels: "normal" (N(0, 0.02)) | "lecun"
  remat_policy: str = "full"  # with remat: what each block keeps (layers.REMAT_POLICIES)
  rotary: str = "none"  # "video_3d": 3-D rotary encoding of video queries/keys (rotary.py)

  def setup(self):
    layout, width, std = self.layout, self.width, self.embed_init_std
    axes = nn.with_logical_partitioning(emb_lib.embed_init(std), ("vocab", "embed"))
    self.bos_emb = self.param("bos_emb", axes, (1, width))
    self.text = emb_lib.TextEmbedding(layout, width, "learned", std, self.dtype)
    self.video_emb = self.param("video_emb", axes, (layout.video_vocab_size, width))
    if layout.num_controls:
      self.control_emb = self.param("control_emb", axes, (layout.video_vocab_size, width))
      self.control_positions = emb_lib.ControlPositions(layout, width, std)
    self.video_positions = emb_lib.VideoPositions(layout, width, std, self.position_init)
    self.trunk = Trunk(self.depth, self.num_heads, self.mlp_dim, self.activation, self.dropout,
                       self.scan_layers, self.remat, self.dtype, self.attention,
                       init=self.dense_init, remat_policy=self.remat_policy,
                       rotary=_rotary_spec(self.rotary, layout, self.prefix_len,
                                           self.width // self.num_heads))
    self.text_head = Head(layout.text_table_size, "vocab", self.dtype, self.dense_init)
    if layout.num_controls:
      self.control_head = Head(layout.video_vocab_size, "vocab", self.dtype, self.dense_init)
    self.video_head = Head(layout.codebook_size, "vocab", self.dtype, self.dense_init)

  @property
  def prefix_len(self) -> int:
    """<bos> + text + controls."""
    return 1 + self.layout.text_len + self.layout.control_len

  @property
  def max_len(self) -> int:
    """Teacher-forcing input length (the last video token is never an input)."""
    return self.prefix_len + self.layout.video_len - 1

  def embed_prefix(self, text_ids: Array, control_codes: Array | None = None) -> Array:
    batch = text_ids.shape[0]
    parts = [jnp.broadcast_to(self.bos_emb, (batch, 1, self.width)), self.text(text_ids)]
    if self.layout.num_controls:
      parts.append(emb_lib.embed_controls(self.layout, self.control_emb,
                                          self.control_positions(), control_codes))
    return jnp.concatenate(parts, axis=1).astype(self.dtype)

  def __call__(self, text_ids: Array, control_codes: Array | None, video_codes: Array,
               deterministic: bool = True) -> dict[str, Array]:
    """Teacher forcing. Returns logits predicting text (B,L,text_table), controls, video (B,N,K)."""
    layout = self.layout
    video = (jnp.take(self.video_emb, video_codes[:, :-1], axis=0)
             + self.video_positions()[None, :-1])
    x = jnp.concatenate([self.embed_prefix(text_ids, control_codes), video.astype(self.dtype)],
                        axis=1)
    causal = jnp.tril(jnp.ones((x.shape[1], x.shape[1]), bool))
    h, _ = self.trunk(x, causal, deterministic=deterministic)
    # Output j predicts input j+1: text targets come from outputs [0, L), and so on.
    text_end = layout.text_len
    control_end = text_end + layout.control_len
    out = {"text": self.text_head(h[:, :text_end]), "video": self.video_head(h[:, control_end:])}
    if layout.num_controls:
      out["control"] = self.control_head(h[:, text_end:control_end])
    return out

  def init_cache(self, batch: int):
    head_dim = self.width // self.num_heads
    shape = (batch, self.max_len, self.num_heads, head_dim)
    zeros = lambda: (jnp.zeros(shape, self.dtype), jnp.zeros(shape, self.dtype))
    if self.scan_layers:
      stacked = (self.depth,) + shape
      return (jnp.zeros(stacked, self.dtype), jnp.zeros(stacked, self.dtype))
    return tuple(zeros() for _ in range(self.depth))

  def prefill(self, text_ids: Array, control_codes: Array | None = None):
    """Runs the prefix; returns (logits of video token 0 (B, K), cache)."""
    x = self.embed_prefix(text_ids, control_codes)
    cache = self.init_cache(x.shape[0])
    allowed = jnp.arange(self.max_len)[None, :] <= jnp.arange(x.shape[1])[:, None]
    h, cache = self.trunk(x, allowed, cache=cache, cache_index=jnp.asarray(0, jnp.int32))
    return self.video_head(h[:, -1]), cache

  def decode_step(self, cache, video_token: Array, index: Array):
    """Feeds video token `index` (B,) and returns (logits of token index+1 (B, K), cache)."""
    position = self.prefix_len + index
    pos_emb = jax.lax.dynamic_index_in_dim(self.video_positions(), index, keepdims=False)
    x = (jnp.take(self.video_emb, video_token, axis=0) + pos_emb)[:, None].astype(self.dtype)
    allowed = (jnp.arange(self.max_len) <= position)[None, :]
    h, cache = self.trunk(x, allowed, cache=cache, cache_index=position)
    return self.video_head(h[:, 0]), cache


def _rotary_spec(name: str, layout: Layout, video_start: int, head_dim: int
                 ) -> rotary_lib.RotarySpec | None:
  if rotary_lib.validate(name) == "none":
    return None
  grid = (layout.num_frames, layout.latent_height, layout.latent_width)
  return rotary_lib.RotarySpec(video_start, grid, head_dim)


def _video_conv_spec(kernel: int, layout: Layout) -> video_conv_lib.VideoConvSpec | None:
  if not video_conv_lib.validate(kernel):
    return None
  grid = (layout.num_frames, layout.latent_height, layout.latent_width)
  return video_conv_lib.VideoConvSpec(layout.video_slice.start, grid, int(kernel))


# Compute precisions of training and sampling (parameters stay float32).
COMPUTE_DTYPES = ("float32", "bfloat16")


def model_kwargs(tr_config) -> dict:
  """Typed constructor fields from the `transformer` config section."""
  init = str(tr_config.get("dense_init", "normal"))
  if init not in DENSE_INITS:
    raise ConfigError("transformer.dense_init", f"unknown initializer {init!r}",
                      f"use one of {', '.join(DENSE_INITS)}")
  policy = str(tr_config.get("remat_policy", "full"))
  policy_from_name(policy)  # a ConfigError for an unknown name, before any tracing
  rotary = rotary_lib.validate(str(tr_config.get("rotary", "none")))
  if rotary != "none":
    rotary_lib.check_head_dim(int(tr_config.width) // max(int(tr_config.num_heads), 1))
  return dict(dense_init=init, remat_policy=policy, rotary=rotary,
              width=int(tr_config.width), depth=int(tr_config.depth),
              num_heads=int(tr_config.num_heads), mlp_dim=int(tr_config.mlp_dim),
              activation=str(tr_config.activation), dropout=float(tr_config.dropout),
              scan_layers=bool(tr_config.scan_layers), remat=bool(tr_config.remat),
              embed_init_std=float(tr_config.get("embed_init_std", 0.02)),
              position_init=str(tr_config.get("position_init", "normal")),
              attention=str(tr_config.get("attention", "auto")))


def make_model(tr_config, layout: Layout) -> nn.Module:
  """The factory: config section + layout -> MMVIDTransformer (or ARTVTransformer if causal)."""
  objective = tr_config.get("objective", "mmvid")
  video_conv = video_conv_lib.validate(tr_config.get("video_conv", 0), objective)
  if objective == "artv":
    return ARTVTransformer(layout, **model_kwargs(tr_config))
  return MMVIDTransformer(layout, text_encoder=str(tr_config.text_encoder),
                          separate_control_embedding=bool(
                              tr_config.get("separate_control_embedding", False)),
                          text_summary=bool(tr_config.get("text_summary", False)),
                          video_conv=video_conv, **model_kwargs(tr_config))


def count_params(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
