"""Distances between Gaussians and Gaussian fits of samples: W2 and the Frechet distance (jittable).

`frechet_distance` fits a Gaussian to each sample set; the plug-in estimate is
biased upwards by about tr(C_x)/N + tr(C_y)/M (+ O(D^2/N) from the covariance
square root), which is why FID depends on the sample size. The host (float64)
form on feature arrays is `vdm_jax.metrics.frechet`.

References:
  Dowson & Landau. The Frechet distance between multivariate normal
  distributions. J. Multivariate Anal., 1982.
  Heusel et al. GANs trained by a two time-scale update rule converge to a
  local Nash equilibrium (FID). https://arxiv.org/abs/1706.08500, 2017.
"""

from __future__ import annotations

import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.metrics._samples import _as_samples
from vdm_jax.metrics._samples import _check_pair

# ------------------------------------------------------------ Gaussian / FD


def _sqrtm_psd(c, xp=jnp):
  """Symmetric square root of a PSD matrix by eigendecomposition (``xp``: jnp or np)."""
  w, v = xp.linalg.eigh(0.5 * (c + c.T))
  return (v * xp.sqrt(xp.maximum(w, 0.0))) @ v.T


def _w2_squared(mean1, cov1, mean2, cov2, xp=jnp):
  """Squared W_2 between two Gaussians: the one copy of the Frechet formula.

  .. math::

    W_2^2 = \\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{tr}\\big(\\Sigma_1 + \\Sigma_2 -
    2 (\\Sigma_1^{1/2} \\Sigma_2 \\Sigma_1^{1/2})^{1/2}\\big)

  (Dowson & Landau 1982). :math:`(\\Sigma_1^{1/2} \\Sigma_2 \\Sigma_1^{1/2})^{1/2}`
  has the trace of :math:`(\\Sigma_1 \\Sigma_2)^{1/2}` but needs symmetric PSD
  eigenproblems only, stable for singular covariances. No shape checks and no
  clipping: the result can be slightly negative from round-off.

  Args:
    mean1, cov1, mean2, cov2: ``[D]``, ``[D, D]``, ``[D]``, ``[D, D]``.
    xp: the array module, ``jax.numpy`` (default; jittable, in the inputs'
      dtype) or ``numpy`` (host; `vdm_jax.metrics.frechet` calls it in
      float64).

  Returns:
    Scalar :math:`W_2^2`.
  """
  s1 = _sqrtm_psd(cov1, xp)
  cross = _sqrtm_psd(s1 @ cov2 @ s1, xp)
  return (xp.sum(xp.square(mean1 - mean2))
          + xp.trace(cov1) + xp.trace(cov2) - 2.0 * xp.trace(cross))


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
  w2sq = _w2_squared(mean1, cov1, mean2, cov2)
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
