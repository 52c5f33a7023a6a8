"""benchmarks/tokenizer_reencode.py: how many codes a decode-encode round trip changes."""

import numpy as np

import script_loader

probe = script_loader.load_script("benchmarks/tokenizer_reencode.py", "tokenizer_reencode")


def _video():
  """Two 8x8 clips of one frame: black, with one bright 4x4 patch each."""
  video = np.zeros((2, 1, 8, 8, 3), np.uint8)
  video[0, 0, :4, :4] = 200
  video[1, 0, 4:, 4:] = 130
  return video


def _encode(video):  # a 4x4 patch's code: its brightness in 4 levels
  return video[..., ::4, ::4, 0] // 64


def _decode(codes, drift=0):
  patches = (codes.astype(np.int64) * 64 + drift).clip(0, 255).astype(np.uint8)
  return np.repeat(np.repeat(patches, 4, axis=-2), 4, axis=-1)[..., None].repeat(3, axis=-1)


def test_a_tokenizer_that_gives_back_its_codes_changes_none():
  result = probe.round_trips(_video(), _encode, _decode, rounds=2)
  assert result["clips"] == 2 and result["background_code"] == 0
  assert result["background_share"] == 0.75
  assert [r["tokens_changed"] for r in result["rounds"]] == [0.0, 0.0]
  assert result["rounds"][0]["background_share"] == 0.75
  assert np.isfinite(result["rounds"][0]["psnr_db"])


def test_a_decoder_that_brightens_black_moves_the_background_to_another_code():
  result = probe.round_trips(_video(), _encode, lambda c: _decode(c, drift=70), rounds=1)
  only = result["rounds"][0]
  # Every black patch decodes to 70 and encodes as code 1; the bright ones (3 and 2) move to
  # code 3 (200 + 70 clips at 255) and stay 3, or go from 2 to 3 (130 -> 198).
  assert only["background_share"] == 0.0
  assert only["tokens_changed"] == 0.75 + 0.125
  assert only["psnr_db"] < 20
