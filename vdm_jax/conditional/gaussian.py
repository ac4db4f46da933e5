"""Closed-form scores of a jointly Gaussian (x, y) under separate linear SDEs.

The exact reference for every conditional estimator: with

.. math::

  x \\sim N(\\mu, \\Sigma), \\quad y = A x + n, \\; n \\sim N(0, R), \\qquad
  x_t = a_x x + s_x \\xi, \\quad y_t = a_y y + s_y \\xi',

(:math:`(a, s)` are the mean coefficient and std of each SDE's kernel at t,
`SDE.marginal_coeffs`) everything is Gaussian. The posterior of the clean x is
:math:`K_0 = \\Sigma A^T (A\\Sigma A^T + R)^{-1}`,
:math:`m_0 = \\mu + K_0 (y - A\\mu)`, :math:`C_0 = \\Sigma - K_0 A \\Sigma`, so

.. math::

  \\nabla_{x_t} \\log p_t(x_t | y) = -(a_x^2 C_0 + s_x^2 I)^{-1}(x_t - a_x m_0)
  \\quad \\text{(CDE target)},

and the joint (CDiffE / MS-CDiffE target) has covariance
:math:`K_t = [[a_x^2\\Sigma + s_x^2 I, a_x a_y \\Sigma A^T],
[a_x a_y A\\Sigma, a_y^2(A\\Sigma A^T + R) + s_y^2 I]]` and score
:math:`-K_t^{-1}([x_t; y_t] - [a_x\\mu; a_y A\\mu])`. Its x-block equals
:math:`\\nabla_{x_t}\\log p_t(x_t | y_t)`. With the observed y diffused forward,
:math:`y_t = a_y y + s_y \\xi'`, the sampling-time error of the diffusive
estimators has the closed form (Gaussian algebra; VE and VP alike):

.. math::

  E_{\\xi'}\\|s^x(x_t, y_t) - s_{CDE}(x_t, y)\\|^2
  = \\|\\bar s - s_{CDE}\\|^2 + s_y^2 \\|P_{xy}\\|_F^2,

with :math:`P = K_t^{-1}` and :math:`\\bar s` the x-block at :math:`y_t = a_y y`.

All arrays are jax arrays; scales/stds are scalars or `[B]`.

References:
  Batzolis, Stanczuk, Schönlieb, Etmann, Conditional Image Generation with
  Score-Based Diffusion Models, https://arxiv.org/abs/2111.13606, 2021
  (Theorem 1: CDE consistency; multi-speed bias bound).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks


class LinearGaussian(NamedTuple):
  """x ~ N(mu, cov), y = a x + n with n ~ N(0, noise_cov).

  Attributes:
    mu: `[Dx]`.
    cov: `[Dx, Dx]` symmetric positive definite.
    a: `[Dy, Dx]` observation matrix.
    noise_cov: `[Dy, Dy]` symmetric positive semi-definite (PD if Dy > Dx).
  """
  mu: jax.Array
  cov: jax.Array
  a: jax.Array
  noise_cov: jax.Array

  @property
  def dim_x(self) -> int:
    return self.mu.shape[0]

  @property
  def dim_y(self) -> int:
    return self.a.shape[0]


def make_linear_gaussian(mu, cov, a, noise_cov) -> LinearGaussian:
  """Builds a `LinearGaussian`, checking shapes and definiteness by name."""
  mu = jnp.asarray(mu, jnp.float32)
  cov = jnp.asarray(cov, jnp.float32)
  a = jnp.asarray(a, jnp.float32)
  noise_cov = jnp.asarray(noise_cov, jnp.float32)
  _checks.check_rank(mu, 1, "mu [Dx]")
  _checks.check_rank(a, 2, "a [Dy, Dx]")
  dx, dy = mu.shape[0], a.shape[0]
  if cov.shape != (dx, dx):
    raise ValueError(f"cov must have shape [Dx, Dx] = {(dx, dx)}, got {cov.shape}.")
  if a.shape[1] != dx:
    raise ValueError(f"a must have shape [Dy, Dx] with Dx = {dx}, got {a.shape}.")
  if noise_cov.shape != (dy, dy):
    raise ValueError(f"noise_cov must have shape [Dy, Dy] = {(dy, dy)}, got "
                     f"{noise_cov.shape}.")
  for m, name in ((cov, "cov"), (noise_cov, "noise_cov")):
    mv = np.asarray(m, np.float64)
    if not np.allclose(mv, mv.T, atol=1e-6):
      raise ValueError(f"{name} must be symmetric.")
  if np.linalg.eigvalsh(np.asarray(cov, np.float64)).min() <= 0:
    raise ValueError("cov must be positive definite.")
  if np.linalg.eigvalsh(np.asarray(noise_cov, np.float64)).min() < 0:
    raise ValueError("noise_cov must be positive semi-definite.")
  return LinearGaussian(mu, cov, a, noise_cov)


def sample(problem: LinearGaussian, rng, n: int):
  """Draws n pairs: returns `(x [n, Dx], y [n, Dy])`."""
  kx, kn = jax.random.split(rng)
  x = jax.random.multivariate_normal(kx, problem.mu, problem.cov, (n,))
  noise = jax.random.multivariate_normal(
      kn, jnp.zeros(problem.dim_y), problem.noise_cov, (n,))
  return x, x @ problem.a.T + noise


def _check_pair(problem, x, y, name_x, name_y):
  _checks.check_rank(x, 2, f"{name_x} [B, Dx]")
  _checks.check_rank(y, 2, f"{name_y} [B, Dy]")
  if x.shape[1] != problem.dim_x:
    raise ValueError(f"{name_x} must have Dx = {problem.dim_x} columns, got {x.shape}.")
  if y.shape[1] != problem.dim_y:
    raise ValueError(f"{name_y} must have Dy = {problem.dim_y} columns, got {y.shape}.")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"{name_x} and {name_y} batch sizes differ: {x.shape[0]} "
                     f"vs {y.shape[0]}.")


def _per_example(v, b):
  """Scalar or [B] -> [B, 1, 1] for batched matrix algebra."""
  v = jnp.asarray(v, jnp.float32)
  _checks.check_rank(v, (0, 1), "scale/std")
  return jnp.broadcast_to(v, (b,))[:, None, None]


def posterior(problem: LinearGaussian, y):
  """Exact p(x | y) = N(m0, C0).

  Args:
    problem: the Gaussian model.
    y: `[B, Dy]` observations.

  Returns:
    `(m0 [B, Dx], C0 [Dx, Dx])`.
  """
  _checks.check_rank(y, 2, "y [B, Dy]")
  p = problem
  s_yy = p.a @ p.cov @ p.a.T + p.noise_cov
  gain = jnp.linalg.solve(s_yy, p.a @ p.cov).T  # Sigma A^T S^{-1} (S sym.)
  m0 = p.mu + (y - p.mu @ p.a.T) @ gain.T
  c0 = p.cov - gain @ p.a @ p.cov
  return m0, 0.5 * (c0 + c0.T)


def conditional_score(problem: LinearGaussian, x_t, y, *, x_scale=1.0, x_std):
  """Exact ``grad_{x_t} log p_t(x_t | y)`` (clean y): the CDE target.

  Args:
    problem: the Gaussian model.
    x_t: `[B, Dx]` diffused x.
    y: `[B, Dy]` clean observation.
    x_scale: a_x(t), scalar or `[B]` (1 for VE).
    x_std: s_x(t), scalar or `[B]`.

  Returns:
    `[B, Dx]`.
  """
  _check_pair(problem, x_t, y, "x_t", "y")
  b = x_t.shape[0]
  m0, c0 = posterior(problem, y)
  a, s = _per_example(x_scale, b), _per_example(x_std, b)
  cov = a**2 * c0 + s**2 * jnp.eye(problem.dim_x)
  return -jnp.linalg.solve(cov, (x_t - a[:, :, 0] * m0)[..., None])[..., 0]


def joint_precision(problem: LinearGaussian, b: int, *, x_scale=1.0, x_std,
                    y_scale=1.0, y_std):
  """Precision P = K_t^{-1} of (x_t, y_t): `[B, Dx + Dy, Dx + Dy]`."""
  p = problem
  ax, sx = _per_example(x_scale, b), _per_example(x_std, b)
  ay, sy = _per_example(y_scale, b), _per_example(y_std, b)
  k_xx = ax**2 * p.cov + sx**2 * jnp.eye(p.dim_x)
  k_xy = ax * ay * (p.cov @ p.a.T)
  k_yy = ay**2 * (p.a @ p.cov @ p.a.T + p.noise_cov) + sy**2 * jnp.eye(p.dim_y)
  k = jnp.concatenate([jnp.concatenate([k_xx, k_xy], -1),
                       jnp.concatenate(
                           [jnp.swapaxes(k_xy, 1, 2), k_yy], -1)], 1)
  return jnp.linalg.inv(k)


def joint_score(problem: LinearGaussian, x_t, y_t, *, x_scale=1.0, x_std,
                y_scale=1.0, y_std):
  """Exact joint score ``grad_{(x_t, y_t)} log p_t(x_t, y_t)``: CDiffE / MS-CDiffE target.

  Args:
    problem: the Gaussian model.
    x_t: `[B, Dx]`; y_t: `[B, Dy]` (diffused y).
    x_scale, x_std, y_scale, y_std: kernel coefficients of each SDE at t,
      scalars or `[B]`.

  Returns:
    `(score_x [B, Dx], score_y [B, Dy])`; score_x = grad log p_t(x_t | y_t).
  """
  _check_pair(problem, x_t, y_t, "x_t", "y_t")
  b = x_t.shape[0]
  prec = joint_precision(problem, b, x_scale=x_scale, x_std=x_std,
                         y_scale=y_scale, y_std=y_std)
  ax = jnp.broadcast_to(jnp.asarray(x_scale, jnp.float32), (b,))[:, None]
  ay = jnp.broadcast_to(jnp.asarray(y_scale, jnp.float32), (b,))[:, None]
  v = jnp.concatenate([x_t - ax * problem.mu,
                       y_t - ay * (problem.mu @ problem.a.T)], -1)
  s = -jnp.einsum("bij,bj->bi", prec, v)
  return s[:, :problem.dim_x], s[:, problem.dim_x:]


def diffusive_error(problem: LinearGaussian, x_t, y, *, x_scale=1.0, x_std,
                    y_scale=1.0, y_std):
  """Expected squared error of the diffusive estimators at sampling time.

  The x-block of the exact joint score, evaluated at a fresh
  ``y_t = y_scale y + y_std xi'`` (the forward process of the *observed* y), is
  compared with the exact conditional score given the clean y (module
  docstring). 0 when ``y_std = 0`` and ``y_scale = 1`` (then it is CDE).

  Args:
    problem: the Gaussian model.
    x_t: `[B, Dx]`; y: `[B, Dy]` clean observation.
    x_scale, x_std, y_scale, y_std: scalars or `[B]`.

  Returns:
    `(total [B], squared_bias [B])`: E||err||^2 and its systematic part
    ||E err||^2 (the rest, total - bias, is the y_t-noise variance).
  """
  _check_pair(problem, x_t, y, "x_t", "y")
  b = x_t.shape[0]
  ay = jnp.broadcast_to(jnp.asarray(y_scale, jnp.float32), (b,))
  sy = jnp.broadcast_to(jnp.asarray(y_std, jnp.float32), (b,))
  s_mean, _ = joint_score(problem, x_t, ay[:, None] * y, x_scale=x_scale,
                          x_std=x_std, y_scale=y_scale, y_std=y_std)
  s_cde = conditional_score(problem, x_t, y, x_scale=x_scale, x_std=x_std)
  bias = jnp.sum((s_mean - s_cde) ** 2, -1)
  prec = joint_precision(problem, b, x_scale=x_scale, x_std=x_std,
                         y_scale=y_scale, y_std=y_std)
  p_xy = prec[:, :problem.dim_x, problem.dim_x:]
  return bias + sy**2 * jnp.sum(p_xy**2, axis=(1, 2)), bias


def sample_posterior(problem: LinearGaussian, rng, y, n: int):
  """Exact posterior draws: `[n, B, Dx]` samples of x | y for each row of y."""
  m0, c0 = posterior(problem, y)
  chol = jnp.linalg.cholesky(c0 + 1e-6 * jnp.eye(problem.dim_x))
  z = jax.random.normal(rng, (n,) + m0.shape)
  return m0[None] + z @ chol.T
