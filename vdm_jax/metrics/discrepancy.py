"""Every sample-based distance of `vdm_jax.metrics` in one table (`discrepancy_scores`).

The distances live by family in `transport`, `gaussian`, `kernel` and
`univariate`, and are re-exported here.

Every function compares two sample sets ``x [N, D]`` and ``y [M, D]`` (1-D
helpers also take ``[N]``) and returns a scalar (or ``[D]`` per-feature values).
All but `exact_wasserstein` are pure JAX and can be `jit`-ted; `exact_wasserstein`
and `ot_assignment` solve the discrete optimal-transport linear programme on the
host with POT (the optional ``ot`` extra) because no exact network-simplex solver
exists in JAX.

Estimators and their errors (N, M samples, D dimensions):

* `wasserstein_1d` (sorted samples / quantile functions) is the *exact* W_p
  between the two empirical measures. As an estimate of the population W_p it
  is biased upwards (E W_p(P_N, Q_M) >= W_p(P, Q), equality only in the limit),
  the bias is O(N^{-1/2}) when P = Q and smaller otherwise; the variance is
  O(1/N) for distributions with finite moments.
* `exact_wasserstein` (POT network simplex) is exact between empirical measures
  in any D; as a population estimate its bias decays like N^{-1/D} for D >= 3
  (the curse of dimensionality of OT), its variance like 1/N.
* `sliced_wasserstein` is a Monte Carlo average over random directions of
  exact 1-D distances: unbiased for the *empirical* sliced distance SW_p^p, with
  variance O(1/L) in the number of projections L, plus the 1-D sampling bias.
* `mmd2` (U-statistic) is *unbiased* for the population MMD^2 with variance
  O(1/N) (O(1/N^2) when P = Q); it can be negative. The V-statistic
  (``unbiased=False``) is biased upwards by O(1/N) and is always >= 0.
* `energy_distance` is the MMD^2 of the distance kernel; same bias/variance
  story as `mmd2`.
* `frechet_distance` fits a Gaussian to each set; the plug-in estimate is biased
  upwards by about tr(C_x)/N + tr(C_y)/M (+ O(D^2/N) from the covariance square
  root), which is why FID depends on the sample size; variance O(1/N).
* `ks_statistics` (two-sample Kolmogorov-Smirnov) is biased upwards, about
  sqrt((N + M) / (N M)) * 0.87 when P = Q, with the same scale of spread.

References:
  Villani. Optimal Transport: Old and New. Springer, 2009.
  Peyre & Cuturi. Computational Optimal Transport.
  https://arxiv.org/abs/1803.00567, 2019.
  Bonneel, Rabin, Peyre & Pfister. Sliced and Radon Wasserstein barycenters of
  measures. JMIV, 2015.
  Gretton, Borgwardt, Rasch, Schoelkopf & Smola. A Kernel Two-Sample Test.
  JMLR 13, 2012.
  Szekely & Rizzo. Energy statistics: a class of statistics based on distances.
  J. Stat. Plan. Inference, 2013.
  Dowson & Landau. The Frechet distance between multivariate normal
  distributions. J. Multivariate Anal., 1982.
  Heusel et al. GANs trained by a two time-scale update rule converge to a
  local Nash equilibrium (FID). https://arxiv.org/abs/1706.08500, 2017.
  Flamary et al. POT: Python Optimal Transport. JMLR 22, 2021.
"""

from __future__ import annotations

import jax.numpy as jnp

from vdm_jax.metrics._samples import _check_pair
from vdm_jax.metrics._samples import sq_distances
from vdm_jax.metrics.gaussian import frechet_distance
from vdm_jax.metrics.gaussian import gaussian_fit
from vdm_jax.metrics.gaussian import gaussian_w2
from vdm_jax.metrics.kernel import KERNELS
from vdm_jax.metrics.kernel import energy_distance
from vdm_jax.metrics.kernel import median_bandwidth
from vdm_jax.metrics.kernel import mmd2
from vdm_jax.metrics.transport import exact_wasserstein
from vdm_jax.metrics.transport import ot_assignment
from vdm_jax.metrics.transport import sliced_wasserstein
from vdm_jax.metrics.transport import wasserstein_1d
from vdm_jax.metrics.transport import wasserstein_1d_per_feature
from vdm_jax.metrics.univariate import ks_statistics

__all__ = [
    "KERNELS",
    "discrepancy_scores",
    "energy_distance",
    "exact_wasserstein",
    "frechet_distance",
    "gaussian_fit",
    "gaussian_w2",
    "ks_statistics",
    "median_bandwidth",
    "mmd2",
    "ot_assignment",
    "sliced_wasserstein",
    "sq_distances",
    "wasserstein_1d",
    "wasserstein_1d_per_feature",
]


def discrepancy_scores(rng, x, y, *, n_projections: int = 64,
                       max_exact: int = 2000) -> dict:
  """All scores of this module for one pair of sample sets, as Python floats.

  Convenience for experiment tables: exact W1 (POT, on at most `max_exact`
  points of each set), sliced W2, unbiased RBF MMD^2 (median bandwidth), energy
  distance, Frechet distance and the mean per-feature KS statistic.
  """
  x, y = _check_pair(x, y, min_n=2)
  nx, ny = min(x.shape[0], max_exact), min(y.shape[0], max_exact)
  return {
      "w1_exact": exact_wasserstein(x[:nx], y[:ny], p=1),
      "sliced_w2": float(sliced_wasserstein(rng, x, y, p=2,
                                            n_projections=n_projections)),
      "mmd2_rbf": float(mmd2(x, y, kernel="rbf")),
      "energy": float(energy_distance(x, y)),
      "frechet": float(frechet_distance(x, y)),
      "ks_mean": float(jnp.mean(ks_statistics(x, y))),
  }
