"""Edge-to-image on the 8x8 digits: y = Canny edge map (scikit-image, sigma 0.5).

  python launch.py --config=configs/conditional_edges.py --workdir=results/conditional
"""

from configs import conditional_default
from configs import default




def get_config(arg=None):
  args = default.parse_arg(arg)
  c = conditional_default.get_config("quick" if args["quick"] else None)
  c.task = "edges"
  c.sde.y_sigma_max = 1.0         # MSDiff CMDE value for edges (Batzolis et al. 2021)
  return c
