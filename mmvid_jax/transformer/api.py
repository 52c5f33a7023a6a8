"""The transformer as the decoders see it: `load_transformer` and `TransformerBundle`.

The transformer stage exports its final parameters to `<workdir>/transformer/export/`:
`transformer.json` (layout, model fields, objective, control slots, text encoder, step) and
`params.msgpack`. Loading needs nothing else from the trainer.

Decoders use pure functions of the parameters (jit them freely; the bundle is a pytree):

    bundle = load_transformer(workdir)
    cond = bundle.condition(bundle.params, text_ids, control_codes)   # once per video
    logits, rel, vid = bundle.tokens_to_logits(bundle.params, video_tokens, cond)

`cond` is a dict; passing `{"text_ids": ..., "control_codes": ...}` directly to
`tokens_to_logits` also works (the condition is then embedded on every call). Control codes are
the tokenizer's codes of the control images after evaluation-mode erasing:
`bundle.control_codes(tokenizer, controls_uint8)`.

ART-V (causal) bundles offer `prefill(params, text_ids, control_codes) -> (logits, cache)` and
`decode_step(params, cache, video_token, index) -> (logits, cache)`.
"""

import dataclasses
import json
import os
from typing import Any

import flax
from flax import struct
import jax
import jax.numpy as jnp

from mmvid_jax.errors import UserError
from mmvid_jax.transformer import controls as controls_lib
from mmvid_jax.transformer import model as model_lib
from mmvid_jax.transformer import text_encoders
from mmvid_jax.transformer.vocab import Layout

EXPORT_DIR = "export"
SPEC_FILE = "transformer.json"
PARAMS_FILE = "params.msgpack"


class TransformerBundle(struct.PyTreeNode):
  """Layout + parameters + module (+ frozen text encoder); a pytree that can enter `jax.jit`."""
  params: Any
  text_encoder: Any  # FrozenBert or None
  layout: Layout = struct.field(pytree_node=False)
  model: Any = struct.field(pytree_node=False)
  control_modes: tuple[str, ...] = struct.field(pytree_node=False, default=())
  objective: str = struct.field(pytree_node=False, default="mmvid")

  @property
  def vocab(self) -> Layout:
    return self.layout

  @property
  def is_causal(self) -> bool:
    return self.objective == "artv"

  def _text_features(self, text_ids):
    return None if self.text_encoder is None else self.text_encoder(text_ids)

  def control_codes(self, tokenizer, controls, key=None, train: bool = False):
    """uint8 control images (B, n_ctrl, H, W, 3) -> erased codes (B, n_ctrl, h, w)."""
    if not self.layout.num_controls:
      return None
    codes = controls_lib.tokenize_controls(tokenizer, jnp.asarray(controls))
    return controls_lib.erase_controls(codes, self.control_modes, self.layout.mask_id, key, train)

  def condition(self, params, text_ids, control_codes=None) -> dict:
    """Embeds [REL] + text + controls once; reuse the result across decoding steps."""
    if self.is_causal:
      raise UserError("condition/tokens_to_logits need an MMVID (bidirectional) transformer; this "
                      "one is ART-V. Fix: use prefill/decode_step, or the 'ar' decoder.")
    embedding = self.model.apply({"params": params}, jnp.asarray(text_ids), control_codes,
                                 self._text_features(text_ids),
                                 method=model_lib.MMVIDTransformer.embed_condition)
    return {"embedding": embedding}

  def tokens_to_logits(self, params, video_tokens, cond):
    """(B, N) tokens with [MASK] -> (logits (B, N, K), rel (B,), vid (B,))."""
    if "embedding" not in cond:
      cond = self.condition(params, cond["text_ids"], cond.get("control_codes"))
    return self.model.apply({"params": params}, cond["embedding"], jnp.asarray(video_tokens))

  def prefill(self, params, text_ids, control_codes=None):
    """ART-V: runs <bos> + text + controls; returns (logits of video token 0 (B, K), cache)."""
    self._require_causal()
    return self.model.apply({"params": params}, jnp.asarray(text_ids), control_codes,
                            method=model_lib.ARTVTransformer.prefill)

  def decode_step(self, params, cache, video_token, index):
    """ART-V: feeds video token `index` (B,); returns (logits of token index+1 (B, K), cache)."""
    self._require_causal()
    return self.model.apply({"params": params}, cache, jnp.asarray(video_token), index,
                            method=model_lib.ARTVTransformer.decode_step)

  def _require_causal(self):
    if not self.is_causal:
      raise UserError("prefill/decode_step need an ART-V (causal) transformer; this one is "
                      "MMVID. Fix: use tokens_to_logits with a mask-predict or MaskGIT decoder.")


