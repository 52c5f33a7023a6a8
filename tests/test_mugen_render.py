"""MUGEN renderer: geometry, poses, coins, camera, painters agree, exact Pillow blending."""

import copy
import math

import numpy as np
from PIL import Image
import pytest

from mmvid_jax.data import mugen_game
from mmvid_jax.data import mugen_render
from mmvid_jax.data import mugen_sprites
from mmvid_jax.errors import UserError
from tests import fixtures_mugen as fx
from tests import script_loader

AGENT = "kenneyLarge/Players/128x256_no_helmet/Yellow/alienYellow_{}.png"


@pytest.fixture(scope="module")
def asset_dir(tmp_path_factory):
  return fx.write_assets(str(tmp_path_factory.mktemp("assets")))


def _clip(asset_dir, size, **kwargs):
  game = mugen_game.parse_game(fx.make_game(**kwargs))
  return mugen_render.MugenRenderer(asset_dir, size).clip(game)


def _agent_box(clip, index):
  """(top, left, height, width) of the agent as the state places it."""
  frame = clip.game.frames[index]
  k, dx = clip.k, clip.camera_dx(frame)
  left = math.floor(k * frame.agent.x + dx)
  top = math.floor(clip.size - k * (frame.agent.y + 1) + clip.dy)
  return top, left, math.ceil(2 * k), math.ceil(k)


def test_blend_matches_pillow_paste():
  rng = np.random.default_rng(0)
  dst = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
  src = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
  image = Image.fromarray(dst)
  sprite = Image.fromarray(src, "RGBA")
  image.paste(sprite, (0, 0, 16, 16), sprite)
  np.testing.assert_array_equal(mugen_sprites.blend(dst, src[..., :3], src[..., 3]),
                                np.asarray(image))


def test_compiled_paste_is_pillow_paste_with_clipping():
  """The compiled kernel's runs (copy, blend, skip) against Pillow's paste, for sprites with
  every kind of alpha, opaque ones, and boxes hanging off each edge of the frame."""
  from mmvid_jax.data import mugen_compiled
  rng = np.random.default_rng(1)
  alpha = rng.integers(0, 256, (9, 7), dtype=np.uint8)
  alpha[:3] = 255  # Opaque runs,
  alpha[3:5, 2:] = 0  # transparent runs,
  alpha[6, :] = rng.choice([0, 255], 7)  # and single pixels of each kind.
  rgba = np.concatenate([rng.integers(0, 256, (9, 7, 3), dtype=np.uint8), alpha[..., None]], -1)
  opaque = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
  sprites = [mugen_sprites.Sprite(Image.fromarray(rgba, "RGBA")),
             mugen_sprites.Sprite(Image.fromarray(opaque))]
  atlas = mugen_compiled.SpriteAtlas()
  ids = [atlas.index(sprite) for sprite in sprites]
  assert ids == [0, 1] and atlas.index(sprites[0]) == 0
  runs = mugen_compiled.sprite_segments(alpha, 7, 9)
  assert runs[:, 0].tolist() == sorted(runs[:, 0].tolist())
  covered = np.zeros((9, 7), int)
  for row, x0, x1, kind in runs:
    covered[row, x0:x1] += 1
    expected = 255 if kind == mugen_compiled.COPY else None
    assert (alpha[row, x0:x1] == expected).all() if expected else \
        ((alpha[row, x0:x1] > 0) & (alpha[row, x0:x1] < 255)).all()
  np.testing.assert_array_equal(covered, (alpha > 0).astype(int))  # Alpha 0 left out.
  frame = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
  for left, top in ((-3, -4), (8, 7), (2, 1), (-6, 10), (11, -8), (20, 0)):
    for sprite, index in zip(sprites, ids):
      image = Image.fromarray(frame)
      w, h = sprite.size
      mask = sprite.image if sprite.mask is not None else None
      image.paste(sprite.image, (left, top, left + w, top + h), mask)
      ours = frame.copy()
      mugen_compiled._paste(ours.reshape(12, 36), *atlas.arrays(), index, left, top)
      np.testing.assert_array_equal(ours, np.asarray(image), err_msg=f"{index} at {left, top}")


@pytest.mark.parametrize("size", [37, 64, 128])
@pytest.mark.parametrize("kwargs", [{}, {"world": 1, "killed": True, "monster_dies": True},
                                    {"power_up": True, "num_frames": 4}])
