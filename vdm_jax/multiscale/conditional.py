"""Conditional estimator from non-uniform diffusion: the condition as a slow scale.

The pair (x, y) is one non-uniform diffusion with two groups on the same clock
t, each VP with its own linear log-SNR schedule (VDM gamma form, as the Haar
scales of `vdm_jax.multiscale.nonuniform`):

.. math::

  \\gamma_x(t) = \\gamma_{\\min} + (\\gamma_{\\max} - \\gamma_{\\min}) t, \\qquad
  \\gamma_y(t) = \\gamma_{\\min} + (\\gamma_{y,1} - \\gamma_{\\min}) t,

with ``gamma_y1 <= gamma_max`` (y is the *slow* scale: its log-SNR falls from
10 only to ``-gamma_y1`` at t = 1). One network predicts the noise of both
groups from ``(x_t, y_t, t)`` and is trained with the likelihood-weighted joint
DSM loss ``1/2 [gamma_x' ||eps_x - eps_hat_x||^2 + gamma_y' ||eps_y -
eps_hat_y||^2]`` (the block-diagonal ``Lambda_MLE`` weighting in VDM form).
Sampling uses the x block, ``grad log p_t(x_t | y_t)``, with a *fresh*
``y_t = alpha_y(t) y + sigma_y(t) xi`` drawn at every network call, in place
of ``grad log p_t(x_t | y)``. The bias vanishes as ``sigma_y -> 0``: with
``gamma_y1 = gamma_min`` (y never noised) this is the consistent CDE, with
``gamma_y1 = gamma_max`` it is CDiffE (y as fast as x); in between it is the
multi-speed CMDE.

Relation to `vdm_jax.conditional`: that package implements the same
estimators on `vdm_jax.sde` SDE objects (VE, as in the paper's experiments,
with `MultiSpeedSDE`). This module is the VP/log-SNR-window version that plugs
into the multi-scale sampler (`vdm_jax.multiscale.sampling.make_sampler`
treats the net params, y and an rng as opaque "params"); its tests check it
against the closed forms in `vdm_jax.conditional.gaussian`.

References:
  Batzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (conditional estimator).
  Batzolis, Stanczuk, Schonlieb, Etmann. Conditional Image Generation with
  Score-Based Diffusion Models. https://arxiv.org/abs/2111.13606, 2021 (CMDE).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import schedules
from vdm_jax.multiscale import nonuniform

# apply_fn(params, x_t [B, ...], y_t [B, ...], t [B]) -> (eps_x, eps_y).
JointEpsFn = Callable[..., tuple]


class ConditionalProcess(NamedTuple):
  """Two-group VP process: x on [gamma_min, gamma_max], y on [gamma_min, gamma_y1]."""
  gamma_min: float = -nonuniform.LOG_SNR_MAX
  gamma_max: float = -nonuniform.LOG_SNR_MIN
  gamma_y1: float = -2.0

  def gamma_x(self, t):
    return schedules.linear_gamma(jnp.asarray(t, jnp.float32),
                                  gamma_min=self.gamma_min,
                                  gamma_max=self.gamma_max)

  def gamma_y(self, t):
    return schedules.linear_gamma(jnp.asarray(t, jnp.float32),
                                  gamma_min=self.gamma_min,
                                  gamma_max=self.gamma_y1)


def make_conditional_process(*, gamma_y1: float,
                             gamma_min: float = -nonuniform.LOG_SNR_MAX,
                             gamma_max: float = -nonuniform.LOG_SNR_MIN
                             ) -> ConditionalProcess:
  """Builds a `ConditionalProcess`, checking that y is not faster than x.

  Args:
    gamma_y1: y's gamma at t = 1, in ``[gamma_min, gamma_max]``; gamma_min
      gives CDE (y clean), gamma_max gives CDiffE (same speed).
    gamma_min: both groups' gamma at t = 0 (default -10).
    gamma_max: x's gamma at t = 1 (default +10).

  Returns:
    the process.
  """
  schedules.check_endpoints(gamma_min, gamma_max, "ConditionalProcess")
  if not gamma_min <= gamma_y1 <= gamma_max:
    raise ValueError(
        f"gamma_y1 must lie in [gamma_min, gamma_max] = [{gamma_min}, "
        f"{gamma_max}] (the condition may not diffuse faster than x), got "
        f"{gamma_y1}.")
  return ConditionalProcess(float(gamma_min), float(gamma_max), float(gamma_y1))


def _noise(process, x, y, t, eps_x, eps_y):
  gx = _checks.broadcast_to_data(process.gamma_x(t), x)
  gy = _checks.broadcast_to_data(process.gamma_y(t), y)
  return (schedules.alpha(gx) * x + schedules.sigma(gx) * eps_x,
          schedules.alpha(gy) * y + schedules.sigma(gy) * eps_y)


def make_joint_loss_fn(process: ConditionalProcess, apply_fn: JointEpsFn, *,
                       t_min: float = 0.0):
  """Likelihood-weighted joint DSM loss of (x, y), per example in nats.

  .. math::

    \\mathcal{L}(x, y) = \\mathbb{E}_{t, \\epsilon}\\,\\tfrac12\\big[
      \\gamma_x'(t) \\|\\epsilon_x - \\hat\\epsilon_x\\|^2 +
      \\gamma_y'(t) \\|\\epsilon_y - \\hat\\epsilon_y\\|^2\\big],
    \\quad t \\sim U(t_{\\min}, 1).

  Args:
    process: the two-group process.
    apply_fn: ``apply_fn(params, x_t, y_t, t) -> (eps_x, eps_y)``.
    t_min: smallest training time.

  Returns:
    ``loss_fn(params, rng, x, y) -> [B]``.
  """
  def loss_fn(params, rng, x, y):
    _checks.check_floating(x, "x")
    _checks.check_floating(y, "y")
    if x.shape[0] != y.shape[0]:
      raise ValueError(f"x and y batch sizes differ: {x.shape} vs {y.shape}.")
    b = x.shape[0]
    kt, kx, ky = jax.random.split(rng, 3)
    t = jax.random.uniform(kt, (b,), minval=t_min, maxval=1.0)
    ex, ey = jax.random.normal(kx, x.shape), jax.random.normal(ky, y.shape)
    xt, yt = _noise(process, x, y, t, ex, ey)
    ehx, ehy = apply_fn(params, xt, yt, t)
    _, dgx = schedules.gamma_and_derivative(process.gamma_x, t)
    _, dgy = schedules.gamma_and_derivative(process.gamma_y, t)
    return 0.5 * (dgx * _checks.sum_except_batch(jnp.square(ex - ehx)) +
                  dgy * _checks.sum_except_batch(jnp.square(ey - ehy)))

  return loss_fn


def conditional_eps(process: ConditionalProcess, apply_fn: JointEpsFn, params,
                    rng, x_t, y, t):
  """x block of the joint noise prediction at a fresh ``y_t ~ q(y_t | y)``.

  Args:
    process: the two-group process.
    apply_fn: joint noise predictor.
    params: its parameters.
    rng: key for the fresh y_t.
    x_t: ``[B, ...]`` noisy x.
    y: ``[B, ...]`` clean condition.
    t: ``[B]`` times.

  Returns:
    ``[B, ...]`` eps_x estimate (score ``-eps / sigma_x``).
  """
  gy = _checks.broadcast_to_data(process.gamma_y(t), y)
  y_t = schedules.alpha(gy) * y + schedules.sigma(gy) * jax.random.normal(rng, y.shape)
  eps_x, _ = apply_fn(params, x_t, y_t, t)
  return eps_x


def make_sampler_eps_fn(process: ConditionalProcess, apply_fn: JointEpsFn):
  """Adapter for `vdm_jax.multiscale.sampling.make_sampler` with ``levels = 0``.

  The returned ``eps_fn(state, bands, t)`` takes ``state = (params, y, rng)``
  and draws a fresh y_t per call (the rng is folded with the step's time).
  Use it with the x process ``nonuniform.make_process(0,
  gamma_min=process.gamma_min, gamma_max=process.gamma_max)``.
  """
  def eps_fn(state, bands, t):
    params, y, rng = state
    (x_t,) = tuple(bands)
    key = jax.random.fold_in(rng, jnp.round(t[0] * 1e6).astype(jnp.int32))
    return (conditional_eps(process, apply_fn, params, key, x_t, y, t),)

  return eps_fn
