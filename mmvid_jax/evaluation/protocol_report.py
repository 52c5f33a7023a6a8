"""Writing the protocol's results: `protocol_mmvid.json` (every figure and setting) and
`protocol_mmvid.md` (the table in the paper's format, with notes that say what was measured).
"""

import json
import math
import os

from mmvid_jax.evaluation import protocol_spec

JSON_FILE = f"protocol_{protocol_spec.NAME}.json"
MARKDOWN_FILE = f"protocol_{protocol_spec.NAME}.md"
FORMAT_VERSION = 1

COLUMNS = ("Method", "FVD↓", "PRD F8↑", "PRD F1/8↑", "F8↑ (conventional)",
           "F1/8↑ (conventional)", "clips", "resolution", "frames", "published FVD")


def read(out_dir: str) -> dict | None:
  try:
    with open(os.path.join(out_dir, JSON_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _finite(value):
  """JSON has no NaN: non-finite floats become null."""
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _atomic_write(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def _number(value, digits: int) -> str:
  return "–" if value is None else f"{value:.{digits}f}"


def table_rows(record: dict) -> list[list[str]]:
  """One row per method, in COLUMNS order."""
  rows = []
  frames = f"{record['num_frames']} → {record['i3d_frames']}"
  if record["i3d_frames"] > record["num_frames"]:
    frames += " (palindrome)"
  resolution = f"{record['resolution']} px"
  if record["resized"]:
    resolution += f" (from {record['model_image_size']})"
  for result in record["methods"].values():
    mmvid, conventional = result["prd_mmvid_order"], result["prd_conventional"]
    rows.append([result["label"], _number(result["fvd"], 2), _number(mmvid["f8"], 3),
                 _number(mmvid["f1_8"], 3), _number(conventional["f8"], 3),
                 _number(conventional["f1_8"], 3), str(record["num_clips"]), resolution, frames,
                 _number(result["published_fvd"], 2)])
  return rows


def notes(record: dict) -> list[str]:
  """What the reader must know to compare these numbers."""
  out = [
      f"Protocol: MMVID's `evaluation.sh` (spec §5.5, §8.6): one generated video per real clip "
      f"of the `{record['split']}` split, in loader order (start frame 0, first caption), "
      f"conditioned on that clip's caption and controls; seed {record['seed']}.",
      f"FVD: I3D Kinetics-400 logits (400-d), frames resized bilinearly to 224 and mapped to "
      f"[-1, 1], I3D batch {record['i3d_batch_size']} (the last batch padded, the pad's "
      "features dropped), Fréchet distance in float64. Generated frames are the decoder's "
      "float output (not rounded to uint8), as in MMVID.",
      f"PRD: {record['prd']['clusters']} clusters, {record['prd']['angles']} angles, "
      f"{record['prd']['runs']} runs, β = {record['prd']['beta']:g}. **PRD F8 / F1/8** use "
      "MMVID's argument order (real features as `eval_data`, generated as `ref_data`), as in "
      "its tables; **(conventional)** evaluates the generated set against the real one. The "
      "two orders swap the roles: MMVID's F8 reads as precision, its F1/8 as recall (spec §10).",
  ]
  if record["num_clips"] < record["eval_num"]:
    out.append(f"**Fewer clips than asked:** eval_num = {record['eval_num']} but the "
               f"`{record['split']}` split holds {record['num_clips']} clips; all of them were "
               "used. FVD is biased at small N: compare only at equal clip counts.")
  if record["resized"]:
    out.append(f"**Resized:** the model makes {record['model_image_size']} px videos; real and "
               f"generated clips were resized to {record['resolution']} px (bilinear, "
               "antialiased) before I3D, as the protocol hands 128 px videos to I3D.")
  if record["i3d_frames"] > record["num_frames"]:
    out.append(f"Frames: {record['num_frames']}-frame clips are extended by a palindrome to "
               f"{record['i3d_frames']} frames ({record['palindrome_segments']} segments, "
               "e.g. f0..f7 f6..f0) for real and generated clips alike.")
  elif record["num_frames"] > record["i3d_frames"]:
    out.append(f"Frames: the first {record['i3d_frames']} of {record['num_frames']} frames go "
               "to I3D.")
  if record.get("published_note"):
    out.append(record["published_note"])
  for result in record["methods"].values():
    settings = result["decode_options"]
    out.append(f"{result['label']}: decoder `{settings['decoder']}`, steps {settings['steps']}, "
               f"candidates {settings['num_candidates']}, {result['seconds']:.1f} s.")
  return out


def markdown(record: dict) -> str:
  lines = [f"# MMVID evaluation protocol: {record['experiment']} "
           f"({record['dataset']}, {record['split']} split)", "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  lines += ["| " + " | ".join(row) + " |" for row in table_rows(record)]
  lines += [""] + [f"- {note}" for note in notes(record)] + [""]
  return "\n".join(lines)


def write(out_dir: str, record: dict) -> tuple[str, str]:
  """Writes the JSON and the Markdown table atomically; returns their paths."""
  record = _finite({"format_version": FORMAT_VERSION, **record})
  json_path = os.path.join(out_dir, JSON_FILE)
  md_path = os.path.join(out_dir, MARKDOWN_FILE)
  _atomic_write(json_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
  _atomic_write(md_path, markdown(record))
  return json_path, md_path
