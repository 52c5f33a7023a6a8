"""MUGEN game-state JSON: parsing, validation, sprite poses and the asset paths a clip needs.

A MUGEN clip is stored as the CoinRun game state of every frame (maze, agent, monsters,
eaten coins); frames are rendered from it (`mugen_render.py`). This module turns one JSON
file into plain Python objects, checks every field the renderer reads and names the file
and the field when one is wrong, so a bad file never surfaces as a KeyError mid-build.

Conventions of the release: maze row 0 is the bottom row (y grows upward), monster `theme`
indexes ground + walking + flying names in that order, coins in the last frame's
`coins_eaten` must be put back into the maze (the 3.2 s clips were cut from longer games).
"""

import json
import os

from mmvid_jax.errors import UserError

# Maze characters.
SPACE = "."
LADDER = "="
LAVA_SURFACE = "^"
LAVA_MIDDLE = "|"
WALL_SURFACE = "S"
WALL_MIDDLE = "A"
WALL_CLIFF_LEFT = "a"
WALL_CLIFF_RIGHT = "b"
COIN = "1"
GEM = "2"
SPIKE = "P"
CRATE_NORMAL = "#"
CRATE_DOUBLE = "$"
CRATE_SINGLE = "&"
CRATE_WARNING = "%"
LAVA_TILES = (LAVA_SURFACE, LAVA_MIDDLE)

# Animation constants of the CoinRun engine.
AGENT_ANIM_FREQ = 5
AGENT_DEATH_FRAMES = 30
MONSTER_DEATH_FRAMES = 3
# Vertical camera placement (in tiles) per zoom level: the camera never moves vertically.
CAMERA_ROWS_BY_ZOOM = {5.5: 5.0, 4.3: 6.5, 5.0: 5.5, 6.0: 4.5}

AGENT_POSES = ("walk1", "walk2", "climb1", "climb2", "stand", "jump", "duck", "hit")
MONSTER_POSES = ("", "_move", "_dead")


class Agent:
  __slots__ = ("x", "y", "vx", "pose", "facing_right", "is_killed", "killed_frame_cnt",
               "power_up")

  def __init__(self, x, y, vx, pose, facing_right, is_killed, killed_frame_cnt, power_up):
    self.x, self.y, self.vx, self.pose = x, y, vx, pose
    self.facing_right, self.is_killed = facing_right, is_killed
    self.killed_frame_cnt, self.power_up = killed_frame_cnt, power_up


class Monster:
  __slots__ = ("x", "y", "theme", "pose", "facing_right", "is_dead", "dying_frame_cnt")

  def __init__(self, x, y, theme, pose, facing_right, is_dead, dying_frame_cnt):
    self.x, self.y, self.theme, self.pose = x, y, theme, pose
    self.facing_right, self.is_dead, self.dying_frame_cnt = facing_right, is_dead, dying_frame_cnt


class Frame:
  __slots__ = ("state_time", "coins_eaten", "agent", "monsters")

  def __init__(self, state_time, coins_eaten, agent, monsters):
    self.state_time, self.coins_eaten = state_time, coins_eaten
    self.agent, self.monsters = agent, monsters


class Game:
  """One clip's game state, validated. `maze[y][x]`, row 0 at the bottom."""

  def __init__(self, path, zoom, bgzoom, maze_w, maze_h, maze, frames, background, ground_theme,
               agent_theme, monster_names):
    self.path, self.zoom, self.bgzoom = path, zoom, bgzoom
    self.maze_w, self.maze_h, self.maze, self.frames = maze_w, maze_h, maze, frames
    self.background, self.ground_theme, self.agent_theme = background, ground_theme, agent_theme
    self.monster_names = monster_names

  @property
  def num_frames(self) -> int:
    return len(self.frames)

  @property
  def camera_rows(self) -> float:
    return CAMERA_ROWS_BY_ZOOM[self.zoom]


class _Reader:
  """Typed field access that names the file and the field path on any mistake."""

  def __init__(self, path: str):
    self.path = path

  def fail(self, field: str, problem: str):
    raise UserError(f"malformed MUGEN game-state JSON {self.path!r}: field {field!r} {problem}. "
                    "Fix: re-extract the file from the MUGEN release (coinrun_dataset_jsons).")

  def get(self, obj: dict, key: str, field: str, kinds, default=None, required=True):
    if not isinstance(obj, dict):
      self.fail(field.rsplit(".", 1)[0], f"should be an object, got {type(obj).__name__}")
    if key not in obj:
      if required:
        self.fail(field, "is missing")
      return default
    value = obj[key]
    if kinds is float:
      ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kinds is int:
      ok = isinstance(value, int) and not isinstance(value, bool)
    elif kinds is bool:
      ok = isinstance(value, (bool, int))
    else:
      ok = isinstance(value, kinds)
    if not ok:
      self.fail(field, f"should be {getattr(kinds, '__name__', kinds)}, got {value!r:.60}")
    return value


