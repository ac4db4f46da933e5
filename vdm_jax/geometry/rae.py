"""The Riemannian autoencoder (RAE) of a deformed Gaussian: dimension, chart, bound.

Given p(x) ∝ exp(-psi(phi(x))) with psi(z) = 1/2 (z - m)^T A^{-1} (z - m), the
latent variances a_i say which axes of phi carry the data. Sort them
decreasingly, a_(1) >= ... >= a_(D), and keep the fewest that leave at most a
fraction epsilon of the total variance behind (the paper's epsilon rule):

.. math::

  d_\\epsilon = \\min\\{k \\in \\{1..D-1\\} :
      \\textstyle\\sum_{j > k} a_{(j)} \\le \\epsilon \\sum_j a_j\\}
  \\quad (d_\\epsilon = D \\text{ if no such } k),

  E_\\epsilon(x) = (\\varphi(x)_{i_1}, ..., \\varphi(x)_{i_{d_\\epsilon}}), \\qquad
  D_\\epsilon(p) = \\varphi^{-1}(m + \\textstyle\\sum_k (p_k - m_{i_k}) e_{i_k}).

The dropped coordinates are set to the latent mean m (0 in the paper's code,
where m = 0). Error bound: if phi^{-1} is L-Lipschitz and phi(x) ~ N(m, A),

.. math::

  \\mathbb{E}\\|x - D_\\epsilon(E_\\epsilon(x))\\|^2 \\le
  L^2 \\textstyle\\sum_{j > d_\\epsilon} a_{(j)} \\le L^2 \\epsilon \\sum_j a_j,

with equality at L = 1 for an isometric (e.g. orthogonal affine) phi, where
the RAE is exactly PCA. Pointwise, ||x - D(E(x))|| <= L_x ||(I - P)(phi(x) - m)||
with L_x the largest singular value of Dphi^{-1} on the segment from
phi(x) to its projection; `pointwise_bound` estimates it on a grid. The paper's
Theorem 1 states the bound under its own assumptions and constants; the form
above is the one it must reduce to (exact, with L = 1, for an isometric phi)
and is what we test.

References:
  Diepeveen, Batzolis, Shumaylov, Schoenlieb. Score-based pullback Riemannian
  geometry. https://arxiv.org/abs/2410.01950, 2024 (Sec. 5, Theorem 1).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax.geometry import pullback


class RiemannianAutoencoder(NamedTuple):
  """A built RAE: a global chart onto the d_eps most-varying latent axes.

  Attributes:
    encode: ``[D]`` or ``[B, D]`` points -> ``[d]`` or ``[B, d]`` codes.
    decode: ``[d]`` or ``[B, d]`` codes -> ``[D]`` or ``[B, D]`` points.
    kept: the kept latent axes i_1..i_d (decreasing variance), int ``[d]``.
    dim: d_eps.
    epsilon_eff: the achieved fraction sum_{dropped} a / sum a.
    discarded_variance: sum of the dropped a_i (the bound at L = 1).
  """
  encode: Callable[[jax.Array], jax.Array]
  decode: Callable[[jax.Array], jax.Array]
  kept: np.ndarray
  dim: int
  epsilon_eff: float
  discarded_variance: float


def _concrete_a(diag_a) -> np.ndarray:
  if isinstance(diag_a, jax.core.Tracer):
    raise ValueError(
        "diag_a must be concrete to choose the RAE dimension (the code size "
        "is static); call make_rae outside jit.")
  pullback.check_diag_a(diag_a)
  return np.asarray(diag_a, np.float64)


def choose_dimension(diag_a, *, epsilon: float):
  """The epsilon rule: the fewest top-variance axes leaving <= eps of sum a.

  Args:
    diag_a: the latent variances a, ``[D]``, positive (concrete).
    epsilon: the discarded-variance budget, in [0, 1).

  Returns:
    ``(dim, order, epsilon_eff)``: d_eps (int), all axes by decreasing a
    (int ``[D]``) and the achieved fraction of discarded variance.
  """
  if not 0.0 <= epsilon < 1.0:
    raise ValueError(f"epsilon must be in [0, 1), got {epsilon!r}.")
  a = _concrete_a(diag_a)
  order = np.argsort(-a, kind="stable")
  sorted_a = a[order]
  total = sorted_a.sum()
  # tail[k] = sum_{j > k} a_(j) for k = 1..D (1-based k, tail[D] = 0).
  tail = total - np.cumsum(sorted_a)
  ok = np.nonzero(tail[:-1] <= epsilon * total)[0]
  dim = int(ok[0]) + 1 if ok.size else a.size
  return dim, order, float(tail[dim - 1] / total)


def choose_dimension_by_gap(diag_a):
  """A scale-free companion to the epsilon rule: the largest gap in log a.

  .. math::

    d_{gap} = \\arg\\max_{k \\in \\{1..D-1\\}}
        \\big(\\log a_{(k)} - \\log a_{(k+1)}\\big).

  This is not the paper's rule (that is `choose_dimension`); it is the
  spectral-gap reading of the same variances (as in ID-diff's singular-value
  gap) and counts the "non-vanishing" a_i the paper reports for
  Hemisphere(5, 20), where the epsilon rule must drop small on-manifold
  variances because they are below eps of the total.

  Args:
    diag_a: the latent variances a, ``[D]`` with D >= 2, positive (concrete).

  Returns:
    ``(dim, gap)``: d_gap (int) and the log-ratio at the gap (nats).
  """
  a = _concrete_a(diag_a)
  if a.size < 2:
    raise ValueError(f"diag_a needs D >= 2 entries for a gap, got {a.size}.")
  log_a = np.log(np.sort(a)[::-1])
  gaps = log_a[:-1] - log_a[1:]
  k = int(np.argmax(gaps))
  return k + 1, float(gaps[k])


def make_rae(phi, phi_inv, diag_a, *, epsilon: float,
             offset=None) -> RiemannianAutoencoder:
  """Builds the Riemannian autoencoder of N(phi(x); m, diag(a)).

  Args:
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    diag_a: the latent variances a, ``[D]``, positive (concrete).
    epsilon: the discarded-variance budget of the epsilon rule, in [0, 1).
    offset: the latent mean m, ``[D]``, or None for 0.

  Returns:
    A `RiemannianAutoencoder` whose encode/decode are pure and jittable.
  """
  dim, order, eps_eff = choose_dimension(diag_a, epsilon=epsilon)
  a = _concrete_a(diag_a)
  d_full = a.size
  kept = order[:dim]
  m = jnp.zeros((d_full,), jnp.float32) if offset is None else jnp.asarray(
      offset)
  if m.shape != (d_full,):
    raise ValueError(f"offset must have shape [D] = [{d_full}], got {m.shape}.")
  kept_j = jnp.asarray(kept)

  def encode(x):
    x = pullback._check_points(x, "x", d_full)  # pylint: disable=protected-access
    z = jax.vmap(phi)(x.reshape(-1, d_full))
    return z[:, kept_j].reshape(x.shape[:-1] + (dim,))

  def decode(codes):
    codes = jnp.asarray(codes)
    _checks.check_floating(codes, "codes")
    _checks.check_rank(codes, (1, 2), "codes")
    if codes.shape[-1] != dim:
      raise ValueError(
          f"codes must have last dimension d = {dim} (the RAE dimension), got "
          f"shape {codes.shape}.")
    flat = codes.reshape(-1, dim)
    z = jnp.broadcast_to(m, (flat.shape[0], d_full)).at[:, kept_j].set(flat)
    return jax.vmap(phi_inv)(z).reshape(codes.shape[:-1] + (d_full,))

  discarded = float(a[order[dim:]].sum())
  return RiemannianAutoencoder(encode, decode, kept, dim, eps_eff, discarded)


def reconstruction_errors(rae: RiemannianAutoencoder, x):
  """Per-example squared reconstruction errors ||x - D(E(x))||^2.

  Args:
    rae: a `RiemannianAutoencoder`.
    x: ``[B, D]`` points.

  Returns:
    ``[B]`` squared errors (data units squared).
  """
  x = jnp.asarray(x)
  _checks.check_rank(x, 2, "x")
  return jnp.sum((x - rae.decode(rae.encode(x))) ** 2, axis=-1)


def error_bound(rae: RiemannianAutoencoder, *, lipschitz: float = 1.0):
  """The expected-error bound L^2 sum_{dropped} a_i (<= L^2 eps sum a).

  Args:
    rae: a `RiemannianAutoencoder`.
    lipschitz: L, a Lipschitz constant of phi^{-1} (1 for an isometry).

  Returns:
    The bound on E||x - D(E(x))||^2 under the model, a float.
  """
  if lipschitz <= 0:
    raise ValueError(f"lipschitz must be > 0, got {lipschitz!r}.")
  return lipschitz**2 * rae.discarded_variance


def pointwise_bound(rae: RiemannianAutoencoder, phi, phi_inv, x, *,
                    offset=None, num_points: int = 5):
  """Per-example bounds L_x^2 ||(I - P)(phi(x) - m)||^2 on the squared error.

  L_x is the largest singular value of Dphi^{-1} over ``num_points`` points of
  the segment from phi(x) to its projection (a grid estimate of the local
  Lipschitz constant that the mean-value theorem needs).

  Args:
    rae: a `RiemannianAutoencoder` built from ``phi``.
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    x: ``[B, D]`` points.
    offset: the latent mean m used by ``rae``, or None for 0.
    num_points: grid size along each segment (static).

  Returns:
    ``(bounds [B], lipschitz [B])``.
  """
  x = pullback._check_points(x, "x")  # pylint: disable=protected-access
  _checks.check_rank(x, 2, "x")
  d_full = x.shape[-1]
  m = jnp.zeros((d_full,), x.dtype) if offset is None else jnp.asarray(offset)
  keep = jnp.zeros((d_full,), bool).at[jnp.asarray(rae.kept)].set(True)
  s = jnp.linspace(0.0, 1.0, num_points)

  def one(p):
    z = phi(p)
    z_proj = jnp.where(keep, z, m)
    pts = z_proj[None] + s[:, None] * (z - z_proj)[None]
    sv = jax.vmap(lambda q: jnp.linalg.norm(jax.jacfwd(phi_inv)(q), 2))(pts)
    lip = jnp.max(sv)
    return lip**2 * jnp.sum((z - z_proj) ** 2), lip

  return jax.vmap(one)(x)
