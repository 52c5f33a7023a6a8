"""Caption grammar for Moving Shapes: templates, paraphrases, parsing back to attributes.

A caption is a template filled with one synonym per attribute. The training and validation
splits use TRAIN_TEMPLATES; the test split uses the held-out TEST_TEMPLATES only, so test
captions are unseen paraphrases (on top of the held-out attribute combinations, see
shapes.HELD_OUT_PAIRS). Index 0 everywhere gives MMVID's canonical form
"A small red circle is moving north."
"""

import itertools
import re

import numpy as np

from mmvid_jax.data import shapes

SIZE_WORDS = (("small", "tiny", "little"), ("large", "big"))
COLOR_WORDS = tuple((name,) for name in shapes.COLOR_NAMES)
SHAPE_WORDS = (("circle", "disc"), ("square",), ("triangle",), ("diamond",), ("cross", "plus"))
DIRECTION_WORDS = (
    ("north", "up", "upwards"),
    ("northeast", "up and to the right"),
    ("east", "right", "to the right"),
    ("southeast", "down and to the right"),
    ("south", "down", "downwards"),
    ("southwest", "down and to the left"),
    ("west", "left", "to the left"),
    ("northwest", "up and to the left"),
)
TRAIN_TEMPLATES = (
    "A {size} {color} {shape} is moving {direction}.",
    "The {size} {color} {shape} is heading {direction}.",
    "A {size} {color} {shape} moves {direction}.",
    "There is a {size} {color} {shape} moving {direction}.",
    "A {color} {shape}, {size}, travels {direction}.",
)
# Held out: only the test split uses these phrasings.
TEST_TEMPLATES = (
    "The {size} {color} {shape} is going {direction}.",
    "A {size} {color} {shape} slides {direction}.",
)
# MMVID's Shapes "dependent" caption; clauses are joined in slot order (randomised in training).
DEPENDENT_CLAUSES = {"same_color": "color", "same_shape": "shape", "background": "background"}
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")

_WORD_TABLES = (SHAPE_WORDS, COLOR_WORDS, SIZE_WORDS, DIRECTION_WORDS)


def templates_for_split(split: str) -> tuple[str, ...]:
  return TEST_TEMPLATES if split == "test" else TRAIN_TEMPLATES


def fill_template(template: str, attributes, word_choices=(0, 0, 0, 0)) -> str:
  """Caption for attributes (shape, colour, size, direction) with the given synonym indices."""
  words = [table[a][c % len(table[a])] for table, a, c in zip(_WORD_TABLES, attributes, word_choices)]
  shape, color, size, direction = words
  return template.format(shape=shape, color=color, size=size, direction=direction)


def canonical_caption(attributes) -> str:
  return fill_template(TRAIN_TEMPLATES[0], attributes)


def sample_captions(rng: np.random.Generator, attributes: np.ndarray, split: str) -> list[str]:
  """One random paraphrase per clip from the split's templates."""
  templates = templates_for_split(split)
  template_index = rng.integers(0, len(templates), len(attributes))
  choices = rng.integers(0, 6, (len(attributes), 4))
  return [fill_template(templates[t], a, c) for t, a, c in zip(template_index, attributes, choices)]


def _pattern(table) -> re.Pattern:
  # Longest phrases first so "up and to the right" wins over "up" and "northeast" over "north".
  phrases = sorted(((w, i) for i, words in enumerate(table) for w in words), key=lambda p: -len(p[0]))
  return re.compile("|".join(rf"\b{re.escape(w)}\b" for w, _ in phrases))


_PATTERNS = tuple(_pattern(table) for table in _WORD_TABLES)
_LOOKUP = tuple({w: i for i, words in enumerate(table) for w in words} for table in _WORD_TABLES)


def parse_caption(caption: str) -> tuple[int, int, int, int] | None:
  """Attributes (shape, colour, size, direction) named by a caption, or None if one is missing."""
  text = caption.lower()
  found = []
  for pattern, lookup in zip(_PATTERNS, _LOOKUP):
    match = pattern.search(text)
    if match is None:
      return None
    found.append(lookup[match.group(0)])
  return tuple(found)


def dependent_caption(sources, direction: int, order=None) -> str:
  """MMVID's dependent caption, e.g. for (same_color, same_shape, background):
  "An object with color in image one, shape in image two, background in image three is
  moving north." `order` permutes the clauses (not the slots): the image numbers always
  match the slot each source sits in.
  """
  clauses = [f"{DEPENDENT_CLAUSES[s]} in image {NUMBER_WORDS[i]}"
             for i, s in enumerate(sources) if s in DEPENDENT_CLAUSES]
  if order is not None:
    clauses = [clauses[i] for i in order]
  return f"An object with {', '.join(clauses)} is moving {shapes.DIRECTION_NAMES[direction]}."


def is_dependent(sources) -> bool:
  """Captions name the slots when the controls carry colour or shape from other clips."""
  return any(s in ("same_color", "same_shape") for s in sources)


def training_corpus() -> list[str]:
  """SentencePiece training text: every training caption (all training templates and
  synonyms over the training attribute values) and every dependent-caption variant,
  the latter repeated so both kinds weigh the same (else BPE leaves their words in pieces)."""
  captions = set()
  for template in TRAIN_TEMPLATES:
    for attrs in itertools.product(*(range(len(t)) for t in _WORD_TABLES)):
      if attrs[:2] in shapes.HELD_OUT_PAIRS:
        continue
      for choices in itertools.product(*(range(len(t[a])) for t, a in zip(_WORD_TABLES, attrs))):
        captions.add(fill_template(template, attrs, choices))
  dependent = set()
  sources = tuple(DEPENDENT_CLAUSES)
  for n in range(1, len(sources) + 1):
    for chosen in itertools.permutations(sources, n):
      for direction in range(len(shapes.DIRECTION_NAMES)):
        dependent.add(dependent_caption(chosen, direction))
  return sorted(captions) + sorted(dependent) * max(1, len(captions) // len(dependent))
