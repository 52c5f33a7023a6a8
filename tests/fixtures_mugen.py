"""Writes a tiny MUGEN tree: split files, game-state JSONs and placeholder sprites.

The layout is the release's (`coinrun_dataset_jsons/release/<split>.json` with per-clip paths
relative to `metadata.data_folder`, and the `assets/` sprite tree), but every sprite is a
generated flat-colour PNG with alpha (a transparent margin, a half-transparent ring and a
"nose" stripe on the right so mirroring is visible). No real MUGEN file is used.

`make_game` also serves the benchmark: a 64 x 13 maze with lava, coins, crates, a ladder, a
walking monster and an agent walking right then left.
"""

import hashlib
import json
import os

import numpy as np
from PIL import Image

GROUND_THEMES = ("Snow", "Planet")
BACKGROUNDS = ("backgrounds/background-2/airadventurelevel4.png",
               "backgrounds/spacebackgrounds-0/milky_way_01.png")
MONSTER_NAMES = {"ground": ["sawHalf", "barnacle"],
                 "walking": ["slimeBlock", "slimeBlue", "mouse", "snail", "ladybug", "wormPink",
                             "frog"],
                 "flying": ["bee"]}
AGENT_POSES = ("walk1", "walk2", "climb1", "climb2", "stand", "jump", "duck", "hit")
TILE_NAMES = ("boxCrate", "boxCrate_double", "boxCrate_single", "boxCrate_warning", "lava",
              "lavaTop_low", "ladderMid")
NOSE_RGB = (10, 10, 10)


