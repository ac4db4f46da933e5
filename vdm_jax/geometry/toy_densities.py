"""Deformed-Gaussian toy densities with known diffeomorphisms (2-D and high-D).

Every density here has the form p(x) = N(phi(x); 0, diag(a)) with a known,
volume-preserving (det Dphi = 1) shear phi, so the normalised density, the
ground-truth geodesics of `vdm_jax.geometry.pullback` and exact samples
x = phi^{-1}(z), z ~ N(0, diag(a)), are all available in closed form.

* ``single_banana``:   phi(x) = (x1 - x2^2/9, x2),     a = (1/4, 4).
* ``squeezed_banana``: the same phi,                    a = (1/81, 4).
* ``river``:           phi(x) = (x1 - sin(2 x2), x2),   a = (1/25, 3).
* ``sinusoid(k, D)``:  the last k coordinates u ~ N(0, 3 I_k) are intrinsic and
  the first D - k are y_j = sin(w_j^T u) + sqrt(1e-3) xi_j with w_j ~ U[1, 2]^k,
  i.e. phi(x) = (x_y - sin(W x_u), x_u) and a = (1e-3 1_{D-k}, 3 1_k).
* ``hemisphere(k, D)``: a noise-free k-dimensional quarter of the unit sphere
  S^k, embedded isometrically in R^D (an `EmbeddedManifold`: it is not a
  deformed Gaussian, so there is no ground-truth phi, only the chart).

Deviation from the paper: its 2-D sets are drawn by MALA chains; since det Dphi
= 1 here we draw exact samples instead (no chain bias). Its sinusoid weights are
unseeded; here they come from ``seed``.

References:
  Diepeveen, Batzolis, Shumaylov, Schoenlieb. Score-based pullback Riemannian
  geometry. https://arxiv.org/abs/2410.01950, 2024 (Sec. 6, data sets).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ToyDensity(NamedTuple):
  """A deformed Gaussian N(phi(x); 0, diag(diag_a)) with its ground truth.

  Attributes:
    name: data-set name.
    phi: the diffeomorphism, one point ``[D] -> [D]``.
    phi_inv: its inverse, one point ``[D] -> [D]``.
    diag_a: the latent variances a, ``[D]``.
    intrinsic_dim: the number of large-variance (on-manifold) latent axes.
  """
  name: str
  phi: Callable[[jax.Array], jax.Array]
  phi_inv: Callable[[jax.Array], jax.Array]
  diag_a: jax.Array
  intrinsic_dim: int

  @property
  def dim(self) -> int:
    return int(self.diag_a.shape[0])


def _banana(name: str, a1: float) -> ToyDensity:
  def phi(x):
    return jnp.stack([x[0] - x[1] ** 2 / 9.0, x[1]])

  def phi_inv(z):
    return jnp.stack([z[0] + z[1] ** 2 / 9.0, z[1]])

  return ToyDensity(name, phi, phi_inv, jnp.array([a1, 4.0]), 1)


def single_banana() -> ToyDensity:
  """Banana: phi(x) = (x1 - x2^2/9, x2), A = diag(1/4, 4)."""
  return _banana("single_banana", 0.25)


def squeezed_banana() -> ToyDensity:
  """Squeezed banana: phi(x) = (x1 - x2^2/9, x2), A = diag(1/81, 4)."""
  return _banana("squeezed_banana", 1.0 / 81.0)


def river() -> ToyDensity:
  """River: phi(x) = (x1 - sin(2 x2), x2), A = diag(1/25, 3)."""

  def phi(x):
    return jnp.stack([x[0] - jnp.sin(2.0 * x[1]), x[1]])

  def phi_inv(z):
    return jnp.stack([z[0] + jnp.sin(2.0 * z[1]), z[1]])

  return ToyDensity("river", phi, phi_inv, jnp.array([1.0 / 25.0, 3.0]), 1)


def sinusoid(intrinsic_dim: int, dim: int, *, seed: int = 0,
             noise_var: float = 1e-3, signal_var: float = 3.0) -> ToyDensity:
  """A k-dimensional Gaussian bent into R^D by sines (the paper's Sinusoid(k, D)).

  .. math::

    \\varphi(x) = (x_{1:D-k} - \\sin(W x_{D-k+1:D}),\\; x_{D-k+1:D}),
    \\quad W_{jl} \\sim U[1, 2], \\quad
    a = (\\sigma^2_{noise} 1_{D-k}, \\sigma^2_{signal} 1_k).

  Args:
    intrinsic_dim: k, with 1 <= k < D.
    dim: the ambient dimension D.
    seed: seed of the weights W.
    noise_var: variance of the off-manifold latent axes.
    signal_var: variance of the on-manifold latent axes.

  Returns:
    The `ToyDensity`.
  """
  if not 1 <= intrinsic_dim < dim:
    raise ValueError(
        f"sinusoid needs 1 <= intrinsic_dim < dim, got intrinsic_dim="
        f"{intrinsic_dim}, dim={dim}.")
  if noise_var <= 0 or signal_var <= 0:
    raise ValueError(
        f"noise_var and signal_var must be > 0, got {noise_var}, {signal_var}.")
  k, n = intrinsic_dim, dim - intrinsic_dim
  w = jnp.asarray(
      np.random.default_rng(seed).uniform(1.0, 2.0, size=(n, k)), jnp.float32)

  def phi(x):
    return jnp.concatenate([x[:n] - jnp.sin(w @ x[n:]), x[n:]])

  def phi_inv(z):
    return jnp.concatenate([z[:n] + jnp.sin(w @ z[n:]), z[n:]])

  diag_a = jnp.concatenate([
      jnp.full((n,), noise_var, jnp.float32),
      jnp.full((k,), signal_var, jnp.float32)])
  return ToyDensity(f"sinusoid_{k}_{dim}", phi, phi_inv, diag_a, k)


class EmbeddedManifold(NamedTuple):
  """A data set on a known k-dimensional manifold in R^D, given by a chart.

  Attributes:
    name: data-set name.
    chart: the parametrisation, one parameter vector ``[k] -> [D]``.
    sample_params: ``(rng, num) -> [num, k]`` draws of the chart parameters.
    embedding: the ``[D, k + 1]`` orthonormal frame of the embedding.
    intrinsic_dim: k.
  """
  name: str
  chart: Callable[[jax.Array], jax.Array]
  sample_params: Callable[[jax.Array, int], jax.Array]
  embedding: jax.Array
  intrinsic_dim: int

  @property
  def dim(self) -> int:
    return int(self.embedding.shape[0])


def sphere_point(angles):
  """Hyperspherical coordinates: k angles -> a point of the unit sphere S^k.

  .. math::

    c_i = \\Big(\\prod_{j < i} \\sin\\theta_j\\Big)\\cos\\theta_i \\ (i \\le k),
    \\qquad c_{k+1} = \\prod_{j \\le k} \\sin\\theta_j.

  Args:
    angles: theta, ``[k]``.

  Returns:
    ``[k + 1]`` unit vector.
  """
  sines = jnp.concatenate([jnp.ones((1,), angles.dtype),
                           jnp.cumprod(jnp.sin(angles))])
  cosines = jnp.concatenate([jnp.cos(angles), jnp.ones((1,), angles.dtype)])
  return sines * cosines


def hemisphere(intrinsic_dim: int, dim: int, *, seed: int = 0
               ) -> EmbeddedManifold:
  """The paper's Hemisphere(k, D): a quarter of S^k embedded in R^D.

  .. math::

    \\theta_1 = \\tfrac{\\pi}{2} B,\\ B \\sim \\mathrm{Beta}(5, 5), \\quad
    \\theta_{2..k} \\sim U[0, \\pi], \\quad
    x = Q\\, c(\\theta), \\quad Q \\in \\mathbb R^{D \\times (k+1)},\\
    Q^\\top Q = I,

  with c the hyperspherical coordinates of `sphere_point` (so c_1 >= 0 and
  c_{k+1} >= 0: a quarter-sphere, not uniform) and Q the Q factor of a
  ``seed``-ed Gaussian ``[D, k + 1]`` matrix. The data are noise-free.

  Args:
    intrinsic_dim: k >= 1.
    dim: the ambient dimension D >= k + 1.
    seed: seed of the embedding Q.

  Returns:
    The `EmbeddedManifold`.
  """
  if not 1 <= intrinsic_dim < dim:
    raise ValueError(
        f"hemisphere needs 1 <= intrinsic_dim < dim, got intrinsic_dim="
        f"{intrinsic_dim}, dim={dim}.")
  k = intrinsic_dim
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, k + 1)))
  q = jnp.asarray(q, jnp.float32)

  def chart(angles):
    if jnp.shape(angles) != (k,):
      raise ValueError(
          f"angles must have shape [k] = [{k}], got {jnp.shape(angles)}.")
    return q @ sphere_point(angles)

  def sample_params(rng, num):
    k1, k2 = jax.random.split(rng)
    theta1 = 0.5 * jnp.pi * jax.random.beta(k1, 5.0, 5.0, (num, 1))
    rest = jax.random.uniform(k2, (num, k - 1), minval=0.0, maxval=jnp.pi)
    return jnp.concatenate([theta1, rest], axis=-1)

  return EmbeddedManifold(f"hemisphere_{k}_{dim}", chart, sample_params, q, k)


def sphere_normal_coordinate_variances(x, embedding):
  """PCA variances of a sphere data set in normal coordinates at its mean.

  The points c = Q^T x lie on the unit sphere S^k. With m the normalised mean
  of c, the logarithm map

  .. math::

    \\log_m c = \\frac{\\theta}{\\sin\\theta}(c - \\cos\\theta\\, m), \\quad
    \\cos\\theta = \\langle c, m\\rangle,

  preserves the geodesic distance to m. Its variances are what an isometric
  chart centred at m would put on its axes: the reference the RAE's learned a_i
  are compared with for `hemisphere` (which has no ground-truth phi).

  Args:
    x: ``[N, D]`` points on the embedded sphere.
    embedding: Q, the ``[D, k + 1]`` orthonormal frame.

  Returns:
    ``[k + 1]`` float64 numpy variances, decreasing (the last is ~0: the
    tangent space of S^k is k-dimensional).
  """
  q = np.asarray(embedding, np.float64)
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[0]:
    raise ValueError(
        f"expected x [N, D] and embedding [D, k + 1], got {x.shape} and "
        f"{q.shape}.")
  c = x @ q
  m = c.mean(0)
  m /= np.linalg.norm(m)
  cos = np.clip(c @ m, -1.0, 1.0)
  theta = np.arccos(cos)
  scale = np.where(theta > 1e-8, theta / np.maximum(np.sin(theta), 1e-12), 1.0)
  v = (c - cos[:, None] * m) * scale[:, None]
  return np.clip(np.sort(np.linalg.eigvalsh(np.cov(v.T)))[::-1], 0.0, None)


def sample(density, rng, num: int):
  """Exact samples: x = phi^{-1}(z), z ~ N(0, diag(a)), or x = chart(theta).

  Args:
    density: a `ToyDensity` or an `EmbeddedManifold`.
    rng: a `jax.random.key`.
    num: number of samples.

  Returns:
    ``[num, D]`` float32 samples.
  """
  if isinstance(density, EmbeddedManifold):
    return jax.vmap(density.chart)(density.sample_params(rng, num))
  if not isinstance(density, ToyDensity):
    raise TypeError(
        f"density must be a ToyDensity or EmbeddedManifold, got "
        f"{type(density).__name__}.")
  z = jax.random.normal(rng, (num, density.dim)) * jnp.sqrt(density.diag_a)
  return jax.vmap(density.phi_inv)(z)


def log_density(density: ToyDensity, x):
  """The exact normalised log-density log N(phi(x); 0, diag(a)) (det Dphi = 1).

  Args:
    density: a `ToyDensity`.
    x: ``[B, D]`` points.

  Returns:
    ``[B]`` log-densities in nats.
  """
  z = jax.vmap(density.phi)(x)
  a = density.diag_a
  return -0.5 * jnp.sum(z**2 / a + jnp.log(2.0 * jnp.pi * a), axis=-1)


def get_density(name: str):
  """Looks a data set up by name.

  Args:
    name: a 2-D set, ``sinusoid_<k>_<D>`` or ``hemisphere_<k>_<D>``.

  Returns:
    A `ToyDensity` (an `EmbeddedManifold` for hemispheres).
  """
  two_d = {"single_banana": single_banana, "squeezed_banana": squeezed_banana,
           "river": river}
  if name in two_d:
    return two_d[name]()
  parts = name.split("_")
  if len(parts) == 3 and parts[0] in ("sinusoid", "hemisphere"):
    builder = sinusoid if parts[0] == "sinusoid" else hemisphere
    return builder(int(parts[1]), int(parts[2]))
  raise ValueError(
      f"unknown density {name!r}; expected one of {sorted(two_d)}, "
      "'sinusoid_<k>_<D>' or 'hemisphere_<k>_<D>'.")
