"""MMVID's Multimodal VoxCeleb attribute PCFG, templates and paraphrases (spec §7, §8.1)."""

import re

import numpy as np
import pytest

from mmvid_jax.data import mmvoxceleb_captions as cap

# The spec's example: "A man has big nose, black hair and bags under eyes. He wears
# eyeglasses. He is young." (No_Beard = 1, so no beard.)
EXAMPLE = ("Big_Nose", "Black_Hair", "Bags_Under_Eyes", "Eyeglasses", "Young", "Male",
           "No_Beard")
NP = r"(?:(?:A|This|a|this) (?:male|man|female|woman|person)|He|She|he|she)"
SENTENCE = re.compile(rf"^({NP}) (wears|is wearing|is|has) ([a-z0-9' ,]+)\.$")


def labels(*names):
  out = np.zeros(cap.NUM_ATTRIBUTES, np.int32)
  for name in names:
    out[cap.ATTRIBUTES.index(name)] = 1
  return out


def split_sentences(caption):
  return re.findall(r"[^.]+\.", caption)


def parse(caption):
  """[(noun phrase, verb, attributes)] of one caption; fails on any ungrammatical sentence."""
  out = []
  for text in split_sentences(caption):
    match = SENTENCE.match(text.strip())
    assert match, (text, caption)
    assert text.strip()[0].isupper()
    out.append(match.groups())
  return out


def test_attribute_order_and_names():
  assert len(cap.ATTRIBUTES) == 40 and cap.ATTRIBUTES[0] == "5_o_Clock_Shadow"
  assert cap.ATTRIBUTES[20] == "Male" and cap.ATTRIBUTES[-1] == "Young"
  assert cap.attribute_name("5_o_Clock_Shadow") == "5 o'clock shadow"
  assert cap.attribute_name("No_Beard") == "beard"
  assert cap.attribute_name("Wearing_Necktie") == "necktie"
  assert cap.attribute_name("Bags_Under_Eyes") == "bags under eyes"
  assert cap.VERBS["Goatee"] == "wear" and cap.VERBS["Bald"] == "is"
  assert cap.VERBS["Heavy_Makeup"] == "has" and cap.VERBS["Mouth_Slightly_Open"] == "na"


def test_spec_example_grammar_and_fixed_grouping():
  captions = cap.pcfg_captions(labels(*EXAMPLE), "id11248#yDqlBD8m_b8#00004.txt#000.mp4")
  assert len(captions) == 20
  groups = None
  for caption in captions:
    parsed = parse(caption)
    # The grouping (and its order) is one per video; only NP/verb wording varies.
    these = [(("wear" if verb in ("wears", "is wearing") else verb), attrs)
             for _, verb, attrs in parsed]
    groups = groups or these
    assert these == groups
    for noun_phrase, _, _ in parsed:  # male: never female words
      assert not re.search(r"female|woman|\bshe\b", noun_phrase, re.I)
  words = sorted(a for _, attrs in groups for a in re.split(r", | and ", attrs))
  assert words == sorted(["big nose", "black hair", "bags under eyes", "eyeglasses", "young"])
  assert {verb for verb, _ in groups} == {"has", "wear", "is"}
  assert dict((a, v) for v, attrs in groups for a in re.split(r", | and ", attrs))[
      "eyeglasses"] == "wear"
  assert len(set(captions)) > 1


def test_beard_toggle_male_and_mouth_never_named():
  for key in ("a#b#1", "a#b#2", "c#d#3"):
    no_beard = " ".join(cap.pcfg_captions(labels("No_Beard", "Smiling", "Male"), key))
    assert "beard" not in no_beard and "smiling" in no_beard
    bearded = cap.pcfg_captions(labels("Smiling", "Mouth_Slightly_Open", "5_o_Clock_Shadow"),
                                key)
    for caption in bearded:
      attributes = [a for _, _, attrs in parse(caption) for a in re.split(r", | and ", attrs)]
      # No_Beard = 0 -> "beard"; Mouth_Slightly_Open and Male are never attributes.
      assert sorted(attributes) == ["5 o'clock shadow", "beard", "smiling"]
      # Male = 0: female words and "she" only.
      assert not re.search(r"\b(he|man|male)\b", caption, re.I)


