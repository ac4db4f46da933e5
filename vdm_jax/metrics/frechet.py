"""Frechet distance between Gaussian fits of two feature sets (host, float64).

.. math::

  \\mathrm{FD} = \\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{Tr}\\big(C_1 + C_2
  - 2 (C_1 C_2)^{1/2}\\big),

the FID formula on any features (a classifier's penultimate layer, PCA, or
Inception pool3 features supplied by the user). This is the one host-side
implementation, for evaluation code on numpy features (ScoreVAE, multi-scale
sample quality); `vdm_jax.metrics.discrepancy.frechet_distance` is the jittable
JAX form of the same quantity on raw samples.

References:
  Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter. GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium.
  https://arxiv.org/abs/1706.08500, 2017 (FID).
"""

from __future__ import annotations

import numpy as np

from vdm_jax import _checks


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
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a = np.atleast_2d(np.cov(a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(b, rowvar=False))
  # Tr (C_a C_b)^{1/2} = Tr (C_a^{1/2} C_b C_a^{1/2})^{1/2}: symmetric PSD
  # eigenproblems only, stable for singular covariances (few samples).
  w, u = np.linalg.eigh(cov_a)
  root_a = (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T
  m = root_a @ cov_b @ root_a
  tr_covmean = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0,
                                      None)))
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
               - 2.0 * tr_covmean)
