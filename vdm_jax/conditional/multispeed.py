"""Multi-speed diffusion: a joint forward process on (x, y), each with its own SDE.

x and y run on one clock t in [0, T] but with separate linear SDEs, so the
joint is a block-diagonal linear SDE (no coupling between the blocks):

.. math::

  d x = f_x(x, t)\\,dt + g_x(t)\\,dw_x, \\qquad
  d y = f_y(y, t)\\,dt + g_y(t)\\,dw_y,

  p_{0t}(x_t, y_t | x_0, y_0) = N(a_x x_0, s_x^2 I) \\otimes N(a_y y_0, s_y^2 I).

Its reverse SDE and probability-flow ODE are those of the block SDE with the
joint score :math:`(s^x, s^y) = \\nabla_{(x_t, y_t)} \\log p_t(x_t, y_t)`:

.. math::

  d x = [f_x - c\\, g_x^2 s^x]\\,dt + g_x\\,d\\bar w_x, \\quad
  d y = [f_y - c\\, g_y^2 s^y]\\,dt + g_y\\,d\\bar w_y,

with c = 1 (SDE) or 1/2 (ODE, zero diffusion). With ``y_sde == x_sde`` this is
the single-speed joint SDE of CDiffE; with a slower y SDE (smaller
noise-to-signal ratio :math:`s_y/a_y` at every t, e.g. a VE SDE with
:math:`\\sigma_{max,y} \\approx 0.5`-1 against :math:`\\sigma_{max,x} = \\sqrt{D}`)
it is the multi-speed diffusion of MS-CDiffE (CMDE in the MSDiff code). The
speed of an SDE is read off its noise-to-signal ratio :math:`s_t / a_t`.

States are pairs ``(x [B, ...], y [B, ...])``; times are `[B]`. The per-block
work is delegated to the `vdm_jax.sde` SDE objects.

References:
  Batzolis, Stanczuk, Schönlieb, Etmann, Conditional Image Generation with
  Score-Based Diffusion Models, https://arxiv.org/abs/2111.13606, 2021
  (multi-speed diffusion, CMDE).
  Batzolis, Stanczuk, Schönlieb, Etmann, Non-Uniform Diffusion Models,
  https://arxiv.org/abs/2207.09786, 2022.
  Song et al., Score-Based Generative Modeling through Stochastic Differential
  Equations, https://arxiv.org/abs/2011.13456, 2021.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax.sde import sdes

JointScoreFn = Callable[[tuple, jax.Array], tuple]

_SPEED_GRID = 65  # times at which the y-not-faster-than-x rule is checked.


def _check_state(state, name="state"):
  if not isinstance(state, (tuple, list)) or len(state) != 2:
    raise TypeError(f"{name} must be a pair (x [B, ...], y [B, ...]), got "
                    f"{type(state).__name__}.")
  x, y = jnp.asarray(state[0]), jnp.asarray(state[1])
  _checks.check_min_rank(x, 1, f"{name}[0] (x)")
  _checks.check_min_rank(y, 1, f"{name}[1] (y)")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"{name}: x and y batch sizes differ: x {x.shape}, y {y.shape}.")
  return x, y


def noise_to_signal(sde: sdes.SDE, t):
  """s_t / a_t of an SDE's kernel, `[B]` (the 'speed' compared between blocks)."""
  a, s = sde.marginal_coeffs(t)
  return s / a


