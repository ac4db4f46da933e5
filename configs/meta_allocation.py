"""Label allocation in meta-learning (`experiments/meta_allocation.py`).

  python launch.py --config=configs/meta_allocation.py --workdir=results/meta_allocation
  python launch.py --config=configs/meta_allocation.py:quick --workdir=/tmp/meta_alloc
  python launch.py --config=configs/meta_allocation.py --workdir=results/meta_d20 \\
      --config.dim=20 --config.sigma2=0.5

Config arg: ``quick`` (fewer Monte Carlo repeats, meta-training steps, one
budget and three allocations in the non-linear part, whose every (budget,
allocation) compiles its own meta-training; the exact part is unchanged).
"""


# Every family's root and its one arg parser (configs/default.py).
from configs.default import base_config
from configs.default import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  c = base_config("meta_allocation", seed=0)
  # Part 1: exact risk of mixed linear regression.
  c.dim = 10                      # d
  c.w0_norm2 = 1.0                # ||w0||^2
  c.r2 = 0.5                      # task spread r^2
  c.sigma2 = 0.25                 # label noise sigma^2
  c.budgets = (20, 50, 100, 200, 500, 1000, 2000, 5000, 20000)
  c.mc_reps = 1000                # Monte Carlo repeats per check
  # Part 2: shared features + ridge heads (sinusoid and digits tasks).
  c.steps = 1500                  # full-batch meta-training steps
  c.nonlinear_budgets = (200, 800)
  c.allocations = (2, 5, 10, 20, 40, 100)
  if args["quick"]:
    c.mc_reps = 200
    c.steps = 200
    c.nonlinear_budgets = (100,)
    c.allocations = (2, 10, 50)
  return c
