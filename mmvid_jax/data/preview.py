"""See the data before training: an HTML page and a GIF grid of input examples.

    python -m mmvid_jax.data.preview --config=configs/video_text.py --num=16 --out=preview \
        --workdir=runs/mine --config.data.manual_dir=PATH/TO/VIDEOS
    python -m mmvid_jax.data.preview --config=configs/shapes.py:text_image --out=preview

Examples come from the real input pipeline (`make_dataset`), so the page shows exactly what
the trainers read: frames at the configured size, frame count and step, the caption after
text augmentation with its token count, and one image per control slot. By default the pass
is deterministic (start frame 0, first caption, no augmentation); `--augment` shows training
examples instead (random starts and captions, sentence dropout, null captions).

The data stage runs first when the workdir lacks it (builds the TFDS dataset and the
SentencePiece model): pass the training run's `--workdir` to reuse (or prepare) its build;
without one it goes to `OUT/workdir`. Writes `OUT/index.html` (open it as a local file),
`OUT/grid.gif`, `OUT/example_NN.gif` and `OUT/control_NN_K.png`.
"""

import html
import logging as pylogging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mmvid_jax import cli  # noqa: E402
from mmvid_jax.errors import UserError  # noqa: E402

_FLAGS: dict = {}


def _define_flags():
  """Command-line flags, defined only when run as a command (tests import this module next
  to mmvid_jax.main, which defines --config too)."""
  _FLAGS.update(
      config=config_flags.DEFINE_config_file(
          "config", None, "Experiment config file, e.g. configs/video_text.py.",
          lock_config=True),
      num=flags.DEFINE_integer("num", 16, "Number of examples to show."),
      out=flags.DEFINE_string("out", None, "Output folder for index.html and the GIFs."),
      split=flags.DEFINE_string("split", "train", "train, validation or test."),
      workdir=flags.DEFINE_string("workdir", None, "Run workdir holding (or to hold) the built "
                                  "data; default OUT/workdir."),
      augment=flags.DEFINE_boolean("augment", False, "Show training examples (random starts, "
                                   "captions and text augmentation) instead of a fixed pass."),
      fps=flags.DEFINE_float("fps", 8.0, "Frames per second of the GIFs."))
  flags.mark_flags_as_required(["config", "out"])




def collect(config, workdir: str, split: str, num: int, augment: bool = False) -> list[dict]:
  """Up to `num` examples of the input pipeline, one dict each (video, caption, ...)."""
  from mmvid_jax.data import pipeline, text
  if num <= 0:
    raise UserError(f"--num={num}: nothing to show. Fix: pass a positive number of examples.")
  tokenizer = text.get_text_tokenizer(config, workdir)
  batches = pipeline.make_dataset(config, split, workdir, batch_size=1,
                                  deterministic=not augment, process_index=0, process_count=1)
  examples = []
  for batch in batches:
    ids = batch["text_ids"][0]
    example = {"video": batch["video"][0], "caption": batch["caption"][0].decode("utf-8"),
               "tokens": int((ids > 0).sum()), "seq_len": int(ids.shape[0]),
               "decoded": tokenizer.decode(ids[None])[0]}
    if "controls" in batch:
      example["controls"] = batch["controls"][0]
    if "attributes" in batch:
      example["attributes"] = batch["attributes"][0]
    examples.append(example)
    if len(examples) >= num:
      break
  if hasattr(batches, "close"):
    batches.close()
  if not examples:
    raise UserError(f"the {split} split gave no example. Fix: pick another --split, or add "
                    "data to this one.")
  return examples


def _attribute_text(config, attributes) -> str:
  if config.data.name != "shapes":
    return ", ".join(str(int(a)) for a in attributes)
  from mmvid_jax.data import shapes
  names = (shapes.SHAPE_NAMES, shapes.COLOR_NAMES, shapes.SIZE_NAMES, shapes.DIRECTION_NAMES)
  return ", ".join(str(n[int(a)]) for n, a in zip(names, attributes))


def _summary(config, split: str, count: int, augment: bool) -> str:
  d = config.data
  mode = "training examples (augmented)" if augment else "a fixed pass (start frame 0)"
  controls = tuple(config.get("transformer", {}).get("controls", ()))
  return (f"dataset {d.name}, split {split}, {count} examples, {mode}; {d.num_frames} frames "
          f"at step {d.frame_step}, {d.image_size} px; text: {d.text_tokenizer}, "
          f"{d.text_seq_len} tokens; control slots: {', '.join(controls) or 'none'}")


