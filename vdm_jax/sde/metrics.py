"""Two-sample distances for judging samplers: energy distance and RBF-kernel MMD.

.. math::

  \\mathcal{E}(P, Q) = 2\\,\\mathbb{E}\\|X - Y\\| - \\mathbb{E}\\|X - X'\\|
  - \\mathbb{E}\\|Y - Y'\\|, \\qquad
  \\mathrm{MMD}^2_k = \\mathbb{E}k(X, X') + \\mathbb{E}k(Y, Y') - 2\\mathbb{E}k(X, Y).

Both are V-statistics over all pairs (O(N M) memory), zero iff P = Q in the
population limit, and computed on flattened `[N, D]` samples.

References:
  Szekely & Rizzo. Testing for equal distributions in high dimension.
  InterStat, 2004.
  Gretton et al. A Kernel Two-Sample Test. JMLR 13, 2012.
"""

from __future__ import annotations

import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.metrics import discrepancy


def _flat_pair(x, y):
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  _checks.check_min_rank(x, 2, "x")
  _checks.check_min_rank(y, 2, "y")
  x, y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"x and y must have the same event size, got {x.shape[1]} "
                     f"and {y.shape[1]}.")
  return x, y


def energy_distance(x, y):
  """Energy distance (V-statistic) between samples `x [N, ...]` and `y [M, ...]`."""
  return discrepancy.energy_distance(*_flat_pair(x, y), unbiased=False)


def rbf_mmd2(x, y, *, bandwidth: float | None = None):
  """Squared MMD (V-statistic), Gaussian kernel; bandwidth = median x-y distance by default."""
  x, y = _flat_pair(x, y)
  if bandwidth is None:
    bandwidth = jnp.median(jnp.sqrt(jnp.maximum(discrepancy.sq_distances(x, y), 0.0)))
  return discrepancy.mmd2(x, y, kernel="rbf", bandwidth=bandwidth, unbiased=False)
