"""Loads an experiment driver (a script under experiments/) as a module in tests.

Drivers define absl flags such as --config and --workdir at import, and absl
refuses to define a flag twice in one process, so two test files that each load
a different driver would collide. `load_driver` removes the flags the driver is
about to define from the global `FLAGS` first (tests never parse them), and
registers the module in `sys.modules` (Flax dataclass modules look it up there).
"""

import functools
import importlib.util
import os
import sys

from absl import flags

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DRIVER_FLAGS = ("config", "workdir")


@functools.lru_cache(maxsize=None)
def load_driver(relpath: str, name: str):
  """`experiments/<x>.py` as module `name`, loaded once per process."""
  for flag in _DRIVER_FLAGS:
    if flag in flags.FLAGS:
      delattr(flags.FLAGS, flag)
  spec = importlib.util.spec_from_file_location(name, os.path.join(_ROOT, relpath))
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module
