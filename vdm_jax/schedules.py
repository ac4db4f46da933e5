"""Noise schedules gamma(t) = -log SNR(t) and the quantities derived from them.

A schedule is a monotonically increasing map ``t in [0, 1] -> gamma(t)``. The
variance-preserving forward process of Variational Diffusion Models is

.. math::

  q(z_t | x) = N(\\alpha_t x, \\sigma_t^2 I), \\quad
  \\alpha_t^2 = \\mathrm{sigmoid}(-\\gamma(t)), \\quad
  \\sigma_t^2 = \\mathrm{sigmoid}(\\gamma(t)), \\quad
  \\mathrm{SNR}(t) = e^{-\\gamma(t)}.

Everything is written with sigmoid/softplus of gamma (never ``1 - sigmoid``),
because at gamma = 15 the naive ``1 - sigmoid(gamma)`` is already 17% wrong in
float32 and at gamma >= 17 it is exactly zero.

Two layers are offered:

* pure functions of gamma (`alpha2`, `sigma2`, `snr`, ...) and of t
  (`linear_gamma`, `cosine_gamma`), usable anywhere;
* Flax modules with a common call signature ``schedule.apply(params, t) ->
  gamma`` (`FixedLinearSchedule`, `LearnedLinearSchedule`, `CosineSchedule`,
  `MonotoneNetSchedule`), built by `make_schedule` from a config name. Learned
  schedules keep their endpoint parameters (``gamma_0``, ``gamma_1``) apart from
  their shape parameters (the ``shape`` sub-tree), which is what the
  variance-minimising update of `vdm_jax.variance_minimization` relies on.

References:
  Kingma, Salimans, Poole, Ho. Variational Diffusion Models.
  https://arxiv.org/abs/2107.00630, 2021 (Sec. 3, 5.1 and App. H).
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdm_jax import _checks

GammaFn = Callable[[jax.Array], jax.Array]

GAMMA_MIN = -13.3
GAMMA_MAX = 5.0


# ----------------------------------------------------------------------------
# Functions of gamma.
# ----------------------------------------------------------------------------
def alpha2(gamma):
  """alpha^2 = sigmoid(-gamma), exact for large gamma (unlike 1 - sigma^2)."""
  return jax.nn.sigmoid(-gamma)


def sigma2(gamma):
  """sigma^2 = sigmoid(gamma)."""
  return jax.nn.sigmoid(gamma)


def alpha(gamma):
  """alpha = sqrt(sigmoid(-gamma))."""
  return jnp.sqrt(alpha2(gamma))


def sigma(gamma):
  """sigma = sqrt(sigmoid(gamma))."""
  return jnp.sqrt(sigma2(gamma))


def log_alpha2(gamma):
  """log alpha^2 = -softplus(gamma)."""
  return -jax.nn.softplus(gamma)


def log_sigma2(gamma):
  """log sigma^2 = -softplus(-gamma)."""
  return -jax.nn.softplus(-gamma)


def snr(gamma):
  """Signal-to-noise ratio SNR = alpha^2 / sigma^2 = exp(-gamma)."""
  return jnp.exp(-gamma)


def gamma_from_snr(snr_value):
  """Inverse of `snr`: gamma = -log SNR."""
  return -jnp.log(snr_value)


def check_endpoints(gamma_min: float, gamma_max: float, name: str = "schedule"):
  """Raises ValueError unless gamma_min < gamma_max (SNR must decrease)."""
  if not (math.isfinite(gamma_min) and math.isfinite(gamma_max)):
    raise ValueError(
        f"{name}: gamma endpoints must be finite, got gamma_0={gamma_min}, "
        f"gamma_1={gamma_max}.")
  if gamma_min >= gamma_max:
    raise ValueError(
        f"{name}: gamma_0 must be < gamma_1 (SNR decreases with t), got "
        f"gamma_0={gamma_min} and gamma_1={gamma_max}.")


def _check_not_decreasing(gamma_min, gamma_max, name: str):
  # Equal endpoints are allowed here: a constant gamma is a process that never
  # adds noise (e.g. the condition of a CDE in `vdm_jax.multiscale`).
  if not (math.isfinite(gamma_min) and math.isfinite(gamma_max)):
    raise ValueError(f"{name}: gamma_min and gamma_max must be finite, got "
                     f"gamma_min={gamma_min} and gamma_max={gamma_max}.")
  if gamma_min > gamma_max:
    raise ValueError(
        f"{name}: gamma_min must be <= gamma_max (gamma may not decrease in t), "
        f"got gamma_min={gamma_min} and gamma_max={gamma_max}.")


def check_increasing(gamma_0, gamma_1, name: str = "gamma_fn"):
  """Value check that a schedule increases: gamma(0) < gamma(1).

  Works on concrete values (ValueError at once) and under `jit` (a `checkify`
  check; pass the returned boolean to `vdm_jax._checks.poison`). A decreasing
  gamma makes the diffusion loss negative and the sampler's variance NaN.

  Returns:
    scalar bool array, True when the check passes.
  """
  gamma_0, gamma_1 = jnp.asarray(gamma_0), jnp.asarray(gamma_1)
  return _checks.check_values(
      jnp.all(gamma_0 < gamma_1),
      f"{name} must be increasing in t (gamma(0) < gamma(1), SNR decreasing), "
      "got gamma(0) = {g0} and gamma(1) = {g1}.", g0=gamma_0, g1=gamma_1)


# ----------------------------------------------------------------------------
# Functions of t.
# ----------------------------------------------------------------------------
def linear_gamma(t, *, gamma_min: float = GAMMA_MIN,
                 gamma_max: float = GAMMA_MAX):
  """The fixed log-SNR-linear schedule gamma(t) = gamma_min + (gamma_max - gamma_min) t.

  Raises ValueError if gamma_min > gamma_max (checked when both are concrete;
  traced endpoints, e.g. learned ones, are the caller's to order).
  """
  if all(_checks.is_concrete(g) and jnp.ndim(g) == 0 for g in (gamma_min, gamma_max)):
    _check_not_decreasing(float(gamma_min), float(gamma_max), "linear_gamma")
  return gamma_min + (gamma_max - gamma_min) * t


def _gamma_to_cosine_u(gamma):
  # alpha = cos(pi u / 2), sigma = sin(pi u / 2)  =>  gamma = 2 log tan(pi u / 2).
  return (2.0 / math.pi) * math.atan(math.exp(gamma / 2.0))


def cosine_gamma(t, *, gamma_min: float = GAMMA_MIN,
                 gamma_max: float = GAMMA_MAX):
  """The alpha-cosine schedule, with its time axis stretched to hit both endpoints.

  .. math::

    \\gamma(t) = 2 \\log \\tan(\\tfrac{\\pi}{2}(u_0 + (u_1 - u_0) t)),
    \\quad u_i = \\tfrac{2}{\\pi} \\arctan(e^{\\gamma_i / 2}),

  so gamma(0) = gamma_min and gamma(1) = gamma_max exactly, and alpha_t =
  cos(pi u / 2) in between (Nichol & Dhariwal, https://arxiv.org/abs/2102.09672).
  Raises ValueError if gamma_min > gamma_max.
  """
  _check_not_decreasing(gamma_min, gamma_max, "cosine_gamma")
  u0, u1 = _gamma_to_cosine_u(gamma_min), _gamma_to_cosine_u(gamma_max)
  angle = 0.5 * math.pi * (u0 + (u1 - u0) * t)
  return 2.0 * (jnp.log(jnp.sin(angle)) - jnp.log(jnp.cos(angle)))


def gamma_and_derivative(gamma_fn: GammaFn, t):
  """Returns (gamma(t), gamma'(t)) by forward-mode autodiff.

  `gamma_fn` must act elementwise on `t` (every schedule here does), so a single
  `jvp` with a tangent of ones gives the per-element derivative.
  """
  t = jnp.asarray(t, jnp.float32)
  return jax.jvp(gamma_fn, (t,), (jnp.ones_like(t),))


# ----------------------------------------------------------------------------
# Flax modules: a common `apply(params, t) -> gamma` interface.
# ----------------------------------------------------------------------------
class _Schedule(nn.Module):
  """Base of the schedule modules: endpoint constants, checked at construction."""
  gamma_min: float = GAMMA_MIN
  gamma_max: float = GAMMA_MAX

  def __post_init__(self):
    check_endpoints(self.gamma_min, self.gamma_max, type(self).__name__)
    super().__post_init__()


class FixedLinearSchedule(_Schedule):
  """gamma(t) = gamma_min + (gamma_max - gamma_min) t; no parameters."""

  @nn.compact
  def __call__(self, t):
    t = jnp.asarray(t, jnp.float32)
    return linear_gamma(t, gamma_min=self.gamma_min, gamma_max=self.gamma_max)


class CosineSchedule(_Schedule):
  """The endpoint-matched alpha-cosine schedule (`cosine_gamma`); no parameters."""

  @nn.compact
  def __call__(self, t):
    t = jnp.asarray(t, jnp.float32)
    return cosine_gamma(t, gamma_min=self.gamma_min, gamma_max=self.gamma_max)


class LearnedLinearSchedule(_Schedule):
  """gamma(t) = gamma_0 + |w| t with learnable endpoints (VDM code's `learnable_scalar`).

  Parameters: ``gamma_0`` (= gamma(0)) and ``width`` (gamma(1) = gamma_0 + |width|).
  Both are endpoint parameters; the schedule has no shape parameters.
  """

  @nn.compact
  def __call__(self, t):
    t = jnp.asarray(t, jnp.float32)
    g0 = self.param("gamma_0", nn.initializers.constant(self.gamma_min), ())
    w = self.param("width",
                   nn.initializers.constant(self.gamma_max - self.gamma_min), ())
    return g0 + jnp.abs(w) * t


class _MonotoneShape(nn.Module):
  """Unnormalised monotone net gamma~(t) = l1(t) + l3(phi(l2(l1(t)))), all weights > 0.

  Positivity comes from softplus of the raw weights, so the derivative
  w1 (1 + sum_k w3_k phi'(.) w2_k) / n is strictly positive: the schedule is
  strictly monotone by construction, not by penalty.
  """
  n_features: int = 1024
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, t):
    pos = jax.nn.softplus
    w1 = pos(self.param("l1_kernel", nn.initializers.constant(1.0), ()))
    b1 = self.param("l1_bias", nn.initializers.zeros, ())
    w2 = pos(self.param(
        "l2_kernel", nn.initializers.normal(self.init_scale), (self.n_features,)))
    b2 = self.param("l2_bias", nn.initializers.normal(self.init_scale),
                    (self.n_features,))
    w3 = pos(self.param(
        "l3_kernel", nn.initializers.normal(self.init_scale), (self.n_features,)))
    h = w1 * t + b1
    # The 4x stretch puts the sigmoids' transition inside the [0, 1] range of t.
    feats = jax.nn.sigmoid(4.0 * (h[..., None] * w2 + b2))
    return h + jnp.mean(feats * w3, axis=-1)


def _inverse_softplus(y: float) -> float:
  """x with softplus(x) = y > 0, i.e. log(expm1(y)), written not to overflow."""
  return y + math.log(-math.expm1(-y))


class MonotoneNetSchedule(_Schedule):
  """The learned monotone schedule of VDM (App. H) with exactly learnable endpoints.

  .. math::

    \\gamma(t) = \\gamma_0 + (\\gamma_1 - \\gamma_0)
      \\frac{\\tilde\\gamma(t) - \\tilde\\gamma(0)}{\\tilde\\gamma(1) - \\tilde\\gamma(0)},
    \\qquad \\gamma_1 = \\gamma_0 + \\mathrm{softplus}(w)

  with gamma~ a 3-layer network with positive weights (`_MonotoneShape`). The
  normalisation follows the paper, not the official code (which omits it, so
  that there the network also moves the endpoints), so gamma(0) = gamma_0 and
  gamma(1) = gamma_1 exactly and the shape parameters cannot move the
  endpoints. This split is what makes the variance-minimising rule well
  defined: with the endpoints fixed, E[L] does not depend on the shape (VDM
  Sec. 5.1).

  The endpoints are ordered by construction, gamma_1 - gamma_0 =
  softplus(w) > 0, like the |w| of `LearnedLinearSchedule` and the official
  code's positive kernels: no learning rate can make them cross, which would
  turn the diffusion loss negative. w starts at softplus^{-1}(gamma_max -
  gamma_min), so the initial endpoints are exactly gamma_min and gamma_max.

  Parameters: ``gamma_0`` and ``width`` w (endpoints) and ``shape`` (the net).
  """
  n_features: int = 1024
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, t):
    t = jnp.asarray(t, jnp.float32)
    g0 = self.param("gamma_0", nn.initializers.constant(self.gamma_min), ())
    w = self.param("width", nn.initializers.constant(
        _inverse_softplus(self.gamma_max - self.gamma_min)), ())
    shape = _MonotoneShape(self.n_features, self.init_scale, name="shape")
    ends = shape(jnp.array([0.0, 1.0], jnp.float32))
    frac = (shape(t) - ends[0]) / (ends[1] - ends[0])
    return g0 + jax.nn.softplus(w) * frac


SCHEDULES = {
    "fixed_linear": FixedLinearSchedule,
    "cosine": CosineSchedule,
    "learned_linear": LearnedLinearSchedule,
    "learned_net": MonotoneNetSchedule,
}


def make_schedule(name: str, *, gamma_min: float = GAMMA_MIN,
                  gamma_max: float = GAMMA_MAX, **kwargs) -> nn.Module:
  """Builds a schedule module by name; see `SCHEDULES` for the names.

  Raises:
    ValueError: for an unknown name or gamma_min >= gamma_max.
  """
  if name not in SCHEDULES:
    raise ValueError(
        f"Unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}.")
  return SCHEDULES[name](gamma_min=gamma_min, gamma_max=gamma_max, **kwargs)


def init_schedule(schedule: nn.Module, rng=None):
  """Initialises a schedule's parameters (an empty dict for fixed schedules)."""
  rng = jax.random.key(0) if rng is None else rng
  return schedule.init(rng, jnp.zeros((), jnp.float32)).get("params", {})


def bind(schedule: nn.Module, params) -> GammaFn:
  """Closes a schedule module over its parameters: returns t -> gamma(t)."""
  return lambda t: schedule.apply({"params": params}, t)


def is_shape_param(path) -> bool:
  """True for parameters in a schedule's ``shape`` sub-tree (key path test)."""
  return any(getattr(k, "key", None) == "shape" for k in path)
