"""Shared command-line pieces: bad flags and config files become one line and exit status 2."""

import sys

from absl import flags

# What absl/config_flags raise for a bad flag, override or config file.
FLAG_ERRORS = (flags.Error, KeyError, AttributeError, ValueError, TypeError, OSError)


def exit_with_flag_error(e: Exception, example_config: str = "configs/shapes.py"):
  """Prints `error: <cause>. Fix: ...` on stderr and exits with status 2."""
  # config_flags wraps errors from the config file with its traceback: keep the last line.
  lines = [line.strip() for line in str(e).strip().strip('"').splitlines() if line.strip()]
  message = lines[-1] if lines else type(e).__name__
  if isinstance(e, (KeyError, AttributeError)):
    message = (f"unknown config key {message}. Fix: check the key against the config file "
               "(a run also writes every key to WORKDIR/config.json).")
  elif isinstance(e, OSError):
    message = f"cannot load the --config file: {message}. Fix: pass e.g. --config={example_config}"
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl `flags_parser` that turns flag errors into one clear line."""
  try:
    return flags.FLAGS(argv)
  except FLAG_ERRORS as e:
    exit_with_flag_error(e)
