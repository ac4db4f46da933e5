"""Tests for vdm_jax/intrinsic_dim/estimator.py and manifolds.py (closed-form scores)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from vdm_jax.intrinsic_dim import estimator as idm
from vdm_jax.intrinsic_dim import manifolds

SIGMA = 0.01


def _subspace_score(m, sigma=SIGMA):
  return lambda z, t: manifolds.gaussian_subspace_score(z, sigma, **m.params)


def _sphere_score(m, sigma=SIGMA):
  return lambda z, t: manifolds.sphere_score(
      z, sigma, embedding=m.params["embedding"], radius=m.params["radius"])


@pytest.mark.parametrize("k,d", [(4, 20), (1, 8), (7, 12)])
def test_thin_gaussian_subspace_gives_exactly_k(k, d):
  variances = jnp.linspace(3.0, 0.5, k)
  m = manifolds.linear_subspace(k, d, variances=variances, noise=1e-3, seed=k)
  x = m.sample(jax.random.key(0), 4)
  est = idm.estimate_intrinsic_dim(_subspace_score(m), x, jax.random.key(1),
                                   t=0.0, sigma=SIGMA)
  np.testing.assert_array_equal(est.per_point, k)
  assert int(est.dimension) == k
  np.testing.assert_array_equal(est.normal_dim, d - k)
  # Closed form (score -C^{-1} x for x = U z + tau n, VE-noised): normal values
  # ~ sigma / (tau^2 + sigma^2), tangential
  # ~ sigma / (lambda + ...), so the gap ratio is of order lambda / sigma^2.
  assert float(jnp.min(est.gap_ratio)) > 100.0


@pytest.mark.parametrize("nu2", [0, 1, 2, 9])
def test_bessel_ratio_matches_scipy(nu2):
  u = np.array([20.0, 300.0, 1e4])
  want = scipy.special.ive(nu2 / 2 + 1, u) / scipy.special.ive(nu2 / 2, u)
  got = jax.jit(lambda u: manifolds.bessel_ratio(nu2, u))(u)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_sphere_score_matches_finite_differences_of_quadrature_density():
  # Circle in R^2 (no embedding rotation): log p_sigma by quadrature on the angle.
  sigma, r = 0.3, 1.0
  q = jnp.eye(2)
  angles = np.linspace(0.0, 2 * np.pi, 4000, endpoint=False)
  ring = r * np.stack([np.cos(angles), np.sin(angles)], -1)

  def log_p(x):
    return scipy.special.logsumexp(-np.sum((x - ring) ** 2, -1) / (2 * sigma ** 2))

  x = np.array([0.8, 0.5])
  h = 1e-5
  fd = np.array([(log_p(x + h * e) - log_p(x - h * e)) / (2 * h) for e in np.eye(2)])
  got = manifolds.sphere_score(jnp.asarray(x[None], jnp.float32), sigma,
                               embedding=q, radius=r)[0]
  np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 2])
def test_noised_uniform_sphere_gives_k(k):
  m = manifolds.sphere(k, 12, seed=3)
  x = m.sample(jax.random.key(0), 4)
  score = _sphere_score(m)
  # Exactly zero tangential part: every score is radial in span(Q) or normal.
  z = x + SIGMA * jax.random.normal(jax.random.key(5), x.shape)
  s = score(z, 0.0)
  y = z @ m.params["embedding"]
  s_in = s @ m.params["embedding"]
  cos = jnp.sum(s_in * y, -1) / (jnp.linalg.norm(s_in, axis=-1) * jnp.linalg.norm(y, axis=-1))
  np.testing.assert_allclose(jnp.abs(cos), 1.0, atol=1e-4)
  est = idm.estimate_intrinsic_dim(score, x, jax.random.key(1), t=0.0, sigma=SIGMA)
  np.testing.assert_array_equal(est.per_point, k)
  for rule in ("log_gap", "threshold"):
    other = idm.summarise_spectra(est.spectra, ambient_dim=12, rule=rule)
    np.testing.assert_array_equal(other.per_point, k)


def test_vp_kernel_eps_scaled_score_and_no_centring_agree():
  # A fixed scale of the score (eps = -sigma * score) and the VP kernel at small
  # gamma do not move the gap; nor does leaving out the centring.
  m = manifolds.sphere(3, 10, seed=1)
  x = m.sample(jax.random.key(0), 3)
  gamma = 2 * np.log(SIGMA)
  a, s = idm.vp_kernel(gamma)
  eps_fn = lambda z, t: -s * manifolds.sphere_score(
      z / a, s / a, embedding=m.params["embedding"]) / a
  for centre in (True, False):
    est = idm.estimate_intrinsic_dim(eps_fn, x, jax.random.key(1), t=0.0,
                                     sigma=s, alpha=a, centre=centre)
    np.testing.assert_array_equal(est.per_point, 3)


def test_images_squares_with_exact_linear_score():
  m = manifolds.squares(3, image_size=6, sides=(3,), seed=0)
  masks = m.params["masks"].reshape(3, -1)
  basis, _ = jnp.linalg.qr(masks.T)  # [36, 3] orthonormal span of the masks.

  def score(z, t):
    del t
    flat = z.reshape(z.shape[0], -1)
    perp = flat - (flat @ basis) @ basis.T
    return (-perp / SIGMA ** 2).reshape(z.shape)

  x = m.sample(jax.random.key(0), 2)
  assert x.shape == (2, 6, 6, 1)
  est = idm.estimate_intrinsic_dim(score, x, jax.random.key(1), t=0.0,
                                   sigma=SIGMA, chunk_size=50)
  np.testing.assert_array_equal(est.per_point, 3)
  assert est.spectra.shape == (2, 36)


def test_spectrum_sorted_and_gap_location_reported():
  m = manifolds.linear_subspace(3, 10, noise=1e-3)
  x = m.sample(jax.random.key(0), 3)
  est = idm.estimate_intrinsic_dim(_subspace_score(m), x, jax.random.key(1),
                                   t=0.0, sigma=SIGMA, num_perturbations=25)
  assert est.spectra.shape == (3, 10)
  assert bool(jnp.all(est.spectra[:, :-1] >= est.spectra[:, 1:]))
  np.testing.assert_array_equal(est.normal_dim, 7)
  s = est.spectra
  np.testing.assert_allclose(est.gap_ratio, s[:, 6] / s[:, 7], rtol=1e-6)
  assert float(est.mean) == 3.0


def test_normal_dim_rules_on_a_hand_spectrum():
  s = jnp.array([[10.0, 9.0, 8.5, 0.3, 0.2, 0.0]])
  n, ratio = jax.jit(lambda s: idm.normal_dim_from_spectrum(s, rule="gap"))(s)
  assert int(n[0]) == 3 and np.isclose(float(ratio[0]), 8.5 / 0.3)
  n, _ = idm.normal_dim_from_spectrum(s, rule="threshold", threshold=0.5)
  assert int(n[0]) == 3
  n, ratio = idm.normal_dim_from_spectrum(s, rule="log_gap")
  assert int(n[0]) == 5 and np.isinf(float(ratio[0]))  # the exact zero wins.


def test_too_few_perturbations_raises():
  m = manifolds.linear_subspace(2, 10)
  x = m.sample(jax.random.key(0), 2)
  with pytest.raises(ValueError, match="num_perturbations must be >= D"):
    idm.estimate_intrinsic_dim(_subspace_score(m), x, jax.random.key(1), t=0.0,
                               sigma=SIGMA, num_perturbations=8)


def test_nan_scores_raise_naming_the_anchors():
  m = manifolds.linear_subspace(2, 6)
  x = m.sample(jax.random.key(0), 3)

  def bad(z, t):
    return jnp.where(jnp.all(z > -100), jnp.nan, 0.0) * z + t

  with pytest.raises(ValueError, match="non-finite scores"):
    idm.estimate_intrinsic_dim(bad, x, jax.random.key(1), t=0.0, sigma=SIGMA)


def test_bad_arguments_fail_by_name():
  x = jnp.zeros((2, 5))
  f = lambda z, t: z
  with pytest.raises(ValueError, match="rule"):
    idm.estimate_intrinsic_dim(f, x, jax.random.key(0), t=0.0, sigma=0.1, rule="elbow")
  with pytest.raises(TypeError, match="x must have a floating dtype"):
    idm.estimate_intrinsic_dim(f, jnp.zeros((2, 5), jnp.int32), jax.random.key(0),
                               t=0.0, sigma=0.1)
  with pytest.raises(ValueError, match="sigma must be a scalar"):
    idm.estimate_intrinsic_dim(f, x, jax.random.key(0), t=0.0, sigma=jnp.ones(2))
  with pytest.raises(ValueError, match="must return the shape"):
    idm.estimate_intrinsic_dim(lambda z, t: z[:, :3], x, jax.random.key(0),
                               t=0.0, sigma=0.1)


def test_generators_have_the_stated_geometry():
  m = manifolds.sphere(5, 30, radius=2.0)
  x = m.sample(jax.random.key(0), 50)
  np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 2.0, rtol=1e-5)
  q = m.params["embedding"]
  np.testing.assert_allclose(q.T @ q, jnp.eye(6), atol=1e-5)
  np.testing.assert_allclose(x - (x @ q) @ q.T, 0.0, atol=1e-5)
  sq = manifolds.squares(20, image_size=16)
  assert np.linalg.matrix_rank(np.asarray(sq.params["masks"]).reshape(20, -1)) == 20
  imgs = sq.sample(jax.random.key(1), 300)
  assert imgs.shape == (300, 16, 16, 1) and float(imgs.min()) >= 0.0
  assert np.linalg.matrix_rank(np.asarray(imgs).reshape(300, -1), tol=1e-3) == 20
  roll = manifolds.swiss_roll(10)
  r = roll.sample(jax.random.key(2), 500)
  assert r.shape == (500, 10) and roll.intrinsic_dim == 2
  r3 = r @ roll.params["embedding"]
  np.testing.assert_allclose(r - r3 @ roll.params["embedding"].T, 0.0, atol=1e-5)
  with pytest.raises(ValueError, match="ambient_dim must exceed"):
    manifolds.linear_subspace(5, 5)
  line = manifolds.spaghetti_line(40)
  y = np.asarray(line.sample(jax.random.key(3), 400))
  assert y.shape == (400, 40) and line.intrinsic_dim == 1
  # One parameter: x_0 = sin(u) fixes u, and every coordinate is sin((i + 1) u).
  u = np.arcsin(y[:, :1])
  np.testing.assert_allclose(y, np.sin(u * np.arange(1, 41)), atol=1e-4)
  # ... yet its span is far larger than k (16 directions above 1e-3 of the
  # data's norm at D = 40; the low frequencies are nearly collinear on [0, 1)).
  assert np.linalg.matrix_rank(y - y.mean(0), tol=1e-3 * np.linalg.norm(y)) > 10


# ---------------------------------------------------------------------------
# Curved manifolds whose linear span exceeds their dimension.
# ---------------------------------------------------------------------------
def _product_score(m, sigma=SIGMA):
  return lambda z, t: manifolds.sphere_product_score(z, sigma, **m.params)


def test_sphere_product_score_matches_finite_differences_of_quadrature_density():
  # Two circles of radii 0.8 and 1.3 in R^5: log p_sigma by quadrature over
  # both angles (no factorisation assumed), differentiated numerically.
  sigma = 0.3
  m = manifolds.sphere_product((1, 1), 5, radii=(0.8, 1.3), seed=2)
  q = np.asarray(m.params["embedding"], np.float64)
  th = np.linspace(0.0, 2 * np.pi, 500, endpoint=False)
  a, b = np.meshgrid(th, th, indexing="ij")
  pts = np.stack([0.8 * np.cos(a), 0.8 * np.sin(a), 1.3 * np.cos(b),
                  1.3 * np.sin(b)], -1).reshape(-1, 4) @ q.T

  def log_p(x):
    return scipy.special.logsumexp(-np.sum((x - pts) ** 2, -1) / (2 * sigma ** 2))

  x = np.asarray(m.sample(jax.random.key(0), 1)[0], np.float64)
  x = x + 0.2 * np.random.RandomState(0).randn(5)
  h = 1e-4
  fd = np.array([(log_p(x + h * e) - log_p(x - h * e)) / (2 * h) for e in np.eye(5)])
  got = manifolds.sphere_product_score(jnp.asarray(x[None], jnp.float32), sigma,
                                       **m.params)[0]
  np.testing.assert_allclose(got, fd, rtol=1e-3, atol=1e-3)


def test_one_factor_product_is_the_sphere():
  m = manifolds.sphere_product((3,), 9, seed=4)
  z = m.sample(jax.random.key(0), 5) + 0.05 * jax.random.normal(jax.random.key(1), (5, 9))
  np.testing.assert_allclose(
      _product_score(m, 0.05)(z, 0.0),
      manifolds.sphere_score(z, 0.05, embedding=m.params["embedding"]),
      rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dims,d,radii", [((1, 1, 1), 10, 1.0),
                                          ((2, 2), 12, 1.0),
                                          ((1, 3), 14, (0.5, 2.0))])
def test_exact_score_on_curved_products_gives_k_not_the_span(dims, d, radii):
  m = manifolds.sphere_product(dims, d, radii=radii, seed=len(dims))
  k, span = sum(dims), sum(dims) + len(dims)
  x = m.sample(jax.random.key(0), 3)
  assert np.linalg.matrix_rank(np.asarray(m.sample(jax.random.key(2), 200)),
                               tol=1e-3) == span
  est = idm.estimate_intrinsic_dim(_product_score(m), x, jax.random.key(1),
                                   t=0.0, sigma=SIGMA)
  np.testing.assert_array_equal(est.per_point, k)
  for rule in ("log_gap", "threshold"):
    other = idm.summarise_spectra(est.spectra, ambient_dim=d, rule=rule)
    np.testing.assert_array_equal(other.per_point, k)


def test_sphere_product_geometry_and_bad_inputs():
  m = manifolds.flat_torus(4, 11, radius=0.7, seed=1)
  assert m.intrinsic_dim == 4 and m.name == "torus4_R11"
  x = np.asarray(m.sample(jax.random.key(0), 100)) @ np.asarray(m.params["embedding"])
  np.testing.assert_allclose(np.linalg.norm(x.reshape(100, 4, 2), axis=-1), 0.7,
                             rtol=1e-5)
  assert manifolds.sphere_product((3, 1), 8).name == "spheres3x1_R8"
  with pytest.raises(ValueError, match="linear span"):
    manifolds.sphere_product((3, 3), 7)
  with pytest.raises(ValueError, match="sphere_dims"):
    manifolds.sphere_product((0, 2), 9)
  with pytest.raises(ValueError, match="radii"):
    manifolds.sphere_product((1, 1), 9, radii=(1.0, -1.0))


def test_jacobian_reading_of_a_linear_score_is_the_normal_projector():
  # s(z) = -P_perp z / sigma^2: A = P_perp exactly, eigenvalues 1 (D - k) and 0 (k).
  m = manifolds.linear_subspace(3, 9, noise=0.0)
  u = m.params["basis"]
  score = lambda z, t: -(z - (z @ u) @ u.T) / SIGMA ** 2
  x = m.sample(jax.random.key(0), 2)
  ev = jax.jit(lambda x: idm.jacobian_spectra(score, x, t=0.0, sigma=SIGMA,
                                              chunk_size=4))(x)
  np.testing.assert_allclose(ev, np.tile([1.0] * 6 + [0.0] * 3, (2, 1)), atol=1e-5)


def test_jacobian_reading_on_a_curved_product_at_a_coarse_noise_level():
  # At sigma / r = 0.14 the score matrix's rows sit where the tangent
  # eigenvalues are O(sigma / r) (its threshold rule reads one as normal at one
  # of these anchors); A at the anchor keeps them at O(sigma^2 / r^2).
  m = manifolds.sphere_product((3, 1), 12, seed=5)
  sigma = 0.14
  x = m.sample(jax.random.key(0), 3)
  est = idm.estimate_intrinsic_dim(_product_score(m, sigma), x, jax.random.key(1),
                                   t=0.0, sigma=sigma, method="jacobian",
                                   rule="log_gap", floor=1e-2)
  np.testing.assert_array_equal(est.per_point, 4)
  ev = np.asarray(est.spectra)
  assert np.all(ev[:, :8] > 0.9) and np.all(np.abs(ev[:, 8:]) < 0.05), ev
  with pytest.raises(ValueError, match="method"):
    idm.estimate_intrinsic_dim(_product_score(m), x, jax.random.key(1), t=0.0,
                               sigma=SIGMA, method="hessian")
  with pytest.raises(ValueError, match="floor"):
    idm.normal_dim_from_spectrum(ev, rule="log_gap", floor=0.0)
