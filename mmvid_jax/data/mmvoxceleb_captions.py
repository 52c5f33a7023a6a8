"""Multimodal VoxCeleb captions: MMVID's attribute PCFG, the dependent-mode templates and the
paraphrase prompts of the text-augmentation evaluation (spec §7, §8.1, §8.6).

PCFG (`pcfg_captions`, MMVID `mm_vox_celeb/pcfg.py::generate`), per video:

1. the 40 CelebA labels (standard order, `ATTRIBUTES`) with `No_Beard` toggled, so "beard"
   is present iff No_Beard = 0; the positive attributes are shuffled once;
2. split by verb: wear / is / has (`VERBS`); `Male` only picks the gender words and pronoun,
   `Mouth_Slightly_Open` never appears;
3. until all lists are empty: pick a list with probability proportional to its remaining
   length and pop 1 attribute, then one more with p=0.9, then (tried even when the previous
   pop was not taken, as MMVID's code does) one more with p=0.85: "a" | "a and b" |
   "a, b and c". This grouping (and order) is fixed for the video;
4. each of the `num_captions` captions writes every group as one sentence: a noun phrase
   (Det 'a'|'this' + gender word with probability 1-p, p = 0.5 for the first sentence and
   0.85 after, else the pronoun he/she; the gender word is 'male'|'man' ('female'|'woman')
   w.p. 0.75, 'person' w.p. 0.25), the verb ('wears'|'is wearing' for wear), the attributes
   and ".", first letter capitalised, sentences joined with " ".

Seeding: MMVID seeds Python's and numpy's global generators once per run, so a video's
captions depend on the order the videos were processed. Here every video has its own
`numpy.random.Generator` seeded with the first 8 bytes of SHA-1("mmvoxceleb-pcfg:" + key):
the same key gives the same captions on every machine and in every order.
"""

import hashlib

import numpy as np

ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")
NUM_ATTRIBUTES = len(ATTRIBUTES)
MALE = ATTRIBUTES.index("Male")
TOGGLED = tuple(i for i, a in enumerate(ATTRIBUTES) if a.startswith("No_"))

_WEAR = {"Eyeglasses", "Goatee", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
         "Wearing_Necklace", "Wearing_Necktie"}
_IS = {"Attractive", "Bald", "Blurry", "Chubby", "Male", "Smiling", "Young"}
_UNUSED = {"Mouth_Slightly_Open"}
VERBS = {a: "wear" if a in _WEAR else "is" if a in _IS else "na" if a in _UNUSED else "has"
         for a in ATTRIBUTES}
VERB_ORDER = ("wear", "has", "is")  # MMVID's list order when drawing the next group.

NUM_CAPTIONS = 20
CONTINUE_PROBS = (0.9, 0.85)  # a 2nd, then a 3rd attribute in one sentence
FIRST_PRONOUN_PROB, LATER_PRONOUN_PROB = 0.5, 0.85
GENDER_WORD_PROB = 0.75  # 'male'/'man' (or 'female'/'woman') vs 'person'


def attribute_name(attribute: str) -> str:
  """Bags_Under_Eyes -> 'bags under eyes', No_Beard -> 'beard', Wearing_Hat -> 'hat'."""
  if attribute == "5_o_Clock_Shadow":
    return "5 o'clock shadow"
  return attribute.replace("No_", "").replace("Wearing_", "").replace("_", " ").lower()