def test_every_painter_paints_exactly_the_reference(asset_dir, size, kwargs):
  clip = _clip(asset_dir, size, **kwargs)
  frames = range(clip.game.num_frames)
  reference = clip.render(frames, "reference")
  assert reference.shape == (len(frames), size, size, 3) and reference.dtype == np.uint8
  for method in ("direct", "fast", "compiled"):
    np.testing.assert_array_equal(clip.render(frames, method), reference, err_msg=method)
  # Any frame order and subset, with repeats (the clip's tables are built once).
  picked = [3, 0, 3, clip.game.num_frames - 1]
  np.testing.assert_array_equal(clip.render(picked, "compiled"), reference[picked])


def test_opaque_rgba_sprites_and_a_short_background_paint_exactly(tmp_path):
  """Real lava is RGBA with alpha 255 everywhere: `fast` pastes it unmasked (Pillow's blend at
  alpha 255 returns the source), which must still equal the reference. A background image too
  small to cover the frame leaves black that `fast` must clear on its reused image."""
  assets = fx.write_assets(str(tmp_path), size=16)
  for name in ("lava", "lavaTop_low"):
    path = tmp_path / "kenney" / "Tiles" / f"{name}.png"
    pixels = np.asarray(Image.open(path).convert("RGBA")).copy()
    pixels[..., 3] = 255
    pixels[:, ::3, :3] = (200, 30, 10)  # Texture, so the scroll shows.
    Image.fromarray(pixels, "RGBA").save(path)
  game = mugen_game.parse_game(fx.make_game(num_frames=8))
  clip = mugen_render.MugenRenderer(assets, 64).clip(game)
  frames = range(game.num_frames)
  assert clip.sprites.get("kenney/Tiles/lava.png", (8, 8)).mask is None  # Opaque: unmasked.
  for method in ("fast", "compiled"):
    np.testing.assert_array_equal(clip.render(frames, method), clip.render(frames, "reference"))
  game.bgzoom = 10.0  # Parallax so strong that the background misses part of frames 0-1.
  clip = mugen_render.MugenRenderer(assets, 64).clip(game)
  backwards = frames[::-1]  # Covered frames first, then the reused image must be cleared.
  reference = clip.render(backwards, "reference")
  black = (reference == 0).all(-1).sum(axis=(1, 2))
  assert black[0] == 0 and black[-1] > 0
  for method in ("fast", "compiled"):
    np.testing.assert_array_equal(clip.render(backwards, method), reference)


