"""Progress reporting for long loops (training, sampling, evaluation, dataset builds).

On a terminal it redraws one line in place (`\\r`) with rate and ETA; when stdout is not a
terminal (log files, CI, cluster jobs) it prints a plain log line now and then instead, so logs
stay readable.
"""

import sys
import time
from typing import Any, TextIO

from absl import logging


def format_duration(seconds: float) -> str:
  """4000 -> '1h06m', 75 -> '1m15s', 9.2 -> '9s'."""
  if seconds != seconds or seconds == float("inf"):
    return "?"
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f"{hours}h{minutes:02d}m"
  if minutes:
    return f"{minutes}m{secs:02d}s"
  return f"{secs}s"


def _format_value(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


class Progress:
  """Counts work done towards `total` and reports rate and time left.

      progress = Progress(total=len(prompts), name="sampling", unit="videos")
      for ... :
        progress.update(1, loss=0.3)
      progress.close()

  `log_every_seconds` sets how often plain log lines are written when not on a terminal.
  """

  def __init__(self, total: int, name: str, unit: str = "steps", initial: int = 0,
               log_every_seconds: float = 30.0, stream: TextIO | None = None,
               is_tty: bool | None = None):
    self.total = total
    self.name = name
    self.unit = unit
    self.done = initial
    self._initial = initial
    self._stream = stream or sys.stdout
    self._tty = self._stream.isatty() if is_tty is None else is_tty
    self._log_every = log_every_seconds
    self._start = time.monotonic()
    self._last_draw = 0.0
    self._last_log = self._start
    self._postfix: dict[str, Any] = {}
    self._rate: float | None = None  # Set from outside when it is measured more precisely.
    self._line_open = False  # A redrawn terminal line is showing (not yet ended by "\n").

  @property
  def is_tty(self) -> bool:
    return self._tty

  def set_rate(self, per_second: float) -> None:
    """Overrides the measured rate (e.g. with one measured after compilation)."""
    self._rate = per_second

  def rate(self) -> float:
    if self._rate is not None:
      return self._rate
    elapsed = time.monotonic() - self._start
    return (self.done - self._initial) / elapsed if elapsed > 0 else 0.0

  def eta_seconds(self) -> float:
    rate = self.rate()
    return (self.total - self.done) / rate if rate > 0 else float("inf")

  def line(self) -> str:
    """'sampling 12/40 videos (30%) | loss 0.31 | 2.5 videos/s | ETA 11s'."""
    percent = 100.0 * self.done / self.total if self.total else 100.0
    parts = [f"{self.name} {self.done}/{self.total} {self.unit} ({percent:.0f}%)"]
    parts += [f"{key} {_format_value(value)}" for key, value in self._postfix.items()]
    parts.append(f"{self.rate():.3g} {self.unit}/s")
    parts.append(f"ETA {format_duration(self.eta_seconds())}")
    return " | ".join(parts)

  def _bar(self, width: int = 20) -> str:
    filled = int(width * self.done / self.total) if self.total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"

  def update(self, n: int = 1, **postfix: Any) -> None:
    """Adds `n` units of work; keyword values (loss=...) are shown on the line."""
    self.done += n
    self._postfix.update(postfix)
    now = time.monotonic()
    if self._tty:
      if now - self._last_draw >= 0.1 or self.done >= self.total:
        self._stream.write(f"\r{self._bar()} {self.line()}\033[K")
        self._stream.flush()
        self._last_draw = now
        self._line_open = True
    elif now - self._last_log >= self._log_every:
      self.log()

  def log(self, **postfix: Any) -> None:
    """Writes the current state as a permanent line (a log line, or a kept terminal line)."""
    self._postfix.update(postfix)
    self._last_log = time.monotonic()
    if self._tty:
      self._stream.write(f"\r{self.line()}\033[K\n")
      self._stream.flush()
      self._line_open = False
    else:
      logging.info("%s", self.line())

  def end_line(self) -> None:
    """On a terminal, moves off the progress line (before other output such as an error)."""
    if self._tty and self._line_open:
      self._stream.write("\n")
      self._stream.flush()
      self._line_open = False

  def close(self) -> None:
    """Finishes the line (terminal) or writes a last summary line."""
    elapsed = time.monotonic() - self._start
    summary = (f"{self.name}: {self.done - self._initial} {self.unit} in "
               f"{format_duration(elapsed)}")
    if self._tty and self._line_open:  # Keep the final state of the redrawn line.
      self._stream.write(f"\r{self.line()}\033[K\n")
      self._stream.flush()
      self._line_open = False
    logging.info("%s", summary)
