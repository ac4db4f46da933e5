"""CAFLOW on the conditional-estimator tasks (8x8 digits): one config, task by arg.

  python launch.py --config=configs/caflow.py:task=sr4 --workdir=results/caflow
  python launch.py --config=configs/caflow.py:task=inpaint_box --workdir=results/caflow
  python launch.py --config=configs/caflow.py:task=edges --workdir=results/caflow
  # smoke run, well under a minute:
  python launch.py --config=configs/caflow.py:task=sr2,quick --workdir=/tmp/caflow_quick

Data, pairs, test conditions (seed, `n_test`, `n_samples`, `pair_repeats`) are
those of `configs/conditional_*.py`, so the rows written into
`<workdir>/<task>.json` sit beside CDE / CDiffE / MS-CDiffE on the same test
conditions. The model has 0.55M parameters (0.68M for inpainting, whose y has
two channels); the estimators' ScoreMLPs have 0.66-0.76M.
"""

from configs import conditional_default
from configs import default




_TASKS = ("sr2", "sr4", "inpaint_box", "inpaint_random", "edges")


def get_config(arg=None):
  """`arg`: 'task=<name>' (one of sr2, sr4, inpaint_box, inpaint_random, edges), 'quick'."""
  args = default.parse_arg(arg, task="sr4")
  if args["task"] not in _TASKS:
    raise ValueError(f"task must be one of {_TASKS}, got {args['task']!r}.")
  c = conditional_default.get_config("quick" if args["quick"] else None)
  c.experiment = "caflow"
  c.task = args["task"]
  if c.task.startswith("inpaint"):
    c.data.pair_repeats = 4        # as configs/conditional_inpainting.py
  # The diffusion estimators' fields that CAFLOW does not use.
  del c.sde
  del c.estimators
  c.sampling = conditional_default.ml_collections.ConfigDict()
  # Temperatures of the rows: the first is the 'caflow' row, the others are
  # written as 'caflow_T<t>' (Glow-style reduced-temperature sampling).
  c.sampling.temperatures = (1.0, 0.6)
  c.sampling.batch_size = 512

  c.num_bins = 17                  # digits take values 0..16 -> 17 levels

  c.model = conditional_default.ml_collections.ConfigDict()
  c.model.levels = 2               # 8x8 -> latents 4x4x2 and 2x2x8
  c.model.source_steps = 4
  c.model.target_steps = 6
  c.model.cond_steps = 4
  c.model.hidden = 72              # coupling channels of F and T
  c.model.cond_hidden = 128        # coupling channels of the G_i
  c.model.scale_type = "tanh"
  c.model.learned_prior = True

  c.train.steps = 3000             # same budget as the estimators
  c.train.batch_size = 64
  c.train.lr = 1e-3
  c.train.warmup = 100
  c.train.grad_clip = 1.0
  c.train.ema = 0.995
  c.train.source_weight = 0.0      # lambda of -log p(y); see caflow/training.py
  c.train.init_batch = 512         # ActNorm data-dependent init batch
  # Pairs of this fraction of the training images are held out; the parameters
  # with the best held-out bits/dim (every log_every steps) are kept.
  c.train.val_fraction = 0.1
  del c.train.weighting

  if args["quick"]:
    c.model.source_steps = 1
    c.model.target_steps = 1
    c.model.cond_steps = 1
    c.model.hidden = 16
    c.model.cond_hidden = 16
    c.train.steps = 30
    c.train.log_every = 10
    c.train.init_batch = 128
    c.sampling.temperatures = (1.0,)
  return c
