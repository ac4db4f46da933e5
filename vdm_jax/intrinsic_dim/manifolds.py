"""Synthetic data on manifolds of known dimension, and their exact noised scores.

Each factory fixes the geometry once (from `seed`) and returns a `ManifoldData`
whose ``sample(rng, num)`` draws `[num, *shape]` float32 points:

* `sphere`: the uniform k-sphere of radius r, x = r Q u with u uniform on S^k in
  R^{k+1} and Q a random isometry R^{k+1} -> R^D (authors' k-spheres).
* `linear_subspace`: x = U diag(lambda)^{1/2} z + tau (I - U U^T) n, a Gaussian
  thin around a k-dimensional linear subspace.
* `squares`: images sum_j b_j 1[square_j] with b_j ~ U[0, 1): k squares of
  side 3 or 5 at fixed positions whose brightness varies, so the dimension is k.
* `swiss_roll`: the 2-D swiss roll, isometrically embedded in R^D (curved).
* `spaghetti_line`: the authors' curve x_i = sin((i + 1) u) in R^D (k = 1,
  linear span ~ D).
* `sphere_product`: S^{k_1}(r_1) x ... x S^{k_m}(r_m), each factor in its own
  (k_j + 1)-plane of a random isometry R^{sum(k_j + 1)} -> R^D; `flat_torus` is
  the product of m circles (flat, dimension m, linear span 2m). Its dimension
  is sum k_j while its linear span has m more dimensions: one curvature normal
  (the radial direction) per factor.

For the closed-form tests the VE-noised scores (p convolved with N(0, sigma^2 I))
of the subspace Gaussian and of the uniform sphere are given exactly:

.. math::

  \\nabla \\log p_\\sigma(x) = -C_\\sigma^{-1} x, \\quad
  C_\\sigma = U \\mathrm{diag}(\\lambda + \\sigma^2) U^T + (\\tau^2 + \\sigma^2)(I - U U^T),

  \\nabla \\log p_\\sigma(x) = -\\frac{x}{\\sigma^2} + \\frac{r}{\\sigma^2}
  \\frac{I_{\\nu+1}(u)}{I_\\nu(u)} Q \\frac{y}{\\|y\\|}, \\quad
  y = Q^T x, \\ u = \\frac{r \\|y\\|}{\\sigma^2}, \\ \\nu = \\frac{k - 1}{2}.

The sphere score has no tangential component at all (rotational symmetry).
A product of spheres in mutually orthogonal planes V_j (and nothing in the
complement V_perp) is a product measure, and so is the isotropic Gaussian, so
the noised density factorises and its score is the sum of the factors' sphere
scores:

.. math::

  \\nabla \\log p_\\sigma(x) = -\\frac{x}{\\sigma^2} + \\sum_j \\frac{r_j}{\\sigma^2}
  \\frac{I_{\\nu_j+1}(u_j)}{I_{\\nu_j}(u_j)} Q_j \\frac{y_j}{\\|y_j\\|}, \\quad
  y_j = Q_j^T x, \\ u_j = \\frac{r_j \\|y_j\\|}{\\sigma^2}, \\ \\nu_j = \\frac{k_j - 1}{2}.

References:
  Stanczuk et al., Your diffusion model secretly knows the dimension of the data
  manifold, https://arxiv.org/abs/2212.12611, 2022 (data sets, App.).
  Mardia & Jupp, Directional Statistics, Wiley 2000 (von Mises-Fisher normaliser).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks


class ManifoldData(NamedTuple):
  """A data distribution on a manifold of known dimension.

  Attributes:
    name: short name, e.g. 'sphere10_R100'.
    intrinsic_dim: the true dimension k.
    shape: per-sample shape, `(D,)` or `(H, W, C)`.
    sample: ``sample(rng, num) -> [num, *shape]`` float32.
    params: the fixed geometry (embedding, basis, masks) as a dict of arrays.
  """
  name: str
  intrinsic_dim: int
  shape: tuple
  sample: Callable[[jax.Array, int], jax.Array]
  params: dict


def _check_dims(k: int, ambient_dim: int, k_name: str = "k"):
  if not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"{k_name} must be a positive int, got {k!r}.")
  if ambient_dim <= k:
    raise ValueError(f"ambient_dim must exceed {k_name} = {k}, got {ambient_dim}.")


def random_isometry(rng, ambient_dim: int, dim: int):
  """`[ambient_dim, dim]` matrix with orthonormal columns (QR of a Gaussian)."""
  if dim > ambient_dim:
    raise ValueError(f"dim = {dim} must be <= ambient_dim = {ambient_dim}.")
  q, r = jnp.linalg.qr(jax.random.normal(rng, (ambient_dim, dim)))
  return q * jnp.sign(jnp.diagonal(r))[None]  # unique, Haar-distributed.


# ---------------------------------------------------------------------------
# Vector data.
# ---------------------------------------------------------------------------
def sphere(k: int, ambient_dim: int, *, radius: float = 1.0,
           seed: int = 0) -> ManifoldData:
  """The uniform k-sphere of radius `radius`, randomly rotated into R^D."""
  _check_dims(k + 1, ambient_dim + 1)
  q = random_isometry(jax.random.key(seed), ambient_dim, k + 1)

  def sample(rng, num):
    u = jax.random.normal(rng, (num, k + 1))
    u = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
    return radius * u @ q.T

  return ManifoldData(f"sphere{k}_R{ambient_dim}", k, (ambient_dim,), sample,
                      {"embedding": q, "radius": radius})


def linear_subspace(k: int, ambient_dim: int, *, variances=None,
                    noise: float = 1e-3, seed: int = 0) -> ManifoldData:
  """A Gaussian of variances `variances` on a random k-plane, plus normal noise.

  x = U diag(variances)^{1/2} z + noise (I - U U^T) n, z, n standard normal;
  its intrinsic dimension is k for noise << the perturbation sigma.
  """
  _check_dims(k, ambient_dim)
  lam = jnp.ones((k,)) if variances is None else jnp.asarray(variances, jnp.float32)
  if lam.shape != (k,):
    raise ValueError(f"variances must have shape [k] = [{k}], got {lam.shape}.")
  u = random_isometry(jax.random.key(seed), ambient_dim, k)

  def sample(rng, num):
    kz, kn = jax.random.split(rng)
    z = jax.random.normal(kz, (num, k)) * jnp.sqrt(lam)
    n = jax.random.normal(kn, (num, ambient_dim))
    n = n - (n @ u) @ u.T
    return z @ u.T + noise * n

  return ManifoldData(f"subspace{k}_R{ambient_dim}", k, (ambient_dim,), sample,
                      {"basis": u, "variances": lam, "noise": noise})


def swiss_roll(ambient_dim: int = 3, *, scale: float = 0.1,
               seed: int = 0) -> ManifoldData:
  """The swiss roll (t cos t, h, t sin t) * scale, t in [1.5 pi, 4.5 pi], h in [0, 21].

  Embedded isometrically in R^D by a random rotation of R^3 (identity if D = 3).
  The default scale gives extents ~ 1.4 and curvature radii 0.47 to 1.4.
  """
  _check_dims(2, ambient_dim)
  if ambient_dim < 3:
    raise ValueError(f"swiss_roll needs ambient_dim >= 3, got {ambient_dim}.")
  q = (jnp.eye(3) if ambient_dim == 3
       else random_isometry(jax.random.key(seed), ambient_dim, 3))

  def sample(rng, num):
    kt, kh = jax.random.split(rng)
    t = jax.random.uniform(kt, (num,), minval=1.5 * math.pi, maxval=4.5 * math.pi)
    h = jax.random.uniform(kh, (num,), minval=0.0, maxval=21.0)
    x3 = jnp.stack([t * jnp.cos(t), h - 10.5, t * jnp.sin(t)], axis=-1) * scale
    return x3 @ q.T

  return ManifoldData(f"swissroll_R{ambient_dim}", 2, (ambient_dim,), sample,
                      {"embedding": q, "scale": scale})


def spaghetti_line(ambient_dim: int = 100) -> ManifoldData:
  """The authors' 'spaghetti line': x_i = sin((i + 1) u), u ~ U[0, 1), i < D.

  A curve (k = 1) whose coordinates are D sinusoids of different frequencies,
  so its linear span is (numerically) far larger than k: a set on which any
  linear reading, or a score stuck at the best linear denoiser, reads ~ D.
  """
  _check_dims(1, ambient_dim)
  freq = jnp.arange(1, ambient_dim + 1, dtype=jnp.float32)

  def sample(rng, num):
    u = jax.random.uniform(rng, (num, 1))
    return jnp.sin(u * freq)

  return ManifoldData(f"line_R{ambient_dim}", 1, (ambient_dim,), sample,
                      {"frequencies": freq})


def sphere_product(sphere_dims, ambient_dim: int, *, radii=1.0,
                   seed: int = 0) -> ManifoldData:
  """Uniform S^{k_1}(r_1) x ... x S^{k_m}(r_m), randomly and isometrically in R^D.

  x = Q [r_1 u_1; ...; r_m u_m], u_j uniform on S^{k_j} in R^{k_j + 1}, Q a
  random isometry R^{sum(k_j + 1)} -> R^D. The dimension is k = sum k_j, the
  linear span sum(k_j + 1) = k + m: at every point the radial direction of
  each factor is a normal direction inside the span (a curvature normal, with
  curvature 1 / r_j).

  Args:
    sphere_dims: sequence of factor dimensions k_j >= 1 (1 = a circle).
    ambient_dim: D >= sum(k_j + 1).
    radii: a scalar or one radius per factor, all > 0.
    seed: seed of the embedding Q.
  """
  dims = tuple(int(k) for k in sphere_dims)
  if not dims or min(dims) < 1:
    raise ValueError(f"sphere_dims must be a non-empty sequence of ints >= 1, "
                     f"got {sphere_dims!r}.")
  span = sum(k + 1 for k in dims)
  if ambient_dim < span:
    raise ValueError(f"ambient_dim must be >= the linear span sum(k_j + 1) = "
                     f"{span}, got {ambient_dim}.")
  r = np.asarray(radii, np.float32)
  if r.ndim == 0:
    r = np.full((len(dims),), r, np.float32)
  if r.shape != (len(dims),) or not np.all(r > 0):
    raise ValueError(f"radii must be a positive scalar or one per factor "
                     f"({len(dims)}), got {radii!r}.")
  q = random_isometry(jax.random.key(seed), ambient_dim, span)
  scale = jnp.asarray(np.repeat(r, [k + 1 for k in dims]))
  seg = np.repeat(np.arange(len(dims)), [k + 1 for k in dims])

  def sample(rng, num):
    u = jax.random.normal(rng, (num, span))
    norms = jax.ops.segment_sum(jnp.square(u).T, seg, len(dims)).T
    u = u / jnp.sqrt(norms)[:, seg]
    return (scale * u) @ q.T

  name = (f"torus{len(dims)}" if set(dims) == {1}
          else "spheres" + "x".join(map(str, dims)))
  return ManifoldData(f"{name}_R{ambient_dim}", sum(dims), (ambient_dim,), sample,
                      {"embedding": q, "sphere_dims": dims,
                       "radii": jnp.asarray(r)})


def flat_torus(num_circles: int, ambient_dim: int, *, radius=1.0,
               seed: int = 0) -> ManifoldData:
  """The flat torus (S^1(r))^m in R^D: dimension m, linear span 2m."""
  return sphere_product((1,) * num_circles, ambient_dim, radii=radius, seed=seed)


# ---------------------------------------------------------------------------
# Images.
# ---------------------------------------------------------------------------
def square_masks(k: int, *, image_size: int = 32, sides=(3, 5), seed: int = 42,
                 max_tries: int = 100):
  """`[k, H, W]` float32 indicator images of k distinct, linearly independent squares.

  Each side is drawn from `sides`; with h = (side + 1) // 2 the centre is a
  random integer in [h, image_size - 1 - h] per axis (the authors' generator).
  Duplicates are rejected and the set is redrawn until the k masks are
  linearly independent, so the image manifold has dimension exactly k.
  """
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}.")
  if k > image_size * image_size:
    raise ValueError(f"k = {k} squares cannot be independent in "
                     f"{image_size}x{image_size} = {image_size ** 2} pixels.")
  rs = np.random.RandomState(seed)
  for _ in range(max_tries):
    masks, seen = [], set()
    while len(masks) < k:
      side = int(rs.choice(sides))
      h = (side + 1) // 2
      if image_size - 1 - h < h:
        raise ValueError(f"side {side} does not fit in {image_size}x{image_size}.")
      cx, cy = rs.randint(h, image_size - h, size=2)
      if (side, cx, cy) in seen:
        continue
      seen.add((side, cx, cy))
      m = np.zeros((image_size, image_size), np.float32)
      m[cy - (h - 1):cy - (h - 1) + side, cx - (h - 1):cx - (h - 1) + side] = 1.0
      masks.append(m)
    masks = np.stack(masks)
    if np.linalg.matrix_rank(masks.reshape(k, -1)) == k:
      return jnp.asarray(masks)
  raise ValueError(f"could not draw {k} independent squares on a "
                   f"{image_size}x{image_size} grid in {max_tries} tries.")


def squares(k: int, *, image_size: int = 32, sides=(3, 5),
            seed: int = 42) -> ManifoldData:
  """Images of k fixed squares with independent U[0, 1) brightness; dimension k.

  x = sum_j b_j 1[square_j] (overlaps add), shape `[H, W, 1]`, values >= 0.
  """
  masks = square_masks(k, image_size=image_size, sides=sides, seed=seed)

  def sample(rng, num):
    b = jax.random.uniform(rng, (num, k))
    return jnp.einsum("nk,khw->nhw", b, masks)[..., None]

  return ManifoldData(f"squares{k}_{image_size}px", k,
                      (image_size, image_size, 1), sample, {"masks": masks})


# ---------------------------------------------------------------------------
# Exact VE-noised scores (for tests).
# ---------------------------------------------------------------------------
def gaussian_subspace_score(x, sigma, *, basis, variances, noise):
  """Exact score of the `linear_subspace` Gaussian convolved with N(0, sigma^2 I).

  Args:
    x: `[B, D]` points.
    sigma: scalar noise std.
    basis: `[D, k]` orthonormal columns U.
    variances: `[k]` tangential variances lambda.
    noise: scalar normal std tau.

  Returns:
    `[B, D]` score -C_sigma^{-1} x.
  """
  _checks.check_rank(x, 2, "x [B, D]")
  s2 = jnp.square(sigma)
  c = x @ basis
  x_perp = x - c @ basis.T
  return -(c / (variances + s2)) @ basis.T - x_perp / (jnp.square(noise) + s2)


def bessel_ratio(nu2: int, u):
  """I_{nu+1}(u) / I_nu(u) for nu = nu2 / 2 >= 0 (nu2 an int), elementwise.

  Starts from I_1/I_0 = i1e/i0e (integer nu) or coth(u) - 1/u (nu = 1/2) and
  climbs with R_nu = 1 / R_{nu-1} - 2 nu / u; accurate for u >> nu^2, which is
  the regime of points near a sphere of radius r at noise sigma (u = r^2/sigma^2).
  """
  u = jnp.asarray(u, jnp.float32)
  if nu2 < 0:
    raise ValueError(f"nu must be >= 0, got nu2 = {nu2}.")
  if nu2 % 2 == 0:
    r = jax.scipy.special.i1e(u) / jax.scipy.special.i0e(u)
    nu = 0.0
  else:
    r = 1.0 / jnp.tanh(u) - 1.0 / u
    nu = 0.5
  while 2 * nu < nu2:
    nu += 1.0
    r = 1.0 / r - 2.0 * nu / u
  return r


def sphere_score(x, sigma, *, embedding, radius: float = 1.0):
  """Exact score of the uniform `sphere` convolved with N(0, sigma^2 I).

  Args:
    x: `[B, D]` points.
    sigma: scalar noise std.
    embedding: `[D, k + 1]` isometry Q of the sphere's span.
    radius: the sphere radius r.

  Returns:
    `[B, D]` score; it is radial within span(Q) and -x_perp / sigma^2 outside.
  """
  _checks.check_rank(x, 2, "x [B, D]")
  k = embedding.shape[1] - 1
  s2 = jnp.square(sigma)
  y = x @ embedding
  rho = jnp.linalg.norm(y, axis=-1, keepdims=True)
  ratio = bessel_ratio(k - 1, radius * rho / s2)
  return -x / s2 + (radius / s2) * ratio * (y / rho) @ embedding.T


def sphere_product_score(x, sigma, *, embedding, sphere_dims, radii):
  """Exact score of `sphere_product` data convolved with N(0, sigma^2 I).

  The sum over factors of `sphere_score` in each factor's plane (the product
  measure and the isotropic kernel both factorise over orthogonal planes),
  and -x_perp / sigma^2 off the span.

  Args:
    x: `[B, D]` points.
    sigma: scalar noise std.
    embedding: `[D, sum(k_j + 1)]` isometry Q, factor j in columns
      [sum_{i<j}(k_i + 1), sum_{i<=j}(k_i + 1)).
    sphere_dims: the factor dimensions k_j (static ints).
    radii: `[m]` factor radii r_j.

  Returns:
    `[B, D]` score.
  """
  _checks.check_rank(x, 2, "x [B, D]")
  dims = tuple(int(k) for k in sphere_dims)
  if embedding.shape[1] != sum(k + 1 for k in dims):
    raise ValueError(f"embedding must have sum(k_j + 1) = "
                     f"{sum(k + 1 for k in dims)} columns, got {embedding.shape}.")
  s2 = jnp.square(sigma)
  y = x @ embedding
  radii = jnp.broadcast_to(jnp.asarray(radii, jnp.float32), (len(dims),))
  pulls, start = [], 0
  for j, k in enumerate(dims):
    yj = y[:, start:start + k + 1]
    start += k + 1
    rho = jnp.linalg.norm(yj, axis=-1, keepdims=True)
    ratio = bessel_ratio(k - 1, radii[j] * rho / s2)
    pulls.append((radii[j] / s2) * ratio * yj / rho)
  return -x / s2 + jnp.concatenate(pulls, axis=-1) @ embedding.T
