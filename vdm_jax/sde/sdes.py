"""Forward score SDEs (VP, sub-VP, VE, and the VP SDE of a VDM schedule).

Every SDE here is a linear (Ito) SDE on t in [0, T]

.. math::

  dx = f(x, t)\\,dt + g(t)\\,dw, \\qquad f(x, t) = -\\tfrac12 \\beta(t) x
  \\text{ (VP, sub-VP, schedule-VP)}, \\; f = 0 \\text{ (VE)},

whose transition kernel from the data is Gaussian,
:math:`p_{0t}(x_t | x_0) = N(a_t x_0, s_t^2 I)`; `marginal` returns
``(a_t x_0, s_t)`` and `marginal_coeffs` returns ``(a_t, s_t)``. An SDE is an
immutable (frozen) dataclass: build it once, close over it in jitted code.

The reverse-time SDE and the probability-flow ODE for a score function
``score_fn(x, t) -> [B, ...]`` (t of shape [B]) are

.. math::

  dx = [f - g^2 \\nabla_x \\log p_t(x)]\\,dt + g\\,d\\bar w, \\qquad
  \\frac{dx}{dt} = f - \\tfrac12 g^2 \\nabla_x \\log p_t(x),

returned by `SDE.reverse(score_fn, probability_flow=...)` as a `ReverseSDE`
with the same `drift_diffusion` / `discretize` interface.

Conventions (shared across vdm_jax):

* ``x`` is ``[B, ...]`` with a floating dtype; ``t`` is ``[B]`` (a scalar is
  accepted and broadcast) with values in ``[0, T]``. Concrete (non-traced) ``t``
  outside that range raises ValueError; under `jit` the range cannot be checked.
* ``discretize(x, t, dt)`` with ``dt > 0`` returns ``(f_i, G_i)`` such that the
  forward step from t to t + dt is ``x + f_i + G_i * xi``, xi ~ N(0, I). The base
  class uses Euler--Maruyama; VP, sub-VP, VE and schedule-VP override it with the
  *exact* Gaussian transition of the SDE (for VP this is the DDPM step, for VE the
  SMLD step of score_sde).
* VE marginal std is ``sigma(t) = sigma_min (sigma_max / sigma_min)^t`` as in the
  score_sde code, i.e. ``x_0`` is the data already perturbed by ``sigma_min``
  noise (the exact std from an unperturbed start is
  ``sqrt(sigma(t)^2 - sigma_min^2)``). Likewise `ScheduleVPSDE.marginal` is the
  VDM forward process ``q(z_t | x) = N(alpha_t x, sigma_t^2)``, which the SDE
  reproduces when started from ``z_0 ~ q(z_0 | x)``, because
  ``alpha_{t|0}^2 sigma_0^2 + 1 - alpha_{t|0}^2 = sigma_t^2``.

References:
  Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative
  Modeling through Stochastic Differential Equations.
  https://arxiv.org/abs/2011.13456, 2021 (Sec. 3.4, App. B).
  Kingma, Salimans, Poole, Ho. Variational Diffusion Models.
  https://arxiv.org/abs/2107.00630, 2021 (App. D).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax import schedules

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


# ----------------------------------------------------------------------------
# Boundary checks.
# ----------------------------------------------------------------------------
def _is_concrete(v) -> bool:
  return not isinstance(v, jax.core.Tracer)


def check_x(x, name: str = "x") -> Array:
  """Checks that `x` is a floating `[B, ...]` array and returns it as an array."""
  x = jnp.asarray(x)
  _checks.check_floating(x, name)
  _checks.check_min_rank(x, 1, name)
  return x


def check_time(t, x, T: float = 1.0, name: str = "t") -> Array:
  """Checks `t` against the batch of `x` and the range [0, T]; returns `[B]` t.

  Args:
    t: scalar or `[B]` times, B = x.shape[0].
    x: `[B, ...]` data whose leading axis is the batch.
    T: end time of the SDE.
    name: argument name used in error messages.

  Returns:
    `t` as a floating `[B]` array (a scalar is broadcast).

  Raises:
    ValueError: wrong shape, or concrete values outside [0, T] or non-finite.
  """
  t = jnp.asarray(t)
  if not jnp.issubdtype(t.dtype, jnp.floating):
    t = t.astype(jnp.float32)
  _checks.check_batch(t, x, name, "x")
  if _is_concrete(t):
    tv = np.asarray(t)
    if not np.all(np.isfinite(tv)) or np.any(tv < 0) or np.any(tv > T):
      raise ValueError(
          f"{name} must lie in [0, T] = [0, {T}], got values in "
          f"[{np.nanmin(tv)}, {np.nanmax(tv)}]" +
          ("" if np.all(np.isfinite(tv)) else " (with non-finite entries)") + ".")
  return jnp.broadcast_to(t, (x.shape[0],))


def _check_shape_arg(shape, name="shape"):
  shape = tuple(int(s) for s in shape)
  if len(shape) < 1 or any(s < 1 for s in shape):
    raise ValueError(
        f"{name} must be a non-empty tuple of positive sizes [B, ...], got "
        f"{shape}.")
  return shape


def _gaussian_logp(z, std: float):
  """log N(z; 0, std^2 I) summed over all but the batch axis -> [B]."""
  z = check_x(z, "z")
  d = math.prod(z.shape[1:])
  return (-0.5 * d * math.log(2 * math.pi * std**2)
          - 0.5 * _checks.sum_except_batch(jnp.square(z)) / std**2)


# ----------------------------------------------------------------------------
# The interface.
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SDE(abc.ABC):
  """A forward SDE dx = f(x, t) dt + g(t) dw on [0, T] with Gaussian marginals.

  Subclasses implement `drift_diffusion`, `marginal_coeffs`, `prior_std` (the
  prior is N(0, prior_std^2 I)); marginals, priors, the reverse SDE, the
  probability-flow ODE and the Euler--Maruyama discretisation follow.

  Attributes:
    T: end time of the diffusion (keyword-only).
    eps: smallest time used in training and sampling, avoiding s_t -> 0
      (keyword-only).
  """
  T: float = dataclasses.field(default=1.0, kw_only=True)
  eps: float = dataclasses.field(default=1e-5, kw_only=True)

  def __post_init__(self):
    if not (self.T > 0 and math.isfinite(self.T)):
      raise ValueError(f"{type(self).__name__}: T must be a positive finite "
                       f"number, got T={self.T}.")
    if not 0 <= self.eps < self.T:
      raise ValueError(f"{type(self).__name__}: eps must satisfy 0 <= eps < T="
                       f"{self.T}, got eps={self.eps}.")

  # -- to implement -----------------------------------------------------------
  @abc.abstractmethod
  def _drift_diffusion(self, x: Array, t: Array) -> tuple[Array, Array]:
    """Unchecked f(x, t) [B, ...] and g(t) [B]."""

  @abc.abstractmethod
  def _marginal_coeffs(self, t: Array) -> tuple[Array, Array]:
    """Unchecked (a_t, s_t), each [B], with p_0t = N(a_t x_0, s_t^2 I)."""

  @property
  @abc.abstractmethod
  def prior_std(self) -> float:
    """Standard deviation of the isotropic Gaussian prior at t = T."""

  # -- public interface -------------------------------------------------------
  def drift_diffusion(self, x, t) -> tuple[Array, Array]:
    """Drift f(x, t) and diffusion g(t).

    Args:
      x: `[B, ...]` state.
      t: `[B]` times in [0, T].

    Returns:
      `(f, g)`: drift `[B, ...]` (dtype of x) and diffusion coefficient `[B]`.
    """
    x = check_x(x)
    t = check_time(t, x, self.T)
    return self._drift_diffusion(x, t)

  def marginal_coeffs(self, t) -> tuple[Array, Array]:
    """Mean coefficient a_t and std s_t of p_0t(x_t | x_0) = N(a_t x_0, s_t^2 I).

    Args:
      t: `[B]` times in [0, T].

    Returns:
      `(a_t, s_t)`, each `[B]`.
    """
    t = jnp.asarray(t)
    _checks.check_rank(t, 1, "t")
    t = check_time(t, t, self.T)
    return self._marginal_coeffs(t)

  def marginal(self, x0, t) -> tuple[Array, Array]:
    """Mean and std of p_0t(x_t | x_0).

    Args:
      x0: `[B, ...]` clean data.
      t: `[B]` times in [0, T].

    Returns:
      `(mean, std)`: mean `[B, ...]` = a_t x0 and std `[B]` = s_t.
    """
    x0 = check_x(x0, "x0")
    t = check_time(t, x0, self.T)
    a, s = self._marginal_coeffs(t)
    return _checks.broadcast_to_data(a, x0).astype(x0.dtype) * x0, s

  def perturb(self, rng, x0, t) -> tuple[Array, Array]:
    """Draws x_t ~ p_0t(. | x0); returns `(x_t, noise)` with x_t = a x0 + s noise."""
    mean, std = self.marginal(x0, t)
    noise = jax.random.normal(rng, x0.shape, x0.dtype)
    return mean + _checks.broadcast_to_data(std, x0).astype(x0.dtype) * noise, noise

  def prior_sample(self, rng, shape) -> Array:
    """Draws `shape` = [B, ...] samples from the prior N(0, prior_std^2 I)."""
    shape = _check_shape_arg(shape)
    return self.prior_std * jax.random.normal(rng, shape, jnp.float32)

  def prior_logp(self, z) -> Array:
    """Log-density of the prior, summed over all but the batch axis -> [B] nats."""
    return _gaussian_logp(z, self.prior_std)

  def discretize(self, x, t, dt) -> tuple[Array, Array]:
    """Forward step t -> t + dt as x + f_i + G_i xi (Euler--Maruyama here).

    .. math::

      f_i = f(x, t)\\,\\Delta t, \\qquad G_i = g(t) \\sqrt{\\Delta t}.

    Args:
      x: `[B, ...]` state at t.
      t: `[B]` times.
      dt: positive step, scalar or `[B]`.

    Returns:
      `(f_i, G_i)`: `[B, ...]` increment of the mean and `[B]` noise scale.
    """
    f, g = self.drift_diffusion(x, t)
    dt = jnp.asarray(dt, f.dtype)
    return f * _checks.broadcast_to_data(dt, x), g * jnp.sqrt(dt)

  def reverse(self, score_fn: ScoreFn,
              probability_flow: bool = False) -> "ReverseSDE":
    """The reverse-time SDE (or the probability-flow ODE) for `score_fn`.

    Args:
      score_fn: `score_fn(x [B, ...], t [B]) -> [B, ...]`, an estimate of
        grad_x log p_t(x).
      probability_flow: if True, return the deterministic probability-flow ODE
        dx/dt = f - g^2 s / 2 (diffusion 0) instead of the reverse SDE.

    Returns:
      A `ReverseSDE` with `drift_diffusion(x, t)` and `discretize(x, t, dt)`.
    """
    if not callable(score_fn):
      raise TypeError(f"score_fn must be callable, got {type(score_fn)}.")
    return ReverseSDE(self, score_fn, bool(probability_flow))

  def transition_coeffs(self, s, t) -> tuple[Array, Array]:
    """Coefficients of the forward transition p(x_t | x_s), s <= t.

    .. math::

      p(x_t | x_s) = N(a_{t|s} x_s, v_{t|s} I), \\quad a_{t|s} = a_t / a_s,
      \\quad v_{t|s} = s_t^2 - a_{t|s}^2 s_s^2,

    computed in a numerically stable form where the subclass offers one.

    Args:
      s: `[B]` earlier times.
      t: `[B]` later times (t >= s).

    Returns:
      `(a_{t|s}, v_{t|s})`, each `[B]` (v is a variance, clipped at 0).
    """
    t = jnp.asarray(t)
    _checks.check_rank(t, 1, "t")
    t = check_time(t, t, self.T, "t")
    s = check_time(s, t, self.T, "s")
    ratio, var = self._transition(s, t)
    return ratio, jnp.maximum(var, 0.0)

  def _exact_discretize(self, x, t, dt):
    """Exact Gaussian step t -> t + dt from the marginal coefficients.

    x_{t+dt} | x_t = N((a_{t+dt}/a_t) x_t, s_{t+dt}^2 - (a_{t+dt}/a_t)^2 s_t^2).
    """
    x = check_x(x)
    t = check_time(t, x, self.T)
    dt = jnp.broadcast_to(jnp.asarray(dt, t.dtype), t.shape)
    t2 = jnp.minimum(t + dt, self.T)
    ratio, var = self._transition(t, t2)
    f_i = (_checks.broadcast_to_data(ratio, x).astype(x.dtype) - 1.0) * x
    return f_i, jnp.sqrt(jnp.maximum(var, 0.0))

  def _transition(self, s, t):
    """(a_{t|s}, s^2_{t|s}) for s <= t; subclasses override with stable forms."""
    a_s, s_s = self._marginal_coeffs(s)
    a_t, s_t = self._marginal_coeffs(t)
    ratio = a_t / a_s
    return ratio, s_t**2 - ratio**2 * s_s**2


@dataclasses.dataclass(frozen=True)
class ReverseSDE:
  """Reverse-time SDE, or probability-flow ODE, of a forward `SDE`.

  .. math::

    \\bar f(x, t) = f(x, t) - c\\, g(t)^2 s(x, t),

  with c = 1 for the reverse SDE (diffusion g(t)) and c = 1/2 for the
  probability-flow ODE (diffusion 0). The drift is for time running *forward* in t (integrate it with
  negative dt to go from T to 0).

  Attributes:
    sde: the forward SDE.
    score_fn: `score_fn(x [B, ...], t [B]) -> [B, ...]`.
    probability_flow: whether this is the probability-flow ODE.
  """
  sde: SDE
  score_fn: ScoreFn
  probability_flow: bool = False

  @property
  def T(self) -> float:
    return self.sde.T

  def _score(self, x, t):
    s = self.score_fn(x, t)
    if np.shape(s) != np.shape(x):
      raise ValueError(f"score_fn must return an array of the shape of x "
                       f"{np.shape(x)}, got {np.shape(s)}.")
    return s

  def drift_diffusion(self, x, t) -> tuple[Array, Array]:
    """Reverse drift `[B, ...]` and diffusion `[B]` (zeros for the PF ODE)."""
    f, g = self.sde.drift_diffusion(x, t)
    x = jnp.asarray(x)
    s = self._score(x, check_time(t, x, self.T))
    c = 0.5 if self.probability_flow else 1.0
    g2 = _checks.broadcast_to_data(jnp.square(g), x).astype(x.dtype)
    drift = f - c * g2 * s
    return drift, (jnp.zeros_like(g) if self.probability_flow else g)

  def discretize(self, x, t, dt) -> tuple[Array, Array]:
    """One reverse step from t to t - dt: x_new = x - rev_f + rev_G xi.

    Uses the forward discretisation of the step t - dt -> t evaluated at x_t
    (the "reverse diffusion" predictor of Song et al., App. E):

    .. math::

      \\bar f_i = f_i - c\\, G_i^2 s(x, t), \\qquad \\bar G_i = G_i
      \\;(0 \\text{ for the ODE}).

    Args:
      x: `[B, ...]` state at t.
      t: `[B]` current times.
      dt: positive step size (scalar or [B]); the step ends at t - dt.

    Returns:
      `(rev_f, rev_G)` with `[B, ...]` and `[B]` shapes.
    """
    x = check_x(x)
    t = check_time(t, x, self.T)
    dt = jnp.broadcast_to(jnp.asarray(dt, t.dtype), t.shape)
    f_i, g_i = self.sde.discretize(x, jnp.maximum(t - dt, 0.0), dt)
    s = self._score(x, t)
    c = 0.5 if self.probability_flow else 1.0
    g2 = _checks.broadcast_to_data(jnp.square(g_i), x).astype(x.dtype)
    rev_f = f_i - c * g2 * s
    return rev_f, (jnp.zeros_like(g_i) if self.probability_flow else g_i)


# ----------------------------------------------------------------------------
# Concrete SDEs.
# ----------------------------------------------------------------------------
def _check_beta(obj):
  name = type(obj).__name__
  if not (math.isfinite(obj.beta_min) and math.isfinite(obj.beta_max)):
    raise ValueError(f"{name}: beta_min and beta_max must be finite, got "
                     f"{obj.beta_min}, {obj.beta_max}.")
  if obj.beta_min < 0 or obj.beta_max <= 0 or obj.beta_min > obj.beta_max:
    raise ValueError(
        f"{name}: need 0 <= beta_min <= beta_max and beta_max > 0, got "
        f"beta_min={obj.beta_min}, beta_max={obj.beta_max}.")


@dataclasses.dataclass(frozen=True)
class _LinearBetaSDE(SDE):
  """Shared part of VP and sub-VP: beta(t) linear in t and its integral B(t)."""
  beta_min: float = 0.1
  beta_max: float = 20.0

  def __post_init__(self):
    super().__post_init__()
    _check_beta(self)

  def beta(self, t):
    return self.beta_min + t * (self.beta_max - self.beta_min)

  def int_beta(self, t):
    return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2


@dataclasses.dataclass(frozen=True)
class VPSDE(_LinearBetaSDE):
  """Variance-preserving SDE with a linear beta(t) (DDPM in continuous time).

  .. math::

    \\beta(t) = \\beta_{min} + t(\\beta_{max} - \\beta_{min}), \\;
    B(t) = \\int_0^t \\beta, \\; f = -\\tfrac12\\beta x, \\; g = \\sqrt{\\beta},
    \\; a_t = e^{-B/2}, \\; s_t = \\sqrt{1 - e^{-B}}.

  Its VDM log-SNR is gamma(t) = log(expm1(B(t))) (see `log_snr`).

  Attributes:
    beta_min: beta(0) (default 0.1).
    beta_max: beta(1) (default 20).
  """

  def log_snr(self, t):
    """VDM gamma(t) = -log SNR(t) = log(e^{B(t)} - 1), for `[B]` t."""
    return jnp.log(jnp.expm1(self.int_beta(jnp.asarray(t))))

  @property
  def prior_std(self) -> float:
    return 1.0

  def _drift_diffusion(self, x, t):
    b = self.beta(t)
    return -0.5 * _checks.broadcast_to_data(b, x).astype(x.dtype) * x, jnp.sqrt(b)

  def _marginal_coeffs(self, t):
    bt = self.int_beta(t)
    return jnp.exp(-0.5 * bt), jnp.sqrt(-jnp.expm1(-bt))

  def _transition(self, s, t):
    db = self.int_beta(t) - self.int_beta(s)
    return jnp.exp(-0.5 * db), -jnp.expm1(-db)

  def discretize(self, x, t, dt):
    """Exact step t -> t + dt (the DDPM step with beta_i = 1 - e^{-(B(t+dt)-B(t))})."""
    return self._exact_discretize(x, t, dt)


@dataclasses.dataclass(frozen=True)
class SubVPSDE(_LinearBetaSDE):
  """Sub-VP SDE: VP drift with diffusion shrunk so the variance stays below VP's.

  .. math::

    f = -\\tfrac12\\beta(t) x, \\quad g = \\sqrt{\\beta(t)(1 - e^{-2B(t)})},
    \\quad a_t = e^{-B/2}, \\quad s_t = 1 - e^{-B}.

  Attributes:
    beta_min: beta(0) (default 0.1).
    beta_max: beta(1) (default 20).
  """

  @property
  def prior_std(self) -> float:
    return 1.0

  def _drift_diffusion(self, x, t):
    b = self.beta(t)
    g = jnp.sqrt(b * -jnp.expm1(-2.0 * self.int_beta(t)))
    return -0.5 * _checks.broadcast_to_data(b, x).astype(x.dtype) * x, g

  def _marginal_coeffs(self, t):
    bt = self.int_beta(t)
    return jnp.exp(-0.5 * bt), -jnp.expm1(-bt)

  def discretize(self, x, t, dt):
    """Exact Gaussian step t -> t + dt."""
    return self._exact_discretize(x, t, dt)


@dataclasses.dataclass(frozen=True)
class VESDE(SDE):
  """Variance-exploding SDE (SMLD / NCSN in continuous time).

  .. math::

    \\sigma(t) = \\sigma_{min} (\\sigma_{max}/\\sigma_{min})^t, \\quad f = 0,
    \\quad g = \\sigma(t)\\sqrt{2 \\ln(\\sigma_{max}/\\sigma_{min})},
    \\quad a_t = 1, \\quad s_t = \\sigma(t).

  The prior is N(0, sigma_max^2 I). s_t = sigma(t) follows score_sde (the data
  at t = 0 carry sigma_min noise); see the module docstring.

  Attributes:
    sigma_min: noise level at t = 0 (default 0.01); must be < sigma_max.
    sigma_max: noise level at t = 1 (default 50).
  """
  sigma_min: float = 0.01
  sigma_max: float = 50.0

  def __post_init__(self):
    super().__post_init__()
    if not (math.isfinite(self.sigma_min) and math.isfinite(self.sigma_max)):
      raise ValueError(f"VESDE: sigma_min and sigma_max must be finite, got "
                       f"{self.sigma_min}, {self.sigma_max}.")
    if self.sigma_min <= 0:
      raise ValueError(f"VESDE: sigma_min must be > 0, got {self.sigma_min}.")
    if self.sigma_min >= self.sigma_max:
      raise ValueError(
          f"VESDE: sigma_min must be < sigma_max, got sigma_min="
          f"{self.sigma_min} and sigma_max={self.sigma_max}.")

  def sigma(self, t):
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** (t / self.T)

  @property
  def prior_std(self) -> float:
    return float(self.sigma_max)

  def _drift_diffusion(self, x, t):
    g = self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min)
                                  / self.T)
    return jnp.zeros_like(x), g

  def _marginal_coeffs(self, t):
    return jnp.ones_like(t), self.sigma(t)

  def _transition(self, s, t):
    return jnp.ones_like(t), self.sigma(t)**2 - self.sigma(s)**2

  def discretize(self, x, t, dt):
    """Exact step t -> t + dt: f_i = 0, G_i = sqrt(sigma(t+dt)^2 - sigma(t)^2) (SMLD)."""
    return self._exact_discretize(x, t, dt)


@dataclasses.dataclass(frozen=True)
class ScheduleVPSDE(SDE):
  """The VP SDE induced by a VDM noise schedule gamma(t) = -log SNR(t).

  .. math::

    a_t = \\alpha_t = \\sqrt{\\mathrm{sigmoid}(-\\gamma_t)}, \\quad
    s_t = \\sigma_t = \\sqrt{\\mathrm{sigmoid}(\\gamma_t)}, \\quad
    \\beta(t) = \\sigma_t^2 \\gamma'(t), \\quad f = -\\tfrac12\\beta(t) x,
    \\quad g = \\sqrt{\\beta(t)},

  since d log alpha_t / dt = -sigma_t^2 gamma'(t) / 2 (Kingma et al. 2021,
  Variational Diffusion Models, App. D). gamma'(t) comes from `jax.jvp` of `gamma_fn`.
  `marginal(x, t)` is the VDM forward process q(z_t | x); the SDE reproduces it
  exactly when started at z_0 ~ q(z_0 | x). With this SDE, likelihood-weighted
  DSM equals VDM's continuous diffusion loss L_inf (for s = -eps_hat / sigma_t,
  g^2 ||s + eps / sigma_t||^2 = gamma'(t) ||eps - eps_hat||^2).

  Attributes:
    gamma_fn: elementwise increasing map t [B] -> gamma [B], e.g.
      `functools.partial(schedules.linear_gamma, gamma_min=-13.3, gamma_max=5.)`
      or `schedules.bind(module, params)`. Construction raises ValueError if
      gamma_fn(0) >= gamma_fn(1).
  """
  gamma_fn: Callable[[Array], Array] = dataclasses.field(
      default=schedules.linear_gamma)

  def __post_init__(self):
    super().__post_init__()
    if not callable(self.gamma_fn):
      raise TypeError(f"ScheduleVPSDE: gamma_fn must be callable t -> gamma, "
                      f"got {type(self.gamma_fn)}.")
    if self.T != 1.0:
      raise ValueError(f"ScheduleVPSDE: VDM schedules live on [0, 1], so T must "
                       f"be 1, got T={self.T}.")
    # A decreasing gamma gives beta < 0: NaN diffusion for the samplers and a
    # wrong-signed probability-flow drift for the likelihood, with no error.
    ends = self.gamma_fn(jnp.array([0.0, 1.0], jnp.float32))
    schedules.check_increasing(ends[0], ends[1], "ScheduleVPSDE: gamma_fn")

  def log_snr(self, t):
    """gamma(t), `[B]`."""
    return self.gamma_fn(jnp.asarray(t, jnp.float32))

  def beta(self, t):
    """beta(t) = sigma_t^2 gamma'(t); NaN under `jit` (ValueError when concrete) if gamma' < 0."""
    g, dg = schedules.gamma_and_derivative(self.gamma_fn, t)
    ok = _checks.check_values(
        jnp.all(dg >= 0),
        "ScheduleVPSDE: gamma_fn must be increasing in t (beta(t) = sigma_t^2 "
        "gamma'(t) >= 0), got a minimum gamma'(t) of {lo}.", lo=jnp.min(dg))
    return _checks.poison(ok, schedules.sigma2(g) * dg)

  @property
  def prior_std(self) -> float:
    return 1.0

  def _drift_diffusion(self, x, t):
    b = self.beta(t)
    return -0.5 * _checks.broadcast_to_data(b, x).astype(x.dtype) * x, jnp.sqrt(b)

  def _marginal_coeffs(self, t):
    g = self.log_snr(t)
    return schedules.alpha(g), schedules.sigma(g)

  def _transition(self, s, t):
    gs, gt = self.log_snr(s), self.log_snr(t)
    # alpha^2_{t|s} = exp(softplus(g_s) - softplus(g_t));
    # sigma^2_{t|s} = -expm1(g_s - g_t) sigmoid(g_t)   (Kingma et al. 2021, App. A).
    ratio = jnp.exp(0.5 * (jax.nn.softplus(gs) - jax.nn.softplus(gt)))
    return ratio, -jnp.expm1(gs - gt) * schedules.sigma2(gt)

  def discretize(self, x, t, dt):
    """Exact step t -> t + dt: the VDM transition q(z_{t+dt} | z_t)."""
    return self._exact_discretize(x, t, dt)
