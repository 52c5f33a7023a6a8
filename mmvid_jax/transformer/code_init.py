"""Start the video-code embedding and the video head from what each code looks like (not in MMVID).

MMVID learns its code embedding table from N(0, std): code 17 and code 18 start unrelated even
when they decode to the same patch shifted by a pixel, and the transformer must discover what
every one of its K codes depicts from co-occurrence alone. With
`transformer.code_embedding_init="pixels"` each code is decoded by the frozen tokenizer, the
centre patch of a grid filled with that code is its pixel signature (f x f x 3 values), and a
fixed random projection of the centred signatures to the model width seeds

- row k of the code embedding table (rows [MASK] and [SEP] keep their random start), at the
  configured embedding std, and
- with "pixels_and_head", also column k of the video head's kernel, at N(0, 1/width) scale,

so codes that look alike start close in the input (and score alike in the output). Everything
stays trainable; the architecture and the parameter count do not change.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.errors import ConfigError

# "pixels": the code embedding rows only; "pixels_and_head": also the video head's columns.
CODE_EMBEDDING_INITS = ("random", "pixels", "pixels_and_head")


def validate(name: str) -> str:
  if name not in CODE_EMBEDDING_INITS:
    raise ConfigError("transformer.code_embedding_init", f"unknown choice {name!r}",
                      f"use one of {', '.join(CODE_EMBEDDING_INITS)}")
  return name


def code_pixel_signatures(tokenizer) -> np.ndarray:
  """(K, f * f * 3) float32: the centre patch each code decodes to in a grid of that code."""
  num_codes, size = tokenizer.codebook_size, tokenizer.latent_size
  factor = tokenizer.downsample_factor
  signatures = []
  for start in range(0, num_codes, 64):  # bounded memory for large codebooks
    codes = jnp.arange(start, min(start + 64, num_codes), dtype=jnp.int32)
    grid = jnp.broadcast_to(codes[:, None, None, None], (codes.shape[0], 1, size, size))
    frames = np.asarray(jax.jit(tokenizer.decode_from_codes)(grid))[:, 0]
    centre = (size // 2) * factor
    patch = frames[:, centre:centre + factor, centre:centre + factor]
    signatures.append(patch.reshape(patch.shape[0], -1))
  return np.concatenate(signatures).astype(np.float32)


def seeded_tables(signatures: np.ndarray, width: int, embed_std: float, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(embedding rows (K, width) at std `embed_std`, head kernel (width, K) at std 1/sqrt(width)).

  A constant signature set (every code alike) carries no information: ConfigError.
  """
  centred = signatures - signatures.mean(axis=0, keepdims=True)
  spread = float(centred.std())
  if not spread > 1e-6:
    raise ConfigError("transformer.code_embedding_init",
                      "every code decodes to the same patch, so 'pixels' has nothing to seed from",
                      "train the tokenizer first, or use code_embedding_init='random'")
  projection = np.random.default_rng(seed).normal(size=(centred.shape[1], width))
  features = (centred / spread) @ projection / np.sqrt(centred.shape[1])
  features = features / features.std()
  return ((features * embed_std).astype(np.float32),
          (features.T / np.sqrt(width)).astype(np.float32))


def seed_params(params, embedding_rows: np.ndarray, head_kernel: np.ndarray | None):
  """A copy of `params` (boxed or plain) with `video_emb[:K]` (and, unless `head_kernel` is
  None, the video head's kernel) set."""
  def set_value(leaf, value, rows=None):
    unboxed = leaf.unbox() if hasattr(leaf, "unbox") else leaf
    if rows is not None:
      value = unboxed.at[:rows].set(jnp.asarray(value, unboxed.dtype))
    value = jnp.asarray(value, unboxed.dtype).reshape(unboxed.shape)
    return leaf.replace_boxed(value) if hasattr(leaf, "replace_boxed") else value

  params = dict(params)
  num_codes = embedding_rows.shape[0]
  params["video_emb"] = set_value(params["video_emb"], embedding_rows, rows=num_codes)
  if head_kernel is None:
    return params
  head = dict(params["video_head"])
  dense = dict(head["dense"])
  dense["kernel"] = set_value(dense["kernel"], head_kernel)
  head["dense"], params["video_head"] = dense, head
  return params
