"""MSM masking statistics (seeded), box semantics, and control erasing in token space."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.transformer import controls
from mmvid_jax.transformer import masking

T, H, W = 4, 8, 8
N = T * H * W


def draw(strategy_prob, count=400, keep=(0.2, 0.2), seed=0):
  keys = jax.random.split(jax.random.key(seed), count)
  fn = jax.jit(jax.vmap(lambda k: masking.mmvid_keep_mask(k, T, H, W, strategy_prob, keep)))
  masks, strategies = fn(keys)
  return np.asarray(masks), np.asarray(strategies)


def test_strategy_mixture_frequencies():
  _, strategies = draw((0.7, 0.1, 0.1, 0.1), count=2000)
  freq = np.bincount(strategies, minlength=4) / len(strategies)
  np.testing.assert_allclose(freq, [0.7, 0.1, 0.1, 0.1], atol=0.03)


def test_bernoulli_keep_rate():
  masks, _ = draw((1, 0, 0, 0), count=200, keep=(0.2, 0.2))
  assert abs(masks.mean() - 0.2) < 0.01
  masks, _ = draw((1, 0, 0, 0), count=400, keep=(0.1, 0.3), seed=1)
  rates = masks.mean(axis=1)
  assert 0.05 < rates.min() and rates.max() < 0.36 and abs(rates.mean() - 0.2) < 0.02


def test_full_mask_is_fully_masked():
  masks, _ = draw((0, 1, 0, 0), count=10)
  assert not masks.any()
  assert np.asarray(masking.fully_masked(jnp.asarray(masks))).all()


@pytest.mark.parametrize("strategy", [2, 3])
def test_box_shared_by_all_frames_and_sized(strategy):
  probs = [0, 0, 0, 0]
  probs[strategy] = 1
  masks, _ = draw(probs, count=300)
  frames = masks.reshape(-1, T, H, W)
  assert (frames == frames[:, :1]).all()  # One tube box: identical in every frame.
  box = ~frames[:, 0] if strategy == 2 else frames[:, 0]
  areas = box.sum(axis=(1, 2))
  found = areas > 0
  assert found.mean() > 0.9  # 10 tries almost always find a box on an 8x8 grid.
  # Box sizes round(sqrt(a*r)) x round(sqrt(a/r)) with a in [0.2, 0.8]*64, strictly inside.
  assert areas[found].min() >= 6 and areas[found].max() <= 63
  for b in box[found][:50]:
    rows, cols = np.where(b)
    assert b[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
    assert rows.max() - rows.min() + 1 < H and cols.max() - cols.min() + 1 < W


def test_erasing_box_gives_up_after_tries():
  # On a 1x1 grid no box is strictly smaller than the grid: nothing is erased.
  box = masking.erasing_box(jax.random.key(0), 1, 1)
  assert not np.asarray(box).any()


def test_cosine_schedule_masks_at_least_one():
  keys = jax.random.split(jax.random.key(3), 500)
  masks = np.asarray(jax.vmap(lambda k: masking.cosine_keep_mask(k, N))(keys))
  masked = (~masks).sum(axis=1)
  assert masked.min() >= 1 and masked.max() <= N
  # E[cos(pi/2 r)] = 2/pi.
  assert abs(masked.mean() / N - 2 / np.pi) < 0.04


def test_batch_keep_mask_independent_per_sample():
  keep = np.asarray(masking.batch_keep_mask(jax.random.key(0), 8, T, H, W,
                                            strategy_prob=(1, 0, 0, 0)))
  assert keep.shape == (8, N)
  assert len({row.tobytes() for row in keep}) == 8


def test_preserved_frames_are_whole_frames_on_top_of_the_mask():
  """MMVID's pc_prob: a share of the samples also shows 1..T/2 whole frames, chosen at random."""
  batch, frames, prob = 2000, 8, 0.3
  plain = np.asarray(masking.batch_keep_mask(jax.random.key(1), batch, frames, H, W,
                                             strategy_prob=(0, 1, 0, 0)))  # full mask
  keep = np.asarray(masking.batch_keep_mask(jax.random.key(1), batch, frames, H, W,
                                            strategy_prob=(0, 1, 0, 0), preserve_prob=prob))
  assert not plain.any()
  per_frame = keep.reshape(batch, frames, H * W)
  whole = per_frame.all(axis=2)
  assert np.array_equal(whole, per_frame.any(axis=2))  # every shown token is in a whole frame
  shown = whole.sum(axis=1)
  preserved = shown > 0
  assert abs(preserved.mean() - prob) < 0.04
  assert shown.max() <= frames // 2 and set(shown[preserved]) == set(range(1, frames // 2 + 1))
  # Which frames: every position gets its turn (not only the first ones).
  assert whole[preserved].mean(axis=0).min() > 0.15
  # The mask underneath is the same draw: preservation only adds shown tokens.
  bernoulli = dict(strategy_prob=(1, 0, 0, 0))
  base = np.asarray(masking.batch_keep_mask(jax.random.key(2), 64, frames, H, W, **bernoulli))
  extra = np.asarray(masking.batch_keep_mask(jax.random.key(2), 64, frames, H, W, **bernoulli,
                                             preserve_prob=1.0))
  assert np.all(extra >= base) and extra.sum() > base.sum()


