"""Imports a repository script (benchmarks/, docs/) that is not part of the package, by path."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path: str, module_name: str):
  spec = importlib.util.spec_from_file_location(module_name, os.path.join(ROOT, relative_path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
