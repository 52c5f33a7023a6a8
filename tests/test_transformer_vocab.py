"""Vocabulary/layout: every id range, index formula and sequence length; the attention mask."""

import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.transformer.vocab import Layout

# Spec §3.1: (L_txt, n_vis, insert_sep, frames, grid, pooled) -> (V, N, S). Text vocabulary is
# MMVID's CLIP BPE (49408), codebook 1024.
SPEC_TABLE = [
    ("MM-Vox text->video", 50, 0, False, 8, 8, False, 0, 512, 565),
    ("MM-Vox text+mask/drawing/partial", 50, 1, False, 8, 8, False, 64, 512, 629),
    ("MM-Vox drawing+mask / image+mask", 20, 2, False, 8, 8, False, 128, 512, 663),
    ("MM-Vox image+video", 20, 4, False, 8, 8, False, 256, 512, 791),
    ("MM-Vox RoBERTa text->video", 50, 0, False, 8, 8, True, 0, 512, 516),
    ("iPER text->video", 16, 0, False, 8, 8, False, 0, 512, 531),
    ("Shapes text+image", 20, 1, False, 16, 4, False, 16, 256, 295),
    ("Shapes dependent", 32, 3, True, 16, 4, False, 51, 256, 342),
]


@pytest.mark.parametrize("name, text_len, n_vis, sep, frames, grid, pooled, v, n, s", SPEC_TABLE)
def test_spec_table(name, text_len, n_vis, sep, frames, grid, pooled, v, n, s):
  layout = Layout(codebook_size=1024, text_vocab_size=49408, text_len=text_len,
                  num_frames=frames, latent_height=grid, latent_width=grid, num_controls=n_vis,
                  insert_sep=sep, pooled_text=pooled)
  assert (layout.control_len, layout.video_len, layout.seq_len) == (v, n, s), name
  text_tokens = 1 if pooled else text_len
  assert layout.rel_index == 0
  assert layout.text_slice == slice(1, 1 + text_tokens)
  assert layout.control_slice == slice(1 + text_tokens, 1 + text_tokens + v)
  assert layout.st1_index == 1 + text_tokens + v
  assert layout.vid_index == 2 + text_tokens + v
  assert layout.video_slice == slice(3 + text_tokens + v, s)
  assert layout.condition_len == layout.st1_index
  # Control slots tile the control block in order.
  covered = []
  for k in range(n_vis):
    sl = layout.control_slot_slice(k)
    assert sl.stop - sl.start == grid * grid + int(sep)
    covered.extend(range(sl.start, sl.stop))
  assert covered == list(range(layout.control_slice.start, layout.control_slice.stop))


def test_mmvox_text_to_video_is_565_and_ids():
  layout = Layout(1024, 49408, 50, 8, 8, 8)
  assert layout.seq_len == 565
  assert (layout.mask_id, layout.sep_id, layout.video_vocab_size) == (1024, 1025, 1026)
  assert layout.text_table_size == 49408 + 50
  assert layout.text_pad_id(0) == 49408 and layout.text_pad_id(49) == 49457


def test_attention_mask_rows():
  layout = Layout(16, 10, 3, 2, 2, 2, num_controls=1)
  allowed = layout.attention_allowed()
  st1, vid = layout.st1_index, layout.vid_index
  for q in range(layout.seq_len):
    if q in (st1, vid):
      assert not allowed[q, :q].any() and allowed[q, q:].all()
    else:
      assert allowed[q].all()
  # Every row keeps at least one key, so the softmax never sees an all-masked row.
  assert allowed.any(axis=1).all()


def test_check_ids_rejects_out_of_range():
  layout = Layout(16, 10, 3, 2, 2, 2, num_controls=1)
  layout.check_ids(text_ids=np.array([[1, 9, 0]]), control_codes=np.full((1, 1, 2, 2), 16),
                   video_tokens=np.full((1, 8), 16))
  with pytest.raises(UserError, match="text_ids holds ids"):
    layout.check_ids(text_ids=np.array([[1, 10, 0]]))
  with pytest.raises(UserError, match="video_tokens holds ids"):
    layout.check_ids(video_tokens=np.full((1, 8), 17))
  with pytest.raises(UserError, match="video_tokens holds ids"):
    layout.check_ids(video_tokens=np.full((1, 8), -1))
  with pytest.raises(UserError, match="shape"):
    layout.check_ids(video_tokens=np.zeros((1, 7), int))


def test_bad_layout_values():
  with pytest.raises(UserError, match="codebook_size"):
    Layout(0, 10, 3, 2, 2, 2)
