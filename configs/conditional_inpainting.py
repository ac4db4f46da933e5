"""Inpainting of the 8x8 digits, one 4x4 box (25 % of the area) or 50 % random pixels.

  python launch.py --config=configs/conditional_inpainting.py:mask=box --workdir=results/conditional

y = [masked image, mask] (hidden pixels set to 0, the mask as a channel).
Each training image is paired with `pair_repeats` random masks.
"""

from configs import conditional_default
from configs import default




def get_config(arg=None):
  args = default.parse_arg(arg, mask="box")
  c = conditional_default.get_config("quick" if args["quick"] else None)
  if args["mask"] not in ("box", "random"):
    raise ValueError(f"mask must be 'box' or 'random', got {args['mask']!r}.")
  c.task = f"inpaint_{args['mask']}"
  c.data.pair_repeats = 4
  c.sde.y_sigma_max = 1.0         # MSDiff CMDE value for inpainting (Batzolis et al. 2021)
  return c
