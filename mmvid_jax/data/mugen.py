"""MUGEN: render clips from game-state JSON, from Python or the command line.

    python -m mmvid_jax.data.mugen render --game_json=PATH --asset_dir=DIR --image_size=256 \
        --start=0 --num_frames=32 --frame_step=3 --out=clip.mp4   # or .gif, or .npy
    python -m mmvid_jax.data.mugen build --asset_dir=DIR --manual_dir=PATH/release \
        --config=r128_t16_s6 --data_dir=DIR \
        --beam_pipeline_options=runner=DirectRunner,direct_num_workers=8   # `tfds build` flags

`.npy` holds the raw uint8 array `[T, R, R, 3]`; videos play at 30 / frame_step fps (MUGEN
records at 30 fps). Every mistake (missing file or sprite, malformed JSON, bad argument) is
reported as one line naming the cause and the fix, with exit status 2.

The pieces: `mugen_game` (parsing), `mugen_render` (the renderer), `mugen_data` (split files,
captions, frame sampling), `mugen_tfds` (the TFDS builder) and `mugen_input` (tf.data).
"""

import argparse
import os
import sys

import numpy as np

from mmvid_jax.data import mugen_game
from mmvid_jax.data import mugen_render
from mmvid_jax.errors import UserError

OUTPUT_EXTENSIONS = (".mp4", ".gif", ".npy")
MUGEN_FPS = 30


