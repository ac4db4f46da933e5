"""Shared defaults of the conditional-estimator experiments (CDE, CDiffE, MS-CDiffE).

Task configs (`conditional_sr.py`, `conditional_inpainting.py`,
`conditional_edges.py`) import `get_config` from here and change only their
deltas. Every estimator of one run gets the same network family, training
budget and sampler; only the output channels differ (x vs. x + y).

  python launch.py --config=configs/conditional_sr.py:factor=4 --workdir=results/conditional

Sizes are for a laptop CPU (8x8 digits, a few minutes per task); `quick` in the
arg shrinks everything for a smoke run.
"""

import math

import ml_collections

from configs.default import base_config
from configs.default import parse_arg


def get_config(arg=None):
  """Default config; `arg` may contain 'quick'."""
  args = parse_arg(arg)
  c = base_config("conditional_estimators", seed=0)
  c.task = "sr4"                  # tasks.make_task name

  c.data = ml_collections.ConfigDict()
  c.data.source = "digits"        # 'digits' (bundled, offline) or 'tfds'
  c.data.name = "mnist"           # tfds name when source == 'tfds' (download=False)
  c.data.image_size = 8           # tfds images are resized to this (grey)
  c.data.max_train = 0            # 0: all
  c.data.pair_repeats = 1         # conditions drawn per training image (masks)
  c.data.n_test = 64              # test conditions scored
  c.data.n_samples = 4            # samples per condition (MSDiff draws 4)

  c.sde = ml_collections.ConfigDict()
  # VE SDEs as in MSDiff, the code of Batzolis, Stanczuk, Schonlieb, Etmann 2021
  # (arXiv 2111.13606): sigma_max,x = sqrt(D_x).
  c.sde.x_sigma_min = 0.01
  c.sde.x_sigma_max = math.sqrt(8 * 8 * 1)
  c.sde.y_sigma_min = 0.01
  c.sde.y_sigma_max = 1.0         # MS-CDiffE's slow y (0.5 for SR in MSDiff)
  c.sde.eps = 1e-3
  c.sde.allow_faster_y = False    # MS-CDiffE y must not out-run x

  c.model = ml_collections.ConfigDict()
  # 'mlp': ScoreMLP on the flattened image with the flattened y concatenated
  # to its input (the CPU default: ~10x cheaper per step than the UNet here);
  # 'unet': vdm_jax.models.UNet with y as extra input channels.
  c.model.kind = "mlp"
  c.model.hidden = (512, 512, 512)  # mlp only
  c.model.emb_dim = 64              # mlp only
  c.model.ch = 32                   # unet only
  c.model.n_blocks = 1
  c.model.ch_mult = (1, 2)

  c.train = ml_collections.ConfigDict()
  c.train.steps = 3000            # same budget for every estimator
  c.train.batch_size = 64
  c.train.lr = 2e-3
  c.train.warmup = 100
  c.train.grad_clip = 1.0
  c.train.ema = 0.995
  c.train.weighting = "likelihood"  # Lambda_MLE = diag(g_x^2, g_y^2) (Batzolis et al. 2021)
  c.train.log_every = 250

  c.sampling = ml_collections.ConfigDict()
  # Both are vdm_jax.sde.samplers.sample_reverse with the reverse-diffusion
  # predictor; 'conditional' draws x_T from fold_in(key, 2), 'pc' (pc_sample)
  # from split(key)[0], so the two give different draws.
  c.sampling.sampler = "conditional"
  c.sampling.n_steps = 200        # reverse-diffusion predictor steps
  c.sampling.corrector_steps = 0  # MSDiff: 1 Langevin step, snr 0.15
  c.sampling.snr = 0.15
  c.sampling.y_noise = "fresh"    # fresh y_t at every step (MSDiff default)

  c.estimators = ("cde", "cdiffe", "ms_cdiffe")
  c.grid_conditions = 6           # rows of the PNG grid

  if args["quick"]:
    c.data.max_train = 256
    c.data.n_test = 8
    c.data.n_samples = 2
    c.model.hidden = (128, 128)
    c.model.ch = 16
    c.train.steps = 30
    c.train.batch_size = 16
    c.train.log_every = 10
    c.sampling.n_steps = 10
    c.grid_conditions = 3
  return c
