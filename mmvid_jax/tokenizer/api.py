"""The tokenizer as the other stages see it: `load_tokenizer` and `VideoTokenizer`.

The tokenizer stage exports its EMA generator weights to `<workdir>/tokenizer/export/`:
`tokenizer.json` (the tokenizer config section, image size, training step) and
`variables.msgpack` (flax-serialised variables). Loading needs nothing else from the trainer.
"""

import json
import os

import flax
from flax import struct
import jax
import jax.numpy as jnp
import ml_collections

from mmvid_jax.errors import UserError
from mmvid_jax.tokenizer.model import VQGAN, build_tokenizer

EXPORT_DIR = "export"
SPEC_FILE = "tokenizer.json"
VARIABLES_FILE = "variables.msgpack"
# Keys that change the network or its code space; a mismatch means the checkpoint cannot serve.
ARCHITECTURE_KEYS = ("quantizer", "channels", "channel_mult", "num_res_blocks", "attn_resolutions",
                     "embed_dim", "l2_normalize", "ema", "encoder_context")


class VideoTokenizer(struct.PyTreeNode):
  """Frozen per-frame tokenizer; a pytree (variables are leaves), so it can enter `jax.jit`."""
  variables: dict
  module: VQGAN = struct.field(pytree_node=False)
  image_size: int = struct.field(pytree_node=False)

  @property
  def codebook_size(self) -> int:
    return self.module.codebook_size

  @property
  def downsample_factor(self) -> int:
    return 2 ** (len(self.module.channel_mult) - 1)

  @property
  def latent_size(self) -> int:
    return self.image_size // self.downsample_factor

  def encode_to_codes(self, video):
    """Video (B, T, H, W, 3) in [-1, 1] → int32 codes (B, T, h, w)."""
    if video.shape[-3:] != (self.image_size, self.image_size, 3):
      raise UserError(f"the tokenizer was trained on {self.image_size}x{self.image_size} RGB frames "
                      f"but got frames of shape {tuple(video.shape[-3:])}. Fix: resize the video or "
                      "train a tokenizer at this size.")
    video = jnp.asarray(video, jnp.float32)
    return self.module.apply(self.variables, video, method=VQGAN.encode_indices).astype(jnp.int32)

  def decode_from_codes(self, codes):
    """int codes (B, T, h, w) → float32 video (B, T, H, W, 3) in [-1, 1]."""
    codes = jnp.clip(jnp.asarray(codes, jnp.int32), 0, self.codebook_size - 1)
    video = self.module.apply(self.variables, codes, method=VQGAN.decode_indices)
    return jnp.clip(video.astype(jnp.float32), -1.0, 1.0)


def export_dir(workdir_or_dir: str) -> str:
  """`<workdir>/tokenizer/export`, also accepting the tokenizer folder or the export folder."""
  for candidate in (os.path.join(workdir_or_dir, "tokenizer", EXPORT_DIR),
                    os.path.join(workdir_or_dir, EXPORT_DIR), workdir_or_dir):
    if os.path.exists(os.path.join(candidate, SPEC_FILE)):
      return candidate
  return os.path.join(workdir_or_dir, "tokenizer", EXPORT_DIR)


def save_tokenizer(directory: str, tok_config: ml_collections.ConfigDict, image_size: int,
                   variables, step: int) -> None:
  """Writes the export (atomically per file: write to .tmp, then rename)."""
  os.makedirs(directory, exist_ok=True)
  spec = {"tokenizer": json.loads(tok_config.to_json_best_effort()), "image_size": int(image_size),
          "step": int(step)}
  data = flax.serialization.msgpack_serialize(jax.tree_util.tree_map(jax.device_get, variables))
  with open(os.path.join(directory, VARIABLES_FILE + ".tmp"), "wb") as f:
    f.write(data)
  os.replace(os.path.join(directory, VARIABLES_FILE + ".tmp"), os.path.join(directory, VARIABLES_FILE))
  with open(os.path.join(directory, SPEC_FILE + ".tmp"), "w") as f:
    json.dump(spec, f, indent=2, sort_keys=True)
  os.replace(os.path.join(directory, SPEC_FILE + ".tmp"), os.path.join(directory, SPEC_FILE))