def export_dir(workdir_or_dir: str) -> str:
  for candidate in (os.path.join(workdir_or_dir, "transformer", EXPORT_DIR),
                    os.path.join(workdir_or_dir, EXPORT_DIR), workdir_or_dir):
    if os.path.exists(os.path.join(candidate, SPEC_FILE)):
      return candidate
  return os.path.join(workdir_or_dir, "transformer", EXPORT_DIR)


def exported_step(workdir_or_dir: str) -> int:
  """The training step of the exported transformer (0 when there is none or it is unreadable)."""
  try:
    with open(os.path.join(export_dir(workdir_or_dir), SPEC_FILE)) as f:
      return int(json.load(f).get("step", 0))
  except (OSError, ValueError, AttributeError):
    return 0


def module_spec(module) -> dict:
  """The constructor fields of a model (layout excluded) as JSON."""
  fields = {}
  for field in dataclasses.fields(module):
    if field.name in ("layout", "parent", "name") or not field.init:
      continue
    value = getattr(module, field.name)
    if isinstance(value, (bool, int, float, str)):
      fields[field.name] = value
  return fields


def save_transformer(directory: str, bundle: TransformerBundle, step: int,
                     text_encoder_kind: str) -> None:
  """Writes the export (each file atomically: write to .tmp, then rename)."""
  os.makedirs(directory, exist_ok=True)
  spec = {"layout": dataclasses.asdict(bundle.layout), "model": module_spec(bundle.model),
          "objective": bundle.objective, "control_modes": list(bundle.control_modes),
          "text_encoder": text_encoder_kind, "step": int(step)}
  data = flax.serialization.msgpack_serialize(jax.tree_util.tree_map(jax.device_get,
                                                                      bundle.params))
  for name, payload, mode in ((PARAMS_FILE, data, "wb"),
                              (SPEC_FILE, json.dumps(spec, indent=2, sort_keys=True), "w")):
    path = os.path.join(directory, name)
    with open(path + ".tmp", mode) as f:
      f.write(payload)
    os.replace(path + ".tmp", path)


def build_model(spec: dict):
  layout = Layout(**spec["layout"])
  cls = (model_lib.ARTVTransformer if spec["objective"] == "artv"
         else model_lib.MMVIDTransformer)
  return layout, cls(layout, **spec["model"])


def load_transformer(workdir_or_dir: str) -> TransformerBundle:
  """Loads the exported transformer; UserError when the transformer stage has not run."""
  directory = export_dir(workdir_or_dir)
  spec_path, params_path = (os.path.join(directory, SPEC_FILE),
                            os.path.join(directory, PARAMS_FILE))
  if not (os.path.exists(spec_path) and os.path.exists(params_path)):
    raise UserError(f"no trained transformer under {workdir_or_dir!r} (looked for {SPEC_FILE} and "
                    f"{PARAMS_FILE} in {directory!r}). Fix: run --config.stage=transformer first "
                    "with this --workdir.")
  with open(spec_path) as f:
    spec = json.load(f)
  layout, module = build_model(spec)
  with open(params_path, "rb") as f:
    params = flax.serialization.msgpack_restore(f.read())
  params = jax.tree_util.tree_map(jnp.asarray, params)
  return TransformerBundle(params=params,
                           text_encoder=text_encoders.load_text_encoder(spec["text_encoder"]),
                           layout=layout, model=module,
                           control_modes=tuple(spec["control_modes"]),
                           objective=spec["objective"])
