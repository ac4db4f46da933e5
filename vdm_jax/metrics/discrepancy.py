"""Distances between distributions from samples: Wasserstein, MMD, energy, Frechet, KS.

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

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks

KERNELS = ("rbf", "laplacian", "imq", "distance")


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _check_finite(x, name):
  if _is_concrete(x) and not bool(jnp.all(jnp.isfinite(x))):
    bad = int(jnp.size(x) - jnp.sum(jnp.isfinite(x)))
    raise ValueError(f"{name} must be finite, got {bad} NaN/inf entries "
                     f"(impute or drop them before computing a distance).")


def _as_samples(x, name, *, allow_1d=True):
  """Returns `x` as floating `[N, D]`, checking rank, dtype and finiteness."""
  if not hasattr(x, "dtype"):
    x = np.asarray(x)
  _checks.check_floating(x, name)
  _checks.check_rank(x, (1, 2) if allow_1d else 2, f"{name} [N, D]")
  x = jnp.asarray(x)
  if x.ndim == 1:
    x = x[:, None]
  if x.shape[0] < 1:
    raise ValueError(f"{name} must hold at least one sample, got shape {x.shape}.")
  _check_finite(x, name)
  return x


def _check_pair(x, y, name_x="x", name_y="y", *, min_n=1):
  x = _as_samples(x, name_x)
  y = _as_samples(y, name_y)
  if x.shape[1] != y.shape[1]:
    raise ValueError(
        f"{name_x} and {name_y} must have the same number of features D, got "
        f"{name_x}.shape = {x.shape} and {name_y}.shape = {y.shape}.")
  for v, n in ((x, name_x), (y, name_y)):
    if v.shape[0] < min_n:
      raise ValueError(f"{n} needs at least {min_n} samples, got {v.shape[0]}.")
  dtype = jnp.result_type(x.dtype, y.dtype)
  return x.astype(dtype), y.astype(dtype)


def _safe_norm(d2):
  """sqrt with a zero (not NaN) gradient at 0 (diagonal of pairwise distances)."""
  pos = d2 > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1.0)), 0.0)


def sq_distances(x, y):
  """Pairwise squared Euclidean distances `[N, M]`, clipped at 0."""
  d2 = (jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None, :]
        - 2.0 * x @ y.T)
  return jnp.maximum(d2, 0.0)


# ---------------------------------------------------------------- Wasserstein


def _w1d_pow(x, y, p):
  """W_p^p between 1-D empirical measures x [N], y [M] via quantile functions."""
  n, m = x.shape[0], y.shape[0]
  xs, ys = jnp.sort(x), jnp.sort(y)
  # Breakpoints of both quantile functions; between two consecutive levels
  # both are constant, so the integral is an exact finite sum.
  levels = jnp.sort(jnp.concatenate([
      jnp.arange(1, n + 1, dtype=x.dtype) / n,
      jnp.arange(1, m + 1, dtype=x.dtype) / m]))
  du = jnp.diff(levels, prepend=jnp.zeros((1,), x.dtype))
  mid = levels - 0.5 * du
  ix = jnp.clip(jnp.floor(mid * n).astype(jnp.int32), 0, n - 1)
  iy = jnp.clip(jnp.floor(mid * m).astype(jnp.int32), 0, m - 1)
  return jnp.sum(du * jnp.abs(xs[ix] - ys[iy]) ** p)


def _check_p(p):
  if not p >= 1:
    raise ValueError(f"p must be >= 1 (a Wasserstein order), got {p}.")


def wasserstein_1d(x, y, *, p: float = 1.0):
  """Exact W_p between two 1-D empirical measures (any sample sizes).

  .. math::

    W_p(P_N, Q_M)^p = \\int_0^1 |F_N^{-1}(u) - G_M^{-1}(u)|^p \\, du,

  where :math:`F_N^{-1}, G_M^{-1}` are the empirical quantile functions of `x`
  and `y`. With N = M this is :math:`\\frac1N\\sum_i |x_{(i)} - y_{(i)}|^p`
  (sorted samples). As an estimator of the population W_p it is biased upwards
  by O(N^{-1/2}) when P = Q; variance O(1/N).

  Args:
    x: `[N]` or `[N, 1]` samples.
    y: `[M]` or `[M, 1]` samples.
    p: order p >= 1.

  Returns:
    Scalar W_p in the units of the data.

  References:
    Villani. Optimal Transport: Old and New (Remark 2.19), 2009.
  """
  _check_p(p)
  x, y = _check_pair(x, y)
  if x.shape[1] != 1:
    raise ValueError(f"wasserstein_1d needs 1-D samples, got D = {x.shape[1]}; "
                     "use exact_wasserstein or sliced_wasserstein.")
  return _w1d_pow(x[:, 0], y[:, 0], p) ** (1.0 / p)


def wasserstein_1d_per_feature(x, y, *, p: float = 1.0):
  """Exact 1-D W_p of every feature's marginal: `[N, D], [M, D] -> [D]`."""
  _check_p(p)
  x, y = _check_pair(x, y)
  return jax.vmap(lambda a, b: _w1d_pow(a, b, p), in_axes=(1, 1))(x, y) ** (1 / p)


