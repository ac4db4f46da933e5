"""Tests for vdm_jax.geometry.pullback: closed forms, numerical geodesics, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vdm_jax.geometry import flows
from vdm_jax.geometry import pullback
from vdm_jax.geometry import toy_densities

T = jnp.linspace(0.0, 1.0, 11)


def _rotation(theta):
  c, s = np.cos(theta), np.sin(theta)
  return jnp.array([[c, -s], [s, c]], jnp.float32)


# ----------------------------------------------------------------------------
# 1. Affine phi.
# ----------------------------------------------------------------------------
@pytest.fixture
def affine_setup():
  w = _rotation(0.7) @ jnp.array([[2.0, 0.3], [0.0, 0.5]])
  mu = jnp.array([0.5, -1.0])
  diffeo = flows.affine(w, mu)
  diag_a = jnp.array([0.5, 3.0])
  return w, mu, diffeo, diag_a


def test_affine_geodesic_is_straight_line(affine_setup):
  _, _, diffeo, _ = affine_setup
  x, y = jnp.array([1.0, 2.0]), jnp.array([-3.0, 0.5])
  geo = jax.jit(functools.partial(pullback.geodesic, diffeo.forward,
                                  diffeo.inverse))
  path = geo(x, y, T)
  expected = (1 - T)[:, None] * x + T[:, None] * y
  np.testing.assert_allclose(path, expected, atol=1e-5)
  vel = pullback.geodesic_velocity(diffeo.forward, diffeo.inverse, x, y, T)
  np.testing.assert_allclose(vel, jnp.broadcast_to(y - x, vel.shape),
                             atol=1e-5)


def test_affine_distance_is_mahalanobis(affine_setup):
  w, _, diffeo, diag_a = affine_setup
  x, y = jnp.array([1.0, 2.0]), jnp.array([-3.0, 0.5])
  dist = jax.jit(functools.partial(pullback.distance, diffeo.forward,
                                   diag_a=diag_a))(x, y)
  expected = jnp.linalg.norm((w @ (x - y)) / diag_a)
  np.testing.assert_allclose(dist, expected, rtol=1e-5)
  # Orthogonal W: d = ||Sigma^{-1}(x - y)|| with Sigma = W^T A W.
  q = _rotation(0.3)
  ortho = flows.affine(q)
  sigma = q.T @ jnp.diag(diag_a) @ q
  np.testing.assert_allclose(
      pullback.distance(ortho.forward, x, y, diag_a=diag_a),
      jnp.linalg.norm(jnp.linalg.solve(sigma, x - y)), rtol=1e-5)
  # Constant metric W^T A^-2 W.
  g = pullback.metric_tensor(diffeo.forward, jnp.stack([x, y]), diag_a=diag_a)
  np.testing.assert_allclose(g[0], w.T @ jnp.diag(diag_a**-2) @ w, rtol=1e-5)
  np.testing.assert_allclose(g[0], g[1], rtol=1e-6)


def test_affine_exp_log_round_trip_and_transport(affine_setup):
  _, _, diffeo, diag_a = affine_setup
  rng = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(rng[0], (5, 2))
  y = jax.random.normal(rng[1], (5, 2))
  log = jax.jit(functools.partial(pullback.log_map, diffeo.forward,
                                  diffeo.inverse))
  exp = jax.jit(functools.partial(pullback.exp_map, diffeo.forward,
                                  diffeo.inverse))
  np.testing.assert_allclose(exp(x, log(x, y)), y, atol=1e-5)
  np.testing.assert_allclose(log(x, y), y - x, atol=1e-5)
  xi = jnp.ones_like(x)
  np.testing.assert_allclose(
      pullback.parallel_transport(diffeo.forward, diffeo.inverse, x, y, xi),
      xi, atol=1e-5)
  # ||log_x y||_g = d(x, y).
  v = log(x, y)
  np.testing.assert_allclose(
      jnp.sqrt(pullback.inner(diffeo.forward, x, v, v, diag_a=diag_a)),
      pullback.distance(diffeo.forward, x, y, diag_a=diag_a), rtol=1e-5)


# ----------------------------------------------------------------------------
# 2. Banana closed forms (computed in closed form: phi(x) = (x1 - x2^2 / 9, x2),
#    A = diag(1/4, 4), d(x, y) = ||A^{-1}(phi(x) - phi(y))||).
# ----------------------------------------------------------------------------
def test_banana_closed_forms():
  dens = toy_densities.single_banana()
  phi, phi_inv, a = dens.phi, dens.phi_inv, dens.diag_a
  x, y = jnp.array([2.0, 4.0]), jnp.array([2.0, -4.0])
  np.testing.assert_allclose(phi(x), [2 / 9, 4.0], rtol=1e-6)
  np.testing.assert_allclose(
      pullback.geodesic(phi, phi_inv, x, y, 0.5), [2 / 9, 0.0], atol=1e-6)
  np.testing.assert_allclose(
      pullback.barycentre(phi, phi_inv, jnp.stack([x, y])), [2 / 9, 0.0],
      atol=1e-6)
  np.testing.assert_allclose(pullback.distance(phi, x, y, diag_a=a), 2.0,
                             rtol=1e-6)
  v = pullback.log_map(phi, phi_inv, x, y)
  np.testing.assert_allclose(v, [-64 / 9, -8.0], rtol=1e-5)
  np.testing.assert_allclose(pullback.exp_map(phi, phi_inv, x, v), y,
                             atol=1e-5)
  np.testing.assert_allclose(
      pullback.parallel_transport(phi, phi_inv, x, y, v), [64 / 9, -8.0],
      rtol=1e-5)
  np.testing.assert_allclose(
      pullback.metric_tensor(phi, jnp.zeros(2), diag_a=a),
      jnp.diag(jnp.array([16.0, 1 / 16])), rtol=1e-6)
  # Score matches autodiff of the exact log density.
  pts = jnp.array([[0.3, -1.0], [1.0, 2.0]])
  auto = jax.vmap(jax.grad(
      lambda p: toy_densities.log_density(dens, p[None])[0]))(pts)
  np.testing.assert_allclose(pullback.score(phi, pts, diag_a=a), auto,
                             rtol=1e-5)


def test_interpolate_passes_through_knots():
  dens = toy_densities.river()
  knots = jnp.array([[0.0, 0.0], [1.0, 1.0], [0.5, -1.0], [2.0, 0.3]])
  t = jnp.array([0.0, 1 / 3, 2 / 3, 1.0, 0.5])
  out = jax.jit(functools.partial(pullback.interpolate, dens.phi,
                                  dens.phi_inv))(knots, t)
  np.testing.assert_allclose(out[:4], knots, atol=1e-5)
  np.testing.assert_allclose(
      out[4], pullback.geodesic(dens.phi, dens.phi_inv, knots[1], knots[2],
                                0.5), atol=1e-5)


def test_batched_geodesic_shapes_and_endpoints():
  dens = toy_densities.river()
  x = jax.random.normal(jax.random.key(1), (3, 2))
  y = jax.random.normal(jax.random.key(2), (3, 2))
  path = pullback.geodesic(dens.phi, dens.phi_inv, x, y, T)
  assert path.shape == (3, 11, 2)
  np.testing.assert_allclose(path[:, 0], x, atol=1e-5)
  np.testing.assert_allclose(path[:, -1], y, atol=1e-5)


# ----------------------------------------------------------------------------
# 3. Numerical geodesics: shooting (geodesic ODE of G) and energy minimisation.
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name,x,y", [
    ("single_banana", (2.0, 4.0), (2.0, -4.0)),
    ("river", (0.5, -1.0), (-0.5, 1.2)),
    ("river", (1.0, -1.0), (-1.0, 1.0)),
])
def test_closed_form_matches_shooting_and_beats_straight_line(name, x, y):
  dens = toy_densities.get_density(name)
  phi, phi_inv, a = dens.phi, dens.phi_inv, dens.diag_a
  x, y = jnp.array(x), jnp.array(y)
  n = 100
  t = jnp.linspace(0.0, 1.0, n + 1)
  v = pullback.log_map(phi, phi_inv, x, y)
  shot = jax.jit(functools.partial(pullback.shoot_geodesic, phi, diag_a=a,
                                   num_steps=n))(x, v)
  closed = pullback.geodesic(phi, phi_inv, x, y, t)
  err = jnp.max(jnp.linalg.norm(shot - closed, axis=-1))
  scale = jnp.linalg.norm(x - y)
  assert float(err) < 2e-3 * float(scale), float(err)
  straight = (1 - t)[:, None] * x + t[:, None] * y
  d = pullback.distance(phi, x, y, diag_a=a)
  e_closed = pullback.curve_energy(phi, closed, diag_a=a)
  e_straight = pullback.curve_energy(phi, straight, diag_a=a)
  assert float(e_closed) <= float(e_straight)
  np.testing.assert_allclose(e_closed, d**2, rtol=2e-2)
  np.testing.assert_allclose(pullback.curve_length(phi, closed, diag_a=a), d,
                             rtol=1e-2)


@pytest.mark.slow
def test_banana_energy_minimisation_matches_closed_form():
  """Minimise the discrete energy over interior points (G = Dphi^T A^-2 Dphi)."""
  dens = toy_densities.single_banana()
  phi, a = dens.phi, dens.diag_a
  x, y = jnp.array([2.0, 4.0]), jnp.array([2.0, -4.0])
  n = 32
  t = jnp.linspace(0.0, 1.0, n + 1)
  closed = pullback.geodesic(phi, dens.phi_inv, x, y, t)
  straight = (1 - t)[:, None] * x + t[:, None] * y

  def energy(inner_pts):
    curve = jnp.concatenate([x[None], inner_pts.reshape(n - 1, 2), y[None]])
    return pullback.curve_energy(phi, curve, diag_a=a)

  # Quasi-Newton (L-BFGS) from the straight line, under jit.
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(energy)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                value_fn=energy)
    return (optax.apply_updates(params, updates), state), value

  @jax.jit
  def minimise(p0):
    (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), None, length=300)
    return p, energy(p)

  res_x, res_fun = minimise(straight[1:-1].reshape(-1))
  numeric = jnp.concatenate([x[None], res_x.reshape(n - 1, 2), y[None]])
  assert float(jnp.max(jnp.linalg.norm(numeric - closed, axis=-1))) < 3e-2
  d2 = pullback.distance(phi, x, y, diag_a=a) ** 2
  assert float(res_fun) <= float(energy(straight[1:-1].reshape(-1)))
  # No curve beats the geodesic energy d^2; the optimum matches the energy of
  # the closed form sampled on the same grid (chords cost ~7% at n = 32).
  assert float(d2) * (1 - 1e-3) <= float(res_fun)
  np.testing.assert_allclose(
      res_fun, pullback.curve_energy(phi, closed, diag_a=a), rtol=2e-2)


# ----------------------------------------------------------------------------
# 5. Bad inputs.
# ----------------------------------------------------------------------------
def test_bad_inputs_raise_clearly():
  dens = toy_densities.single_banana()
  x = jnp.zeros(2)
  with pytest.raises(ValueError, match="diag_a.*strictly positive"):
    pullback.distance(dens.phi, x, x, diag_a=jnp.array([1.0, 0.0]))
  with pytest.raises(ValueError, match="diag_a.*strictly positive"):
    pullback.metric_tensor(dens.phi, x, diag_a=jnp.array([-1.0, 2.0]))
  with pytest.raises(ValueError, match=r"diag_a must have shape \[D\]"):
    pullback.distance(dens.phi, x, x, diag_a=jnp.ones(3))
  with pytest.raises(ValueError, match="x and y must have the same shape"):
    pullback.geodesic(dens.phi, dens.phi_inv, x, jnp.zeros(3), 0.5)
  with pytest.raises(ValueError, match="phi must map one point"):
    pullback.geodesic(dens.phi, dens.phi_inv, jnp.zeros(3), jnp.zeros(3), 0.5)
  with pytest.raises(ValueError, match="x must have rank 1 or 2"):
    pullback.log_map(dens.phi, dens.phi_inv, jnp.zeros((1, 2, 2)),
                     jnp.zeros((1, 2, 2)))
  with pytest.raises(TypeError, match="x must have a floating dtype"):
    pullback.distance(dens.phi, jnp.zeros(2, jnp.int32),
                      jnp.zeros(2, jnp.int32), diag_a=dens.diag_a)
  with pytest.raises(ValueError, match="shape"):
    pullback.pseudo_score(dens.phi, x, diag_a=dens.diag_a,
                          offset=jnp.zeros(3))