def test_control_erasing_modes():
  codes = jnp.arange(2 * 5 * 8 * 8).reshape(2, 5, 8, 8) % 7
  modes = ("keep", "mask_8x8", "face_8x8", "shape_4x4", "drop")
  out = np.asarray(controls.erase_controls(codes, modes, mask_id=99))
  assert (out[:, 0] == np.asarray(codes[:, 0])).all()
  kept = out[:, 1] != 99  # evaluation: keep only [1:7, 1:7]
  assert kept[:, 1:7, 1:7].all() and kept.sum() == 2 * 36
  kept = out[:, 2] != 99  # evaluation: eyes + nose [2:5, 1:7]
  assert kept[:, 2:5, 1:7].all() and kept.sum() == 2 * 18
  masked = out[:, 3] == 99  # shape_4x4 centre [1:3,1:3] scaled to 8x8 -> [2:6, 2:6]
  assert masked[:, 2:6, 2:6].all() and masked.sum() == 2 * 16
  assert (out[:, 4] == 99).all()


def test_control_erasing_training_draws_per_batch():
  codes = jnp.zeros((4, 1, 8, 8), jnp.int32)
  patterns = set()
  for seed in range(40):
    out = np.asarray(controls.erase_controls(codes, ("mask_8x8",), 99, jax.random.key(seed),
                                             train=True))
    assert (out == out[:1]).all()  # One draw shared by the batch.
    patterns.add(int((out[0] == 99).sum()))
  assert patterns == {0, 64 - 16, 64 - 36}  # keep all / keep [2:6]^2 / keep [1:7]^2


def test_parse_slots_errors():
  assert controls.parse_slots(("background:shape_4x4",)) == (("background", "shape_4x4"),)
  with pytest.raises(UserError, match="not '<source>:<erasing mode>'"):
    controls.parse_slots(("background",))
  with pytest.raises(UserError, match="erasing mode 'blur'"):
    controls.parse_slots(("background:blur",))


def test_corrupted_tokens_are_shown_tokens_replaced_by_batch_codes():
  codes = jax.random.randint(jax.random.key(0), (64, N), 100, 164)  # codes 100..163 only
  keep = np.asarray(masking.batch_keep_mask(jax.random.key(1), 64, T, H, W,
                                            strategy_prob=(1, 0, 0, 0), bernoulli_keep=(0.5, 0.5)))
  corrupted, noise = masking.corrupt_shown_tokens(jax.random.key(2), codes, jnp.asarray(keep), 0.25)
  corrupted, noise = np.asarray(corrupted), np.asarray(noise)
  assert not corrupted[~keep].any()  # masked tokens are never corrupted
  assert abs(corrupted[keep].mean() - 0.25) < 0.02
  # Replacements are codes of the batch (here 100..163), drawn from many positions.
  assert noise.min() >= 100 and noise.max() < 164 and len(np.unique(noise[corrupted])) == 64
  none, _ = masking.corrupt_shown_tokens(jax.random.key(2), codes, jnp.asarray(keep), 0.0)
  assert not np.asarray(none).any()
