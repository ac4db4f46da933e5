"""Label allocation in meta-learning: mixed linear regression with a fixed budget.

A budget of B labels is split over T tasks with n labels each (B = T n). Task
t has parameter :math:`w_t = w_0 + \\delta_t`, :math:`\\delta_t \\sim
\\mathcal N(0, \\tfrac{r^2}{d} I_d)`, inputs :math:`x \\sim \\mathcal N(0, I_d)`
and labels :math:`y = x^\\top w_t + \\varepsilon`, :math:`\\varepsilon \\sim
\\mathcal N(0, \\sigma^2)`. The meta-learner estimates the shared mean
:math:`w_0` by averaging the per-task minimum-norm least-squares fits
:math:`\\hat w_t = X_t^+ y_t` (OLS when n >= d), :math:`\\hat w_0 = \\frac1T
\\sum_t \\hat w_t`, and predicts a new task with :math:`\\hat w_0`.

Exact risk (rotation invariance of Gaussian designs, Wishart moments):

.. math::

  R(n, T) = \\mathbb E (x^\\top \\hat w_0 - y_{new})^2
          = r^2 + \\sigma^2 + b(n) + \\frac{v(n)}{T},

  n \\ge d + 2: \\; b = 0, \\; v = r^2 + \\sigma^2 \\frac{d}{n - d - 1};

  n \\le d - 2: \\; b = (1 - \\tfrac nd)^2 \\|w_0\\|^2, \\;
  v = \\tfrac nd (1 - \\tfrac nd)\\|w_0\\|^2 + \\tfrac nd r^2
      + \\sigma^2 \\frac{n}{d - n - 1}.

With B fixed and T = B / n, the n >= d + 2 branch is
:math:`\\frac{1}{B}(n r^2 + \\sigma^2 \\frac{d n}{n - d - 1})`, minimised at
:math:`n^* = d + 1 + \\sqrt{\\sigma^2 d (d + 1) / r^2}`, independent of B: once
the budget is large enough that the bias of under-determined tasks dominates,
the optimal labels-per-task stops moving and sits just above the interpolation
threshold n = d. For small budgets the variance term wins and n < d can be
optimal. At n in {d - 1, d, d + 1} the noise term is infinite (sigma > 0).

This estimator (plain averaging of per-task fits, no train/validation split)
is our choice for a closed form; the reference studies the same trade-off with
MAML-style learners.

References:
  Cioba, Bromberg, Wang, Niyogi, Batzolis, Garcia, Shiu & Bernacchia. How to
  distribute data across tasks for meta-learning?
  https://arxiv.org/abs/2103.08463, 2022.
  Bai, Chen, Xiong, Wang, Socher & Xiong. How important is the train-validation
  split in meta-learning? https://arxiv.org/abs/2010.05843, 2021.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class MLRProblem(NamedTuple):
  """Mixed linear regression: dimension d, ||w0||^2, task spread r^2, noise s^2."""
  d: int
  w0_norm2: float = 1.0
  r2: float = 0.5
  sigma2: float = 0.25


def _check_problem(prob: MLRProblem):
  if int(prob.d) < 1:
    raise ValueError(f"MLRProblem.d must be >= 1, got {prob.d}.")
  for name in ("w0_norm2", "r2", "sigma2"):
    if not getattr(prob, name) >= 0:
      raise ValueError(f"MLRProblem.{name} must be >= 0, got "
                       f"{getattr(prob, name)}.")


def risk(prob: MLRProblem, n: int, n_tasks: int) -> float:
  """Exact test risk R(n, T) of the averaged min-norm estimator (module eq.).

  Args:
    prob: the problem.
    n: labels per task (>= 1).
    n_tasks: T, number of training tasks (>= 1).

  Returns:
    The risk (squared-error units); `inf` where the noise term diverges.
  """
  _check_problem(prob)
  n, t, d = int(n), int(n_tasks), int(prob.d)
  if n < 1 or t < 1:
    raise ValueError(f"n and n_tasks must be >= 1, got {n} and {t}.")
  base = prob.r2 + prob.sigma2
  if n >= d + 2:
    return base + (prob.r2 + prob.sigma2 * d / (n - d - 1)) / t
  if n <= d - 2:
    f = n / d
    b = (1 - f) ** 2 * prob.w0_norm2
    v = f * (1 - f) * prob.w0_norm2 + f * prob.r2 + prob.sigma2 * n / (d - n - 1)
    return base + b + v / t
  if prob.sigma2 == 0:  # Noise-free: the Wishart moment is not needed.
    f = min(n / d, 1.0)
    b = (1 - f) ** 2 * prob.w0_norm2
    v = f * (1 - f) * prob.w0_norm2 + f * prob.r2
    return base + b + v / t
  return float("inf")


def risk_at_budget(prob: MLRProblem, budget: int, n: int) -> float:
  """R(n, floor(B / n)); `inf` when n > B (no complete task)."""
  t = int(budget) // int(n)
  return risk(prob, n, t) if t >= 1 else float("inf")


def optimal_labels_per_task(prob: MLRProblem, budget: int) -> int:
  """argmin over n in 1..B of the exact risk at budget B."""
  ns = np.arange(1, int(budget) + 1)
  r = np.array([risk_at_budget(prob, budget, n) for n in ns])
  return int(ns[np.argmin(r)])


def asymptotic_optimum(prob: MLRProblem) -> float:
  """n* = d + 1 + sqrt(sigma^2 d (d + 1) / r^2), the large-budget optimum."""
  _check_problem(prob)
  if prob.r2 == 0:
    return float("inf")
  return prob.d + 1 + float(np.sqrt(prob.sigma2 * prob.d * (prob.d + 1) / prob.r2))


def sample_tasks(rng, prob: MLRProblem, w0, n_tasks: int, n: int):
  """Draws T tasks of n labelled points: `(X [T, n, d], y [T, n], W [T, d])`."""
  kx, kd, ke = jax.random.split(rng, 3)
  d = prob.d
  w = w0 + jnp.sqrt(prob.r2 / d) * jax.random.normal(kd, (n_tasks, d))
  x = jax.random.normal(kx, (n_tasks, n, d))
  y = jnp.einsum("tnd,td->tn", x, w) + jnp.sqrt(prob.sigma2) * jax.random.normal(
      ke, (n_tasks, n))
  return x, y, w


def meta_estimate(x, y):
  """Average of per-task min-norm least-squares fits: `[T, n, d], [T, n] -> [d]`."""
  if x.ndim != 3 or y.shape != x.shape[:2]:
    raise ValueError(f"x must be [T, n, d] and y [T, n], got {x.shape} and "
                     f"{y.shape}.")
  w = jnp.einsum("tdn,tn->td", jnp.linalg.pinv(x), y)
  return jnp.mean(w, 0)


def monte_carlo_risk(rng, prob: MLRProblem, n: int, n_tasks: int, *,
                     n_reps: int = 2000):
  """Monte Carlo estimate of R(n, T) and its standard error.

  Uses the exact identity R = r^2 + sigma^2 + E||w0_hat - w0||^2 and averages
  the last term over `n_reps` independent meta-training sets.

  Returns:
    `(mean, standard_error)` as floats.
  """
  _check_problem(prob)
  d = prob.d
  w0 = jnp.zeros((d,)).at[0].set(np.sqrt(prob.w0_norm2))

  def one(key):
    x, y, _ = sample_tasks(key, prob, w0, n_tasks, n)
    return jnp.sum(jnp.square(meta_estimate(x, y) - w0))

  errs = jax.jit(jax.vmap(one))(jax.random.split(rng, n_reps))
  errs = np.asarray(errs, np.float64)
  return (float(prob.r2 + prob.sigma2 + errs.mean()),
          float(errs.std() / np.sqrt(n_reps)))
