"""The fixed settings of MMVID's evaluation protocol and the methods it can compare.

Light on purpose (no JAX, no TensorFlow): config validation imports it. The protocol itself
runs in `mmvid_jax.evaluation.protocol`; the numbers come from spec §5.5, §8.6 and §8.7
(MMVID's `evaluation.sh` and `utils/utils_eval.py`).
"""

import dataclasses

from mmvid_jax.errors import UserError
from mmvid_jax.evaluation import decoder_specs

PROTOCOLS = ("default", "mmvid")
NAME = "mmvid"
DEFAULT_EVAL_NUM = 2048  # evaluation.sh --eval_num 2048
RESOLUTION = 128  # evaluation.sh --image_size 128: the size of the videos handed to I3D
I3D_BATCH = 16  # the fixed batch of MMVID's I3D graph (and of its generation loop)
PRD_CLUSTERS = 20
PRD_ANGLES = 1001
PRD_RUNS = 10
PRD_BETA = 8.0
SEED = 42  # evaluation.sh runs with seed 42
MP_STEPS = 20  # --mp_T 20; B = 1, no dynamic stop, Gumbel noise 0 (spec §5.5)
# PRD fits 20 clusters on the 2N real + generated features.
MIN_CLIPS = PRD_CLUSTERS // 2

# Short names of the paper's methods -> decoder names of `decoder_specs`.
ALIASES = {"mmvid": "mask_predict", "artv": "ar"}
LABELS = {"mask_predict": "MMVID (mask-predict)", "ar": "ART-V (autoregressive)",
          "maskgit": "MaskGIT"}

# MMVID README, released checkpoints, MM-VoxCeleb text -> video, this protocol (spec §8.7).
PUBLISHED_DATASET = "mmvoxceleb"
PUBLISHED_FVD = {"mask_predict": 59.46, "ar": 70.95}
PUBLISHED_SOURCE = ("MMVID README (released checkpoints, MM-VoxCeleb text-to-video, 128 px, "
                    "8 frames, 2048 clips)")


class ProtocolError(UserError):
  """A protocol setting the user can fix; `problem` and `fix` let config checks reword it."""

  def __init__(self, problem: str, fix: str):
    self.problem, self.fix = problem, fix
    super().__init__(f"{problem}. Fix: {fix}.")


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of the table: a decoder setting under the protocol's fixed options."""
  name: str                      # as requested, e.g. "mmvid"
  label: str                     # as shown in the table
  spec: decoder_specs.DecoderSpec

  @property
  def uses_artv_model(self) -> bool:
    return self.spec.decoder == "ar"

  @property
  def is_paper_setting(self) -> bool:
    """Exactly the decoding MMVID's published numbers used (mask-predict: 20 steps, B = 1)."""
    if self.spec.decoder == "ar":
      return True
    return (self.spec.decoder == "mask_predict" and self.spec.steps == MP_STEPS
            and self.spec.num_candidates == 1)

  def decode_options(self) -> dict:
    """`generate.DecodeOptions` fields: the paper's decoding, independent of config.sample.

    Mask-predict: Gumbel noise 0 (plain sampling at temperature 1), no dynamic stop, scores
    from the masked pass (inert at B = 1). ART-V: temperature 1; MMVID's top-k (0.5 of the
    full vocabulary) keeps every video code, so no filter. No guidance anywhere."""
    return {"decoder": self.spec.decoder, "steps": self.spec.steps,
            "num_candidates": self.spec.num_candidates, "dynamic_stop": False,
            "score_on": "masked", "cfg_scale": 0.0, "temperature": 1.0, "top_k": 0,
            "noise_schedule": (0.0, 0.0, 0.0, 0.0)}


def split_names(entries) -> tuple[str, ...]:
  """("a,b",) or "a,b" or ("a", "b") -> ("a", "b")."""
  if isinstance(entries, str):
    entries = (entries,)
  return tuple(name.strip() for entry in entries or () for name in str(entry).split(",")
               if name.strip())


def parse_method(name: str) -> Method:
  """'mmvid', 'artv', or any `decoder_specs` name ('maskgit', 'mmvid_s10', ...)."""
  canonical = name
  for alias, decoder in ALIASES.items():
    if name == alias or name.startswith(alias + "_"):
      canonical = decoder + name[len(alias):]
  try:
    spec = decoder_specs.parse(canonical, default_steps=MP_STEPS, default_candidates=1)
  except ValueError as e:
    raise ProtocolError(f"protocol decoders: {e}",
                        "use mmvid, artv, or a name like 'maskgit' or 'mmvid_b4'") from None
  label = LABELS[spec.decoder]
  details = []
  if spec.decoder != "ar":
    details.append(f"{spec.steps} steps")
  if spec.num_candidates > 1:
    details.append(f"B={spec.num_candidates}")
  if details:
    label = f"{label}, {', '.join(details)}"
  return Method(name=name, label=label, spec=spec)


def resolve_methods(names, has_mmvid_model: bool, has_artv_model: bool) -> tuple[Method, ...]:
  """The requested rows, or by default every method a trained model exists for."""
  names = split_names(names)
  if not names:
    names = (("mmvid",) if has_mmvid_model else ()) + (("artv",) if has_artv_model else ())
  methods = tuple(parse_method(n) for n in names)
  seen = set()
  for method in methods:
    if method.name in seen:
      raise ProtocolError(f"protocol decoders: {method.name!r} is listed twice", "list it once")
    seen.add(method.name)
    if method.uses_artv_model and not has_artv_model:
      raise ProtocolError(f"protocol decoders: {method.name!r} needs an ART-V model, but none "
                          "was trained", "pass --ar_workdir (or --config.evaluate.ar_workdir) "
                          "of an ART-V run on the same data and tokenizer, or drop it from "
                          "--decoders")
    if not method.uses_artv_model and not has_mmvid_model:
      raise ProtocolError(f"protocol decoders: {method.name!r} needs an MMVID (bidirectional) "
                          "transformer, but this workdir holds an ART-V one",
                          "use --decoders=artv")
  return methods


def check_eval_num(eval_num) -> int:
  if isinstance(eval_num, bool) or not isinstance(eval_num, int) or eval_num <= 0:
    raise ProtocolError(f"eval_num must be a positive number of clips, got {eval_num!r}",
                        f"evaluate {DEFAULT_EVAL_NUM} clips (MMVID's protocol) or at least "
                        f"{MIN_CLIPS}")
  if eval_num < MIN_CLIPS:
    raise ProtocolError(f"eval_num={eval_num} is too few clips: PRD fits {PRD_CLUSTERS} "
                        "clusters on the real and generated features",
                        f"evaluate at least {MIN_CLIPS} clips ({DEFAULT_EVAL_NUM} in MMVID's "
                        "protocol)")
  return eval_num


def i3d_frames(num_frames: int) -> int:
  """MMVID's VIDEO_LENGTH: 15 for clips shorter than 16 frames, else 16."""
  return 15 if num_frames < 16 else 16


def check_frames(num_frames: int, model_frames: int | None = None) -> None:
  """The clip length must suit the protocol and match the model's."""
  if num_frames < 2:
    raise ProtocolError(f"MMVID's protocol measures videos, but clips have {num_frames} "
                        "frame(s); its palindrome extension needs at least 2",
                        "evaluate a video model (data.num_frames >= 2)")
  if model_frames is not None and model_frames != num_frames:
    raise ProtocolError(f"the transformer generates {model_frames} frames but the data gives "
                        f"{num_frames}-frame clips, so real and generated videos cannot be "
                        "compared", "evaluate with the data.num_frames the model was trained "
                        "with")
