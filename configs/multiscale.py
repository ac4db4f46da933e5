"""Uniform vs non-uniform (multi-scale) diffusion: model configs and the quality study.

The same-training-time quality experiment (`experiments/multiscale_quality.py`):

  python launch.py --config=configs/multiscale.py --workdir=results/multiscale_quality
  python launch.py --config=configs/multiscale.py:quick --workdir=/tmp/ms_quality
  python launch.py --config=configs/multiscale.py --workdir=results/multiscale_quality \\
      --config.quality.seconds=300 --config.quality.clock=cpu   # shared machine

It reads `seed` and the `quality` section only: the bundled 8x8 digits resized
to 16x16, a uniform UNet of width `quality.width` against a 2-level multi-scale
model of the same parameter count, each trained for `quality.seconds` of
`quality.clock` time, scored by a Frechet distance in the feature space of a
digit classifier trained there (`quality.feature_fn` / `quality.feature_weights`
take a user's Inception extractor instead; nothing is downloaded).

The other sections describe the 32 / 64 / 128 px models that
`python -m benchmarks.multiscale_sampling` builds (sampling time and FLOPs).
Config arg (comma list, `configs.default.parse_arg` style): ``model=uniform|
multiscale`` (default multiscale), ``res=32|64|128`` (default 32), ``width=W``
(uniform base channels, default 64), ``runlocal`` (tiny widths and step counts
for a CPU smoke run of those models), ``quick`` (the quality study's smoke run,
well under a minute of training).

Design of the 32-128 px models:
  * levels L = log2(res / 16): the coarsest scale is always 16x16, so K = L + 1
    = 2, 3, 4 scales at 32, 64, 128 (the paper uses L = 3 at 128).
  * Per-scale windows: log-SNR +10 -> -10 over [0, (k + 1) / K], finest first.
    The uniform baseline is the same process with L = 0 (one window [0, 1]).
  * Networks: `vdm_jax.models.UNet` with n_blocks = 2 and levels down to 8x8:
    uniform ch_mult = (1, 2, ..., 2) at full resolution; the multi-scale net of
    stage k runs at res / 2^k with the first len - k entries of that ch_mult.
  * Same total parameter budget: all stage nets share one width, chosen so the
    K nets together have the uniform net's parameter count: 52/64, 44/64 and
    40/64 of the uniform width at 32, 64, 128 pixels (parameters scale as
    width^2). At width 64 (3 channels) the counts are 6.14M / 6.47M (+5.5 %),
    8.62M / 8.72M (+1.1 %) and 11.10M / 11.55M (+4.1 %) uniform / multi-scale.
    At other widths `benchmarks/multiscale_sampling.py` re-matches the
    multi-scale width by parameter count (``--match_params``).
  * Same number of reverse steps per unit time (``sampling.steps_per_unit``)
    for both; the multi-scale sampler spreads them over its stages, so each
    stage of length 1/K gets steps_per_unit / K steps.

Reference: Gbatzolis, Stanczuk, Schonlieb & Etmann. Non-Uniform Diffusion
Models. https://arxiv.org/abs/2207.09786, 2022.
"""

import ml_collections

# Every family's root and its one arg parser (configs/default.py).
from configs.default import base_config
from configs.default import parse_arg

# Multi-scale width / uniform width giving equal total parameter counts.
_MS_WIDTH_RATIO = {32: 52 / 64, 64: 44 / 64, 128: 40 / 64}
_COARSEST = 16


def levels_for(res: int) -> int:
  """Haar levels so the coarsest scale is 16x16."""
  if res not in _MS_WIDTH_RATIO:
    raise ValueError(f"res must be one of {sorted(_MS_WIDTH_RATIO)}, got {res}.")
  return {32: 1, 64: 2, 128: 3}[res]


def stage_networks(model: str, res: int, width: int, n_blocks: int = 2):
  """Per-stage UNet keyword arguments (list of dicts), earliest stage first."""
  n_down = {32: 2, 64: 3, 128: 4}[res]          # down to 8x8
  base_mult = (1,) + (2,) * n_down
  if model == "uniform":
    return [dict(ch=width, n_blocks=n_blocks, ch_mult=base_mult, dropout=0.0)]
  if model != "multiscale":
    raise ValueError(f"model must be 'uniform' or 'multiscale', got {model!r}.")
  ms_width = max(4, 2 * int(round(width * _MS_WIDTH_RATIO[res] / 2)))  # even
  return [dict(ch=ms_width, n_blocks=n_blocks,
               ch_mult=base_mult[:len(base_mult) - k], dropout=0.0)
          for k in range(levels_for(res) + 1)]


def get_config(arg=None):
  """Builds the config; see the module docstring for ARG."""
  a = parse_arg(arg, model="multiscale", res=32, width=64, runlocal=False)
  res, width = a["res"], a["width"]
  runlocal = a["runlocal"]
  if runlocal:
    width = min(width, 16)
  c = base_config("multiscale_quality", seed=0)
  c.model_name = a["model"]

  c.data = ml_collections.ConfigDict()
  c.data.image_size = res
  c.data.channels = 3

  c.process = ml_collections.ConfigDict()
  c.process.levels = 0 if a["model"] == "uniform" else levels_for(res)
  c.process.ends = None            # default (k + 1) / K
  c.process.starts = None          # default 0
  c.process.gamma_min = -10.0      # log-SNR +10 at each window start
  c.process.gamma_max = 10.0       # log-SNR -10 at each window end

  c.model = ml_collections.ConfigDict()
  c.model.width = width
  c.model.stages = stage_networks(a["model"], res, width)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 8 if runlocal else 64
  c.train.lr = 2e-4
  c.train.steps = 20 if runlocal else 200_000
  c.train.weighting = "eps"        # 'eps' (paper's baseline) or 'likelihood'
  c.train.ema = 0.999

  c.sampling = ml_collections.ConfigDict()
  c.sampling.steps_per_unit = 8 if runlocal else 128   # paper: 128 DDIM steps
  c.sampling.eta = 1.0
  c.sampling.batch_size = 2 if runlocal else 64

  # The same-training-time quality study on 16x16 digits (module docstring).
  q = c.quality = ml_collections.ConfigDict()
  q.seconds = 120.0                # training time per model, compilation excluded
  q.clock = "wall"                 # 'wall', or 'cpu' (process CPU time: shared machines)
  q.width = 32                     # uniform UNet width; multi-scale matched by params
  q.n_blocks = 1
  q.batch_size = 64
  q.lr = 1e-3
  q.ema = 0.995
  q.steps_per_unit = 60            # ancestral steps per unit time, both models
  q.samples = 500
  q.classifier_steps = 1500        # feature classifier (vdm_jax.metrics.classifier)
  q.feature_fn = ""                # 'module:function' for user features (e.g. Inception)
  q.feature_weights = ""           # weights file passed to feature_fn
  if a["quick"]:
    q.seconds, q.width, q.samples = 5.0, 16, 250
    q.classifier_steps, q.steps_per_unit = 300, 30
  return c
