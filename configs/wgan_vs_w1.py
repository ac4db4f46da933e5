"""WGAN critic estimate vs the exact W1, and mini-batch OT (`experiments/wgan_vs_w1.py`).

  python launch.py --config=configs/wgan_vs_w1.py --workdir=results/wgan_vs_w1
  python launch.py --config=configs/wgan_vs_w1.py:quick --workdir=/tmp/wgan
  python launch.py --config=configs/wgan_vs_w1.py --workdir=results/wgan_long \\
      --config.steps=5000 --config.log_every=500

Config arg: ``quick`` (2-D data sets only, 60 generator steps, exact W1 on 200
points).
"""


# Every family's root and its one arg parser (configs/default.py).
from configs.default import base_config
from configs.default import parse_arg


def get_config(arg=None):
  args = parse_arg(arg)
  c = base_config("wgan_vs_w1", seed=0)
  c.datasets = ("gaussian", "ring", "digits_pca8")
  c.methods = ("wgan_clip", "wgan_gp", "minibatch_ot")  # generators trained on each set
  c.steps = 2000                  # generator steps
  c.log_every = 200               # steps between evaluations (critic gap, exact W1, energy)
  c.n_eval = 600                  # samples per exact-W1 evaluation (POT)
  c.batch_size = 128
  c.n_critic = 5                  # critic updates per generator step
  if args["quick"]:
    c.datasets = ("gaussian", "ring")
    c.steps = 60
    c.log_every = 20
    c.n_eval = 200
  return c
