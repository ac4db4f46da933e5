"""Frechet distance between Gaussian fits of two feature sets (host, float64).

.. math::

  \\mathrm{FD} = \\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{Tr}\\big(C_1 + C_2
  - 2 (C_1 C_2)^{1/2}\\big),

the FID formula on any features (a classifier's penultimate layer, PCA, or
Inception pool3 features supplied by the user), for evaluation code on numpy
features (ScoreVAE, multi-scale sample quality). Means and covariances are
taken in float64 on the host and passed to `vdm_jax.metrics.gaussian._w2_squared`
(the one copy of the formula) with ``xp=numpy``, so the whole computation is
float64: FD of features is a small difference of large traces, which float32
would round away. `vdm_jax.metrics.gaussian.frechet_distance` is the jittable
JAX form of the same quantity on raw samples.

References:
  Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter. GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium.
  https://arxiv.org/abs/1706.08500, 2017 (FID).
"""

from __future__ import annotations

import numpy as np

from vdm_jax import _checks
from vdm_jax.metrics import gaussian


def frechet_distance(feats_a, feats_b) -> float:
  """Frechet distance between Gaussian fits of two `[N, F]` feature sets."""
  a = np.asarray(feats_a, np.float64)
  b = np.asarray(feats_b, np.float64)
  _checks.check_rank(a, 2, "feats_a [N, F]")
  _checks.check_rank(b, 2, "feats_b [N, F]")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}.")
  if min(len(a), len(b)) < 2:
    raise ValueError("frechet_distance needs at least 2 samples per set.")
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    raise ValueError("frechet_distance: features contain non-finite values.")
  cov_a = np.atleast_2d(np.cov(a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(b, rowvar=False))
  return float(gaussian._w2_squared(a.mean(0), cov_a, b.mean(0), cov_b, xp=np))
