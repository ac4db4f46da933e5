"""2-D score-SDE toy (`experiments/toy_2d.py`): an MLP score model, every sampler.

  python launch.py --config=configs/toy_2d.py --workdir=results/toy_2d      # ~2-4 min CPU
  python launch.py --config=configs/toy_2d.py:quick --workdir=/tmp/toy_2d   # smoke run
  python launch.py --config=configs/toy_2d.py:data=moons --workdir=results/toy_2d_moons

Config arg (comma list): ``data=ring|moons`` (default ring, the ring of 8
Gaussians whose exact score is known), ``quick``.
"""


# Every family's root and its one arg parser (configs/default.py).
from configs.default import base_config
from configs.default import parse_arg

DATASETS = ("ring", "moons")


def get_config(arg=None):
  args = parse_arg(arg, data="ring")
  if args["data"] not in DATASETS:
    raise ValueError(f"data must be one of {DATASETS}, got {args['data']!r}.")
  c = base_config("toy_2d", seed=0)
  c.data = args["data"]
  c.n_train = 20000
  c.n_eval = 2000                 # samples per sampler, held-out points
  c.n_nll = 1000                  # held-out points of the PF-ODE NLL
  c.steps = 6000
  c.batch_size = 256
  c.learning_rate = 2e-3
  c.sampler_scale = 1.0           # multiplies every sampler's step count
  c.samplers = ("euler_maruyama", "reverse_diffusion", "pc_rd_langevin",
                "ddim_eta0", "ddim_eta1", "ode_tsit5")  # which ones to run
  c.quick = args["quick"]
  if args["quick"]:
    c.n_train, c.n_eval, c.n_nll = 2000, 500, 200
    c.steps = 300
    c.sampler_scale = 0.2
  return c