def render_clip(game_json: str, asset_dir: str, image_size: int, start: int = 0,
                num_frames: int | None = None, frame_step: int = 1,
                method: str | None = None) -> np.ndarray:
  """Frames start, start + frame_step, ... of a game-state file: uint8 [T, R, R, 3].

  `num_frames=None` renders every frame from `start` on.
  """
  _check_positive("image_size", image_size, minimum=8)
  _check_positive("frame_step", frame_step)
  if not isinstance(start, int) or start < 0:
    raise UserError(f"--start must be an integer >= 0, got {start!r}. Fix: pass e.g. --start=0.")
  if not asset_dir or not mugen_game.is_dir(asset_dir):
    raise UserError(f"asset_dir {asset_dir!r} is not a folder. Fix: pass MUGEN's coinrun "
                    "assets folder (kenney/, kenneyLarge/, backgrounds/, bubble_shield.png).")
  game = mugen_game.load_game(game_json)
  if num_frames is None:
    num_frames = max(0, -(-(game.num_frames - start) // frame_step))
  _check_positive("num_frames", num_frames)
  last = start + (num_frames - 1) * frame_step
  if last >= game.num_frames:
    raise UserError(f"{game_json!r} has {game.num_frames} frames but --start={start} "
                    f"--num_frames={num_frames} --frame_step={frame_step} needs frame {last}. "
                    "Fix: lower --start, --num_frames or --frame_step.")
  renderer = mugen_render.MugenRenderer(asset_dir, image_size)
  return renderer.render(game, range(start, last + 1, frame_step), method)


# One renderer per (asset_dir, image_size) per process: build and input workers reuse the
# scaled sprites across clips.
_RENDERERS: dict[tuple[str, int], mugen_render.MugenRenderer] = {}


def render_frames(asset_dir: str, image_size: int, game_json: str, frame_indices) -> np.ndarray:
  """Renders the given frames of a game-state file with this process's cached renderer."""
  key = (asset_dir, int(image_size))
  if key not in _RENDERERS:
    _RENDERERS[key] = mugen_render.MugenRenderer(asset_dir, int(image_size))
  game = mugen_game.load_game(game_json)
  last = max(frame_indices) if len(frame_indices) else 0
  if last >= game.num_frames:
    raise UserError(f"{game_json!r} has {game.num_frames} frames, fewer than its split file "
                    f"says (frame {last} requested). Fix: re-extract the clip or the split file.")
  return _RENDERERS[key].render(game, frame_indices)


def _render_task(task) -> np.ndarray:
  return render_frames(*task)


def render_many(tasks, num_workers: int = 1):
  """Frames for each (asset_dir, image_size, game_json, frame_indices) task, in order.

  `num_workers > 1` renders in that many processes (spawned: safe beside TensorFlow); each
  keeps its own sprite cache, so sprites are scaled once per worker. Tasks are taken a few
  at a time, so `tasks` may be an endless generator.
  """
  if num_workers <= 1:
    for task in tasks:
      yield _render_task(task)
    return
  import collections
  import multiprocessing
  with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
    pending = collections.deque()
    for task in tasks:
      pending.append(pool.apply_async(_render_task, (task,)))
      if len(pending) >= 4 * num_workers:
        yield pending.popleft().get()
    while pending:
      yield pending.popleft().get()


def default_workers(requested: int) -> int:
  """`requested` processes, or (when 0) one per core this process may use."""
  if requested > 0:
    return requested
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:
    return max(1, os.cpu_count() or 1)


def _check_positive(name: str, value, minimum: int = 1):
  if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
    raise UserError(f"--{name} must be an integer >= {minimum}, got {value!r}. "
                    f"Fix: pass --{name} a whole number >= {minimum}.")


def save_frames(path: str, frames: np.ndarray, fps: float) -> str:
  """Writes `.npy` (raw array), `.mp4` or `.gif`."""
  extension = os.path.splitext(path)[1].lower()
  if extension not in OUTPUT_EXTENSIONS:
    raise UserError(f"--out {path!r}: unknown extension {extension or '(none)'!r}. Fix: end "
                    f"the file name with one of {', '.join(OUTPUT_EXTENSIONS)}.")
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  if extension == ".npy":
    np.save(path, frames)
    return path
  from mmvid_jax.infra import video_io
  return video_io.write_video(path, frames, fps=fps, min_size=frames.shape[1])


class _Parser(argparse.ArgumentParser):
  """argparse that reports mistakes as one UserError line instead of usage text."""

  def error(self, message):
    raise UserError(f"bad arguments: {message}. Fix: python -m mmvid_jax.data.mugen render "
                    "--game_json=PATH --asset_dir=DIR --image_size=R --out=FILE "
                    "[--start=0 --num_frames=T --frame_step=S].")


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="python -m mmvid_jax.data.mugen", description=__doc__.split("\n")[0])
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  render = commands.add_parser("render", help="render one clip to .mp4, .gif or .npy")
  render.add_argument("--game_json", required=True, help="the clip's game-state JSON")
  render.add_argument("--asset_dir", required=True, help="MUGEN's coinrun assets folder")
  render.add_argument("--image_size", type=int, default=256, help="frame side R in pixels")
  render.add_argument("--start", type=int, default=0, help="first frame index")
  render.add_argument("--num_frames", type=int, default=None,
                      help="frames to render (default: all from --start)")
  render.add_argument("--frame_step", type=int, default=1, help="take every S-th frame")
  render.add_argument("--out", required=True, help="output file: .mp4, .gif or .npy")
  render.add_argument("--method", default=mugen_render.DEFAULT_METHOD,
                      choices=mugen_render.METHODS,
                      help="painter (all give identical pixels; compiled, the default where "
                      "numba is installed, is the quickest)")
  return parser


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  try:
    if argv[:1] == ["build"]:  # TFDS's `tfds build`, for the `mugen` builder (+ Beam).
      from mmvid_jax.data import mugen_tfds
      mugen_tfds.tfds_build(argv[1:])
      return 0
    args = _parser().parse_args(argv)
    extension = os.path.splitext(args.out)[1].lower()
    if extension not in OUTPUT_EXTENSIONS:
      save_frames(args.out, np.zeros((1, 8, 8, 3), np.uint8), 1)  # Raises the clear error.
    frames = render_clip(args.game_json, args.asset_dir, args.image_size, args.start,
                         args.num_frames, args.frame_step, args.method)
    save_frames(args.out, frames, MUGEN_FPS / args.frame_step)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {frames.shape[0]} frames of {frames.shape[1]}x{frames.shape[2]} to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