def sliced_wasserstein(rng, x, y, *, p: float = 2.0, n_projections: int = 128):
  """Monte Carlo sliced Wasserstein distance over uniform random directions.

  .. math::

    SW_p(P, Q)^p = \\int_{S^{D-1}} W_p(\\theta_\\# P, \\theta_\\# Q)^p \\,
    d\\sigma(\\theta) \\approx \\frac1L \\sum_{l=1}^L
    W_p(\\theta_l^\\top x, \\theta_l^\\top y)^p.

  The average over L = `n_projections` directions is unbiased for SW_p^p of the
  empirical measures with variance O(1/L). For a pure translation by delta,
  :math:`SW_2^2 = \\|\\delta\\|^2 / D` while :math:`W_2 = \\|\\delta\\|`; in general
  :math:`SW_p \\le W_p`.

  Args:
    rng: PRNG key for the directions.
    x: `[N, D]` samples.
    y: `[M, D]` samples.
    p: order p >= 1.
    n_projections: L, number of random directions.

  Returns:
    Scalar SW_p (the p-th root of the average).

  References:
    Bonneel, Rabin, Peyre & Pfister. Sliced and Radon Wasserstein barycenters of
    measures. JMIV, 2015.
  """
  _check_p(p)
  if int(n_projections) < 1:
    raise ValueError(f"n_projections must be >= 1, got {n_projections}.")
  x, y = _check_pair(x, y)
  theta = jax.random.normal(rng, (int(n_projections), x.shape[1]), x.dtype)
  theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
  px, py = x @ theta.T, y @ theta.T
  per_dir = jax.vmap(lambda a, b: _w1d_pow(a, b, p), in_axes=(1, 1))(px, py)
  return jnp.mean(per_dir) ** (1.0 / p)


def _import_ot():
  try:
    import ot  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - depends on the environment.
    raise ImportError(
        "exact optimal transport needs POT: pip install 'vdm_jax[ot]' "
        "(or pip install pot).") from e
  return ot


def exact_wasserstein(x, y, *, p: float = 1.0, a=None, b=None,
                      num_itermax: int = 1_000_000) -> float:
  """Exact W_p between two empirical measures in any dimension (POT, host).

  .. math::

    W_p(P_N, Q_M)^p = \\min_{\\pi \\in \\Pi(a, b)} \\sum_{ij} \\pi_{ij}
    \\|x_i - y_j\\|_2^p,

  solved exactly by the network simplex (`ot.emd2`). O(N^3 log N) time and O(N M)
  memory: keep N, M below ~5000. As a population estimate its bias decays like
  N^{-1/D} (D >= 3) and its variance like 1/N; repeat over independent draws to
  show that sampling error next to any comparison.

  Args:
    x: `[N, D]` (or `[N]`) samples.
    y: `[M, D]` (or `[M]`) samples.
    p: order p >= 1 (ground cost Euclidean distance to the p).
    a: optional `[N]` weights summing to 1 (uniform by default).
    b: optional `[M]` weights summing to 1.
    num_itermax: simplex iteration cap (POT warns if it is reached).

  Returns:
    Python float W_p.

  References:
    Flamary et al. POT: Python Optimal Transport. JMLR 22, 2021.
    Bonneel, van de Panne, Paris & Heidrich. Displacement interpolation using
    Lagrangian mass transport. SIGGRAPH Asia, 2011.
  """
  _check_p(p)
  x, y = _check_pair(x, y)
  ot = _import_ot()
  xn = np.asarray(x, np.float64)
  yn = np.asarray(y, np.float64)
  a = np.full(xn.shape[0], 1.0 / xn.shape[0]) if a is None else np.asarray(a, np.float64)
  b = np.full(yn.shape[0], 1.0 / yn.shape[0]) if b is None else np.asarray(b, np.float64)
  for w, n, k in ((a, "a", xn.shape[0]), (b, "b", yn.shape[0])):
    if w.shape != (k,) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
      raise ValueError(f"{n} must be [{k}] non-negative weights summing to 1, "
                       f"got shape {w.shape} and sum {w.sum():.6g}.")
  cost = ot.dist(xn, yn, metric="euclidean") ** p
  return float(ot.emd2(a, b, cost, numItermax=int(num_itermax))) ** (1.0 / p)


