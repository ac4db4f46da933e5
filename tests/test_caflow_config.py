"""configs/caflow.py: task by arg, the estimators' data settings, quick mode.

(experiments/caflow.py itself is not imported here: it reuses the absl flags of
experiments/conditional_estimators.py, which tests/test_conditional_experiment.py
loads under its own module name, and absl flags cannot be defined twice.)
"""

import importlib.util
import os

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config_module():
  spec = importlib.util.spec_from_file_location(
      "caflow_config", os.path.join(_ROOT, "configs", "caflow.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_config_tasks_data_and_quick():
  mod = _config_module()
  sr = mod.get_config("task=sr2")
  assert sr.task == "sr2" and sr.data.pair_repeats == 1
  assert sr.num_bins == 17 and sr.data.n_test == 64 and sr.data.n_samples == 4
  box = mod.get_config("task=inpaint_box")
  assert box.data.pair_repeats == 4          # as conditional_inpainting.py
  quick = mod.get_config("task=edges,quick")
  assert quick.train.steps < 100 and quick.data.max_train > 0
  assert mod.get_config(None).task == "sr4"
  with pytest.raises(ValueError, match="task must be one of"):
    mod.get_config("task=colour")
  with pytest.raises(ValueError, match="unknown config arg"):
    mod.get_config("levels=3")