def test_list_syntax_deterministic_and_seeded_per_key():
  many = labels("Big_Nose", "Black_Hair", "Bags_Under_Eyes", "Big_Lips", "Bangs", "Pale_Skin",
                "Oval_Face", "No_Beard", "Male")
  first = cap.pcfg_captions(many, "k#1#x")
  assert first == cap.pcfg_captions(many, "k#1#x")
  assert first != cap.pcfg_captions(many, "k#2#x")
  for _, _, attrs in parse(first[0]):
    assert re.fullmatch(r"[^,]+|[^,]+ and [^,]+|[^,]+, [^,]+ and [^,]+", attrs), attrs
  assert cap.pcfg_captions(labels("No_Beard"), "k") == [""] * 20  # nothing to say


def test_probabilities_by_seeded_statistics():
  """Pronoun 0.5 in the first sentence and 0.85 after, 'person' 0.25 of gender words,
  a/this 50/50, wears/is wearing 50/50, group continuation pops with
  p=0.9 and p=0.85 (tolerance 0.03; 0.02/0.06 for the 400 group draws)."""
  rng = np.random.default_rng(0)
  first_pronoun, later_pronoun, person, det_a, wears = [], [], [], [], []
  second, third = [], []
  for v in range(400):
    names = rng.choice([a for a in cap.ATTRIBUTES if cap.VERBS[a] == "has" and a != "No_Beard"],
                       6, replace=False)
    lab = labels(*names, "No_Beard", "Eyeglasses", "Young", *(["Male"] if v % 2 else []))
    key = f"id{v}#yt{v}#0"
    for caption in cap.pcfg_captions(lab, key):
      for i, (noun_phrase, verb, _) in enumerate(parse(caption)):
        pronoun = noun_phrase.lower() in ("he", "she")
        (first_pronoun if i == 0 else later_pronoun).append(pronoun)
        if not pronoun:
          det, gender = noun_phrase.lower().split()
          person.append(gender == "person")
          det_a.append(det == "a")
        if verb in ("wears", "is wearing"):
          wears.append(verb == "wears")
    # The first group of 6 "has" attributes alone always has a 2nd and 3rd item available.
    verb, attrs = cap.attribute_groups(labels(*names, "No_Beard"), np.random.default_rng(v))[0]
    count = len(re.split(r", | and ", attrs))
    second.append(count >= 2)
    if count >= 2:
      third.append(count == 3)
  assert abs(np.mean(first_pronoun) - 0.5) < 0.03
  assert abs(np.mean(later_pronoun) - 0.85) < 0.03
  assert abs(np.mean(person) - 0.25) < 0.03
  assert abs(np.mean(det_a) - 0.5) < 0.03
  assert abs(np.mean(wears) - 0.5) < 0.03
  # MMVID tries the 3rd pop even when the 2nd was not taken: sizes 1/2/3 with
  # .1*.15, .9*.15+.1*.85, .9*.85, so P(>=2) = .985 and P(3 | >=2) = .765/.985.
  assert abs(np.mean(second) - 0.985) < 0.02 and abs(np.mean(third) - 0.777) < 0.06


def test_templates_and_paraphrases():
  assert cap.template_captions(("same_pid_draw", "mask")) == (
      "A person with draw in image one and mask in image two is talking",
      "A person with mask in image two and draw in image one is talking")
  assert cap.template_captions(("same_pid_image", "mask"))[1] == (
      "A person with mask in image two and appearance in image one is talking")
  assert cap.template_captions(("appearance",) + ("motion_frames",) * 3) == (
      "A person with appearance in image one and motion in the following frames is talking.",)
  with pytest.raises(ValueError, match="no template caption"):
    cap.template_captions(("mask",))
  sets = cap.paraphrase_sets({"b": labels("Male", "Young"), "a": labels("Bald", "Chubby")})
  assert sets["Male"] == ["b"] and sets["Female"] == ["a"] and sets["Young"] == ["b"]
  assert sets["Bald"] == ["a"] and sets["Eyeglasses"] == []
  assert [cap.paraphrase_prompt("Male", i) for i in range(3)] == ["A boy.", "A guy.", "A boy."]
  corpus = cap.corpus(["x"])
  assert "A person wears spectacles." in corpus and cap.MOTION_CAPTION in corpus
