"""Affine coupling maths shared by every flow in the library (pure functions).

An affine coupling layer (Dinh et al. 2016, eqs. 4-6) splits its input
``x = (x_a, x_b)``, computes a shift ``t`` and a log-scale ``log s`` from
``x_a`` alone, and maps

.. math::

  y_a = x_a, \\qquad y_b = x_b \\odot e^{\\log s(x_a)} + t(x_a),

  x_b = (y_b - t(y_a)) \\odot e^{-\\log s(y_a)}, \\qquad
  \\log\\left|\\det \\frac{\\partial y}{\\partial x}\\right|
  = \\textstyle\\sum_j \\log s_j(x_a).

The Jacobian is triangular with diagonal ``(1, s)``, hence the log-det. This
module holds only the elementwise part acting on ``x_b`` (and the scale maps);
how ``x`` is split and how ``(t, log s)`` is computed is the caller's:

* `vdm_jax.flows.AffineCoupling` (channel split of NHWC images),
* `vdm_jax.flows.Split` and `vdm_jax.caflow.ConditionalAffine`, whose
  ``eps = (x - mu) e^{-log sigma}`` is the inverse map with ``t = mu``,
  ``log s = log sigma``,
* `vdm_jax.geometry.flows.AffineCoupling` (binary masks on vectors).

References:
  Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP.
  https://arxiv.org/abs/1605.08803, 2016 (Sec. 3.3, eqs. 4-6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "affine_coupling",
    "elementwise_affine",
    "offset_sigmoid_log_scale",
    "sigmoid_log_scale",
    "tanh_log_scale",
]


def elementwise_affine(x, shift, log_scale, inverse: bool = False):
  """The elementwise affine map of a coupling layer and its inverse.

  .. math::

    y = x \\odot e^{\\log s} + t \\quad (\\text{forward}), \\qquad
    x = (y - t) \\odot e^{-\\log s} \\quad (\\text{inverse}).

  Args:
    x: array (``x_b`` forward, ``y_b`` inverse).
    shift: t, broadcastable to ``x``.
    log_scale: log s, broadcastable to ``x``.
    inverse: apply the inverse map.

  Returns:
    Array of ``x``'s shape.
  """
  if inverse:
    return (x - shift) * jnp.exp(-log_scale)
  return x * jnp.exp(log_scale) + shift


def affine_coupling(x_b, shift, log_scale, inverse: bool = False, *,
                    event_ndim: int | None = None):
  """`elementwise_affine` and the log-determinant of the map applied.

  Dinh et al. (2016), eqs. 4-6:

  .. math::

    y_b = x_b \\odot e^{\\log s} + t, \\qquad
    \\log|\\det \\partial y_b / \\partial x_b| = \\textstyle\\sum \\log s;

  with ``inverse=True`` it returns :math:`x_b = (y_b - t) \\odot e^{-\\log s}`
  and :math:`\\log|\\det \\partial x_b/\\partial y_b| = -\\sum \\log s`.

  Args:
    x_b: ``[B, ...]`` transformed part (``y_b`` when ``inverse``).
    shift: t, same shape as ``x_b``.
    log_scale: log s, same shape as ``x_b``.
    inverse: apply the inverse map.
    event_ndim: number of trailing axes summed in the log-det (keyword-only);
      None (default) sums every axis but the first, giving ``[B]``.

  Returns:
    ``(y_b, logdet)``.
  """
  y = elementwise_affine(x_b, shift, log_scale, inverse)
  ndim = jnp.ndim(log_scale)
  start = 1 if event_ndim is None else ndim - event_ndim
  logdet = jnp.sum(log_scale, axis=tuple(range(start, ndim)))
  return y, (-logdet if inverse else logdet)


def tanh_log_scale(h, bound):
  """Bounded log-scale :math:`\\log s = c \\tanh(h / c)`, in ``(-c, c)``.

  Zero at ``h = 0`` (a zero-initialised conditioner starts at the identity)
  and slope 1 there; ``c = bound`` caps how much one layer can expand or
  contract (a deviation from Dinh et al., who use ``tanh`` times a learned
  scale).
  """
  return bound * jnp.tanh(h / bound)


def sigmoid_log_scale(h):
  """:math:`\\log s` for :math:`s = 2\\,\\sigma(h) \\in (0, 2)`; s = 1 at h = 0."""
  return jnp.log(2.0) + jax.nn.log_sigmoid(h)


def offset_sigmoid_log_scale(h, offset: float = 2.0, floor: float = 1e-3):
  """:math:`\\log s` for :math:`s = \\sigma(h + \\text{offset}) + \\text{floor}`.

  With the defaults ``s`` lies in (0.001, 1.001): every layer contracts
  (the scale map of the pullback-geometry flows' reference code).
  """
  return jnp.log(jax.nn.sigmoid(h + offset) + floor)
