"""Per-feature two-sample Kolmogorov-Smirnov statistics.

Biased upwards, about 0.87 sqrt((N + M) / (N M)) when P = Q, with the same
scale of spread.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vdm_jax.metrics._samples import _check_pair

# ------------------------------------------------------------------------ KS


def _ks_1d(a, b):
  grid = jnp.concatenate([a, b])
  fa = jnp.searchsorted(jnp.sort(a), grid, side="right") / a.shape[0]
  fb = jnp.searchsorted(jnp.sort(b), grid, side="right") / b.shape[0]
  return jnp.max(jnp.abs(fa - fb))


def ks_statistics(x, y):
  """Two-sample Kolmogorov-Smirnov statistic of every feature: `-> [D]`.

  .. math::

    \\mathrm{KS}_d = \\sup_t |F_{N,d}(t) - G_{M,d}(t)|.

  Exact for the empirical CDFs (the sup is attained at a sample point). Under
  P = Q its mean is about 0.87 sqrt((N + M)/(N M)) (Kolmogorov distribution),
  so it is biased upwards with a spread of the same order.

  Args:
    x: `[N, D]` samples.
    y: `[M, D]` samples.

  Returns:
    `[D]` statistics in [0, 1].

  References:
    Smirnov. Table for estimating the goodness of fit of empirical
    distributions. Ann. Math. Stat., 1948.
  """
  x, y = _check_pair(x, y)
  return jax.vmap(_ks_1d, in_axes=(1, 1))(x, y)
