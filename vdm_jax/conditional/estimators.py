"""Estimators of the conditional score grad_x log p_t(x_t | y): CDE, CDiffE, MS-CDiffE.

All three use one network family ``apply_fn(params, x_in, y_in, t) -> out``, in
which the condition enters as extra input channels: ``x_in`` is `[B, ..., Cx]`
and ``y_in`` is `[B, ..., Cy]` with the same leading axes (resize a
low-resolution y first, `tasks.resize_condition`), and ``out`` is
`[B, ..., Cx]` (CDE) or `[B, ..., Cx + Cy]` (joint score: x block first). Use
`vdm_jax.models.UNet(out_channels=...)` for images and
`vdm_jax.models.ScoreMLP(out_dim=...)` for vectors.

* **CDE** (conditional denoising estimator; `sr3` in MSDiff): only x is noised,
  the clean y is an input, DSM on x:

  .. math::

    L = E_{t, (x_0, y), z}\\, \\lambda_x(t)\\,
    \\overline{\\|s_\\theta(x_t, y, t) + z / s_x(t)\\|^2}, \\qquad
    x_t = a_x x_0 + s_x z.

  Its minimiser is grad log p_t(x_t | y) (consistent; Batzolis et al. Thm 1).
* **CDiffE** (conditional diffusive estimator; `Song`): x and y diffuse with the
  same SDE; the network learns the joint score by DSM on both blocks,

  .. math::

    L = E\\, \\overline{\\lambda_x \\|s^x + z_x/s_x\\|^2 \\oplus
    \\lambda_y \\|s^y + z_y/s_y\\|^2},

  and sampling uses its x block at a fresh :math:`y_t = a_y y + s_y \\xi'`
  drawn from the forward process of the observed y, i.e.
  :math:`\\nabla \\log p_t(x_t | y_t)`, which is biased for
  :math:`\\nabla \\log p_t(x_t | y)` whenever :math:`s_y > 0`.
* **MS-CDiffE** (multi-speed; `ours_NDV`, CMDE): as CDiffE but y diffuses on a
  slower SDE (`MultiSpeedSDE`), which shrinks that bias.

The overline is the mean over the coordinates of the noised blocks. With
``weighting='likelihood'`` :math:`\\lambda = g(t)^2` per block (the
:math:`\\Lambda_{MLE}` weighting of the MSDiff code); with ``'sigma2'``,
:math:`\\lambda = s(t)^2` (plain eps-prediction MSE).

Network parameterisation (deviation from MSDiff, documented): the network sees
:math:`c_{in} x_t` with :math:`c_{in} = 1/\\sqrt{a_t^2 + s_t^2}` (unit-scale
input for data of unit scale, which helps small networks on a VE SDE whose
:math:`s_t` reaches :math:`\\sqrt D`); the noisy y gets the same treatment with
y's coefficients; the time input is t itself. As in MSDiff, the output is
divided by the block's std: :math:`s = \\text{out}/s_t` (``scale_by_sigma``).

References:
  Batzolis, Stanczuk, Schönlieb, Etmann, Conditional Image Generation with
  Score-Based Diffusion Models, https://arxiv.org/abs/2111.13606, 2021.
  Saharia et al., Image Super-Resolution via Iterative Refinement (SR3),
  https://arxiv.org/abs/2104.07636, 2021 (CDE-style conditioning).
  Song et al., Score-Based Generative Modeling through Stochastic Differential
  Equations, https://arxiv.org/abs/2011.13456, 2021 (CDiffE-style
  conditioning, App. I).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax.conditional.multispeed import MultiSpeedSDE
from vdm_jax.sde import sdes

ApplyFn = Callable  # (params, x_in [B,...,Cx], y_in [B,...,Cy], t [B]) -> out

ESTIMATORS = ("cde", "cdiffe", "ms_cdiffe")
_WEIGHTINGS = ("likelihood", "sigma2")


def check_condition(x, y, name_x: str = "x", name_y: str = "y") -> None:
  """Raises ValueError unless y is `[B, ..., Cy]` with x's leading axes `[B, ...]`.

  The condition is fed as extra channels, so all axes but the last must match.
  """
  x, y = jnp.asarray(x), jnp.asarray(y)
  _checks.check_floating(x, name_x)
  _checks.check_floating(y, name_y)
  _checks.check_min_rank(x, 2, f"{name_x} [B, ..., C]")
  if y.ndim != x.ndim or y.shape[:-1] != x.shape[:-1]:
    raise ValueError(
        f"{name_y} must have shape [B, ..., Cy] with the leading axes of "
        f"{name_x} {tuple(x.shape[:-1])} (the condition enters as extra "
        f"channels), got {name_y} {tuple(y.shape)} and {name_x} "
        f"{tuple(x.shape)}; resize y first (tasks.resize_condition).")


def _input_scale(sde, t):
  a, s = sde.marginal_coeffs(t)
  return jax.lax.rsqrt(a**2 + s**2)


def _weight(sde, x, t, s, weighting):
  """lambda(t) / s(t)^2, the factor in front of ||out + z||^2, `[B]`."""
  if weighting == "likelihood":
    _, g = sde.drift_diffusion(x, t)
    return (g / s) ** 2
  return jnp.ones_like(s)


def _check_out(out, x, channels, what):
  expected = tuple(x.shape[:-1]) + (channels,)
  if tuple(out.shape) != expected:
    raise ValueError(f"apply_fn returned shape {tuple(out.shape)}, expected "
                     f"{expected} for {what}.")


def _check_weighting(weighting):
  if weighting not in _WEIGHTINGS:
    raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}.")


def _sample_t(rng, b, sde_like):
  return jax.random.uniform(rng, (b,), minval=sde_like.eps, maxval=sde_like.T)


# ----------------------------------------------------------------------------
# CDE.
# ----------------------------------------------------------------------------
def make_cde_loss(x_sde: sdes.SDE, apply_fn: ApplyFn, *,
                  weighting: str = "likelihood"):
  """CDE loss: DSM on x with the clean y as input.

  Args:
    x_sde: forward SDE of x (`vdm_jax.sde.SDE`).
    apply_fn: ``(params, x_in [B,...,Cx], y [B,...,Cy], t [B]) -> [B,...,Cx]``.
    weighting: 'likelihood' (g_x^2, default) or 'sigma2'.

  Returns:
    ``loss_fn(params, rng, x0, y) -> [B]`` per-example loss.
  """
  _check_weighting(weighting)

  def loss_fn(params, rng, x0, y):
    check_condition(x0, y, "x0", "y")
    kt, kz = jax.random.split(rng)
    t = _sample_t(kt, x0.shape[0], x_sde)
    x_t, z = x_sde.perturb(kz, x0, t)
    _, s = x_sde.marginal_coeffs(t)
    c_in = _checks.broadcast_to_data(_input_scale(x_sde, t), x0)
    out = apply_fn(params, c_in * x_t, y, t)
    _check_out(out, x0, x0.shape[-1], "CDE (x channels)")
    w = _weight(x_sde, x0, t, s, weighting)
    return w * jnp.mean(jnp.square(out + z), axis=tuple(range(1, x0.ndim)))

  return loss_fn


def cde_score(x_sde: sdes.SDE, apply_fn: ApplyFn, params, y):
  """Sampling-time CDE score ``score_fn(x_t, t) = out(x_t, y, t) / s_x(t)``.

  Args:
    x_sde: forward SDE of x.
    apply_fn: the CDE network.
    params: its parameters.
    y: `[B, ..., Cy]` clean condition.

  Returns:
    ``score_fn(x [B,...,Cx], t [B]) -> [B,...,Cx]``.
  """
  def score_fn(x, t):
    check_condition(x, y, "x", "y")
    _, s = x_sde.marginal_coeffs(t)
    c_in = _checks.broadcast_to_data(_input_scale(x_sde, t), x)
    out = apply_fn(params, c_in * x, y, t)
    _check_out(out, x, x.shape[-1], "CDE (x channels)")
    return out / _checks.broadcast_to_data(s, x)
  return score_fn


# ----------------------------------------------------------------------------
# CDiffE / MS-CDiffE (joint score of a MultiSpeedSDE).
# ----------------------------------------------------------------------------
def joint_score(joint: MultiSpeedSDE, apply_fn: ApplyFn, params):
  """The learned joint score ``((x_t, y_t), t) -> (s_x, s_y)`` of a diffusive estimator.

  Args:
    joint: the `MultiSpeedSDE` it was trained on.
    apply_fn: ``(params, x_in, y_in, t) -> [B,...,Cx+Cy]``.
    params: network parameters.

  Returns:
    ``score_fn((x_t, y_t), t) -> (s_x [B,...,Cx], s_y [B,...,Cy])``, usable with
    ``joint.reverse``.
  """
  def score_fn(state, t):
    x, y = state
    check_condition(x, y, "x_t", "y_t")
    cx = x.shape[-1]
    (_, sx), (_, sy) = joint.marginal_coeffs(t)
    out = apply_fn(params,
                   _checks.broadcast_to_data(_input_scale(joint.x_sde, t), x) * x,
                   _checks.broadcast_to_data(_input_scale(joint.y_sde, t), y) * y,
                   t)
    _check_out(out, x, cx + y.shape[-1], "a joint estimator (Cx + Cy channels)")
    return (out[..., :cx] / _checks.broadcast_to_data(sx, x),
            out[..., cx:] / _checks.broadcast_to_data(sy, y))
  return score_fn


def make_diffusive_loss(joint: MultiSpeedSDE, apply_fn: ApplyFn, *,
                        weighting: str = "likelihood"):
  """CDiffE / MS-CDiffE loss: joint DSM on (x, y) diffused by ``joint``.

  CDiffE is ``MultiSpeedSDE(sde, sde)``; MS-CDiffE uses a slower y SDE.

  Args:
    joint: `MultiSpeedSDE` of (x, y).
    apply_fn: ``(params, x_in, y_in, t) -> [B,...,Cx+Cy]``.
    weighting: 'likelihood' (Lambda_MLE = diag(g_x^2, g_y^2), default) or
      'sigma2'.

  Returns:
    ``loss_fn(params, rng, x0, y) -> [B]``, the mean over the Dx + Dy
    coordinates of the weighted squared errors.
  """
  _check_weighting(weighting)
  if not isinstance(joint, MultiSpeedSDE):
    raise TypeError(f"joint must be a MultiSpeedSDE, got {type(joint).__name__}.")

  def loss_fn(params, rng, x0, y):
    check_condition(x0, y, "x0", "y")
    kt, kz = jax.random.split(rng)
    t = _sample_t(kt, x0.shape[0], joint)
    (x_t, y_t), (zx, zy) = joint.perturb(kz, (x0, y), t)
    s_x, s_y = joint_score(joint, apply_fn, params)((x_t, y_t), t)
    (_, sx), (_, sy) = joint.marginal_coeffs(t)
    wx = _weight(joint.x_sde, x0, t, sx, weighting)
    wy = _weight(joint.y_sde, y, t, sy, weighting)
    ex = _checks.sum_except_batch(
        jnp.square(s_x * _checks.broadcast_to_data(sx, x0) + zx))
    ey = _checks.sum_except_batch(
        jnp.square(s_y * _checks.broadcast_to_data(sy, y) + zy))
    n = np.prod(x0.shape[1:]) + np.prod(y.shape[1:])
    return (wx * ex + wy * ey) / n

  return loss_fn


def diffusive_score(joint: MultiSpeedSDE, apply_fn: ApplyFn, params, y, rng, *,
                    y_noise: str = "fresh"):
  """Sampling-time CDiffE / MS-CDiffE score: x block of the joint score at y_t.

  .. math::

    s(x_t, t) = s_\\theta^x(x_t, y_t, t), \\qquad y_t = a_y(t) y + s_y(t) \\xi',

  with y_t following the forward process of the observed y.

  Args:
    joint: the `MultiSpeedSDE` the network was trained on.
    apply_fn: ``(params, x_in, y_in, t) -> [B,...,Cx+Cy]``.
    params: network parameters.
    y: `[B, ..., Cy]` observed (clean) condition.
    rng: PRNG key for the y_t noise.
    y_noise: 'fresh' (MSDiff default: a new xi' at every call, keyed on t's
      bits, so the sampler must pass one time for the whole batch) or 'fixed'
      (one xi' per sample path: y_t = a_y y + s_y xi' on the whole path).

  Returns:
    ``score_fn(x [B,...,Cx], t [B]) -> [B,...,Cx]``.
  """
  if y_noise not in ("fresh", "fixed"):
    raise ValueError(f"y_noise must be 'fresh' or 'fixed', got {y_noise!r}.")
  y = jnp.asarray(y)
  fixed = jax.random.normal(rng, y.shape, y.dtype)
  joint_fn = joint_score(joint, apply_fn, params)

  def score_fn(x, t):
    check_condition(x, y, "x", "y")
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
    if y_noise == "fresh":
      key = jax.random.fold_in(rng, jax.lax.bitcast_convert_type(t[0], jnp.int32))
      xi = jax.random.normal(key, y.shape, y.dtype)
    else:
      xi = fixed
    mean, std = joint.y_sde.marginal(y, t)
    y_t = mean + _checks.broadcast_to_data(std, y) * xi
    return joint_fn((x, y_t), t)[0]

  return score_fn


# ----------------------------------------------------------------------------
# One entry point for drivers.
# ----------------------------------------------------------------------------
class Estimator(NamedTuple):
  """A conditional estimator bundle.

  Attributes:
    name: 'cde', 'cdiffe' or 'ms_cdiffe'.
    x_sde: the forward SDE of x (used by the sampler).
    joint: the `MultiSpeedSDE` (None for CDE).
    out_channels: ``(Cx, Cy) -> C_out`` of the network.
    loss_fn: ``(params, rng, x0, y) -> [B]``.
    score_fn: ``(params, y, rng) -> score_fn(x, t)`` at sampling time.
  """
  name: str
  x_sde: sdes.SDE
  joint: MultiSpeedSDE | None
  out_channels: Callable[[int, int], int]
  loss_fn: Callable
  score_fn: Callable


def make_estimator(name: str, x_sde: sdes.SDE, apply_fn: ApplyFn, *,
                   y_sde: sdes.SDE | None = None, weighting: str = "likelihood",
                   y_noise: str = "fresh",
                   allow_faster_y: bool = False) -> Estimator:
  """Builds CDE, CDiffE or MS-CDiffE on one network family.

  Args:
    name: 'cde', 'cdiffe' or 'ms_cdiffe'.
    x_sde: SDE of x.
    apply_fn: ``(params, x_in, y_in, t) -> out``.
    y_sde: SDE of y, required for 'ms_cdiffe' (must not be faster than x's);
      'cdiffe' uses x_sde; 'cde' ignores it.
    weighting: 'likelihood' or 'sigma2'.
    y_noise: see `diffusive_score`.
    allow_faster_y: passed to `MultiSpeedSDE` for 'ms_cdiffe' (by default a
      y SDE faster than x's raises ValueError).

  Returns:
    An `Estimator`.
  """
  if name == "cde":
    return Estimator(
        name, x_sde, None, lambda cx, cy: cx,
        make_cde_loss(x_sde, apply_fn, weighting=weighting),
        lambda params, y, rng=None: cde_score(x_sde, apply_fn, params, y))
  if name == "cdiffe":
    joint = MultiSpeedSDE(x_sde, x_sde)
  elif name == "ms_cdiffe":
    if y_sde is None:
      raise ValueError("ms_cdiffe needs y_sde (a slower SDE for y).")
    joint = MultiSpeedSDE(x_sde, y_sde, allow_faster_y=allow_faster_y)
  else:
    raise ValueError(f"unknown estimator {name!r}; choose one of {ESTIMATORS}.")
  return Estimator(
      name, x_sde, joint, lambda cx, cy: cx + cy,
      make_diffusive_loss(joint, apply_fn, weighting=weighting),
      lambda params, y, rng: diffusive_score(joint, apply_fn, params, y, rng,
                                             y_noise=y_noise))
