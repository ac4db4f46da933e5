"""Score functions from denoisers: eps, x0, v and score parameterisations for any SDE.

For a linear SDE with p_0t(x_t | x_0) = N(a_t x_0, s_t^2 I) (`SDE.marginal_coeffs`)
write x_t = a_t x_0 + s_t eps. The four parameterisations of a denoiser are
related by

.. math::

  \\nabla \\log p_{0t} = -\\epsilon / s_t, \\qquad
  \\hat s = -\\hat\\epsilon / s_t = (a_t \\hat x_0 - x_t) / s_t^2, \\qquad
  \\hat v = \\bar\\alpha \\hat\\epsilon - \\bar\\sigma \\hat x_0,

with the v-parameterisation defined on the variance-normalised latent
x_t / r_t, r_t = sqrt(a_t^2 + s_t^2), so that (alpha-bar, sigma-bar) =
(a_t, s_t) / r_t. For VP SDEs r_t = 1 and everything reduces to
`vdm_jax.parameterizations` with gamma = 2 log(s_t / a_t); for VE and sub-VP
this normalisation keeps v well defined.

References:
  Song et al. Score-Based Generative Modeling through SDEs.
  https://arxiv.org/abs/2011.13456, 2021.
  Salimans & Ho. Progressive Distillation for Fast Sampling of Diffusion
  Models (v-prediction). https://arxiv.org/abs/2202.00512, 2022.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.sde import sdes

PARAMETERIZATIONS = ("score", "eps", "x0", "v")


def _check_param(parameterization):
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got "
                     f"{parameterization!r}.")


def _coeffs(a, s, x):
  a = _checks.broadcast_to_data(jnp.asarray(a), x).astype(x.dtype)
  s = _checks.broadcast_to_data(jnp.asarray(s), x).astype(x.dtype)
  r = jnp.sqrt(a**2 + s**2)
  return a, s, a / r, s / r, r


def to_score(pred, x, a, s, *, parameterization: str):
  """Converts a denoiser output to a score estimate.

  Args:
    pred: `[B, ...]` network output in `parameterization` space.
    x: `[B, ...]` noisy input x_t.
    a: `[B]` (or scalar) mean coefficient a_t.
    s: `[B]` (or scalar) standard deviation s_t.
    parameterization: 'score', 'eps', 'x0' or 'v'.

  Returns:
    `[B, ...]` score estimate grad_x log p_t(x).
  """
  _check_param(parameterization)
  _checks.check_floating(x, "x")
  _checks.check_same_shape(pred, x, "pred", "x")
  a, s, ab, sb, r = _coeffs(a, s, x)
  if parameterization == "score":
    return pred
  if parameterization == "eps":
    eps = pred
  elif parameterization == "x0":
    eps = (x - a * pred) / s
  else:  # v on the normalised latent x / r.
    eps = sb * (x / r) + ab * pred
  return -eps / s


def from_score(score, x, a, s, *, parameterization: str):
  """Inverse of `to_score`: a score expressed in `parameterization` space.

  Args:
    score: `[B, ...]` score.
    x: `[B, ...]` noisy input x_t.
    a: `[B]` mean coefficient a_t.
    s: `[B]` standard deviation s_t.
    parameterization: 'score', 'eps', 'x0' or 'v'.

  Returns:
    `[B, ...]` prediction in the requested space.
  """
  _check_param(parameterization)
  _checks.check_floating(x, "x")
  _checks.check_same_shape(score, x, "score", "x")
  a, s, ab, sb, _ = _coeffs(a, s, x)
  if parameterization == "score":
    return score
  eps = -s * score
  x0 = (x - s * eps) / a
  if parameterization == "eps":
    return eps
  if parameterization == "x0":
    return x0
  return ab * eps - sb * x0


def make_score_fn(sde: sdes.SDE, model_fn: Callable, *,
                  parameterization: str = "eps") -> Callable:
  """Wraps `model_fn(x [B, ...], t [B]) -> pred` into `score_fn(x, t) -> score`.

  Args:
    sde: the forward SDE, which supplies (a_t, s_t).
    model_fn: a network already closed over its parameters (and any labels).
    parameterization: what `model_fn` predicts: 'score', 'eps', 'x0' or 'v'.

  Returns:
    `score_fn(x, t)` with the shared signature of `vdm_jax.sde`.
  """
  _check_param(parameterization)
  if not callable(model_fn):
    raise TypeError(f"model_fn must be callable, got {type(model_fn)}.")

  def score_fn(x, t):
    x = sdes.check_x(x)
    t = sdes.check_time(t, x, sde.T)
    a, s = sde.marginal_coeffs(t)
    return to_score(model_fn(x, t), x, a, s, parameterization=parameterization)

  return score_fn


def tweedie_denoise(sde: sdes.SDE, score_fn: Callable, x, t):
  """Posterior mean of the clean data from a noisy state (Tweedie's formula).

  .. math::

    \\mathbb{E}[x_0 \\mid x_t] = \\big(x_t + s_t^2\\, \\nabla_{x_t} \\log p_t(x_t)\\big)
    / a_t

  for the Gaussian kernel p_0t(x_t | x_0) = N(a_t x_0, s_t^2 I) (Song et al.
  2021, arXiv 2011.13456, App. B); with a conditional score s(x_t, z, t) it is
  E[x_0 | x_t, z]. As the last step of a sampler it removes the noise left at
  t_end instead of keeping it.

  Args:
    sde: the forward SDE (`marginal_coeffs`).
    score_fn: `(x [B, ...], t [B]) -> [B, ...]`.
    x: `[B, ...]` state at time `t`.
    t: `[B]` times.

  Returns:
    `[B, ...]` the denoised mean.
  """
  _checks.check_min_rank(x, 2, "x [B, ...]")
  _checks.check_rank(t, 1, "t [B]")
  _checks.check_batch(t, x, "t", "x")
  a, s = sde.marginal_coeffs(t)
  a, s = _checks.broadcast_to_data(a, x), _checks.broadcast_to_data(s, x)
  return (x + jnp.square(s) * score_fn(x, t)) / a


def gaussian_mixture_score(means, covs, log_weights, sde: sdes.SDE):
  """Exact score of p_t for Gaussian-mixture data under a linear SDE.

  .. math::

    p_t(x) = \\sum_k \\pi_k N(x; a_t \\mu_k, a_t^2 \\Sigma_k + s_t^2 I).

  Args:
    means: `[K, D]` component means.
    covs: `[K, D, D]` component covariances.
    log_weights: `[K]` log mixture weights (normalised inside).
    sde: the forward SDE.

  Returns:
    `(score_fn, logp_fn)`: `score_fn(x [B, D], t [B]) -> [B, D]` and
    `logp_fn(x, t) -> [B]` (nats), both exact.
  """
  means = jnp.asarray(means, jnp.float32)
  covs = jnp.asarray(covs, jnp.float32)
  _checks.check_rank(means, 2, "means")
  _checks.check_rank(covs, 3, "covs")
  k, d = means.shape
  if covs.shape != (k, d, d):
    raise ValueError(f"covs must have shape [K, D, D] = {(k, d, d)}, got "
                     f"{covs.shape}.")
  log_w = jax.nn.log_softmax(jnp.asarray(log_weights, jnp.float32))
  if log_w.shape != (k,):
    raise ValueError(f"log_weights must have shape [K] = ({k},), got "
                     f"{log_w.shape}.")

  def logp_one(x, a, s):
    cov = a**2 * covs + s**2 * jnp.eye(d)
    logps = jax.vmap(
        lambda m, c: jax.scipy.stats.multivariate_normal.logpdf(x, a * m, c))(
            means, cov)
    return jax.nn.logsumexp(log_w + logps)

  def logp_fn(x, t):
    x = sdes.check_x(x)
    _checks.check_rank(x, 2, "x [B, D]")
    a, s = sde.marginal_coeffs(sdes.check_time(t, x, sde.T))
    return jax.vmap(logp_one)(x, a, s)

  def score_fn(x, t):
    x = sdes.check_x(x)
    _checks.check_rank(x, 2, "x [B, D]")
    a, s = sde.marginal_coeffs(sdes.check_time(t, x, sde.T))
    return jax.vmap(jax.grad(logp_one))(x, a, s)

  return score_fn, logp_fn
