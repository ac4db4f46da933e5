"""Imputation quality: RMSE vs distribution discrepancies (`experiments/imputation_discrepancy.py`).

  python launch.py --config=configs/imputation_discrepancy.py --workdir=results/imputation
  python launch.py --config=configs/imputation_discrepancy.py:quick --workdir=/tmp/imp
  python launch.py --config=configs/imputation_discrepancy.py --workdir=results/imp_wine \\
      --config.datasets="('wine',)" --config.rates="(0.2, 0.5)"

Config arg: ``quick`` (wine only, one rate, MCAR and MNAR, a short score
model and sampler).
"""


# Every family's root and its one arg parser (configs/default.py).
from configs.default import base_config
from configs.default import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  c = base_config("imputation_discrepancy", seed=0)
  c.datasets = ("wine", "breast_cancer", "digits")
  c.rates = (0.2, 0.5)            # missing rates
  c.mechanisms = ("mcar", "mar", "mnar")
  c.score_steps = 3000            # DSM steps of the diffusion imputer's score model
  c.score_batch_size = 128
  c.score_learning_rate = 1e-3
  c.diffusion_steps = 150         # reverse-SDE steps of the inpainting sampler
  c.resample = 4                  # RePaint resampling per step
  c.max_iter = 4                  # rounds of the iterative (MICE, missForest) imputers
  if args["quick"]:
    c.datasets = ("wine",)
    c.rates = (0.3,)
    c.mechanisms = ("mcar", "mnar")
    c.score_steps = 300
    c.diffusion_steps, c.resample = 50, 2
  return c
