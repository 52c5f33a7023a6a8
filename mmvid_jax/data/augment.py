"""Caption-side augmentation, pure functions over a numpy Generator (host side).

- MMVID sentence dropout (spec §6.1, `config.data.drop_sentence`).
- Null caption with probability `config.data.null_caption_prob` (training only): the text
  becomes empty, so its ids are all padding, the contract's null caption.
- Shapes "dependent" captions: with colour/shape controls, the caption names which image
  slot carries what ("An object with color in image one, shape in image two, ...").
"""

import numpy as np

from mmvid_jax.data import shapes_captions


def drop_sentences(caption: str, rng: np.random.Generator, training: bool) -> str:
  """MMVID text dropout.

  Training: split on ". ", remove k ~ U{0, ..., n-1} randomly chosen sentences and re-join
  with ". " (if the last sentence is dropped the trailing period goes too, as in MMVID).
  Evaluation: keep the first sentence; if it holds " and " and a ", " keep the text before
  the first ", " plus "." (MMVID's rule, without its ".." when there is no comma).
  """
  sentences = caption.split(". ")
  if training:
    drop = int(rng.integers(0, len(sentences)))
    keep = list(range(len(sentences)))
    for _ in range(drop):
      keep.pop(int(rng.integers(0, len(keep))))
    return ". ".join(sentences[i] for i in keep)
  first = sentences[0]
  if len(sentences) > 1:
    first += "."
  if " and " in first and ", " in first:
    first = first.split(", ")[0] + "."
  return first


def null_caption_mask(rng: np.random.Generator, batch: int, prob: float) -> np.ndarray:
  """True where a caption is replaced by the null caption."""
  return rng.random(batch) < prob


def dependent_captions(rng: np.random.Generator, sources, directions, training: bool) -> list[str]:
  """Captions that say which slot holds colour, shape and background; clause order random
  in training, slot order otherwise."""
  n_clauses = sum(s in shapes_captions.DEPENDENT_CLAUSES for s in sources)
  out = []
  for direction in directions:
    order = rng.permutation(n_clauses) if training else None
    out.append(shapes_captions.dependent_caption(sources, int(direction), order))
  return out


def augment_captions(captions, attributes, rng: np.random.Generator, *, sources,
                     training: bool, drop_sentence: bool, null_caption_prob: float) -> list[str]:
  """All caption changes for one batch, in a fixed order (so runs are reproducible)."""
  captions = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in captions]
  if shapes_captions.is_dependent(sources):
    captions = dependent_captions(rng, sources, attributes[:, 3], training)
  if drop_sentence:
    captions = [drop_sentences(c, rng, training) for c in captions]
  if training and null_caption_prob > 0:
    null = null_caption_mask(rng, len(captions), null_caption_prob)
    captions = ["" if is_null else c for c, is_null in zip(captions, null)]
  return captions
