"""The MUG facial expression database: its takes, their expression captions, the split.

Layout of `config.data.manual_dir` (docs/mug.md): the release's
`<subject>/<expression>/take<k>/*.jpg` (e.g. `subjects3/001/happiness/take000/img_0000.jpg`),
tolerating what copies of it vary in:
- a take is any folder of frames (png/jpg/jpeg, any case, natural name order) with no
  subfolder, or a video file; extra folders anywhere (`subjects3/`, `session1/`) are fine;
- the expression is the innermost folder above (or naming) the take whose lower-cased name
  is one of EXPRESSIONS or an ALIASES key (`Happy/`, `SURPRISE/`);
- the subject is the innermost all-digit folder above the expression (`001`), else the first
  folder below the root.
Skipped and counted, one log line per kind: takes outside any expression folder, takes with
no subject folder, empty folders, other files, and (at build time) takes that cannot be
decoded or have too few frames.

Split (subject-disjoint, deterministic): subjects are ordered by the SHA-1 of their name;
the first round(f_test * n) are test, the next round(f_validation * n) validation (each at
least 1 when its fraction is > 0 and there are 3 or more subjects), the rest train.

Captions: `captions()` — the first is "A person shows {noun}." and the others are drawn from
a small grammar (4 subjects x 6 templates x 2-3 words per expression), seeded by the take.
"""

import dataclasses
import hashlib
import re

import numpy as np

from mmvid_jax.data import frame_folders
from mmvid_jax.errors import UserError

SPLITS = ("train", "validation", "test")
EXPRESSIONS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
ALIASES = {"angry": "anger", "disgusted": "disgust", "afraid": "fear", "fearful": "fear",
           "happy": "happiness", "sad": "sadness", "surprised": "surprise"}
LAYOUT = ("MUG takes: <subject>/<expression>/take<k>/ folders of frames (expression one of "
          + ", ".join(EXPRESSIONS) + ")")

_NOUNS = {"anger": "anger", "disgust": "disgust", "fear": "fear", "happiness": "happiness",
          "neutral": "no emotion", "sadness": "sadness", "surprise": "surprise"}
_ADJECTIVES = {"anger": ("angry", "furious", "annoyed"), "disgust": ("disgusted", "repulsed"),
               "fear": ("afraid", "scared", "frightened"),
               "happiness": ("happy", "joyful", "cheerful"),
               "neutral": ("calm", "expressionless", "neutral"),
               "sadness": ("sad", "unhappy", "sorrowful"),
               "surprise": ("surprised", "astonished", "amazed")}
_ACTIONS = {"anger": ("frowns angrily", "glares in anger"),
            "disgust": ("grimaces in disgust", "wrinkles the nose in disgust"),
            "fear": ("recoils in fear", "looks frightened"),
            "happiness": ("smiles", "breaks into a smile"),
            "neutral": ("keeps a straight face", "shows no expression"),
            "sadness": ("looks down sadly", "frowns sadly"),
            "surprise": ("opens the eyes wide in surprise", "raises the eyebrows in surprise")}
_SUBJECTS = ("a person", "the person", "this person", "someone")
_TEMPLATES = ("{s} is {adj}.", "{s} looks {adj}.", "{s} shows {noun}.", "{s} makes {a_adj} face.",
              "{s} {action}.", "{s} expresses {noun}.")
_DIGITS = re.compile(r"^\d+$")


@dataclasses.dataclass(frozen=True)
class Take:
  relative_path: str  # the example id
  path: str
  is_frames_folder: bool
  subject: str
  expression: str


def expression_of(name: str) -> str | None:
  lower = name.lower()
  if lower in EXPRESSIONS:
    return lower
  return ALIASES.get(lower)


def parse_source(source: frame_folders.Source) -> tuple[str | None, str | None]:
  """(subject, expression) from the path; None where the path does not say."""
  components = source.parts + (source.name,)
  found = [i for i, c in enumerate(components) if expression_of(c)]
  if not found:
    return None, None
  at = found[-1]
  expression = expression_of(components[at])
  numbered = [c for c in components[:at] if _DIGITS.match(c)]
  if numbered:
    return numbered[-1], expression
  return (components[0] if at > 0 else None), expression


