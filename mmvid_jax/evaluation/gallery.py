"""A self-contained HTML gallery: captions, condition images and videos side by side.

Every reference is a path relative to the gallery's folder, so `index.html` works when opened as
a local file (no server, no scripts, no network). Videos are MP4 (`<video autoplay loop muted>`)
with the GIF as fallback image for browsers that cannot play them.
"""

import dataclasses
import html
import os


@dataclasses.dataclass
class GalleryRow:
  """One condition (caption + control images) and the videos generated for it."""
  caption: str
  videos: list[str]                                   # relative paths (.mp4 or .gif)
  fallbacks: list[str] = dataclasses.field(default_factory=list)  # .gif per video, optional
  conditions: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (label, image)
  note: str = ""                                      # e.g. decoder settings, scores


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
h1 { font-size: 1.3em; } p.meta { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; } td, th { padding: 6px 10px; vertical-align: top;
  border-bottom: 1px solid #ddd; text-align: left; }
td.caption { max-width: 22em; } .note { color: #666; font-size: 0.8em; }
video, img.video { width: 128px; height: 128px; image-rendering: pixelated; background: #000; }
img.condition { width: 96px; height: 96px; image-rendering: pixelated; }
figure { display: inline-block; margin: 0 6px 0 0; text-align: center; font-size: 0.75em; }
"""


def _video_html(path: str, fallback: str) -> str:
  path_attr = html.escape(path, quote=True)
  if path.lower().endswith(".gif"):
    return f'<img class="video" src="{path_attr}" alt="generated video">'
  fallback_html = (f'<img class="video" src="{html.escape(fallback, quote=True)}" '
                   'alt="generated video">') if fallback else ""
  return (f'<video src="{path_attr}" autoplay loop muted playsinline controls>'
          f'{fallback_html}</video>')


def render(rows: list[GalleryRow], title: str, meta: str = "") -> str:
  """The gallery page as a string."""
  max_videos = max((len(r.videos) for r in rows), default=0)
  out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
         f"<h1>{html.escape(title)}</h1>"]
  if meta:
    out.append(f'<p class="meta">{html.escape(meta)}</p>')
  out.append("<table><tr><th>caption</th><th>conditions</th>"
             + "".join(f"<th>sample {i}</th>" for i in range(max_videos)) + "</tr>")
  for row in rows:
    conditions = "".join(
        f'<figure><img class="condition" src="{html.escape(image, quote=True)}" '
        f'alt="{html.escape(label, quote=True)}"><figcaption>{html.escape(label)}'
        "</figcaption></figure>" for label, image in row.conditions) or "&ndash;"
    note = f'<div class="note">{html.escape(row.note)}</div>' if row.note else ""
    cells = []
    for index, video in enumerate(row.videos):
      fallback = row.fallbacks[index] if index < len(row.fallbacks) else ""
      cells.append(f"<td>{_video_html(video, fallback)}</td>")
    out.append(f'<tr><td class="caption">{html.escape(row.caption) or "<i>(no caption)</i>"}'
               f"{note}</td><td>{conditions}</td>{''.join(cells)}</tr>")
  out.append("</table></body></html>")
  return "\n".join(out) + "\n"


def write_gallery(directory: str, rows: list[GalleryRow], title: str, meta: str = "",
                  filename: str = "index.html") -> str:
  """Writes `<directory>/<filename>` (atomically) and returns its path.

  Paths in `rows` must be relative to `directory`; absolute ones are rewritten relative to it.
  """
  def relative(path: str) -> str:
    return os.path.relpath(path, directory) if os.path.isabs(path) else path

  rows = [dataclasses.replace(
      row, videos=[relative(v) for v in row.videos], fallbacks=[relative(f) for f in row.fallbacks],
      conditions=[(label, relative(image)) for label, image in row.conditions]) for row in rows]
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, filename)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(render(rows, title, meta))
  os.replace(path + ".tmp", path)
  return path
