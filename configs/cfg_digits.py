"""Classifier-free guidance on the 8x8 digits (`experiments/cfg_digits.py`).

  python launch.py --config=configs/cfg_digits.py --workdir=results/cfg_digits   # ~3-6 min CPU
  python launch.py --config=configs/cfg_digits.py:quick --workdir=/tmp/cfg_digits
  python launch.py --config=configs/cfg_digits.py --workdir=results/cfg_digits \\
      --config.guidance_weights="(0., 1., 3., 5.)"

Config arg: ``quick`` (smoke run).
"""


# Every family's root and its one arg parser (configs/default.py).
from configs.default import base_config
from configs.default import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  c = base_config("cfg_digits", seed=0)
  c.steps = 2000                  # DSM training steps
  c.batch_size = 64
  c.learning_rate = 2e-3
  c.chunk = 50                    # steps per logged loss (and the random stream's chunk)
  c.p_uncond = 0.15               # label dropout probability
  c.guidance_weights = (0.0, 1.0, 3.0)   # w of (1 + w) s(x, y) - w s(x, null)
  c.per_class = 20                # samples per class and w
  c.sampler_steps = 50            # DDIM (eta = 0) steps
  if args["quick"]:
    c.steps = 100
    c.per_class = 4
    c.sampler_steps = 20
  return c