def caption_seed(key: str) -> int:
  digest = hashlib.sha1(("mmvoxceleb-pcfg:" + key).encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big")


def _join(names: list[str]) -> str:
  if len(names) == 1:
    return names[0]
  return ", ".join(names[:-1]) + " and " + names[-1]


def attribute_groups(labels, rng: np.random.Generator) -> list[tuple[str, str]]:
  """[(verb, "a, b and c"), ...]: the per-video grouping (steps 1-3)."""
  present = np.asarray(labels, bool).copy()
  present[list(TOGGLED)] = ~present[list(TOGGLED)]
  positive = [ATTRIBUTES[i] for i in np.flatnonzero(present)]
  order = rng.permutation(len(positive))
  shuffled = [positive[i] for i in order]
  lists = {verb: [attribute_name(a) for a in shuffled if VERBS[a] == verb and a != "Male"]
           for verb in VERB_ORDER}
  groups = []
  while any(lists.values()):
    sizes = np.array([len(lists[v]) for v in VERB_ORDER], float)
    verb = VERB_ORDER[int(rng.choice(3, p=sizes / sizes.sum()))]
    items = lists[verb]
    names = [items.pop(0)]
    for prob in CONTINUE_PROBS:
      if items and rng.random() < prob:
        names.append(items.pop(0))
    groups.append((verb, _join(names)))
  return groups


def sentence(verb: str, attributes: str, male: bool, pronoun_prob: float,
             rng: np.random.Generator) -> str:
  """One sentence: NP + verb + attributes + '.', first letter capitalised."""
  if rng.random() > pronoun_prob:
    det = "a" if rng.random() < 0.5 else "this"
    if rng.random() < GENDER_WORD_PROB:
      words = ("male", "man") if male else ("female", "woman")
      gender = words[int(rng.random() < 0.5)]
    else:
      gender = "person"
    noun_phrase = f"{det} {gender}"
  else:
    noun_phrase = "he" if male else "she"
  if verb == "wear":
    verb_text = "wears" if rng.random() < 0.5 else "is wearing"
  else:
    verb_text = verb
  text = f"{noun_phrase} {verb_text} {attributes}"
  return text[0].upper() + text[1:] + "."


def pcfg_captions(labels, key: str, num_captions: int = NUM_CAPTIONS) -> list[str]:
  """The `num_captions` PCFG captions of one video (deterministic in `key`).

  A video without any usable positive attribute gets MMVID's empty caption ("").
  """
  labels = np.asarray(labels)
  if labels.shape != (NUM_ATTRIBUTES,):
    raise ValueError(f"expected {NUM_ATTRIBUTES} attribute labels, got shape {labels.shape}")
  rng = np.random.default_rng(caption_seed(key))
  groups = attribute_groups(labels, rng)
  male = bool(labels[MALE])
  captions = []
  for _ in range(num_captions):
    sentences = [sentence(verb, names, male,
                          FIRST_PRONOUN_PROB if i == 0 else LATER_PRONOUN_PROB, rng)
                 for i, (verb, names) in enumerate(groups)]
    captions.append(" ".join(sentences))
  return captions


# Dependent modes: the caption says which slot holds which modality (MMVID loader_ext.py).

SLOT_WORDS = {"draw": "draw", "same_pid_draw": "draw", "mask": "mask",
              "same_pid_image": "appearance", "partial_image": "appearance",
              "appearance": "appearance"}
MOTION_CAPTION = ("A person with appearance in image one and motion in the following frames "
                  "is talking.")


def template_captions(sources) -> tuple[str, ...]:
  """The caption variants of a dependent mode, from its control sources (slot order).

  Two image slots: ("A person with X in image one and Y in image two is talking",
  the clause-swapped "A person with Y in image two and X in image one is talking").
  Appearance + motion frames: MMVID's one image+video sentence.
  """
  sources = tuple(sources)
  if sources and sources[0] == "appearance" and set(sources[1:]) == {"motion_frames"}:
    return (MOTION_CAPTION,)
  if len(sources) != 2 or any(s not in SLOT_WORDS for s in sources):
    raise ValueError(f"no template caption for control sources {sources}; templates exist "
                     "for two image slots (e.g. same_pid_draw + mask) or appearance + "
                     "motion_frames")
  one, two = SLOT_WORDS[sources[0]], SLOT_WORDS[sources[1]]
  return (f"A person with {one} in image one and {two} in image two is talking",
          f"A person with {two} in image two and {one} in image one is talking")


# Text augmentation (spec §6, §8.6): prompts the PCFG never produces, each probing real
# videos that carry one attribute (MMVID's first-commit `evaluate_intra`, attr mode `cat2`).

PARAPHRASE_PROMPTS = {
    "Male": ("A boy.", "A guy."),
    "Female": ("A girl.", "A lady."),
    "Young": ("A person is youthful.",),
    "Bald": ("A person has no hair.",),
    "Eyeglasses": ("A person wears spectacles.",),
    "Chubby": ("A person is plump.",),
}


def paraphrase_sets(labels_by_key: dict) -> dict[str, list[str]]:
  """{attribute: sorted keys of the videos that carry it} for the paraphrase probes
  ("Female" = Male is 0)."""
  out = {name: [] for name in PARAPHRASE_PROMPTS}
  for key in sorted(labels_by_key):
    labels = np.asarray(labels_by_key[key])
    for name in PARAPHRASE_PROMPTS:
      carries = (labels[MALE] == 0) if name == "Female" else labels[ATTRIBUTES.index(name)] == 1
      if carries:
        out[name].append(key)
  return out


def paraphrase_prompt(attribute: str, index: int) -> str:
  """The prompt for the index-th probe video of `attribute` (MMVID alternates boy/guy and
  girl/lady by index)."""
  prompts = PARAPHRASE_PROMPTS[attribute]
  return prompts[index % len(prompts)]


# Slot sources of MMVID's dependent modes (drawing+mask, image+mask, image+video).
DEPENDENT_SOURCES = (("same_pid_draw", "mask"), ("same_pid_image", "mask"),
                     ("appearance", "motion_frames", "motion_frames", "motion_frames"))


CORPUS_REPEATS = 200


def corpus(pcfg: list[str]) -> list[str]:
  """Text for the SentencePiece model: PCFG captions, every dependent-mode template and the
  paraphrase prompts, so one text model serves every mode (no prompt falls back to
  characters)."""
  extra = [c for sources in DEPENDENT_SOURCES for c in template_captions(sources)]
  extra += [p for prompts in PARAPHRASE_PROMPTS.values() for p in prompts]
  # Repeated so their words become whole pieces next to ~400k PCFG lines (L_txt is 20).
  return list(pcfg) + extra * CORPUS_REPEATS
