"""Super-resolution x2 / x4 of the 8x8 digits (8 -> 4 or 8 -> 2): CDE vs CDiffE vs MS-CDiffE.

  python launch.py --config=configs/conditional_sr.py:factor=4 --workdir=results/conditional
  python launch.py --config=configs/conditional_sr.py:factor=2,quick --workdir=/tmp/cond_quick

y is the average-pooled image up-sampled back to 8x8 by nearest neighbour (as
MSDiff feeds its LR input). Expected: CDE and MS-CDiffE close, CDiffE behind
on PSNR/consistency (its y_t is noised as fast as x).
"""

from configs import conditional_default
from configs import default




def get_config(arg=None):
  args = default.parse_arg(arg, factor=4)
  c = conditional_default.get_config("quick" if args["quick"] else None)
  if args["factor"] not in (2, 4):
    raise ValueError(f"factor must be 2 or 4 for 8x8 digits, got {args['factor']}.")
  c.task = f"sr{args['factor']}"
  c.sde.y_sigma_max = 0.5         # MSDiff CMDE value for SR (Batzolis et al. 2021)
  return c
