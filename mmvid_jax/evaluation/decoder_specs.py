"""Names of the decoder settings the evaluate stage compares.

A name is `<decoder>[_b<candidates>][_s<steps>][_c<cfg scale>][_t<temperature>][_f<frames>]`,
for example

    mask_predict          MMVID mask-predict, B and steps from config.sample
    mask_predict_b4       B = 4 reranked candidates per step (MMVID's REL/VID reranking)
    mask_predict_b4_s5    B = 4 with 5 steps: a smaller budget, comparable with B = 1
    mask_predict_c3       classifier-free guidance at scale 3 (default: config.sample.cfg_scale)
    mask_predict_t0.5     token draws at softmax temperature 0.5 (default: config.sample.temperature)
    mask_predict_f2       video prediction: the real clip's first 2 frames are given and kept
    maskgit               MaskGIT decoding (cosine schedule, lowest-confidence re-masking)
    ar                    ART-V autoregressive baseline (needs a causal transformer)

The evaluate stage reports each setting's budget, transformer forward passes per video, as
`mmvid_jax.sampling.generate.DecodeOptions.forward_passes` counts them (reranking B candidates
costs B passes per step, plus B scoring passes when candidates are scored on completed videos),
and one cached pass per video token for ART-V. Choose `_s<steps>` to equalise budgets.
"""

import dataclasses
import re

DECODERS = ("mask_predict", "maskgit", "ar")
_PATTERN = re.compile(r"^(mask_predict|maskgit|ar)((?:_[bsf]\d+|_[ct]\d+(?:\.\d+)?)*)$")


@dataclasses.dataclass(frozen=True)
class DecoderSpec:
  name: str
  decoder: str
  num_candidates: int
  steps: int
  cfg_scale: float | None = None  # None: config.sample.cfg_scale
  given_frames: int = 0  # > 0: the real clip's first frames are given (video prediction)
  temperature: float | None = None  # None: config.sample.temperature

  def guidance(self, default: float) -> float:
    return float(default) if self.cfg_scale is None else self.cfg_scale


def parse(name: str, default_steps: int, default_candidates: int) -> DecoderSpec:
  """Parses a decoder name; ValueError with the accepted grammar when it does not fit."""
  match = _PATTERN.match(str(name))
  if not match:
    raise ValueError(f"unknown decoder setting {name!r}; use <decoder>[_b<B>][_s<steps>][_c<cfg>]"
                     f"[_t<temperature>][_f<given frames>] "
                     f"with decoder one of {', '.join(DECODERS)} (e.g. 'mask_predict_b4_s5', "
                     f"'maskgit_c2.5')")
  decoder = match.group(1)
  options = dict(re.findall(r"_([bscft])(\d+(?:\.\d+)?)", match.group(2)))
  cfg_scale = float(options["c"]) if "c" in options else None
  temperature = float(options["t"]) if "t" in options else None
  if temperature is not None and temperature <= 0:
    raise ValueError(f"decoder setting {name!r}: the temperature (_t) must be > 0")
  candidates = int(options.get("b", default_candidates if decoder == "mask_predict" else 1))
  steps = int(options.get("s", default_steps))
  if candidates < 1 or steps < 1:
    raise ValueError(f"decoder setting {name!r}: candidates and steps must be >= 1")
  if candidates > 1 and decoder != "mask_predict":
    raise ValueError(f"decoder setting {name!r}: only mask_predict reranks candidates (_b)")
  return DecoderSpec(name=str(name), decoder=decoder, num_candidates=candidates, steps=steps,
                     cfg_scale=cfg_scale, given_frames=int(options.get("f", 0)),
                     temperature=temperature)


def from_config(config) -> tuple[DecoderSpec, ...]:
  """The settings to evaluate: `config.evaluate.compare`, or the sample stage's decoder."""
  entries = config.evaluate.get("compare", ())
  if isinstance(entries, str):
    entries = (entries,)
  # "--config.evaluate.compare=a,b" arrives as one string: accept commas too.
  names = tuple(name.strip() for entry in entries for name in str(entry).split(",")
                if name.strip()) or (config.sample.decoder,)
  specs = tuple(parse(name, int(config.sample.steps), int(config.sample.num_candidates))
                for name in names)
  seen = set()
  for spec in specs:
    if spec.name in seen:
      raise ValueError(f"decoder setting {spec.name!r} is listed twice")
    seen.add(spec.name)
  return specs
