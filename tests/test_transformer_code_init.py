"""Seeding the code embedding and the video head from decoded codes (code_embedding_init)."""

from flax import linen as nn
import jax
import numpy as np
import optax
import pytest

from mmvid_jax.errors import ConfigError
from mmvid_jax.tokenizer.pseudo import PseudoTokenizer
from mmvid_jax.transformer import code_init, trainer
from mmvid_jax.transformer.model import MMVIDTransformer
from mmvid_jax.transformer.vocab import Layout

TOKENIZER = PseudoTokenizer(16, patch_size=4, levels=4)  # 64 codes, a 4x4 grid per frame
LAYOUT = Layout(codebook_size=64, text_vocab_size=10, text_len=4, num_frames=2, latent_height=4,
                latent_width=4)


def test_signatures_are_what_each_code_decodes_to():
  signatures = code_init.code_pixel_signatures(TOKENIZER)
  assert signatures.shape == (64, 4 * 4 * 3)
  # Pseudo code r*16 + g*4 + b paints its patch with the bin centres (r, g, b).
  code = 2 * 16 + 1 * 4 + 3
  expected = (np.array([2, 1, 3]) + 0.5) / 4 * 2 - 1
  np.testing.assert_allclose(signatures[code].reshape(16, 3), np.tile(expected, (16, 1)),
                             atol=1e-6)


def test_seeded_tables_keep_look_alike_codes_close_at_the_configured_scale():
  signatures = code_init.code_pixel_signatures(TOKENIZER)
  rows, head = code_init.seeded_tables(signatures, width=128, embed_std=0.02)
  assert rows.shape == (64, 128) and head.shape == (128, 64)
  assert rows.std() == pytest.approx(0.02, rel=1e-3)
  assert head.std() == pytest.approx(1 / np.sqrt(128), rel=1e-3)
  np.testing.assert_allclose(head, rows.T / 0.02 / np.sqrt(128), rtol=1e-4, atol=1e-6)
  cosine = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
  near, far = 2 * 16 + 1 * 4 + 3, 3 * 16 + 1 * 4 + 3  # one red bin apart
  opposite = 0  # black
  assert cosine(rows[near], rows[far]) > 0.5 > cosine(rows[near], rows[opposite])


def test_seed_params_sets_codes_and_head_and_keeps_the_rest():
  model = MMVIDTransformer(LAYOUT, width=32, depth=1, num_heads=2, mlp_dim=64)
  tables = code_init.seeded_tables(code_init.code_pixel_signatures(TOKENIZER), 32, 0.02)
  tx = optax.adam(1e-3)
  plain = jax.jit(trainer.make_init_fn(model, LAYOUT, tx, None))(jax.random.key(0))
  seeded = jax.jit(trainer.make_init_fn(model, LAYOUT, tx, None, tables))(jax.random.key(0))
  p, s = nn.unbox(plain.params), nn.unbox(seeded.params)
  np.testing.assert_allclose(s["video_emb"][:64], tables[0], rtol=1e-6)
  np.testing.assert_array_equal(s["video_emb"][64:], p["video_emb"][64:])  # [MASK]
  np.testing.assert_allclose(s["video_head"]["dense"]["kernel"], tables[1], rtol=1e-6)
  np.testing.assert_array_equal(s["trunk"]["block_0"]["mlp"]["fc1"]["kernel"],
                                p["trunk"]["block_0"]["mlp"]["fc1"]["kernel"])
  # Embedding only ("pixels"): the head keeps its random start.
  rows_only = jax.jit(trainer.make_init_fn(model, LAYOUT, tx, None, (tables[0], None)))(
      jax.random.key(0))
  r = nn.unbox(rows_only.params)
  np.testing.assert_allclose(r["video_emb"][:64], tables[0], rtol=1e-6)
  np.testing.assert_array_equal(r["video_head"]["dense"]["kernel"],
                                p["video_head"]["dense"]["kernel"])
  # Still logically partitioned, so the mesh rules shard the seeded tables like the random ones.
  assert isinstance(seeded.params["video_emb"], nn.LogicallyPartitioned)
  assert seeded.params["video_emb"].names == plain.params["video_emb"].names


def test_bad_settings_are_config_errors():
  with pytest.raises(ConfigError, match="code_embedding_init"):
    code_init.validate("codebook")
  assert code_init.validate("pixels_and_head") == "pixels_and_head"
  with pytest.raises(ConfigError, match="same patch"):
    code_init.seeded_tables(np.ones((8, 12), np.float32), 16, 0.02)
