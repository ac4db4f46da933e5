"""Edge-to-image on the 8x8 digits: y = Canny edge map (scikit-image, sigma 0.5).

  python experiments/conditional_estimators.py \\
      --config configs/conditional_edges.py --workdir results/conditional
"""

import importlib.util
import os


def _default():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "conditional_default.py")
  spec = importlib.util.spec_from_file_location("conditional_default", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(arg=None):
  conditional_default = _default()
  args = conditional_default.parse_arg(arg)
  c = conditional_default.get_config("quick" if args["quick"] else None)
  c.task = "edges"
  c.sde.y_sigma_max = 1.0         # MSDiff CMDE value for edges (sheet 1.1)
  return c
