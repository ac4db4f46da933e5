"""Missing-data masks (MCAR, MAR, MNAR) and imputers, including diffusion inpainting.

Masks are boolean ``[N, D]`` arrays, True where an entry is *missing*.

* MCAR: each entry is missing independently with probability `rate`.
* MAR: a random 30% of the features are always observed; every other entry
  :math:`x_{ij}` is missing with probability :math:`\\sigma(a_j^\\top
  x_{i,obs} + b)`, a logistic model of the *observed* features only, with the
  intercept b set by bisection so that the missing rate among the maskable
  features equals `rate`.
* MNAR (self-masking): :math:`P(m_{ij} = 1) = \\sigma(k\\, z_{ij} + b)` with z
  the standardised value itself (large values go missing), b by bisection.

Imputers return a full matrix and never touch observed entries (enforced with
a final ``where(mask, imputed, x)``). The diffusion imputer inpaints with a
score model of the complete data using the replacement method: run the
reverse VP-SDE on all coordinates and, after every step, overwrite the
observed ones with a forward-noised copy of their values,

.. math::

  x_t^{obs} \\leftarrow a_t\\, x_0^{obs} + s_t\\, \\xi, \\qquad \\xi \\sim
  \\mathcal N(0, I),

which samples approximately from :math:`p(x^{mis} | x^{obs})`.

References:
  Rubin. Inference and missing data. Biometrika, 1976.
  Muzellec, Josse, Boyer & Cuturi. Missing data imputation using optimal
  transport. https://arxiv.org/abs/2002.03860, 2020 (MAR/MNAR mechanisms).
  Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole. Score-based generative
  modeling through stochastic differential equations (imputation, App. I.2).
  https://arxiv.org/abs/2011.13456, 2021.
  van Buuren & Groothuis-Oudshoorn. mice: Multivariate imputation by chained
  equations in R. J. Stat. Softw., 2011.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

IMPUTERS = ("mean", "knn", "iterative", "missforest", "diffusion")
MECHANISMS = ("mcar", "mar", "mnar")


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _calibrate(logits, rate):
  """Intercept b with mean(sigmoid(logits + b)) = rate (bisection)."""
  lo, hi = -50.0, 50.0
  for _ in range(80):
    mid = 0.5 * (lo + hi)
    if _sigmoid(logits + mid).mean() < rate:
      lo = mid
    else:
      hi = mid
  return 0.5 * (lo + hi)


def _check_rate(rate):
  if not 0.0 < rate < 1.0:
    raise ValueError(f"rate must lie in (0, 1), got {rate}.")


def _check_data(x, name="x"):
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must be a [N, D] matrix, got shape {x.shape}.")
  if not np.issubdtype(x.dtype, np.floating):
    raise TypeError(f"{name} must have a floating dtype, got {x.dtype}.")
  return x


def make_mask(rng: np.random.Generator, x, mechanism: str, rate: float, *,
              obs_frac: float = 0.3, self_mask_slope: float = 2.0):
  """Boolean missingness mask `[N, D]` (True = missing) for complete data `x`.

  Args:
    rng: NumPy generator.
    x: `[N, D]` complete data (used by MAR and MNAR).
    mechanism: 'mcar', 'mar' or 'mnar'.
    rate: target missing rate (over all entries for MCAR and MNAR, over the
      maskable 70% of features for MAR).
    obs_frac: MAR fraction of always-observed features.
    self_mask_slope: MNAR slope k.

  Returns:
    `[N, D]` bool mask. No row is left fully missing.
  """
  x = _check_data(x)
  _check_rate(rate)
  if not np.all(np.isfinite(x)):
    raise ValueError("x must be complete (finite) to draw a mask from it.")
  n, d = x.shape
  z = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
  if mechanism == "mcar":
    mask = rng.random((n, d)) < rate
  elif mechanism == "mar":
    n_obs = max(1, int(round(obs_frac * d)))
    if n_obs >= d:
      raise ValueError(f"MAR needs D >= 2 features, got D = {d}.")
    perm = rng.permutation(d)
    obs, mis = perm[:n_obs], perm[n_obs:]
    a = rng.normal(size=(n_obs, mis.size)) / math.sqrt(n_obs)
    logits = z[:, obs] @ a
    b = _calibrate(logits, rate)
    mask = np.zeros((n, d), bool)
    mask[:, mis] = rng.random(logits.shape) < _sigmoid(logits + b)
  elif mechanism == "mnar":
    logits = self_mask_slope * z
    mask = rng.random((n, d)) < _sigmoid(logits + _calibrate(logits, rate))
  else:
    raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}.")
  full = mask.all(1)
  mask[full, rng.integers(0, d, full.sum())] = False  # keep one entry per row
  return mask


def apply_mask(x, mask):
  """Copy of `x` with NaN at the missing entries."""
  x = _check_data(x)
  check_mask(x, mask, allow_nan=False)
  out = x.copy()
  out[mask] = np.nan
  return out


def check_mask(x, mask, *, allow_nan: bool = True):
  """Validates an incomplete matrix against its mask; returns the mask as bool.

  Raises ValueError when the shapes differ or when `x` has NaN/inf at an
  entry the mask calls observed (NaN outside the mask).
  """
  mask = np.asarray(mask)
  if mask.shape != np.shape(x):
    raise ValueError(f"mask and x must have the same shape, got mask "
                     f"{mask.shape} and x {np.shape(x)}.")
  if mask.dtype != bool:
    raise TypeError(f"mask must be boolean (True = missing), got {mask.dtype}.")
  bad = ~np.isfinite(np.asarray(x)) & ~mask
  if bad.any():
    i, j = np.argwhere(bad)[0]
    raise ValueError(f"x has {int(bad.sum())} NaN/inf entries outside the mask "
                     f"(observed entries must be finite; first at row {i}, "
                     f"column {j}). Set mask=True there or fix the data.")
  if not allow_nan and (~np.isfinite(np.asarray(x))).any():
    raise ValueError("x must be complete here.")
  return mask


def _restore_observed(x, mask, imputed):
  return np.where(mask, imputed, np.nan_to_num(x))


def impute_sklearn(name: str, x, mask, *, reference=None, seed: int = 0,
                   knn_k: int = 5, max_iter: int = 10):
  """Imputes with scikit-learn: 'mean', 'knn', 'iterative' (MICE) or 'missforest'.

  Args:
    name: imputer name.
    x: `[N, D]` data, NaN (or anything) at missing entries.
    mask: `[N, D]` bool, True = missing.
    reference: optional `[R, D]` complete rows the imputer may also fit on.
    seed: random seed.
    knn_k: neighbours for 'knn'.
    max_iter: rounds of chained equations for the iterative imputers.

  Returns:
    `[N, D]` imputed matrix, equal to `x` on observed entries.
  """
  # pylint: disable=g-import-not-at-top
  from sklearn.ensemble import ExtraTreesRegressor
  from sklearn.experimental import enable_iterative_imputer  # noqa: F401
  from sklearn.impute import IterativeImputer
  from sklearn.impute import KNNImputer
  from sklearn.impute import SimpleImputer
  # pylint: enable=g-import-not-at-top
  x = _check_data(x)
  mask = check_mask(x, mask)
  xn = np.where(mask, np.nan, x)
  if name == "mean":
    imp = SimpleImputer(strategy="mean")
  elif name == "knn":
    imp = KNNImputer(n_neighbors=knn_k)
  elif name == "iterative":
    imp = IterativeImputer(max_iter=max_iter, random_state=seed,
                           sample_posterior=False)
  elif name == "missforest":
    imp = IterativeImputer(
        estimator=ExtraTreesRegressor(n_estimators=20, max_depth=8,
                                      random_state=seed, n_jobs=1),
        max_iter=max(2, max_iter // 2), random_state=seed)
  else:
    raise ValueError(f"sklearn imputer must be one of {IMPUTERS[:4]}, got "
                     f"{name!r}.")
  if reference is not None:
    reference = _check_data(reference, "reference")
    if reference.shape[1] != x.shape[1]:
      raise ValueError(f"reference must have D = {x.shape[1]} features, got "
                       f"{reference.shape}.")
    imp.fit(np.concatenate([reference, xn], 0))
    out = imp.transform(xn)
  else:
    out = imp.fit_transform(xn)
  return _restore_observed(x, mask, out)


def diffusion_inpaint(rng, score_fn: Callable, sde, x, mask, *,
                      n_steps: int = 300, t_end: float = 1e-3,
                      n_resample: int = 1):
  """Replacement-method inpainting with a score model (module equation).

  Args:
    rng: PRNG key.
    score_fn: `score_fn(x [B, D], t [B]) -> [B, D]` of the complete data.
    sde: a `vdm_jax.sde` forward SDE (e.g. VPSDE()).
    x: `[N, D]` data (any values at missing entries).
    mask: `[N, D]` bool, True = missing.
    n_steps: Euler-Maruyama steps of the reverse SDE.
    t_end: final time.
    n_resample: U >= 1; with U > 1 every step is repeated U times, re-noising
      t - dt -> t with the exact forward transition in between (RePaint), which
      lets the missing coordinates absorb the observed ones; plain replacement
      (U = 1) under-estimates the dependence (it is exact only for
      independent coordinates).

  Returns:
    `[N, D]` imputed matrix, equal to `x` on observed entries.
  """
  x = _check_data(x)
  mask_np = check_mask(x, mask)
  if int(n_resample) < 1:
    raise ValueError(f"n_resample must be >= 1, got {n_resample}.")
  x0 = jnp.asarray(np.nan_to_num(x), jnp.float32)
  m = jnp.asarray(mask_np)
  rev = sde.reverse(score_fn)
  dt = (sde.T - t_end) / n_steps
  n = x0.shape[0]

  def observe(key, t):
    a, s = sde.marginal_coeffs(jnp.full((n,), t))
    return a[:, None] * x0 + s[:, None] * jax.random.normal(key, x0.shape)

  def step(z, t, key):
    k1, k2 = jax.random.split(key)
    f, g = rev.drift_diffusion(z, jnp.full((n,), t, jnp.float32))
    mean = z - f * dt
    z = mean + jnp.reshape(g, (-1, 1)) * math.sqrt(dt) * jax.random.normal(k1, z.shape)
    return jnp.where(m, z, observe(k2, t - dt)), mean

  def body(i, carry):
    z, _ = carry
    key = jax.random.fold_in(rng, i)
    t = sde.T - i * dt
    tt = jnp.full((n,), t, jnp.float32)
    ratio, var = sde.transition_coeffs(tt - dt, tt)

    def inner(u, zc):
      z, mean = step(zc[0], t, jax.random.fold_in(key, 2 * u))
      renoised = (ratio[:, None] * z + jnp.sqrt(var)[:, None]
                  * jax.random.normal(jax.random.fold_in(key, 2 * u + 1), z.shape))
      return renoised, mean

    if n_resample > 1:
      z, _ = jax.lax.fori_loop(0, n_resample - 1, inner, (z, z))
    return step(z, t, jax.random.fold_in(key, 2 * n_resample))

  @jax.jit
  def run(key):
    z = jax.random.normal(key, x0.shape)
    _, mean = jax.lax.fori_loop(0, n_steps, body, (z, z))
    return mean

  out = np.asarray(run(jax.random.fold_in(rng, n_steps + 1)), np.float64)
  return _restore_observed(x, mask_np, out)
