"""The entry point turns user mistakes into one clear line and exit status 2."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args, workdir):
  return subprocess.run(
      [sys.executable, "-m", "mmvid_jax.main", *args, f"--workdir={workdir}"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, expected", [
    (["--config=configs/nope.py"], "cannot load the --config file"),
    (["--config=configs/shapes.py:huge"], "unknown variant 'huge'"),
    (["--config=configs/shapes.py:tiny", "--config.nope=1"], "unknown config key 'nope'"),
    (["--config=configs/shapes.py:tiny", "--config.data.image_size=abc"], "invalid literal"),
    (["--config=configs/shapes.py:tiny", "--config.stage=train"], "config.stage: unknown stage"),
    (["--config=configs/shapes.py:tiny", "--config.data.image_size=30"],
     "config.data.image_size: 30 is not divisible"),
])
def test_user_mistakes_are_one_line(args, expected, tmp_path):
  result = run_main(*args, workdir=tmp_path)
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(error_lines) == 1 and expected in error_lines[0], result.stderr