@dataclasses.dataclass(frozen=True)
class MultiSpeedSDE:
  """Joint forward SDE of (x, y) with separate SDEs (and speeds) per block.

  Attributes:
    x_sde: SDE of x (`vdm_jax.sde.SDE`).
    y_sde: SDE of y, on the same clock (same T).
    allow_faster_y: if False (default), raise ValueError when y's
      noise-to-signal ratio exceeds x's at some t (y diffusing faster than x
      defeats multi-speed conditioning).
  """
  x_sde: sdes.SDE
  y_sde: sdes.SDE
  allow_faster_y: bool = dataclasses.field(default=False, kw_only=True)

  def __post_init__(self):
    for name in ("x_sde", "y_sde"):
      if not isinstance(getattr(self, name), sdes.SDE):
        raise TypeError(f"MultiSpeedSDE: {name} must be a vdm_jax.sde.SDE, got "
                        f"{type(getattr(self, name)).__name__}.")
    if self.x_sde.T != self.y_sde.T:
      raise ValueError(f"MultiSpeedSDE: x_sde and y_sde must share one clock, got "
                       f"T={self.x_sde.T} and T={self.y_sde.T}.")
    if not self.allow_faster_y:
      # Evaluated eagerly even when the SDE is built inside a jitted function.
      with jax.ensure_compile_time_eval():
        t = jnp.linspace(self.eps, self.T, _SPEED_GRID)
        ratio = np.asarray(noise_to_signal(self.y_sde, t)
                           / noise_to_signal(self.x_sde, t))
      if np.any(ratio > 1.0 + 1e-4):
        i = int(np.argmax(ratio))
        raise ValueError(
            "MultiSpeedSDE: y diffuses faster than x (noise-to-signal ratio "
            f"s_y/a_y is {ratio[i]:.4g} times x's at t={float(t[i]):.3g}); use a "
            "slower y_sde (e.g. a smaller sigma_max / beta_max) or pass "
            "allow_faster_y=True.")

  @property
  def T(self) -> float:
    return self.x_sde.T

  @property
  def eps(self) -> float:
    return max(self.x_sde.eps, self.y_sde.eps)

  def speed_ratio(self, t):
    """(s_y/a_y) / (s_x/a_x) at t, `[B]`; 1 = single speed, < 1 = y slower."""
    return noise_to_signal(self.y_sde, t) / noise_to_signal(self.x_sde, t)

  def marginal_coeffs(self, t):
    """``((a_x, s_x), (a_y, s_y))``, each `[B]`."""
    return self.x_sde.marginal_coeffs(t), self.y_sde.marginal_coeffs(t)

  def drift_diffusion(self, state, t):
    """``((f_x, f_y), (g_x, g_y))``: drifts like the blocks, diffusions `[B]`."""
    x, y = _check_state(state)
    fx, gx = self.x_sde.drift_diffusion(x, t)
    fy, gy = self.y_sde.drift_diffusion(y, t)
    return (fx, fy), (gx, gy)

  def marginal(self, state0, t):
    """Mean and std of p_0t: ``((mean_x, mean_y), (std_x [B], std_y [B]))``."""
    x0, y0 = _check_state(state0, "state0")
    mx, sx = self.x_sde.marginal(x0, t)
    my, sy = self.y_sde.marginal(y0, t)
    return (mx, my), (sx, sy)

  def perturb(self, rng, state0, t):
    """Draws (x_t, y_t) ~ p_0t; returns ``((x_t, y_t), (z_x, z_y))``."""
    x0, y0 = _check_state(state0, "state0")
    kx, ky = jax.random.split(rng)
    x_t, zx = self.x_sde.perturb(kx, x0, t)
    y_t, zy = self.y_sde.perturb(ky, y0, t)
    return (x_t, y_t), (zx, zy)

  def prior_sample(self, rng, shapes):
    """Draws ``(x_T, y_T)`` from the product prior; ``shapes = (shape_x, shape_y)``."""
    if len(shapes) != 2:
      raise ValueError(f"shapes must be (shape_x, shape_y), got {shapes}.")
    kx, ky = jax.random.split(rng)
    return (self.x_sde.prior_sample(kx, shapes[0]),
            self.y_sde.prior_sample(ky, shapes[1]))

  def prior_logp(self, state):
    """log N(x; 0, .) + log N(y; 0, .), `[B]` nats."""
    x, y = _check_state(state)
    return self.x_sde.prior_logp(x) + self.y_sde.prior_logp(y)

  def discretize(self, state, t, dt):
    """Forward step t -> t + dt of each block: ``((f_x, f_y), (G_x, G_y))``."""
    x, y = _check_state(state)
    fx, gx = self.x_sde.discretize(x, t, dt)
    fy, gy = self.y_sde.discretize(y, t, dt)
    return (fx, fy), (gx, gy)

  def reverse(self, score_fn: JointScoreFn, probability_flow: bool = False):
    """Joint reverse SDE (or PF ODE) for ``score_fn((x, y), t) -> (s_x, s_y)``."""
    if not callable(score_fn):
      raise TypeError(f"score_fn must be callable, got {type(score_fn)}.")
    return JointReverseSDE(self, score_fn, bool(probability_flow))


@dataclasses.dataclass(frozen=True)
class JointReverseSDE:
  """Reverse-time SDE / PF ODE of a `MultiSpeedSDE`, block by block.

  Each block is the `vdm_jax.sde` `ReverseSDE` of its own SDE, fed the
  matching block of the joint score (evaluated once per call).
  """
  sde: MultiSpeedSDE
  score_fn: JointScoreFn
  probability_flow: bool = False

  @property
  def T(self) -> float:
    return self.sde.T

  def _blocks(self, state, t):
    x, y = _check_state(state)
    s = self.score_fn((x, y), t)
    if not isinstance(s, (tuple, list)) or len(s) != 2:
      raise TypeError("joint score_fn must return a pair (s_x, s_y).")
    sx, sy = s
    rx = self.sde.x_sde.reverse(lambda *_: sx, self.probability_flow)
    ry = self.sde.y_sde.reverse(lambda *_: sy, self.probability_flow)
    return (x, y), (rx, ry)

  def drift_diffusion(self, state, t):
    """``((rev_f_x, rev_f_y), (g_x, g_y))`` (diffusions 0 for the PF ODE)."""
    (x, y), (rx, ry) = self._blocks(state, t)
    fx, gx = rx.drift_diffusion(x, t)
    fy, gy = ry.drift_diffusion(y, t)
    return (fx, fy), (gx, gy)

  def discretize(self, state, t, dt):
    """One reverse step t -> t - dt per block: ``((rev_f_x, rev_f_y), (G_x, G_y))``."""
    (x, y), (rx, ry) = self._blocks(state, t)
    fx, gx = rx.discretize(x, t, dt)
    fy, gy = ry.discretize(y, t, dt)
    return (fx, fy), (gx, gy)