def _color(name: str) -> tuple[int, int, int]:
  """A stable, distinct flat colour per sprite name."""
  digest = hashlib.md5(name.encode()).digest()
  return tuple(40 + b * 200 // 256 for b in digest[:3])


def sprite_color(relative_path: str) -> tuple[int, int, int]:
  return _color(os.path.splitext(relative_path)[0])


def _sprite(width: int, height: int, rgb, opaque: bool = False) -> Image.Image:
  pixels = np.zeros((height, width, 4), np.uint8)
  pixels[..., :3] = rgb
  if opaque:
    pixels[..., 3] = 255
  else:
    pixels[height // 8:, :, 3] = 128  # A half-transparent ring ...
    pixels[height // 8 + 1:height - 1, 1:width - 1, 3] = 255  # ... around an opaque body.
  pixels[height // 4:height // 2, width * 3 // 4:, :3] = NOSE_RGB  # Faces right.
  return Image.fromarray(pixels, "RGBA")


def write_assets(asset_dir: str, size: int = 32, skip: tuple[str, ...] = ()) -> str:
  """Every sprite the renderer may need, at `size` px per tile (the alien is 1 x 2)."""
  paths = {}
  for theme in GROUND_THEMES:
    for part in ("Center", "Mid", "Cliff_left", "Cliff_right"):
      paths[f"kenney/Ground/{theme}/{theme.lower()}{part}.png"] = (size, size, part in
                                                                   ("Center", "Mid"))
  for name in TILE_NAMES + ("spikes",):
    paths[f"kenney/Tiles/{name}.png"] = (size, size, name == "lava")
  for name in ("coinGold", "gemRed"):
    paths[f"kenneyLarge/Items/{name}.png"] = (size, size, False)
  for pose in AGENT_POSES:
    paths[f"kenneyLarge/Players/128x256_no_helmet/Yellow/alienYellow_{pose}.png"] = (
        size, 2 * size, False)
  for names in MONSTER_NAMES.values():
    for name in names:
      for pose in ("", "_dead") + (() if name == "barnacle" else ("_move",)):
        paths[f"kenneyLarge/Enemies/{name}{pose}.png"] = (size, size, False)
  paths["bubble_shield.png"] = (size * 140 // 128, size * 2, False)
  for relative, (width, height, opaque) in paths.items():
    if relative in skip:
      continue
    path = os.path.join(asset_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = _sprite(width, height, sprite_color(relative), opaque)
    if opaque:
      image = image.convert("RGB")
    image.save(path)
  for i, relative in enumerate(BACKGROUNDS):
    if relative in skip:
      continue
    path = os.path.join(asset_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stripes = np.zeros((27, 48, 3 + i), np.uint8)
    stripes[..., 0] = (np.arange(48) // 6 % 2 * 120 + 60)[None]
    stripes[..., 2] = 90 + 100 * i
    if i:
      stripes[..., 3] = 255
    Image.fromarray(stripes).save(path)
  return asset_dir


def make_game(num_frames: int = 12, maze_w: int = 64, world: int = 0, speed: float = 0.5,
              seed: int = 0, killed: bool = False, power_up: bool = False,
              monster_dies: bool = False) -> dict:
  """A game-state dict: ground at rows 0-1, lava pool, coin, gem, crates, ladder, a monster.

  The agent walks right from x=2 (at `speed` tiles per frame), turns left for the last
  quarter of the clip, and eats the coin at (6, 2) when it reaches it. As in the release,
  the stored maze lacks the coins eaten by the end of the clip.
  """
  rng = np.random.default_rng(seed)
  rows = [["."] * maze_w for _ in range(13)]
  for x in range(maze_w):
    rows[0][x], rows[1][x] = "A", "S"
  lava = range(12, 15)
  for x in lava:
    rows[0][x], rows[1][x] = "|", "^"
  rows[1][11], rows[1][15] = "b", "a"
  rows[2][6] = "1"
  rows[2][18 % maze_w] = "2"
  rows[2][9], rows[3][9], rows[2][10] = "#", "$", "%"
  rows[4][10] = "&"
  for y in (2, 3, 4):
    rows[y][3] = "="
  for x in range(30, maze_w, 9):  # Scenery across a long maze.
    rows[2][x], rows[5][x + 2] = "#", "1"
  turn = num_frames * 3 // 4
  frames, eaten, x = [], [], 2.0
  monster_x = 8.0
  for t in range(num_frames):
    vx = speed if t < turn else -speed
    if t:
      x += vx
    if abs(x - 6) < 0.5 and [6, 2] not in eaten:
      eaten.append([6, 2])
    dead = monster_dies and t >= num_frames - 4
    agent = {"x": x, "y": 2.0, "vx": vx, "vy": 0.0, "time_alive": 3 * t, "ladder": False,
             "spring": 0, "is_killed": killed and t >= num_frames - 4,
             "killed_animation_frame_cnt": max(0, t - (num_frames - 4)) * 8,
             "finished_level_frame_cnt": 0, "killed_monster": dead, "bumped_head": False,
             "collected_coin": False, "collected_gem": False, "power_up_mode": power_up}
    monster = {"m_id": 0, "x": monster_x, "y": 2.0, "vx": -0.1 if t < turn else 0.1, "vy": 0.0,
               "theme": 2, "is_flying": False, "is_walking": True, "is_jumping": False,
               "is_dead": dead, "time": t, "anim_freq": 2,
               "monster_dying_frame_cnt": num_frames - 1 - t if dead else 0}
    monster_x += monster["vx"]
    frames.append({"frame_id": t, "file_name": f"{t:04d}.png",
                   "state_time": int(t + rng.integers(0, 2)),
                   "coins_eaten": [list(c) for c in eaten], "agent": agent,
                   "monsters": [monster]})
  maze = ["".join(r) for r in rows]
  for cx, cy in eaten:  # The release's quirk: eaten coins are missing from the stored maze.
    maze[cy] = maze[cy][:cx] + "." + maze[cy][cx + 1:]
  return {"game_id": seed, "level_seed": seed, "rl_agent_seed": 0, "zoom": 5.5, "bgzoom": 0.4,
          "world_theme_n": world, "agent_theme_n": 0, "background_themes": list(BACKGROUNDS),
          "ground_themes": list(GROUND_THEMES), "agent_themes": ["Yellow"],
          "monster_names": MONSTER_NAMES, "video_res": 1024, "maze_w": maze_w, "maze_h": 13,
          "maze": maze, "frames": frames}


CLIPS = {
    # name: (split, num_frames, game kwargs, auto text, manual texts)
    "walk": ("train", 12, {}, "Mugen walks to the right and collects a coin.",
             ["Mugen runs right and grabs a coin.", "The alien picks up a gold coin."]),
    "fade": ("train", 12, {"world": 1, "killed": True, "monster_dies": True},
             "Mugen walks and is killed by a monster.", []),
    "shield": ("train", 4, {"power_up": True}, "Mugen walks with a shield.", ["Shielded walk."]),
    "val_walk": ("val", 12, {"seed": 3}, "Mugen walks right.", ["Mugen moves right."]),
    "test_walk": ("test", 12, {"seed": 4, "world": 1}, "Mugen walks on the planet.",
                  ["A walk on a planet."]),
}


def write_mugen_tree(root: str, val_name: str = "val.json", extra_eval_clips: int = 0,
                     num_frames: int | None = None) -> dict:
  """Writes `root/assets` and `root/coinrun_dataset_jsons/{release, data}`; returns the paths.

  Clip paths are relative to `manual_dir`'s parent (the stored `data_folder` does not exist),
  which is where the loader looks by default. `extra_eval_clips` adds that many more walking
  clips to each of validation and test (evaluation batches drop incomplete remainders).
  `num_frames` gives every clip that length (96: the release's 3.2 s clips).
  """
  asset_dir = write_assets(os.path.join(root, "assets"))
  manual_dir = os.path.join(root, "coinrun_dataset_jsons", "release")
  os.makedirs(manual_dir, exist_ok=True)
  splits = {"train": [], "val": [], "test": []}
  clips = dict(CLIPS)
  for j in range(extra_eval_clips):
    for split in ("val", "test"):
      clips[f"{split}_extra{j}"] = (split, 12, {"seed": 10 + j, "world": j % 2},
                                     "Mugen walks right.", ["Mugen walks to the right."])
  length = num_frames
  for i, (name, (split, num_frames, kwargs, auto, manual)) in enumerate(clips.items()):
    num_frames = length or num_frames
    relative = f"data/{name}.json"
    path = os.path.join(os.path.dirname(manual_dir), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    game = make_game(num_frames=num_frames, **kwargs)
    with open(path, "w") as f:
      json.dump(game, f)
    annotations = [{"text": auto, "characters": ["mugen", "coin"], "actions": ["walk"],
                    "type": "auto"}]
    annotations += [{"text": t, "characters": ["mugen"], "actions": ["walk"], "type": "manual"}
                    for t in manual]
    splits[split].append({
        "video": {"id": f"{name}_{i}", "json_file": relative, "video_file": f"data/{name}.mp4",
                  "audio_map_file": f"data/{name}.npy", "world_theme_n": game["world_theme_n"],
                  "gt_characters": ["mugen", "monster"], "game_events": ["collect_coin"] * (i % 2),
                  "num_frames": num_frames},
        "annotations": annotations})
  for split, data in splits.items():
    metadata = {"version": "v2", "type": "3.2s", "split": split,
                "data_folder": "/authors/own/path/that/does/not/exist",
                "game_events": ["collect_coin", "killed_by_monster"],
                "action_verbs": ["walk"], "characters": ["mugen", "monster", "coin"]}
    name = val_name if split == "val" else f"{split}.json"
    with open(os.path.join(manual_dir, name), "w") as f:
      json.dump({"metadata": metadata, "data": data}, f)
  return {"root": root, "asset_dir": asset_dir, "manual_dir": manual_dir}