def ot_assignment(x, y) -> np.ndarray:
  """Optimal matching of two equal-size sets for the Euclidean cost (host).

  Returns `perm` with `y[perm[i]]` matched to `x[i]`, so that
  :math:`W_1(P_N, Q_N) = \\frac1N\\sum_i \\|x_i - y_{\\mathrm{perm}(i)}\\|`. With
  uniform weights and N = M an optimal plan is a permutation (Birkhoff), which
  makes mini-batch OT losses differentiable in closed form (envelope theorem):
  hold the matching fixed and differentiate the matched cost.

  Args:
    x: `[N, D]` samples.
    y: `[N, D]` samples.

  Returns:
    `[N]` int permutation.
  """
  x, y = _check_pair(x, y)
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"ot_assignment needs equal sizes, got {x.shape[0]} and "
                     f"{y.shape[0]}.")
  from scipy.optimize import linear_sum_assignment  # pylint: disable=g-import-not-at-top
  cost = np.sqrt(np.maximum(np.asarray(sq_distances(x, y), np.float64), 0.0))
  rows, cols = linear_sum_assignment(cost)
  perm = np.empty_like(cols)
  perm[rows] = cols
  return perm


# ------------------------------------------------------------ Gaussian / FD


def _sqrtm_psd(c):
  w, v = jnp.linalg.eigh(0.5 * (c + c.T))
  return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


def gaussian_w2(mean1, cov1, mean2, cov2):
  """Closed-form W_2 between two Gaussians (the Frechet distance, not squared).

  .. math::

    W_2^2 = \\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{tr}\\big(\\Sigma_1 + \\Sigma_2 -
    2 (\\Sigma_1^{1/2} \\Sigma_2 \\Sigma_1^{1/2})^{1/2}\\big).

  Matrix square roots use symmetric eigendecompositions (negative eigenvalues
  from round-off are clipped at 0), so PSD but singular covariances work.

  Args:
    mean1: `[D]` mean.
    cov1: `[D, D]` symmetric PSD covariance.
    mean2: `[D]` mean.
    cov2: `[D, D]` symmetric PSD covariance.

  Returns:
    Scalar W_2.

  References:
    Dowson & Landau. The Frechet distance between multivariate normal
    distributions. J. Multivariate Anal., 1982.
  """
  mean1, mean2 = jnp.atleast_1d(mean1), jnp.atleast_1d(mean2)
  cov1, cov2 = jnp.atleast_2d(cov1), jnp.atleast_2d(cov2)
  for v, n in ((mean1, "mean1"), (mean2, "mean2"), (cov1, "cov1"), (cov2, "cov2")):
    _checks.check_floating(v, n)
  d = mean1.shape[0]
  for v, n, s in ((mean1, "mean1", (d,)), (mean2, "mean2", (d,)),
                  (cov1, "cov1", (d, d)), (cov2, "cov2", (d, d))):
    if v.shape != s:
      raise ValueError(f"{n} must have shape {s} (D = mean1.shape[0] = {d}), "
                       f"got {v.shape}.")
  s1 = _sqrtm_psd(cov1)
  cross = _sqrtm_psd(s1 @ cov2 @ s1)
  w2sq = (jnp.sum(jnp.square(mean1 - mean2))
          + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * jnp.trace(cross))
  return jnp.sqrt(jnp.maximum(w2sq, 0.0))


def gaussian_fit(x):
  """Mean `[D]` and unbiased covariance `[D, D]` of samples `[N, D]` (N >= 2)."""
  x = _as_samples(x, "x")
  if x.shape[0] < 2:
    raise ValueError(f"gaussian_fit needs >= 2 samples, got {x.shape[0]}.")
  mu = jnp.mean(x, 0)
  xc = x - mu
  return mu, xc.T @ xc / (x.shape[0] - 1)


def frechet_distance(x, y):
  """Frechet distance of Gaussian fits (squared W_2, the FID convention).

  .. math::

    \\mathrm{FD}(x, y) = W_2^2\\big(\\mathcal N(\\hat\\mu_x, \\hat\\Sigma_x),
    \\mathcal N(\\hat\\mu_y, \\hat\\Sigma_y)\\big).

  Plug-in estimator: biased upwards by about tr(Sigma_x)/N + tr(Sigma_y)/M
  (the mean term) plus an O(D^2/N) covariance term, so compare values only at a
  fixed sample size; variance O(1/N).

  Args:
    x: `[N, D]` samples (N >= 2).
    y: `[M, D]` samples (M >= 2).

  Returns:
    Scalar, in squared data units.

  References:
    Heusel et al. GANs trained by a two time-scale update rule converge to a
    local Nash equilibrium. https://arxiv.org/abs/1706.08500, 2017.
  """
  x, y = _check_pair(x, y, min_n=2)
  mx, cx = gaussian_fit(x)
  my, cy = gaussian_fit(y)
  return jnp.square(gaussian_w2(mx, cx, my, cy))