def _check_compatible(saved: dict, image_size: int, expected_codebook_size, expected_config,
                      expected_image_size, directory: str) -> None:
  module = build_tokenizer(ml_collections.ConfigDict(saved))
  where = f"the tokenizer in {directory!r}"
  fix = ("Fix: retrain it with the current config (--config.stage=tokenizer in a fresh workdir) "
         "or change the config back to match it.")
  if expected_codebook_size is not None and module.codebook_size != int(expected_codebook_size):
    raise UserError(f"{where} has {module.codebook_size} codes but {expected_codebook_size} are "
                    f"expected. {fix}")
  if expected_image_size is not None and image_size != int(expected_image_size):
    raise UserError(f"{where} was trained on {image_size}px frames but the config asks for "
                    f"{expected_image_size}px. {fix}")
  if expected_config is not None:
    saved = dict({"encoder_context": "global"}, **saved)  # exports older than the option
    for key in ARCHITECTURE_KEYS + ("fsq_levels", "codebook_size"):
      if key not in expected_config or key not in saved:
        continue
      if key == "codebook_size" and saved["quantizer"] == "fsq":
        continue
      if key == "fsq_levels" and saved["quantizer"] != "fsq":
        continue
      want, have = expected_config[key], saved[key]
      if isinstance(want, (list, tuple)) or isinstance(have, (list, tuple)):
        want, have = list(want), list(have)
      if want != have:
        raise UserError(f"{where} has tokenizer.{key}={have!r} but the config asks for "
                        f"{want!r}. {fix}")


def load_tokenizer(workdir_or_dir: str, expected_codebook_size: int | None = None,
                   expected_config: ml_collections.ConfigDict | None = None,
                   expected_image_size: int | None = None) -> VideoTokenizer:
  """Loads the EMA weights of the finished tokenizer stage.

  Raises UserError when there is no exported tokenizer, or when it does not match the expected
  codebook size, image size or architecture (`expected_config` = a `config.tokenizer` section).
  """
  directory = export_dir(workdir_or_dir)
  spec_path = os.path.join(directory, SPEC_FILE)
  variables_path = os.path.join(directory, VARIABLES_FILE)
  if not (os.path.exists(spec_path) and os.path.exists(variables_path)):
    raise UserError(f"no trained tokenizer under {workdir_or_dir!r} (looked for {SPEC_FILE} and "
                    f"{VARIABLES_FILE} in {directory!r}). Fix: run --config.stage=tokenizer first "
                    "with this --workdir.")
  with open(spec_path) as f:
    spec = json.load(f)
  saved, image_size = spec["tokenizer"], int(spec["image_size"])
  _check_compatible(saved, image_size, expected_codebook_size, expected_config,
                    expected_image_size, directory)
  module = build_tokenizer(ml_collections.ConfigDict(saved))
  with open(variables_path, "rb") as f:
    variables = flax.serialization.msgpack_restore(f.read())
  expected = jax.eval_shape(module.init, jax.random.key(0),
                            jnp.zeros((1, image_size, image_size, 3), jnp.float32))
  expected_shapes = jax.tree_util.tree_map(lambda x: tuple(x.shape), expected)
  got_shapes = jax.tree_util.tree_map(lambda x: tuple(x.shape), variables)
  if expected_shapes != got_shapes:
    raise UserError(f"the tokenizer weights in {directory!r} do not fit the architecture recorded "
                    f"in its {SPEC_FILE} (files edited or mixed up). Fix: re-run "
                    "--config.stage=tokenizer in a fresh workdir.")
  variables = jax.tree_util.tree_map(jnp.asarray, variables)
  return VideoTokenizer(variables=variables, module=module, image_size=image_size)
