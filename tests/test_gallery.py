"""The HTML gallery: escaped captions, relative references that exist, plays as a local file."""

import html.parser
import os

import numpy as np

from mmvid_jax.evaluation import gallery
from mmvid_jax.sampling import outputs


class _Sources(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.sources, self.text = [], []

  def handle_starttag(self, tag, attrs):
    self.sources += [value for name, value in attrs if name in ("src", "href")]

  def handle_data(self, data):
    self.text.append(data)


def _parse(path):
  parser = _Sources()
  with open(path, encoding="utf-8") as f:
    parser.feed(f.read())
  return parser


def test_gallery_references_existing_relative_files(tmp_path):
  rng = np.random.default_rng(0)
  results = [
      outputs.PromptResult(text="A small red circle is moving <north> & up.",
                           videos=rng.integers(0, 255, (2, 4, 16, 16, 3), dtype=np.uint8),
                           controls=rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8),
                           control_labels=("background",), scores=np.asarray([0.7, np.nan])),
      outputs.PromptResult(text="", videos=rng.integers(0, 255, (2, 4, 16, 16, 3),
                                                         dtype=np.uint8)),
  ]
  settings = {"decoder": "mask_predict", "seed": 3, "steps": 4, "cfg": 0.0, "candidates": 1}
  manifest = outputs.write_samples(str(tmp_path), results, settings)
  index = tmp_path / "index.html"
  parser = _parse(index)
  assert len(parser.sources) == 4 * 2 + 1  # mp4 + gif fallback per video, one control image
  for source in parser.sources:
    assert not os.path.isabs(source) and "://" not in source
    assert (tmp_path / source).is_file(), source
  page = "".join(parser.text)
  assert "A small red circle is moving <north> & up." in page  # escaped, then parsed back
  assert "(no caption)" in page and "0.700" in page
  lines = outputs.read_manifest(str(tmp_path))
  assert len(lines) == 4 and manifest.endswith("manifest.jsonl")
  assert lines[0]["text"].startswith("A small red") and lines[0]["seed"] == 3
  assert lines[0]["conditions"] == ["prompt000_control0.png"] and lines[2]["conditions"] == []
  assert lines[0]["score"] == 0.7 and lines[1]["score"] is None
  assert outputs.manifest_complete(str(tmp_path), 4)
  assert not outputs.manifest_complete(str(tmp_path), 5)
  # Other settings (another decoder, a transformer trained further) make the samples stale.
  assert outputs.manifest_complete(str(tmp_path), 4, {"decoder": "mask_predict", "steps": 4})
  assert not outputs.manifest_complete(str(tmp_path), 4, {"decoder": "maskgit"})
  assert not outputs.manifest_complete(str(tmp_path), 4, {"transformer_step": 500})
  os.remove(tmp_path / lines[3]["gif"])
  assert not outputs.manifest_complete(str(tmp_path), 4)


def test_absolute_paths_are_made_relative(tmp_path):
  (tmp_path / "v.gif").write_bytes(b"GIF89a")
  path = gallery.write_gallery(str(tmp_path), [gallery.GalleryRow(
      caption="x", videos=[str(tmp_path / "v.gif")])], title="t")
  assert _parse(path).sources == ["v.gif"]