def write_page(config, examples: list[dict], out: str, split: str, augment: bool = False,
               fps: float = 8.0) -> str:
  """Writes the GIFs, control PNGs, grid.gif and index.html under `out`; returns the page."""
  from mmvid_jax.infra import video_io
  os.makedirs(out, exist_ok=True)
  slots = tuple(config.get("transformer", {}).get("controls", ()))
  cards = []
  for n, example in enumerate(examples):
    gif = f"example_{n:02d}.gif"
    video_io.write_video(os.path.join(out, gif), example["video"], fps=fps)
    parts = [f'<img class="v" src="{gif}" alt="example {n}">']
    for k, image in enumerate(example.get("controls", ())):
      png = f"control_{n:02d}_{k}.png"
      Image.fromarray(np.asarray(image, np.uint8)).save(os.path.join(out, png))
      label = slots[k] if k < len(slots) else f"slot {k}"
      parts.append(f'<figure><img class="c" src="{png}" alt="{html.escape(label)}">'
                   f"<figcaption>{html.escape(label)}</figcaption></figure>")
    caption = example["caption"] or "(null caption: all padding)"
    parts.append(f'<p class="t">{html.escape(caption)}</p>')
    truncated = " (truncated)" if example["tokens"] >= example["seq_len"] else ""
    parts.append(f'<p class="m">{example["tokens"]}/{example["seq_len"]} tokens{truncated}: '
                 f'{html.escape(example["decoded"])}</p>')
    if "attributes" in example:
      parts.append(f'<p class="m">attributes: '
                   f'{html.escape(_attribute_text(config, example["attributes"]))}</p>')
    cards.append(f'<div class="card"><b>#{n}</b>{"".join(parts)}</div>')
  columns = min(4, len(examples))
  grid = video_io.tile_videos([e["video"] for e in examples], columns)
  video_io.write_video(os.path.join(out, "grid.gif"), grid, fps=fps)
  title = f"{config.get('experiment', config.data.name)}: data preview"
  page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ width: 260px; border: 1px solid #ccc; padding: 6px; }}
img {{ image-rendering: pixelated; }}
img.v {{ width: 256px; display: block; }}
figure {{ display: inline-block; margin: 4px; }}
img.c {{ width: 96px; }}
.t {{ margin: 4px 0; }}
.m {{ margin: 2px 0; color: #555; font-size: 85%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(_summary(config, split, len(examples), augment))}</p>
<p>All examples in one grid: <a href="grid.gif">grid.gif</a></p>
<div class="grid">
{chr(10).join(cards)}
</div></body></html>
"""
  path = os.path.join(out, "index.html")
  with open(path, "w", encoding="utf-8") as f:
    f.write(page)
  return path


def preview(config, *, out: str, num: int = 16, split: str = "train", workdir: str | None = None,
            augment: bool = False, fps: float = 8.0) -> str:
  """Checks the config, prepares the data if needed, writes the page; returns its path."""
  from mmvid_jax import configuration
  from mmvid_jax.data import pipeline
  from mmvid_jax.data import stage as data_stage
  if num <= 0:
    raise UserError(f"--num={num}: nothing to show. Fix: pass a positive number of examples.")
  configuration.validate(config)
  pipeline.import_tensorflow()  # Accelerators hidden, TFDS's per-open notices dropped.
  workdir = workdir or os.path.join(out, "workdir")
  if not data_stage.is_complete(config, workdir):
    logging.info("Preview: preparing the data in %s (the data stage; reused by later runs "
                 "with this workdir).", workdir)
    data_stage.run(config, workdir)
  examples = collect(config, workdir, split, num, augment)
  path = write_page(config, examples, out, split, augment, fps)
  logging.info("Preview: %d %s examples -> %s", len(examples), split, path)
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  pylogging.getLogger("jax._src.xla_bridge").setLevel(pylogging.WARNING)
  try:
    config = _FLAGS["config"].value
    config.data.name  # A config file that failed to load raises here.  # pylint: disable=pointless-statement
  except cli.FLAG_ERRORS as e:
    cli.exit_with_flag_error(e, "configs/video_text.py")
  try:
    preview(config, out=_FLAGS["out"].value, num=_FLAGS["num"].value,
            split=_FLAGS["split"].value, workdir=_FLAGS["workdir"].value,
            augment=_FLAGS["augment"].value, fps=_FLAGS["fps"].value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=cli.parse_flags)
