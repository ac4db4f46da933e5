"""Score-based pullback Riemannian geometry of a deformed Gaussian, in closed form.

The density class is a strongly log-concave density deformed by a diffeomorphism,

.. math::

  p(x) \\propto \\exp(-\\psi(\\varphi(x))), \\qquad
  \\psi(z) = \\tfrac12 (z - m)^\\top A^{-1} (z - m), \\quad A = \\mathrm{diag}(a),

and the manifold is R^D with the Euclidean pullback metric through the
"pseudo score" :math:`\\Phi = \\nabla\\psi \\circ \\varphi = A^{-1}(\\varphi - m)`:

.. math::

  G(x) = D\\varphi(x)^\\top A^{-2} D\\varphi(x).

Because Phi differs from phi by an affine map, A and m cancel from everything
but the metric and the distance:

* geodesic  :math:`\\gamma_{x,y}(t) = \\varphi^{-1}((1-t)\\varphi(x) + t\\varphi(y))`
* exp       :math:`\\exp_x \\xi = \\varphi^{-1}(\\varphi(x) + D\\varphi_x \\xi)`
* log       :math:`\\log_x y = D\\varphi^{-1}_{\\varphi(x)}[\\varphi(y) - \\varphi(x)]`
* distance  :math:`d(x, y) = \\|A^{-1}(\\varphi(x) - \\varphi(y))\\|_2`
* transport :math:`P_{x \\to y} = D\\varphi^{-1}_{\\varphi(y)} \\circ D\\varphi_x`
* barycentre :math:`\\varphi^{-1}(\\tfrac1N \\sum_i \\varphi(x_i))`.

Conventions. ``phi`` and ``phi_inv`` are pure, jittable maps of ONE point,
``[D] -> [D]`` (`vdm_jax.geometry.flows.flow_maps` builds them from a trained
flow). Every public function accepts points of shape ``[D]`` or a batch
``[B, D]`` (mapped with `jax.vmap`). ``diag_a`` is the diagonal of A, ``[D]``,
strictly positive. Functions are pure: wrap them in `functools.partial` over
``phi``/``phi_inv`` and `jax.jit` / `jax.vmap` freely.

References:
  Diepeveen, Batzolis, Shumaylov, Schoenlieb. Score-based pullback Riemannian
  geometry. https://arxiv.org/abs/2410.01950, 2024 (Prop. 1 and Sec. 3-4).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks

PointMap = Callable[[jax.Array], jax.Array]


# ----------------------------------------------------------------------------
# Boundary checks.
# ----------------------------------------------------------------------------
def check_diag_a(diag_a, dim: int | None = None, name: str = "diag_a"):
  """Checks that the diagonal of A is a floating ``[D]`` vector with a_i > 0.

  The positivity check runs whenever the values are concrete (eager calls, or
  arrays closed over by a jitted function); traced values are only checked for
  shape and dtype.

  Args:
    diag_a: the diagonal of A, ``[D]``.
    dim: the expected D, or None to skip the length check.
    name: the argument's name for the error message.

  Returns:
    ``diag_a`` as a jax array.
  """
  diag_a = jnp.asarray(diag_a)
  _checks.check_floating(diag_a, name)
  _checks.check_rank(diag_a, 1, name)
  if dim is not None and diag_a.shape[0] != dim:
    raise ValueError(
        f"{name} must have shape [D] = [{dim}] to match the points, got "
        f"shape {diag_a.shape}.")
  if not isinstance(diag_a, jax.core.Tracer):
    values = np.asarray(diag_a)
    if not np.all(values > 0) or not np.all(np.isfinite(values)):
      raise ValueError(
          f"{name} (the diagonal of A, the latent variances) must be finite "
          f"and strictly positive, got min {values.min()!r} "
          f"(values {values.tolist()[:8]}{' ...' if values.size > 8 else ''}).")
  return diag_a


def _check_points(x, name: str, dim: int | None = None):
  x = jnp.asarray(x)
  _checks.check_floating(x, name)
  _checks.check_rank(x, (1, 2), name)
  if dim is not None and x.shape[-1] != dim:
    raise ValueError(
        f"{name} must have last dimension D = {dim}, got shape {x.shape}.")
  return x


def _check_map(fn: PointMap, x, name: str):
  """Checks statically that ``fn`` maps one ``[D]`` point to a ``[D]`` point."""
  point = jax.ShapeDtypeStruct(x.shape[-1:], x.dtype)
  try:
    out = jax.eval_shape(fn, point)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f"{name} must map one point of shape {point.shape} to a point of the "
        f"same shape; calling it on a {point.shape} input failed with: {e}"
    ) from e
  if not hasattr(out, "shape") or out.shape != point.shape:
    raise ValueError(
        f"{name} must map one point of shape {point.shape} to a point of the "
        f"same shape, got output {getattr(out, 'shape', type(out))}.")


def _pointwise(fn, *arrays):
  """Applies a per-point ``fn`` to ``[D]`` arrays, or vmaps it over ``[B, D]``."""
  if arrays[0].ndim == 1:
    return fn(*arrays)
  return jax.vmap(fn)(*arrays)


def _check_pair(x, y, name_x="x", name_y="y"):
  x = _check_points(x, name_x)
  y = _check_points(y, name_y)
  _checks.check_same_shape(x, y, name_x, name_y)
  return x, y


# ----------------------------------------------------------------------------
# The metric.
# ----------------------------------------------------------------------------
def pseudo_score(phi: PointMap, x, *, diag_a, offset=None):
  """The map Phi(x) = A^{-1}(phi(x) - m) whose Euclidean pullback is the metric.

  .. math::

    \\Phi(x) = \\nabla\\psi(\\varphi(x)) = A^{-1}(\\varphi(x) - m), \\qquad
    \\nabla \\log p(x) = -D\\varphi(x)^\\top \\Phi(x).

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    x: points, ``[D]`` or ``[B, D]``.
    diag_a: diagonal of A, ``[D]``, positive.
    offset: the latent mean m, ``[D]``, or None for 0.

  Returns:
    Phi(x), same shape as ``x``.
  """
  x = _check_points(x, "x")
  diag_a = check_diag_a(diag_a, x.shape[-1])
  _check_map(phi, x, "phi")
  m = jnp.zeros_like(diag_a) if offset is None else jnp.asarray(offset)
  _checks.check_same_shape(m, diag_a, "offset", "diag_a")
  return _pointwise(lambda p: (phi(p) - m) / diag_a, x)


def score(phi: PointMap, x, *, diag_a, offset=None):
  """The score of p(x) ∝ exp(-psi(phi(x))): -Dphi(x)^T A^{-1}(phi(x) - m).

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    x: points, ``[D]`` or ``[B, D]``.
    diag_a: diagonal of A, ``[D]``, positive.
    offset: the latent mean m, ``[D]``, or None for 0.

  Returns:
    grad_x log p(x), same shape as ``x``.
  """
  x = _check_points(x, "x")
  diag_a = check_diag_a(diag_a, x.shape[-1])
  _check_map(phi, x, "phi")
  m = jnp.zeros_like(diag_a) if offset is None else jnp.asarray(offset)

  def one(p):
    z, vjp = jax.vjp(phi, p)
    return -vjp((z - m) / diag_a)[0]

  return _pointwise(one, x)


def metric_tensor(phi: PointMap, x, *, diag_a):
  """The pullback metric G(x) = Dphi(x)^T A^{-2} Dphi(x).

  This is the Euclidean pullback through Phi = grad psi ∘ phi (the paper's
  score-based construction), so the psi-dependent scaling is A^{-2}, not the
  A^{-1} of the Fisher-like form and not the identity of the plain phi-pullback.

  .. math::

    g_x(\\xi, \\eta) = \\langle A^{-1} D\\varphi_x \\xi,\\;
                                 A^{-1} D\\varphi_x \\eta \\rangle.

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    x: points, ``[D]`` or ``[B, D]``.
    diag_a: diagonal of A, ``[D]``, positive.

  Returns:
    G(x), ``[D, D]`` or ``[B, D, D]``, symmetric positive definite.
  """
  x = _check_points(x, "x")
  diag_a = check_diag_a(diag_a, x.shape[-1])
  _check_map(phi, x, "phi")

  def one(p):
    jac = jax.jacfwd(phi)(p) / diag_a[:, None]
    return jac.T @ jac

  return _pointwise(one, x)


def inner(phi: PointMap, x, xi, eta, *, diag_a):
  """The metric g_x(xi, eta) = <A^{-1} Dphi_x xi, A^{-1} Dphi_x eta>.

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    x: base points, ``[D]`` or ``[B, D]``.
    xi: tangent vectors at ``x``, same shape as ``x``.
    eta: tangent vectors at ``x``, same shape as ``x``.
    diag_a: diagonal of A, ``[D]``, positive.

  Returns:
    The inner products, ``[]`` or ``[B]``.
  """
  x, xi = _check_pair(x, xi, "x", "xi")
  _, eta = _check_pair(x, eta, "x", "eta")
  diag_a = check_diag_a(diag_a, x.shape[-1])
  _check_map(phi, x, "phi")

  def one(p, u, v):
    _, ju = jax.jvp(phi, (p,), (u,))
    _, jv = jax.jvp(phi, (p,), (v,))
    return jnp.sum(ju * jv / diag_a**2)

  return _pointwise(one, x, xi, eta)


def distance(phi: PointMap, x, y, *, diag_a):
  """The geodesic distance d(x, y) = ||A^{-1}(phi(x) - phi(y))||_2.

  For an affine phi(x) = W(x - mu) this is ||A^{-1} W (x - y)||; if W is
  orthogonal it is ||Sigma^{-1}(x - y)|| with Sigma = W^T A W the data
  covariance (a Mahalanobis-type distance with the precision, not its root).

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    x: points, ``[D]`` or ``[B, D]``.
    y: points, same shape as ``x``.
    diag_a: diagonal of A, ``[D]``, positive.

  Returns:
    Distances, ``[]`` or ``[B]``.
  """
  x, y = _check_pair(x, y)
  diag_a = check_diag_a(diag_a, x.shape[-1])
  _check_map(phi, x, "phi")
  return _pointwise(
      lambda p, q: jnp.linalg.norm((phi(p) - phi(q)) / diag_a), x, y)


# ----------------------------------------------------------------------------
# Manifold maps (A and m cancel).
# ----------------------------------------------------------------------------
def _check_times(t):
  t = jnp.asarray(t)
  _checks.check_floating(t, "t")
  _checks.check_rank(t, (0, 1), "t")
  return t


def geodesic(phi: PointMap, phi_inv: PointMap, x, y, t):
  """The closed-form geodesic gamma(t) = phi^{-1}((1 - t) phi(x) + t phi(y)).

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    x: start points, ``[D]`` or ``[B, D]``.
    y: end points, same shape as ``x``.
    t: times, a scalar or ``[T]`` (usually in [0, 1]).

  Returns:
    gamma(t): ``x.shape`` for scalar t, else ``[T, D]`` or ``[B, T, D]``.
  """
  x, y = _check_pair(x, y)
  t = _check_times(t)
  _check_map(phi, x, "phi")
  _check_map(phi_inv, x, "phi_inv")

  def one(p, q):
    zp, zq = phi(p), phi(q)
    path = lambda s: phi_inv((1.0 - s) * zp + s * zq)
    return path(t) if t.ndim == 0 else jax.vmap(path)(t)

  return _pointwise(one, x, y)


def geodesic_velocity(phi: PointMap, phi_inv: PointMap, x, y, t):
  """The velocity gamma'(t) = Dphi^{-1}_{z(t)}[phi(y) - phi(x)], z(t) linear.

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    x: start points, ``[D]`` or ``[B, D]``.
    y: end points, same shape as ``x``.
    t: times, a scalar or ``[T]``.

  Returns:
    gamma'(t), same shape as `geodesic`'s output.
  """
  x, y = _check_pair(x, y)
  t = _check_times(t)
  _check_map(phi, x, "phi")
  _check_map(phi_inv, x, "phi_inv")

  def one(p, q):
    zp, zq = phi(p), phi(q)
    vel = lambda s: jax.jvp(phi_inv, ((1.0 - s) * zp + s * zq,), (zq - zp,))[1]
    return vel(t) if t.ndim == 0 else jax.vmap(vel)(t)

  return _pointwise(one, x, y)


def exp_map(phi: PointMap, phi_inv: PointMap, x, xi):
  """The exponential map exp_x(xi) = phi^{-1}(phi(x) + Dphi_x xi).

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    x: base points, ``[D]`` or ``[B, D]``.
    xi: tangent vectors at ``x``, same shape.

  Returns:
    Points, same shape as ``x``.
  """
  x, xi = _check_pair(x, xi, "x", "xi")
  _check_map(phi, x, "phi")
  _check_map(phi_inv, x, "phi_inv")

  def one(p, v):
    z, dz = jax.jvp(phi, (p,), (v,))
    return phi_inv(z + dz)

  return _pointwise(one, x, xi)


def log_map(phi: PointMap, phi_inv: PointMap, x, y):
  """The logarithm log_x(y) = Dphi^{-1}_{phi(x)}[phi(y) - phi(x)].

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    x: base points, ``[D]`` or ``[B, D]``.
    y: target points, same shape.

  Returns:
    Tangent vectors at ``x``, same shape as ``x``; g-norm equals d(x, y).
  """
  x, y = _check_pair(x, y)
  _check_map(phi, x, "phi")
  _check_map(phi_inv, x, "phi_inv")

  def one(p, q):
    zp = phi(p)
    return jax.jvp(phi_inv, (zp,), (phi(q) - zp,))[1]

  return _pointwise(one, x, y)


def parallel_transport(phi: PointMap, phi_inv: PointMap, x, y, xi):
  """Parallel transport along the geodesic: Dphi^{-1}_{phi(y)}[Dphi_x xi].

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    x: start points, ``[D]`` or ``[B, D]``.
    y: end points, same shape.
    xi: tangent vectors at ``x``, same shape.

  Returns:
    Tangent vectors at ``y``, same shape as ``x``.
  """
  x, y = _check_pair(x, y)
  _, xi = _check_pair(x, xi, "x", "xi")
  _check_map(phi, x, "phi")
  _check_map(phi_inv, x, "phi_inv")

  def one(p, q, v):
    dz = jax.jvp(phi, (p,), (v,))[1]
    return jax.jvp(phi_inv, (phi(q),), (dz,))[1]

  return _pointwise(one, x, y, xi)


def barycentre(phi: PointMap, phi_inv: PointMap, points, weights=None):
  """The Riemannian barycentre phi^{-1}(sum_i w_i phi(x_i)).

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    points: ``[N, D]``.
    weights: ``[N]`` non-negative weights summing to one, or None for 1/N.

  Returns:
    The barycentre, ``[D]``.
  """
  points = _check_points(points, "points")
  _checks.check_rank(points, 2, "points")
  _check_map(phi, points, "phi")
  _check_map(phi_inv, points, "phi_inv")
  z = jax.vmap(phi)(points)
  if weights is None:
    return phi_inv(jnp.mean(z, axis=0))
  weights = jnp.asarray(weights)
  _checks.check_rank(weights, 1, "weights")
  if weights.shape[0] != points.shape[0]:
    raise ValueError(
        f"weights must have shape [N] = [{points.shape[0]}], got "
        f"{weights.shape}.")
  return phi_inv(weights @ z)


def interpolate(phi: PointMap, phi_inv: PointMap, knots, t):
  """Geodesic interpolation through many points (a piecewise geodesic).

  The knots x_0..x_{N-1} are placed at times s_i = i/(N-1); on [s_i, s_{i+1}]
  the curve is the geodesic from x_i to x_{i+1}, i.e. the piecewise-linear
  interpolant in phi-coordinates mapped back by phi^{-1}.

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    knots: ``[N, D]`` with N >= 2.
    t: ``[T]`` times in [0, 1] (clipped).

  Returns:
    ``[T, D]`` points on the piecewise geodesic.
  """
  knots = _check_points(knots, "knots")
  _checks.check_rank(knots, 2, "knots")
  if knots.shape[0] < 2:
    raise ValueError(f"knots must hold N >= 2 points, got shape {knots.shape}.")
  t = _check_times(t)
  _checks.check_rank(t, 1, "t")
  _check_map(phi, knots, "phi")
  _check_map(phi_inv, knots, "phi_inv")
  z = jax.vmap(phi)(knots)
  n = knots.shape[0] - 1
  s = jnp.clip(t, 0.0, 1.0) * n
  i = jnp.clip(jnp.floor(s).astype(jnp.int32), 0, n - 1)
  w = (s - i)[:, None]
  return jax.vmap(phi_inv)((1.0 - w) * z[i] + w * z[i + 1])


def _segment_quadrature(phi, curve, diag_a, num_quadrature):
  """Per-segment ||A^{-1} Dphi(gamma_i + s Delta_i) Delta_i||^2 at Gauss nodes."""
  nodes, weights = np.polynomial.legendre.leggauss(num_quadrature)
  nodes = jnp.asarray(0.5 * (nodes + 1.0), curve.dtype)
  weights = jnp.asarray(0.5 * weights, curve.dtype)
  delta = curve[1:] - curve[:-1]
  pts = curve[:-1, None, :] + nodes[None, :, None] * delta[:, None, :]
  dirs = jnp.broadcast_to(delta[:, None, :], pts.shape)
  jd = jax.vmap(jax.vmap(lambda p, v: jax.jvp(phi, (p,), (v,))[1]))(pts, dirs)
  return jnp.sum((jd / diag_a) ** 2, axis=-1), weights  # [N, Q], [Q]


def curve_energy(phi: PointMap, curve, *, diag_a, num_quadrature: int = 3):
  """Riemannian energy of the piecewise-linear curve through ``curve``.

  The curve is taken at uniform times in [0, 1]; each straight segment's
  energy is integrated with ``num_quadrature`` Gauss-Legendre nodes:

  .. math::

    E(\\gamma) \\approx N \\sum_{i=0}^{N-1} \\sum_q w_q\\,
    \\Delta_i^\\top G(\\gamma_i + s_q \\Delta_i) \\Delta_i, \\qquad
    \\Delta_i = \\gamma_{i+1} - \\gamma_i,

  with N the number of segments. For a geodesic E = d(x, y)^2, and every other
  curve between the same end points has E >= d(x, y)^2. A single midpoint node
  is not enough for energy *minimisation*: an optimiser can then hide a long
  jump in a segment whose midpoint Jacobian happens to be small.

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    curve: ``[N + 1, D]`` points, end points included.
    diag_a: diagonal of A, ``[D]``, positive.
    num_quadrature: Gauss-Legendre nodes per segment (static, >= 1).

  Returns:
    The energy, a scalar.
  """
  curve = _check_points(curve, "curve")
  _checks.check_rank(curve, 2, "curve")
  diag_a = check_diag_a(diag_a, curve.shape[-1])
  _check_map(phi, curve, "phi")
  sq, w = _segment_quadrature(phi, curve, diag_a, num_quadrature)
  return (curve.shape[0] - 1) * jnp.sum(sq @ w)


def curve_length(phi: PointMap, curve, *, diag_a, num_quadrature: int = 3):
  """Riemannian length of the piecewise-linear curve through ``curve``.

  .. math::

    L(\\gamma) \\approx \\sum_i \\sum_q w_q\\,
    \\|A^{-1} D\\varphi(\\gamma_i + s_q \\Delta_i) \\Delta_i\\|.

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    curve: ``[N + 1, D]`` points, end points included.
    diag_a: diagonal of A, ``[D]``, positive.
    num_quadrature: Gauss-Legendre nodes per segment (static, >= 1).

  Returns:
    The length, a scalar (equals `distance` for a geodesic).
  """
  curve = _check_points(curve, "curve")
  _checks.check_rank(curve, 2, "curve")
  diag_a = check_diag_a(diag_a, curve.shape[-1])
  _check_map(phi, curve, "phi")
  sq, w = _segment_quadrature(phi, curve, diag_a, num_quadrature)
  return jnp.sum(jnp.sqrt(sq) @ w)


def shoot_geodesic(phi: PointMap, x, v, *, diag_a, num_steps: int = 200):
  """Numerical geodesic by integrating the geodesic ODE of G (RK4 shooting).

  Independent of the closed form: it only uses the metric tensor G(x) =
  Dphi^T A^{-2} Dphi and its derivatives (by autodiff), and solves

  .. math::

    \\ddot x^k = -\\Gamma^k_{ij}(x)\\, \\dot x^i \\dot x^j, \\qquad
    \\Gamma^k_{ij} = \\tfrac12 G^{kl}(\\partial_i G_{lj} + \\partial_j G_{li}
                                       - \\partial_l G_{ij}),

  from x(0) = x, x'(0) = v over t in [0, 1] with fixed-step RK4. For v =
  log_x(y) it should end at y and trace `geodesic`.

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    x: the start point, ``[D]``.
    v: the initial velocity, ``[D]``.
    diag_a: diagonal of A, ``[D]``, positive.
    num_steps: RK4 steps on [0, 1] (static).

  Returns:
    ``[num_steps + 1, D]`` points at t = i / num_steps.
  """
  x, v = _check_pair(x, v, "x", "v")
  _checks.check_rank(x, 1, "x")
  diag_a = check_diag_a(diag_a, x.shape[-1])
  _check_map(phi, x, "phi")

  def metric(p):
    jac = jax.jacfwd(phi)(p) / diag_a[:, None]
    return jac.T @ jac

  def accel(p, u):
    g = metric(p)
    dg = jax.jacfwd(metric)(p)  # dg[l, j, i] = d_i G_lj
    first = jnp.einsum("lji,i,j->l", dg, u, u)
    second = 0.5 * jnp.einsum("ijl,i,j->l", dg, u, u)
    return -jnp.linalg.solve(g, first - second)

  def rhs(state):
    p, u = state
    return u, accel(p, u)

  h = 1.0 / num_steps

  def step(state, _):
    def add(s, k, c):
      return jax.tree.map(lambda a, b: a + c * b, s, k)
    k1 = rhs(state)
    k2 = rhs(add(state, k1, h / 2))
    k3 = rhs(add(state, k2, h / 2))
    k4 = rhs(add(state, k3, h))
    new = jax.tree.map(lambda s, a, b, c, d: s + h / 6 * (a + 2 * b + 2 * c + d),
                       state, k1, k2, k3, k4)
    return new, new[0]

  _, path = jax.lax.scan(step, (x, v), None, length=num_steps)
  return jnp.concatenate([x[None], path])