# ------------------------------------------------------------ kernels / MMD


def median_bandwidth(x, y):
  """Median heuristic: the median pairwise distance of the pooled samples."""
  z = jnp.concatenate([x, y], 0)
  d = _safe_norm(sq_distances(z, z))
  n = z.shape[0]
  iu = np.triu_indices(n, 1)  # Static indices: jit-compatible.
  off = d[iu]
  return jnp.maximum(jnp.median(off), 1e-12)


def _kernel(kernel, d2, h):
  if kernel == "rbf":
    return jnp.exp(-d2 / (2.0 * h * h))
  if kernel == "laplacian":
    return jnp.exp(-_safe_norm(d2) / h)
  if kernel == "imq":
    return jax.lax.rsqrt(1.0 + d2 / (h * h))
  return -_safe_norm(d2)  # "distance": the (conditionally p.d.) energy kernel.


def _mean_offdiag(k, unbiased):
  n = k.shape[0]
  if not unbiased:
    return jnp.mean(k)
  return (jnp.sum(k) - jnp.trace(k)) / (n * (n - 1))


def mmd2(x, y, *, kernel: str = "rbf", bandwidth=None, unbiased: bool = True):
  """Squared maximum mean discrepancy with a chosen kernel.

  .. math::

    \\widehat{\\mathrm{MMD}}^2_u = \\frac{1}{N(N-1)}\\sum_{i \\ne i'} k(x_i, x_{i'})
    + \\frac{1}{M(M-1)}\\sum_{j \\ne j'} k(y_j, y_{j'})
    - \\frac{2}{NM}\\sum_{i,j} k(x_i, y_j).

  Kernels (h = `bandwidth`, r = ||a - b||): 'rbf' exp(-r^2 / 2h^2);
  'laplacian' exp(-r/h); 'imq' (1 + r^2/h^2)^{-1/2}; 'distance' -r (then
  MMD^2 is the energy distance; h is ignored). The U-statistic (``unbiased=True``) is
  unbiased for the population MMD^2 with variance O(1/N) (O(1/N^2) under
  P = Q) and can be negative; the V-statistic keeps the diagonal, is >= 0 and is
  biased upwards by O(1/N). With ``bandwidth=None`` the median heuristic on the
  pooled samples is used (data dependent, so strictly the estimate is then only
  asymptotically unbiased).

  Args:
    x: `[N, D]` samples (N >= 2 for the U-statistic).
    y: `[M, D]` samples.
    kernel: one of 'rbf', 'laplacian', 'imq', 'distance'.
    bandwidth: h > 0, or None for the median heuristic.
    unbiased: U-statistic (True) or V-statistic (False).

  Returns:
    Scalar MMD^2 estimate.

  References:
    Gretton et al. A Kernel Two-Sample Test. JMLR 13, 2012 (Lemma 6).
  """
  if kernel not in KERNELS:
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
  x, y = _check_pair(x, y, min_n=2 if unbiased else 1)
  if bandwidth is None:
    h = median_bandwidth(x, y)
  else:
    if _is_concrete(bandwidth) and not float(bandwidth) > 0:
      raise ValueError(f"bandwidth must be > 0, got {bandwidth}.")
    h = jnp.asarray(bandwidth, x.dtype)
  kxx = _kernel(kernel, sq_distances(x, x), h)
  kyy = _kernel(kernel, sq_distances(y, y), h)
  kxy = _kernel(kernel, sq_distances(x, y), h)
  return (_mean_offdiag(kxx, unbiased) + _mean_offdiag(kyy, unbiased)
          - 2.0 * jnp.mean(kxy))


def energy_distance(x, y, *, unbiased: bool = True):
  """Energy distance (Szekely): the MMD^2 of the distance kernel k(a, b) = -||a - b||.

  .. math::

    \\mathcal E(P, Q) = 2\\,\\mathbb E\\|X - Y\\| - \\mathbb E\\|X - X'\\|
    - \\mathbb E\\|Y - Y'\\|.

  In 1-D, :math:`\\mathcal E = 2\\int (F(t) - G(t))^2 dt`; the V-statistic
  (``unbiased=False``) satisfies this identity exactly for the empirical CDFs.
  The U-statistic is unbiased with variance O(1/N).

  Args:
    x: `[N, D]` samples.
    y: `[M, D]` samples.
    unbiased: U-statistic (True) or V-statistic (False).

  Returns:
    Scalar, in data units.

  References:
    Szekely & Rizzo. Energy statistics: a class of statistics based on
    distances. J. Stat. Plan. Inference, 2013.
  """
  return mmd2(x, y, kernel="distance", bandwidth=1.0, unbiased=unbiased)


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