def scan(manual_dir: str) -> tuple[list[Take], frame_folders.Skipped]:
  """Every labelled take, sorted by path, and what was skipped while looking."""
  frame_folders.check_root("MUG", manual_dir, LAYOUT)
  skipped = frame_folders.Skipped("mug")
  takes = []
  for source in frame_folders.find_sources(manual_dir, skipped):
    subject, expression = parse_source(source)
    if expression is None:
      skipped.add("no_expression", "takes outside an expression folder", source.relative_path)
    elif subject is None:
      skipped.add("no_subject", "takes without a subject folder", source.relative_path)
    else:
      takes.append(Take(source.relative_path, source.path, source.is_frames_folder, subject,
                        expression))
  if not takes:
    raise UserError(f"config.data.manual_dir {manual_dir!r} holds no MUG take. Fix: point it "
                    f"at {LAYOUT}.")
  return takes, skipped


def _hash_order(name: str) -> bytes:
  return hashlib.sha1(name.encode("utf-8")).digest()


def split_subjects(subjects, fractions) -> dict[str, list[str]]:
  """Subject-disjoint split: {split: subjects}, deterministic (see the module doc)."""
  ordered = sorted(set(subjects), key=_hash_order)
  n = len(ordered)

  def count(fraction):
    k = int(round(float(fraction) * n))
    return max(k, 1) if float(fraction) > 0 and n >= 3 else k

  n_test, n_validation = count(fractions[2]), count(fractions[1])
  return {"test": ordered[:n_test], "validation": ordered[n_test:n_test + n_validation],
          "train": ordered[n_test + n_validation:]}


def split_takes(takes: list[Take], fractions) -> dict[str, list[Take]]:
  by_subject = split_subjects([t.subject for t in takes], fractions)
  split_of = {s: split for split, subjects in by_subject.items() for s in subjects}
  return {split: [t for t in takes if split_of[t.subject] == split] for split in SPLITS}


def _article(word: str) -> str:
  return ("an " if word[0] in "aeiou" else "a ") + word


def caption_from(expression: str, subject: str, template: str, adjective: str,
                 action: str) -> str:
  text = template.format(s=subject, adj=adjective, a_adj=_article(adjective),
                         noun=_NOUNS[expression], action=action)
  return text[0].upper() + text[1:]


def all_captions(expression: str) -> list[str]:
  """Every phrasing the grammar has for one expression."""
  return sorted({caption_from(expression, s, t, adj, act) for s in _SUBJECTS for t in _TEMPLATES
                 for adj in _ADJECTIVES[expression] for act in _ACTIONS[expression]})


def captions(expression: str, take_id: str, count: int, seed: int = 0) -> list[str]:
  """`count` captions for a take: the canonical one first, then distinct grammar draws
  seeded by (seed, take id)."""
  if expression not in EXPRESSIONS:
    raise UserError(f"unknown MUG expression {expression!r}; use one of "
                    f"{', '.join(EXPRESSIONS)}.")
  out = [f"A person shows {_NOUNS[expression]}."]
  rng = np.random.default_rng([seed, int.from_bytes(_hash_order(take_id)[:8], "big")])
  choices = all_captions(expression)
  for index in rng.permutation(len(choices)):
    if len(out) >= count:
      break
    if choices[index] not in out:
      out.append(choices[index])
  return out[:count]


def training_captions(data_config) -> list[str]:
  """Captions of the train split (a SentencePiece corpus)."""
  d = data_config
  takes, _ = scan(d.manual_dir)
  train = split_takes(takes, tuple(d.split_fractions))["train"]
  return [c for t in train
          for c in captions(t.expression, t.relative_path, int(d.captions_per_take),
                            int(d.caption_seed))]
