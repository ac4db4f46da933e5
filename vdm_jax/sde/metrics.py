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


def _flat(x, name):
  x = jnp.asarray(x, jnp.float32)
  _checks.check_min_rank(x, 2, name)
  return x.reshape(x.shape[0], -1)


def _pdist(a, b):
  sq = (jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None]
        - 2.0 * a @ b.T)
  return jnp.sqrt(jnp.maximum(sq, 0.0))


def energy_distance(x, y):
  """Energy distance between samples `x [N, ...]` and `y [M, ...]`; a scalar >= 0."""
  x, y = _flat(x, "x"), _flat(y, "y")
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"x and y must have the same event size, got {x.shape[1]} "
                     f"and {y.shape[1]}.")
  return (2.0 * jnp.mean(_pdist(x, y)) - jnp.mean(_pdist(x, x))
          - jnp.mean(_pdist(y, y)))


def rbf_mmd2(x, y, *, bandwidth: float | None = None):
  """Squared MMD with a Gaussian kernel (median-heuristic bandwidth by default)."""
  x, y = _flat(x, "x"), _flat(y, "y")
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"x and y must have the same event size, got {x.shape[1]} "
                     f"and {y.shape[1]}.")
  dxy = _pdist(x, y)
  h = jnp.median(dxy) if bandwidth is None else bandwidth
  k = lambda d: jnp.exp(-0.5 * jnp.square(d / h))
  return (jnp.mean(k(_pdist(x, x))) + jnp.mean(k(_pdist(y, y)))
          - 2.0 * jnp.mean(k(dxy)))