def _agent_pose(r: _Reader, agent: dict, field: str) -> Agent:
  x = float(r.get(agent, "x", f"{field}.x", float))
  y = float(r.get(agent, "y", f"{field}.y", float))
  vx = float(r.get(agent, "vx", f"{field}.vx", float, 0.0, required=False))
  vy = float(r.get(agent, "vy", f"{field}.vy", float, 0.0, required=False))
  time_alive = int(r.get(agent, "time_alive", f"{field}.time_alive", float, 0, required=False))
  ladder = bool(r.get(agent, "ladder", f"{field}.ladder", bool, False, required=False))
  spring = r.get(agent, "spring", f"{field}.spring", float, 0, required=False)
  is_killed = bool(r.get(agent, "is_killed", f"{field}.is_killed", bool, False, required=False))
  killed_cnt = int(r.get(agent, "killed_animation_frame_cnt",
                         f"{field}.killed_animation_frame_cnt", float, 0, required=False))
  power_up = bool(r.get(agent, "power_up_mode", f"{field}.power_up_mode", bool, False,
                        required=False))
  first_step = (time_alive // AGENT_ANIM_FREQ) % 2 == 0
  if is_killed:
    pose = "hit"
  elif ladder:
    pose = "climb1" if first_step else "climb2"
  elif vy != 0:
    pose = "jump"
  elif spring != 0:
    pose = "duck"
  elif vx == 0:
    pose = "stand"
  else:
    pose = "walk1" if first_step else "walk2"
  return Agent(x, y, vx, pose, vx >= 0, is_killed, killed_cnt, power_up)


def _monster(r: _Reader, m: dict, field: str, num_names: int) -> Monster:
  x = float(r.get(m, "x", f"{field}.x", float))
  y = float(r.get(m, "y", f"{field}.y", float))
  vx = float(r.get(m, "vx", f"{field}.vx", float, 0.0, required=False))
  vy = float(r.get(m, "vy", f"{field}.vy", float, 0.0, required=False))
  theme = r.get(m, "theme", f"{field}.theme", int)
  if not 0 <= theme < num_names:
    r.fail(f"{field}.theme", f"is {theme}, outside the {num_names} monster_names")
  is_jumping = bool(r.get(m, "is_jumping", f"{field}.is_jumping", bool, False, required=False))
  is_dead = bool(r.get(m, "is_dead", f"{field}.is_dead", bool, False, required=False))
  time = int(r.get(m, "time", f"{field}.time", float, 0, required=False))
  anim_freq = int(r.get(m, "anim_freq", f"{field}.anim_freq", float, 1, required=False)) or 1
  dying = int(r.get(m, "monster_dying_frame_cnt", f"{field}.monster_dying_frame_cnt", float, 0,
                    required=False))
  first_step = vy == 0 if is_jumping else (time // anim_freq) % 2 == 0
  pose = "_dead" if is_dead else ("" if first_step else "_move")
  # Monster sprites face left; they are mirrored when moving right.
  return Monster(x, y, theme, pose, vx > 0, is_dead, dying)


def parse_game(data, path: str = "<game>") -> Game:
  """Validates a decoded game-state dict and returns a `Game`."""
  r = _Reader(path)
  if not isinstance(data, dict):
    r.fail("<top level>", "should be an object")
  zoom = float(r.get(data, "zoom", "zoom", float))
  if zoom not in CAMERA_ROWS_BY_ZOOM:
    r.fail("zoom", f"is {zoom}; supported zoom levels are {sorted(CAMERA_ROWS_BY_ZOOM)}")
  bgzoom = float(r.get(data, "bgzoom", "bgzoom", float, 0.4, required=False))
  maze_w = r.get(data, "maze_w", "maze_w", int, 64, required=False)
  maze_h = r.get(data, "maze_h", "maze_h", int, 13, required=False)
  maze = list(r.get(data, "maze", "maze", list))
  if len(maze) != maze_h:
    r.fail("maze", f"has {len(maze)} rows, expected maze_h={maze_h}")
  for y, row in enumerate(maze):
    if not isinstance(row, str) or len(row) != maze_w:
      r.fail(f"maze[{y}]", f"should be a string of maze_w={maze_w} characters, got {row!r:.80}")
    unknown = set(row) - set(".=^|SAab12P#$&%")
    if unknown:
      r.fail(f"maze[{y}]", f"holds unknown maze characters {sorted(unknown)}")

  world = r.get(data, "world_theme_n", "world_theme_n", int)
  backgrounds = r.get(data, "background_themes", "background_themes", list)
  grounds = r.get(data, "ground_themes", "ground_themes", list)
  if not (0 <= world < len(backgrounds) and world < len(grounds)):
    r.fail("world_theme_n", f"is {world}, outside background_themes/ground_themes")
  agent_n = r.get(data, "agent_theme_n", "agent_theme_n", int)
  agents = r.get(data, "agent_themes", "agent_themes", list)
  if not 0 <= agent_n < len(agents):
    r.fail("agent_theme_n", f"is {agent_n}, outside agent_themes")
  names = r.get(data, "monster_names", "monster_names", dict)
  flat_names = []
  for kind in ("ground", "walking", "flying"):
    flat_names += list(r.get(names, kind, f"monster_names.{kind}", list))

  frames_raw = r.get(data, "frames", "frames", list)
  if not frames_raw:
    r.fail("frames", "is empty")
  frames = []
  for i, f in enumerate(frames_raw):
    field = f"frames[{i}]"
    state_time = r.get(f, "state_time", f"{field}.state_time", float, 0, required=False)
    eaten = r.get(f, "coins_eaten", f"{field}.coins_eaten", list, [], required=False)
    coins = set()
    for j, c in enumerate(eaten):
      if not (isinstance(c, list) and len(c) == 2 and all(isinstance(v, int) for v in c)):
        r.fail(f"{field}.coins_eaten[{j}]", f"should be [x, y] integers, got {c!r:.40}")
      coins.add((c[0], c[1]))
    agent = _agent_pose(r, r.get(f, "agent", f"{field}.agent", dict), f"{field}.agent")
    monsters = [_monster(r, m, f"{field}.monsters[{j}]", len(flat_names))
                for j, m in enumerate(r.get(f, "monsters", f"{field}.monsters", list, [],
                                            required=False))]
    frames.append(Frame(state_time, coins, agent, monsters))

  # Coins eaten by the end of the clip are missing from the stored maze: put them back.
  for x, y in frames[-1].coins_eaten:
    if 0 <= y < maze_h and 0 <= x < maze_w and maze[y][x] == SPACE:
      maze[y] = maze[y][:x] + COIN + maze[y][x + 1:]
  return Game(path, zoom, bgzoom, maze_w, maze_h, maze, frames, str(backgrounds[world]),
              str(grounds[world]), str(agents[agent_n]), [str(n) for n in flat_names])


def _gfile():
  """TensorFlow's file API, for remote paths (gs://, s3://, ...) only: Beam workers on a
  cluster read the clips and sprites from a bucket."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  import tensorflow as tf
  return tf.io.gfile


def is_file(path: str) -> bool:
  return _gfile().exists(path) and not _gfile().isdir(path) if "://" in path \
      else os.path.isfile(path)


def is_dir(path: str) -> bool:
  return _gfile().isdir(path) if "://" in path else os.path.isdir(path)


def open_file(path: str, mode: str = "r"):
  """`open` for local paths, TensorFlow's GFile for remote ones."""
  return _gfile().GFile(path, mode) if "://" in path else open(path, mode)


def load_game(path: str) -> Game:
  """Reads and validates one game-state JSON file (a local or a gs://-style path)."""
  if not is_file(path):
    raise UserError(f"MUGEN game-state file {path!r} does not exist. Fix: check "
                    "config.data.root_dir (the folder the split file's json_file paths are "
                    "relative to) or the --game_json path.")
  try:
    with open_file(path) as f:
      data = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"malformed MUGEN game-state JSON {path!r}: not valid JSON ({e}). Fix: "
                    "re-extract the file from the MUGEN release.") from None
  return parse_game(data, path)


# Sprite of each maze character; "{ground}" is kenney/Ground/<Theme>/<theme>.
_TILE_SPRITES = {
    WALL_MIDDLE: "{ground}Center.png",
    WALL_SURFACE: "{ground}Mid.png",
    WALL_CLIFF_LEFT: "{ground}Cliff_left.png",
    WALL_CLIFF_RIGHT: "{ground}Cliff_right.png",
    COIN: "kenneyLarge/Items/coinGold.png",
    GEM: "kenneyLarge/Items/gemRed.png",
    CRATE_NORMAL: "kenney/Tiles/boxCrate.png",
    CRATE_DOUBLE: "kenney/Tiles/boxCrate_double.png",
    CRATE_SINGLE: "kenney/Tiles/boxCrate_single.png",
    CRATE_WARNING: "kenney/Tiles/boxCrate_warning.png",
    LAVA_MIDDLE: "kenney/Tiles/lava.png",
    LAVA_SURFACE: "kenney/Tiles/lavaTop_low.png",
    SPIKE: "kenney/Tiles/spikes.png",
    LADDER: "kenney/Tiles/ladderMid.png",
}


def tile_sprite(game: Game, char: str) -> str:
  """Sprite path (relative to the asset dir) of a maze character."""
  path = _TILE_SPRITES[char]
  if path.startswith("{ground}"):
    theme = game.ground_theme
    path = f"kenney/Ground/{theme}/{theme.lower()}" + path[len("{ground}"):]
  return path


def agent_sprite(game: Game, pose: str) -> str:
  theme = game.agent_theme
  return f"kenneyLarge/Players/128x256_no_helmet/{theme}/alien{theme}_{pose}.png"


def monster_sprite(game: Game, theme: int, pose: str) -> tuple[str, str]:
  """(sprite path, fallback path): a missing `_move`/`_dead` sprite falls back to the base."""
  name = game.monster_names[theme]
  return f"kenneyLarge/Enemies/{name}{pose}.png", f"kenneyLarge/Enemies/{name}.png"


SHIELD_SPRITE = "bubble_shield.png"
