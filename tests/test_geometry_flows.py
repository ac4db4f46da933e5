"""Tests for vdm_jax.geometry.flows and toy_densities: inverses and log-dets."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.geometry import flows
from vdm_jax.geometry import pullback
from vdm_jax.geometry import toy_densities
from tests import params as params_lib


def _random_flow(dim, n_steps=4, seed=0, mask_type="alternating"):
  model = flows.RealNVP(dim=dim, n_steps=n_steps, hidden=16, n_blocks=1,
                        mask_type=mask_type)
  params = jax.jit(functools.partial(flows.init_flow, model))(
      jax.random.key(seed))
  # The output layers are zero-initialised (identity flow); perturb every
  # parameter so the test exercises non-trivial scales and shifts.
  return model, params_lib.perturb(params, seed=seed + 1, scale=0.15)


@pytest.mark.parametrize("dim,mask_type", [(3, "alternating"), (5, "random")])
def test_realnvp_inverse_and_log_det(dim, mask_type):
  model, params = _random_flow(dim, mask_type=mask_type)
  x = 1.5 * jax.random.normal(jax.random.key(3), (16, dim))
  fwd = jax.jit(lambda p, v: model.apply(p, v))
  inv = jax.jit(lambda p, v: model.apply(p, v, method=flows.RealNVP.inverse))
  z, log_det = fwd(params, x)
  assert z.shape == x.shape and log_det.shape == (16,)
  assert float(jnp.max(jnp.abs(z - x))) > 1e-2  # not the identity
  np.testing.assert_allclose(inv(params, z), x, atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(fwd(params, inv(params, x))[0], x, atol=2e-5,
                             rtol=1e-5)
  # Brute-force Jacobian determinant.
  diffeo = flows.flow_maps(model, params)
  jac = jax.jit(jax.vmap(jax.jacfwd(diffeo.forward)))(x)
  np.testing.assert_allclose(log_det, jnp.linalg.slogdet(jac)[1], atol=1e-4)
  np.testing.assert_allclose(jax.jit(jax.vmap(diffeo.log_det))(x), log_det,
                             atol=1e-6)
  # phi^{-1} has the inverse Jacobian.
  jac_inv = jax.jit(jax.vmap(jax.jacfwd(diffeo.inverse)))(z)
  np.testing.assert_allclose(jnp.einsum("bij,bjk->bik", jac_inv, jac),
                             jnp.broadcast_to(jnp.eye(dim), jac.shape),
                             atol=1e-4)


def test_coupling_masks():
  masks = flows.coupling_masks(5, 4, "random")
  for first, second in (masks[:2], masks[2:]):
    assert sum(first) == 2 and all(a + b == 1 for a, b in zip(first, second))
  assert flows.coupling_masks(3, 2) == [(1, 0, 1), (0, 1, 0)]
  with pytest.raises(ValueError, match="mask_type"):
    flows.coupling_masks(3, 2, "checkerboard")


def test_init_flow_is_identity():
  model = flows.RealNVP(dim=3, n_steps=2, hidden=8, n_blocks=1)
  params = jax.jit(functools.partial(flows.init_flow, model))(
      jax.random.key(0))
  x = jax.random.normal(jax.random.key(1), (4, 3))
  z, log_det = jax.jit(model.apply)(params, x)
  np.testing.assert_allclose(z, x, atol=1e-7)
  np.testing.assert_allclose(log_det, 0.0, atol=1e-7)


def test_flow_geodesic_round_trip():
  model, params = _random_flow(2)
  diffeo = flows.flow_maps(model, params)
  x, y = jnp.array([0.3, -0.4]), jnp.array([-1.0, 0.8])
  geo = jax.jit(functools.partial(pullback.geodesic, diffeo.forward,
                                  diffeo.inverse))
  path = geo(x, y, jnp.array([0.0, 1.0]))
  np.testing.assert_allclose(path, jnp.stack([x, y]), atol=2e-5)
  exp_log = jax.jit(lambda p, q: pullback.exp_map(
      diffeo.forward, diffeo.inverse, p,
      pullback.log_map(diffeo.forward, diffeo.inverse, p, q)))
  np.testing.assert_allclose(exp_log(x, y), y, atol=2e-5)


def test_affine_diffeomorphism():
  w = jnp.array([[2.0, 1.0], [0.0, 0.5]])
  mu = jnp.array([1.0, -2.0])
  diffeo = flows.affine(w, mu)
  x = jnp.array([0.5, 0.25])
  np.testing.assert_allclose(diffeo.forward(x), w @ (x - mu), rtol=1e-6)
  np.testing.assert_allclose(diffeo.inverse(diffeo.forward(x)), x, atol=1e-6)
  np.testing.assert_allclose(diffeo.log_det(x), jnp.log(1.0), atol=1e-6)
  with pytest.raises(ValueError, match="weight must be invertible"):
    flows.affine(jnp.array([[1.0, 2.0], [2.0, 4.0]]))
  with pytest.raises(ValueError, match="shift must have shape"):
    flows.affine(w, jnp.zeros(3))
  with pytest.raises(ValueError, match="x must be one point"):
    diffeo.forward(jnp.zeros(3))


def test_flow_bad_input_dimension():
  model = flows.RealNVP(dim=3, n_steps=2, hidden=8, n_blocks=1)
  params = flows.init_flow(model, jax.random.key(0))
  with pytest.raises(ValueError, match="last dimension D = 3"):
    model.apply(params, jnp.zeros((2, 4)))
  with pytest.raises(TypeError, match="floating"):
    model.apply(params, jnp.zeros((2, 3), jnp.int32))


@pytest.mark.parametrize("name", ["single_banana", "squeezed_banana", "river",
                                  "sinusoid_2_6"])
def test_toy_densities_are_volume_preserving(name):
  dens = toy_densities.get_density(name)
  x = jax.jit(lambda r: toy_densities.sample(dens, r, 64))(jax.random.key(0))
  assert x.shape == (64, dens.dim)
  np.testing.assert_allclose(
      jax.jit(lambda v: jax.vmap(dens.phi_inv)(jax.vmap(dens.phi)(v)))(x), x,
      atol=1e-5)
  jac = jax.jit(jax.vmap(jax.jacfwd(dens.phi)))(x)
  np.testing.assert_allclose(jnp.linalg.det(jac), 1.0, atol=1e-5)
  # The latent codes have variance a (the density is exactly N(phi(x); 0, A)).
  z = jax.jit(lambda r: toy_densities.sample(dens, r, 4000))(jax.random.key(1))
  var = jax.jit(lambda v: jnp.var(jax.vmap(dens.phi)(v), axis=0))(z)
  np.testing.assert_allclose(var, dens.diag_a, rtol=0.15)


def test_get_density_rejects_unknown_names():
  with pytest.raises(ValueError, match="unknown density"):
    toy_densities.get_density("double_banana")
  with pytest.raises(ValueError, match="1 <= intrinsic_dim < dim"):
    toy_densities.sinusoid(3, 3)


def test_hemisphere_has_its_known_dimension():
  """Hemisphere(k, D): points on a quarter of the unit S^k in a (k+1)-plane."""
  k, d = 3, 9
  man = toy_densities.get_density(f"hemisphere_{k}_{d}")
  assert man.dim == d and man.intrinsic_dim == k and man.name == "hemisphere_3_9"
  q = man.embedding
  np.testing.assert_allclose(q.T @ q, jnp.eye(k + 1), atol=1e-5)
  x = jax.jit(lambda r: toy_densities.sample(man, r, 2000))(jax.random.key(0))
  assert x.shape == (2000, d)
  c = x @ q
  # On the unit sphere, inside the embedding plane, in the quarter c_1, c_k+1 >= 0.
  np.testing.assert_allclose(jnp.linalg.norm(c, axis=-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(c @ q.T, x, atol=1e-5)
  assert float(jnp.min(c[:, 0])) >= -1e-6 and float(jnp.min(c[:, -1])) >= -1e-6
  # Globally the data span exactly k + 1 directions ...
  sv = jnp.linalg.svd(x - x.mean(0), compute_uv=False)
  assert float(sv[k] / sv[0]) > 0.05 and float(sv[k + 1] / sv[0]) < 1e-5
  # ... and locally k: the chart's Jacobian has rank k at interior angles.
  theta = man.sample_params(jax.random.key(1), 64)
  jac = jax.jit(jax.vmap(jax.jacfwd(man.chart)))(theta)
  sv = jnp.linalg.svd(jac, compute_uv=False)
  assert sv.shape == (64, k)
  assert float(jnp.min(sv)) > 1e-3
  # theta_1 = (pi/2) Beta(5, 5): mean pi/4.
  np.testing.assert_allclose(jnp.mean(theta[:, 0]), jnp.pi / 4, atol=0.05)
  # sphere_point: S^1 is (cos, sin).
  np.testing.assert_allclose(toy_densities.sphere_point(jnp.array([0.3])),
                             [np.cos(0.3), np.sin(0.3)], atol=1e-6)
  with pytest.raises(ValueError, match="1 <= intrinsic_dim < dim"):
    toy_densities.hemisphere(3, 3)
  with pytest.raises(TypeError, match="ToyDensity or EmbeddedManifold"):
    toy_densities.sample("river", jax.random.key(0), 4)


def test_sphere_normal_coordinates_of_an_arc():
  """k = 1: the normal coordinate at the mean is theta_1 - mean (an arc)."""
  man = toy_densities.hemisphere(1, 4, seed=3)
  theta = jax.jit(lambda r: man.sample_params(r, 20000))(jax.random.key(0))
  x = jax.jit(jax.vmap(man.chart))(theta)
  var = toy_densities.sphere_normal_coordinate_variances(x, man.embedding)
  assert var.shape == (2,)
  # (pi/2) Beta(5, 5) has variance (pi/2)^2 * 25 / (100 * 11) = 0.0561.
  np.testing.assert_allclose(var[0], np.var(np.asarray(theta[:, 0])),
                             rtol=1e-3)
  np.testing.assert_allclose(var[0], (np.pi / 2) ** 2 * 25 / 1100, rtol=0.05)
  assert var[1] < 1e-10
  with pytest.raises(ValueError, match="expected x"):
    toy_densities.sphere_normal_coordinate_variances(x[:, :3], man.embedding)