def test_agent_pixels_where_the_state_puts_it(asset_dir):
  data = fx.make_game()
  data["frames"][5]["agent"]["y"] = 4.0  # Two tiles higher (mid-jump).
  data["frames"][5]["agent"]["vy"] = 0.3
  clip = mugen_render.MugenRenderer(asset_dir, 128).clip(mugen_game.parse_game(data))
  video = clip.render([2, 5])
  # time_alive 6: the second walk pose (poses alternate every 5 ticks); vy != 0: jump.
  for frame, index, pose in ((video[0], 2, "walk2"), (video[1], 5, "jump")):
    assert clip.game.frames[index].agent.pose == pose
    top, left, height, width = _agent_box(clip, index)
    body = frame[top + height * 2 // 3, left + width // 2]
    assert tuple(body) == fx.sprite_color(AGENT.format(pose)), (index, pose)
  top2, _, height, _ = _agent_box(clip, 2)
  top5, _, _, _ = _agent_box(clip, 5)
  assert top2 - top5 == pytest.approx(2 * clip.k, abs=1)
  # Above the agent's head (the sprite's transparent margin and beyond): no agent colour.
  assert tuple(video[0][top2 - 2, left + width // 2]) != fx.sprite_color(AGENT.format("walk2"))


def test_facing_flips_the_sprite(asset_dir):
  clip = _clip(asset_dir, 128)  # Walks right, turns left at frame 9.
  video = clip.render([4, 10])
  darkness = []
  for frame, index in ((video[0], 4), (video[1], 10)):
    top, left, height, width = _agent_box(clip, index)
    row = top + height * 3 // 8  # The nose stripe's rows.
    right = frame[row, left + width - 2].astype(int).sum()
    left_side = frame[row, left + 1].astype(int).sum()
    darkness.append(left_side - right)  # > 0: the nose (dark) is on the right.
  assert darkness[0] > 100 and darkness[1] < -100


def test_eaten_coin_vanishes_and_comes_back_in_the_maze(asset_dir):
  data = fx.make_game()
  assert data["maze"][2][6] == "."  # The release quirk: eaten by the end, missing from the maze.
  game = mugen_game.parse_game(data)
  assert game.maze[2][6] == mugen_game.COIN
  eaten_at = next(t for t, f in enumerate(data["frames"]) if [6, 2] in f["coins_eaten"])
  clip = mugen_render.MugenRenderer(asset_dir, 128).clip(game)
  coin = fx.sprite_color("kenneyLarge/Items/coinGold.png")
  for index, visible in ((eaten_at - 1, True), (eaten_at, False)):
    frame = clip.render([index])[0]
    rect = clip.tile_rect(6, 2, clip.camera_dx(game.frames[index]))
    x, y = int(rect[0] + rect[2] / 2), int(rect[1] + rect[3] * 0.7)
    assert 0 <= x < 128
    # The agent may overlap the coin's cell once eaten; the coin colour must be gone.
    assert (tuple(frame[y, x]) == coin) == visible, index


def test_camera_follows_x_only(asset_dir):
  data = fx.make_game()
  data["frames"][6]["agent"]["y"] = 3.5
  data["frames"][6]["agent"]["vy"] = 0.2
  clip = mugen_render.MugenRenderer(asset_dir, 128).clip(mugen_game.parse_game(data))
  video = clip.render([2, 6])
  lefts = [_agent_box(clip, i)[1] for i in (2, 6)]
  assert lefts[0] == lefts[1]  # The agent stays at the horizontal centre.
  ground = fx.sprite_color("kenney/Ground/Snow/snowMid.png")
  # The ground surface stays on the same rows although the agent moved up ...
  rows = [np.nonzero((frame == ground).all(-1).any(1))[0] for frame in video]
  np.testing.assert_array_equal(rows[0], rows[1])
  # ... while the crate at x=9 moves left by the agent's horizontal travel.
  crate = fx.sprite_color("kenney/Tiles/boxCrate.png")
  columns = [np.nonzero((frame == crate).all(-1).any(0))[0].min() for frame in video]
  travel = (data["frames"][6]["agent"]["x"] - data["frames"][2]["agent"]["x"]) * clip.k
  assert columns[0] - columns[1] == pytest.approx(travel, abs=1)


def test_lava_scrolls_with_state_time(asset_dir):
  data = fx.make_game(num_frames=3)
  for f in data["frames"]:  # Agent standing still next to the lava pool.
    f["agent"].update(x=11.0, vx=0.0)
  data["frames"][0]["state_time"], data["frames"][1]["state_time"] = 0, 3
  data["frames"][2]["state_time"] = 10  # Same scroll phase as 0.
  video = _render_data(asset_dir, data, 128)
  lava = video[:, 100:, 70:110]
  assert (lava[0] != lava[1]).any()
  np.testing.assert_array_equal(lava[0], lava[2])


def test_dead_monster_shrinks_and_killed_agent_fades(asset_dir):
  clip = _clip(asset_dir, 128, killed=True, monster_dies=True)
  dead = np.array(fx.sprite_color("kenneyLarge/Enemies/slimeBlock_dead.png"))
  heights, areas = [], []
  for index in (8, 9, 10, 11):  # Dying counter 3, 2, 1, 0 over the last frames.
    frame = clip.game.frames[index]
    sprite = clip.character_items(frame, clip.camera_dx(frame))[0][0]
    heights.append(sprite.rgb.shape[0])
    pixels = clip.render([index])[0].astype(int)
    areas.append(int((np.abs(pixels - dead).sum(-1) < 40).sum()))
  assert heights[0] > heights[1] > heights[2] > heights[3] > 0
  assert areas[0] > areas[1] > areas[2] > areas[3] > 0
  # Killed: frames 8-11 have fade (31 - 8 t) * 12 -> not drawn, not drawn, 180, 84.
  hit = np.array(fx.sprite_color(AGENT.format("hit")))
  for index, drawn in ((9, False), (11, True)):
    frame = clip.render([index])[0]
    top, left, height, width = _agent_box(clip, index)
    pixel = frame[top + height * 2 // 3, left + width // 2].astype(int)
    assert (np.abs(pixel - hit).sum() < 200) == drawn
    assert tuple(pixel) != tuple(hit)  # Never fully opaque while fading.


def test_power_up_draws_the_shield(asset_dir):
  shield = fx.sprite_color("bubble_shield.png")
  plain, shielded = (_clip(asset_dir, 128, num_frames=2, power_up=p).render([1])[0]
                     for p in (False, True))
  assert not (plain == shield).all(-1).any() and (shielded == shield).all(-1).any()


def _render_data(asset_dir, data, size):
  game = mugen_game.parse_game(copy.deepcopy(data))
  return mugen_render.MugenRenderer(asset_dir, size).render(game, range(game.num_frames))


def test_missing_sprite_names_the_path_and_asset_dir(tmp_path):
  asset_dir = fx.write_assets(str(tmp_path), skip=("kenney/Tiles/boxCrate.png",))
  with pytest.raises(UserError, match=r"kenney/Tiles/boxCrate.png.*asset_dir"):
    _render_data(asset_dir, fx.make_game(num_frames=2), 32)


def test_missing_move_sprite_falls_back_to_the_base(tmp_path, asset_dir):
  data = fx.make_game(num_frames=4)
  for f in data["frames"]:
    f["monsters"][0]["theme"] = 1  # barnacle: the fixture has no barnacle_move.png.
  assert _render_data(asset_dir, data, 32).shape == (4, 32, 32, 3)


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["frames"][3]["agent"].pop("x"), "frames[3].agent.x"),
    (lambda d: d.__setitem__("maze", d["maze"][:5]), "maze"),
    (lambda d: d["frames"][1]["monsters"][0].__setitem__("theme", 99),
     "frames[1].monsters[0].theme"),
    (lambda d: d.__setitem__("zoom", 7.0), "zoom"),
    (lambda d: d["frames"][0].__setitem__("coins_eaten", [[1]]), "frames[0].coins_eaten[0]"),
])
def test_malformed_game_state_names_file_and_field(edit, field):
  data = fx.make_game(num_frames=4)
  edit(data)
  with pytest.raises(UserError, match=re_escape(f"'game.json': field '{field}'")):
    mugen_game.parse_game(data, "game.json")


def re_escape(text):
  import re
  return re.escape(text)


def test_load_game_errors(tmp_path):
  with pytest.raises(UserError, match="nope.json.*does not exist"):
    mugen_game.load_game(str(tmp_path / "nope.json"))
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(UserError, match="bad.json.*not valid JSON"):
    mugen_game.load_game(str(bad))


def test_benchmark_mugen_procedure_paints_the_reference_and_rescales_per_frame(asset_dir):
  # benchmarks/mugen_render.py times MUGEN's loader as the speed baseline: the reference
  # painter with lava halves, dying monsters and the fading agent redone on every frame.
  script = script_loader.load_script("benchmarks/mugen_render.py", "mugen_render_benchmark")
  game = mugen_game.parse_game(fx.make_game(world=1, killed=True, monster_dies=True))
  renderers = script._renderers(asset_dir, 64)
  frames = range(game.num_frames)
  reference = script._render(renderers, "reference", game, frames)
  np.testing.assert_array_equal(script._render(renderers, "mugen", game, frames), reference)
  # Its cache holds only sprites as loaded (no crops, fades or second rescales).
  keys = renderers["mugen"].sprites._sprites
  assert keys and all(crop is None and paint is None and fade == 0
                      for _, _, _, crop, paint, fade, _ in keys)
  assert any(key[3] is not None for key in renderers["reference"].sprites._sprites)


def test_without_numba_the_pillow_painter_renders_and_compiled_says_how_to_fix(asset_dir,
                                                                              monkeypatch):
  clip = _clip(asset_dir, 32)
  expected = clip.render(range(3), "reference")
  monkeypatch.setattr(mugen_render, "_numba_available", lambda: False)
  with pytest.raises(UserError, match="needs numba.*--method=fast"):
    clip.render(range(3), "compiled")
  monkeypatch.setattr(mugen_render, "DEFAULT_METHOD", "fast")
  np.testing.assert_array_equal(clip.render(range(3)), expected)
