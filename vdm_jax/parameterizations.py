"""Conversions between the eps, x0, v and score parameterisations of a denoiser.

For the variance-preserving process z_t = alpha_t x + sigma_t eps with
alpha_t^2 = sigmoid(-gamma_t), sigma_t^2 = sigmoid(gamma_t):

.. math::

  \\hat x = (z - \\sigma \\hat\\epsilon) / \\alpha, \\qquad
  \\hat\\epsilon = (z - \\alpha \\hat x) / \\sigma, \\qquad
  s = \\nabla_z \\log q(z_t) \\approx -\\hat\\epsilon / \\sigma, \\qquad
  v = \\alpha \\epsilon - \\sigma x.

From v: x = alpha z - sigma v and eps = sigma z + alpha v (alpha^2 + sigma^2 = 1).
Tweedie's formula gives the posterior mean from the true score:

.. math::

  \\mathbb{E}[x | z_t] = (z_t + \\sigma_t^2 \\nabla \\log q(z_t)) / \\alpha_t.

`gamma` may be a scalar or a per-example `[B]` vector; it is reshaped to
broadcast against the leading (batch) axis of `z`, never the trailing one.

References:
  Kingma et al., Variational Diffusion Models, https://arxiv.org/abs/2107.00630.
  Salimans & Ho, Progressive Distillation (v-prediction), https://arxiv.org/abs/2202.00512.
  Luo, Understanding Diffusion Models: A Unified Perspective,
  https://arxiv.org/abs/2208.11970 (three equivalent interpretations).
  Efron, Tweedie's Formula and Selection Bias, JASA 2011.
"""

from __future__ import annotations

import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import schedules


def _coeffs(gamma, z):
  g = _checks.broadcast_to_data(jnp.asarray(gamma, jnp.float32), z)
  a = schedules.alpha(g).astype(z.dtype)
  s = schedules.sigma(g).astype(z.dtype)
  return a, s


def _check(z, pred, name):
  _checks.check_floating(z, "z")
  _checks.check_same_shape(z, pred, "z", name)


def eps_to_x0(eps, z, gamma):
  """x_hat = (z - sigma eps_hat) / alpha."""
  _check(z, eps, "eps")
  a, s = _coeffs(gamma, z)
  return (z - s * eps) / a


def x0_to_eps(x0, z, gamma):
  """eps_hat = (z - alpha x_hat) / sigma."""
  _check(z, x0, "x0")
  a, s = _coeffs(gamma, z)
  return (z - a * x0) / s


def eps_to_score(eps, z, gamma):
  """score = -eps_hat / sigma."""
  _check(z, eps, "eps")
  _, s = _coeffs(gamma, z)
  return -eps / s


def score_to_eps(score, z, gamma):
  """eps_hat = -sigma score."""
  _check(z, score, "score")
  _, s = _coeffs(gamma, z)
  return -s * score


def v_to_eps(v, z, gamma):
  """eps_hat = sigma z + alpha v."""
  _check(z, v, "v")
  a, s = _coeffs(gamma, z)
  return s * z + a * v


def eps_to_v(eps, z, gamma):
  """v = (eps - sigma z) / alpha, the inverse of `v_to_eps`."""
  _check(z, eps, "eps")
  a, s = _coeffs(gamma, z)
  return (eps - s * z) / a


def v_to_x0(v, z, gamma):
  """x_hat = alpha z - sigma v."""
  _check(z, v, "v")
  a, s = _coeffs(gamma, z)
  return a * z - s * v


def x0_to_v(x0, z, gamma):
  """v = (alpha z - x_hat) / sigma, the inverse of `v_to_x0`."""
  _check(z, x0, "x0")
  a, s = _coeffs(gamma, z)
  return (a * z - x0) / s


def x0_to_score(x0, z, gamma):
  """score = (alpha x_hat - z) / sigma^2."""
  return eps_to_score(x0_to_eps(x0, z, gamma), z, gamma)


def score_to_x0(score, z, gamma):
  """Tweedie's formula: x_hat = (z + sigma^2 score) / alpha."""
  _check(z, score, "score")
  a, s = _coeffs(gamma, z)
  return (z + s * s * score) / a


tweedie = score_to_x0

_TO_EPS = {
    "eps": lambda p, z, g: p,
    "x0": x0_to_eps,
    "v": v_to_eps,
    "score": score_to_eps,
}
_FROM_EPS = {
    "eps": lambda e, z, g: e,
    "x0": eps_to_x0,
    "v": eps_to_v,
    "score": eps_to_score,
}
PARAMETERIZATIONS = tuple(_TO_EPS)


def convert(pred, z, gamma, *, source: str, target: str):
  """Converts a prediction between any two of 'eps', 'x0', 'v' and 'score'."""
  for name, value in (("source", source), ("target", target)):
    if value not in _TO_EPS:
      raise ValueError(
          f"{name} parameterisation must be one of {PARAMETERIZATIONS}, got "
          f"{value!r}.")
  if source == target:
    return pred
  return _FROM_EPS[target](_TO_EPS[source](pred, z, gamma), z, gamma)
