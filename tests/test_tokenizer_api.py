"""`load_tokenizer` / `VideoTokenizer`: shapes, dtypes, ranges, jit, and clear errors."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.tokenizer import api
from mmvid_jax.tokenizer.model import build_tokenizer


def tok_config(**overrides):
  tok = ml_collections.ConfigDict(dict(
      quantizer="vq", codebook_size=16, fsq_levels=(8, 5, 5, 5), embed_dim=4, channels=8,
      channel_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), beta=0.25,
      l2_normalize=False, ema=False, ema_decay=0.99))
  tok.update(overrides)
  return tok


def export(workdir, tok, image_size=16):
  model = build_tokenizer(tok)
  variables = model.init(jax.random.key(0), jnp.zeros((1, image_size, image_size, 3)))
  api.save_tokenizer(os.path.join(workdir, "tokenizer", api.EXPORT_DIR), tok, image_size,
                     variables, step=7)
  return model


@pytest.mark.parametrize("quantizer,codes", [("vq", 16), ("fsq", 1000)])
def test_encode_decode_shapes_dtypes_ranges_under_jit(tmp_path, quantizer, codes):
  export(str(tmp_path), tok_config(quantizer=quantizer))
  tokenizer = api.load_tokenizer(str(tmp_path), expected_codebook_size=codes)
  assert (tokenizer.codebook_size, tokenizer.latent_size, tokenizer.image_size) == (codes, 8, 16)
  video = jax.random.uniform(jax.random.key(1), (2, 3, 16, 16, 3), minval=-1, maxval=1)

  @jax.jit
  def round_trip(tok, video):
    codes = tok.encode_to_codes(video)
    return codes, tok.decode_from_codes(codes)

  codes_out, decoded = round_trip(tokenizer, video)
  assert codes_out.shape == (2, 3, 8, 8) and codes_out.dtype == jnp.int32
  assert int(codes_out.min()) >= 0 and int(codes_out.max()) < codes
  assert decoded.shape == video.shape and decoded.dtype == jnp.float32
  assert float(decoded.min()) >= -1.0 and float(decoded.max()) <= 1.0
  # Eager calls give the same codes as the jitted ones.
  np.testing.assert_array_equal(tokenizer.encode_to_codes(video), codes_out)


def test_tokenizer_is_a_pytree_of_its_variables(tmp_path):
  export(str(tmp_path), tok_config())
  tokenizer = api.load_tokenizer(str(tmp_path))
  leaves = jax.tree_util.tree_leaves(tokenizer)
  assert leaves and all(isinstance(leaf, jax.Array) for leaf in leaves)
  # The export folder itself and the tokenizer folder are accepted too.
  assert api.load_tokenizer(str(tmp_path / "tokenizer")).codebook_size == 16
  assert api.load_tokenizer(str(tmp_path / "tokenizer" / "export")).codebook_size == 16


def test_missing_checkpoint_says_to_run_the_stage(tmp_path):
  with pytest.raises(UserError, match="run --config.stage=tokenizer first"):
    api.load_tokenizer(str(tmp_path))


def test_incompatible_checkpoint_is_a_clear_error(tmp_path):
  export(str(tmp_path), tok_config())
  with pytest.raises(UserError, match="has 16 codes but 1024 are expected"):
    api.load_tokenizer(str(tmp_path), expected_codebook_size=1024)
  with pytest.raises(UserError, match="tokenizer.channels=8 but the config asks for 32"):
    api.load_tokenizer(str(tmp_path), expected_config=tok_config(channels=32))
  with pytest.raises(UserError, match="trained on 16px frames but the config asks for 64px"):
    api.load_tokenizer(str(tmp_path), expected_image_size=64)
  tokenizer = api.load_tokenizer(str(tmp_path), expected_config=tok_config())
  with pytest.raises(UserError, match="trained on 16x16 RGB frames"):
    tokenizer.encode_to_codes(jnp.zeros((1, 2, 32, 32, 3)))


def test_export_without_encoder_context_counts_as_the_global_encoder(tmp_path):
  export(str(tmp_path), tok_config())  # written as exports were before the option existed
  with pytest.raises(UserError, match="encoder_context='global' but the config asks for 'patch'"):
    api.load_tokenizer(str(tmp_path), expected_config=tok_config(encoder_context="patch"))
  assert api.load_tokenizer(str(tmp_path), expected_config=tok_config(encoder_context="global"))


def test_patch_encoder_export_round_trips(tmp_path):
  export(str(tmp_path), tok_config(encoder_context="patch"))
  tokenizer = api.load_tokenizer(str(tmp_path), expected_config=tok_config(encoder_context="patch"))
  video = jnp.full((1, 2, 16, 16, 3), -1.0)  # one repeated patch: one code everywhere
  codes = np.asarray(tokenizer.encode_to_codes(video))
  assert codes.shape == (1, 2, 8, 8) and len(np.unique(codes)) == 1


def test_weights_that_do_not_fit_the_spec_are_rejected(tmp_path):
  export(str(tmp_path), tok_config())
  spec_path = tmp_path / "tokenizer" / "export" / api.SPEC_FILE
  spec_path.write_text(spec_path.read_text().replace('"embed_dim": 4', '"embed_dim": 6'))
  with pytest.raises(UserError, match="do not fit the architecture"):
    api.load_tokenizer(str(tmp_path))
