"""Tests for vdm_jax.geometry.isometry: NLL, isometry estimators, train loop."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.geometry import flows
from vdm_jax.geometry import isometry
from vdm_jax.geometry import toy_densities

from configs import pullback_2d


def test_nll_of_ground_truth_banana_is_exact():
  """The true phi as 'flow' gives -log N(phi(x); 0, A)."""
  dens = toy_densities.single_banana()
  x = toy_densities.sample(dens, jax.random.key(0), 32)
  z = jax.vmap(dens.phi)(x)
  log_det = jax.vmap(lambda p: jnp.linalg.slogdet(jax.jacfwd(dens.phi)(p))[1])(x)
  np.testing.assert_allclose(log_det, 0.0, atol=1e-6)
  nll = jax.jit(isometry.anisotropic_nll)(z, log_det, jnp.log(dens.diag_a))
  np.testing.assert_allclose(nll, -toy_densities.log_density(dens, x),
                             rtol=1e-5)
  # The shear is not an isometry: ||J^T J - I||_F^2 = 2 s^2 + s^4, s = 2 x2/9.
  iso = jax.jit(lambda v: isometry.isometry_penalty_exact(dens.phi, v))(x)
  s = 2 * x[:, 1] / 9
  np.testing.assert_allclose(iso, 2 * s**2 + s**4, rtol=1e-4, atol=1e-6)


def test_hutchinson_is_unbiased():
  dens = toy_densities.river()
  x = jnp.array([[0.3, 0.7], [-0.2, -1.1]])
  exact = isometry.isometry_penalty_exact(dens.phi, x)
  est = jax.jit(lambda r: isometry.isometry_penalty_hutchinson(
      dens.phi, x, r, num_probes=20000))(jax.random.key(0))
  np.testing.assert_allclose(est, exact, rtol=0.05)
  # Orthogonal maps have zero penalty under both estimators.
  q = flows.affine(jnp.array([[0.6, -0.8], [0.8, 0.6]]))
  np.testing.assert_allclose(isometry.isometry_penalty_exact(q.forward, x), 0,
                             atol=1e-10)
  np.testing.assert_allclose(isometry.isometry_penalty_hutchinson(
      q.forward, x, jax.random.key(1)), 0, atol=1e-10)


def test_length_estimator():
  """(||J v|| - 1)^2 on unit probes: 0 for rotations, (c - 1)^2 for c I."""
  x = jax.random.normal(jax.random.key(0), (6, 3))
  est = jax.jit(lambda f, r: isometry.isometry_penalty_length(
      f, x, r, num_probes=8), static_argnums=0)
  rot = flows.affine(jnp.asarray(np.linalg.qr(
      np.random.default_rng(0).normal(size=(3, 3)))[0], jnp.float32))
  np.testing.assert_allclose(est(rot.forward, jax.random.key(1)), 0.0,
                             atol=1e-10)
  np.testing.assert_allclose(est(lambda p: 1.5 * p, jax.random.key(1)), 0.25,
                             rtol=1e-5)
  # A shear stretches some directions: strictly positive.
  assert bool(jnp.all(est(toy_densities.sinusoid(1, 3).phi,
                          jax.random.key(2)) > 1e-3))
  # A diagonal map diag(s): ||J v||^2 = sum_i s_i^2 v_i^2; check vs Monte Carlo.
  s = jnp.array([0.5, 1.0, 2.0])
  v = jax.random.normal(jax.random.key(3), (50000, 3))
  v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
  mc = jnp.mean((jnp.linalg.norm(v * s, axis=-1) - 1.0) ** 2)
  big = jax.jit(lambda r: isometry.isometry_penalty_length(
      lambda p: s * p, x[:2], r, num_probes=5000))(jax.random.key(4))
  np.testing.assert_allclose(big, mc, rtol=0.05)
  with pytest.raises(ValueError, match="num_probes must be >= 1"):
    isometry.isometry_penalty_length(rot.forward, x, jax.random.key(0),
                                     num_probes=0)


def test_loss_switches_and_bad_inputs():
  model = flows.RealNVP(dim=2, n_steps=2, hidden=8, n_blocks=1)
  params = isometry.init_params(model, jax.random.key(0))
  params["log_a"] = jnp.log(jnp.array([0.5, 2.0]))
  x = jax.random.normal(jax.random.key(1), (8, 2))
  loss_a, aux_a = isometry.make_loss_fn(model)(params, x, jax.random.key(2))
  loss_i, _ = isometry.make_loss_fn(model, learn_a=False)(params, x, None)
  # Identity flow at init: NLL is that of N(0, diag(a)) resp. N(0, I).
  a = jnp.array([0.5, 2.0])
  expected = 0.5 * jnp.sum(x**2 / a + jnp.log(2 * jnp.pi * a), axis=-1)
  np.testing.assert_allclose(loss_a, expected, rtol=1e-5)
  np.testing.assert_allclose(
      loss_i, 0.5 * jnp.sum(x**2 + jnp.log(2 * jnp.pi), axis=-1), rtol=1e-5)
  np.testing.assert_allclose(aux_a["iso"], 0.0)
  # The 'length' estimator is wired in: zero for the identity flow at init.
  _, aux_len = jax.jit(isometry.make_loss_fn(
      model, lambda_iso=1.0, iso_estimator="length"))(params, x,
                                                      jax.random.key(3))
  np.testing.assert_allclose(aux_len["iso"], 0.0, atol=1e-10)
  with pytest.raises(ValueError, match="iso_estimator"):
    isometry.make_loss_fn(model, iso_estimator="qr")
  with pytest.raises(ValueError, match="lambda_iso and lambda_vol"):
    isometry.make_loss_fn(model, lambda_iso=-1.0)
  with pytest.raises(ValueError, match="last dimension D = 2"):
    isometry.make_loss_fn(model)(params, jnp.zeros((4, 3)), None)


@pytest.mark.slow
def test_train_flow_learns_anisotropic_base():
  config = pullback_2d.get_config("quick")
  config.flow.n_steps = 2
  config.flow.hidden = 16
  config.flow.n_blocks = 1
  config.optim.num_steps = 200
  config.loss.iso_estimator = "hutchinson"
  dens = toy_densities.single_banana()
  x = toy_densities.sample(dens, jax.random.key(0), 1000)
  kwargs = lambda: dict(seed=config.seed, flow=config.flow.to_dict(),
                        loss=config.loss.to_dict(), optim=config.optim.to_dict())
  model, state, history = isometry.train_flow(x, **kwargs())
  assert len(history) == 2 and int(state.step) == 200
  assert history[-1]["nll"] < history[0]["nll"] + 1e-3
  a = isometry.diag_a_of(state.params)
  # The latent variances order like the truth: x2 carries the data.
  assert float(a[1]) > 4 * float(a[0])
  z, log_det = model.apply(state.ema.params["flow"], x[:4])
  x_back = model.apply(state.ema.params["flow"], z,
                       method=flows.RealNVP.inverse)
  np.testing.assert_allclose(x_back, x[:4], atol=1e-4)
  assert log_det.shape == (4,)
  config.optim.num_steps = 150
  with pytest.raises(ValueError, match="multiple of"):
    isometry.train_flow(x, **kwargs())
