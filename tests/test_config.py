"""Config variants load and bad values fail with one clear line before compute."""

import importlib.util
import os

import pytest

from mmvid_jax import configuration
from mmvid_jax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name, arg=None):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize("variant", ["default", "tiny", "text_image", "dependent", "long"])
def test_shapes_variants_validate(variant):
  config = load("shapes", variant)
  configuration.validate(config, num_devices=1)


def test_shapes_long_is_the_default_with_the_long_run_recipe_and_4_blocks():
  default, long = load("shapes", "default"), load("shapes", "long")
  assert long.data.to_dict() == default.data.to_dict()
  assert long.tokenizer.to_dict() == default.tokenizer.to_dict()
  assert long.sample.cfg_scale == default.sample.cfg_scale
  changed = {key for key, value in long.transformer.items() if default.transformer[key] != value}
  assert changed == {"depth", "num_steps", "eval_every", "checkpoint_every", "video_conv",
                     "msm_bernoulli_keep"}
  # The measured long recipe has 4 blocks; the CPU default trades them for steps.
  assert (long.transformer.depth, default.transformer.depth) == (4, 2)
  assert long.transformer.num_steps >= 8 * default.transformer.num_steps


def test_unknown_variant():
  with pytest.raises(ValueError, match="unknown variant"):
    load("shapes", "huge")


@pytest.mark.parametrize("key, value, match", [
    ("stage", "train", "config.stage: unknown stage"),
    ("data.image_size", -4, "config.data.image_size: must be a positive"),
    ("data.image_size", 30, "config.data.image_size: 30 is not divisible"),
    ("transformer.batch_size", 6, "config.transformer.batch_size: 6 is not divisible by the 4"),
    ("data.manual_dir", "no/such/dir", "config.data.manual_dir: directory"),
    ("data.frame_step", 5, "config.data.frame_step"),
    ("data.motion_grid", -2, "config.data.motion_grid: must be a whole number"),
    ("data.motion_grid", 12, "config.data.motion_grid: a 12-pixel grid leaves the largest objects 1"),
    ("transformer.ema_decay", 1.0, "config.transformer.ema_decay: 1.0 is not a decay in"),
    # The model factory's checks run before any stage, not when the transformer stage starts.
    ("transformer.video_conv", 2, "config.transformer.video_conv: kernel size 2 is not 0 or odd"),
    ("transformer.rotary", "2d", "config.transformer.rotary: unknown rotary encoding"),
    ("transformer.dense_init", "xavier", "config.transformer.dense_init: unknown initializer"),
    ("transformer.remat_policy", "most", "config.transformer.remat_policy: unknown remat"),
    ("transformer.code_embedding_init", "pca", "config.transformer.code_embedding_init: unknown"),
    ("transformer.compute_dtype", "float16", "config.transformer.compute_dtype"),
])
def test_bad_values_name_key_and_fix(key, value, match):
  config = load("shapes", "tiny")
  section, _, leaf = key.rpartition(".")
  target = config[section] if section else config
  with target.unlocked():
    target[leaf] = value
  with pytest.raises(ConfigError, match=match) as info:
    configuration.validate(config, num_devices=4)
  assert "Fix:" in str(info.value)

