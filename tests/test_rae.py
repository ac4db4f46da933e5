"""Tests for vdm_jax.geometry.rae: the epsilon rule, PCA limit and error bounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.geometry import flows
from vdm_jax.geometry import rae
from vdm_jax.geometry import toy_densities


def test_epsilon_rule_by_hand():
  a = jnp.array([0.01, 5.0, 0.02, 3.0, 1.0])  # sum 9.03
  dim, order, eps_eff = rae.choose_dimension(a, epsilon=0.01)
  # Dropping {0.01, 0.02} leaves 0.03 / 9.03 = 0.0033 <= 0.01; adding 1.0 not.
  assert dim == 3
  np.testing.assert_array_equal(order[:3], [1, 3, 4])
  np.testing.assert_allclose(eps_eff, 0.03 / 9.03, rtol=1e-6)
  assert rae.choose_dimension(a, epsilon=0.2)[0] == 2  # drops 1.03/9.03
  # Smallest a above eps * sum: keep everything.
  assert rae.choose_dimension(jnp.array([1.0, 1.0]), epsilon=0.1)[0] == 2
  assert rae.choose_dimension(jnp.array([1.0, 1.0]), epsilon=0.0)[0] == 2


def test_gap_rule():
  a = jnp.array([1e-3, 5.0, 2e-3, 3.0])
  dim, gap = rae.choose_dimension_by_gap(a)
  assert dim == 2
  np.testing.assert_allclose(gap, np.log(3.0 / 2e-3), rtol=1e-6)
  # Scale-free: the gap rule ignores the total, unlike the epsilon rule.
  a = jnp.array([0.3, 0.17, 0.08, 0.04, 0.026, 1e-6])
  assert rae.choose_dimension_by_gap(a)[0] == 5
  assert rae.choose_dimension_by_gap(1e3 * a)[0] == 5
  assert rae.choose_dimension(a, epsilon=0.1)[0] == 4
  with pytest.raises(ValueError, match="D >= 2"):
    rae.choose_dimension_by_gap(jnp.array([1.0]))


def test_affine_rae_is_pca_and_meets_bound():
  """Orthogonal affine phi: RAE == PCA, E err^2 == sum of dropped a."""
  k, d = 2, 5
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
  q = jnp.asarray(q, jnp.float32)
  mu = jnp.arange(d, dtype=jnp.float32)
  diffeo = flows.affine(q, mu)
  diag_a = jnp.array([1e-3, 4.0, 2e-3, 1e-3, 2.0])
  z = jax.random.normal(jax.random.key(0), (4000, d)) * jnp.sqrt(diag_a)
  x = jax.vmap(diffeo.inverse)(z)
  model = rae.make_rae(diffeo.forward, diffeo.inverse, diag_a, epsilon=0.01)
  assert model.dim == k
  np.testing.assert_array_equal(model.kept, [1, 4])
  codes = jax.jit(model.encode)(x)
  assert codes.shape == (4000, k)
  np.testing.assert_allclose(codes, z[:, jnp.array([1, 4])], atol=1e-4)
  err = jax.jit(lambda v: rae.reconstruction_errors(model, v))(x)
  dropped = jnp.sum(z[:, jnp.array([0, 2, 3])] ** 2, axis=-1)
  np.testing.assert_allclose(err, dropped, rtol=1e-2, atol=1e-6)
  bound = rae.error_bound(model)
  np.testing.assert_allclose(bound, 4e-3, rtol=1e-5)
  assert bound <= 0.01 * float(jnp.sum(diag_a))
  assert float(jnp.mean(err)) <= 1.1 * bound
  pw, lip = rae.pointwise_bound(model, diffeo.forward, diffeo.inverse, x[:16])
  np.testing.assert_allclose(lip, 1.0, rtol=1e-4)
  assert bool(jnp.all(err[:16] <= pw * (1 + 1e-3) + 1e-7))


def test_sinusoid_rae_keeps_k_and_is_within_bound():
  dens = toy_densities.sinusoid(2, 8)
  x = toy_densities.sample(dens, jax.random.key(1), 512)
  model = rae.make_rae(dens.phi, dens.phi_inv, dens.diag_a, epsilon=0.05)
  assert model.dim == dens.intrinsic_dim
  np.testing.assert_array_equal(np.sort(model.kept), [6, 7])
  err = rae.reconstruction_errors(model, x)
  # Shear phi: the error is exactly the dropped latent energy, mean 6e-3.
  assert float(jnp.mean(err)) <= 1.2 * rae.error_bound(model)
  pw, lip = jax.jit(lambda v: rae.pointwise_bound(
      model, dens.phi, dens.phi_inv, v))(x[:32])
  assert bool(jnp.all(lip >= 1.0 - 1e-5))
  assert bool(jnp.all(err[:32] <= pw * (1 + 1e-3) + 1e-7))
  # Decoding a code lands on the manifold: phi's dropped coordinates are 0.
  z_hat = jax.vmap(dens.phi)(model.decode(model.encode(x[:8])))
  np.testing.assert_allclose(z_hat[:, :6], 0.0, atol=1e-5)


def test_rae_bad_inputs():
  dens = toy_densities.single_banana()
  with pytest.raises(ValueError, match="strictly positive"):
    rae.make_rae(dens.phi, dens.phi_inv, jnp.array([0.0, 1.0]), epsilon=0.1)
  with pytest.raises(ValueError, match="epsilon must be in"):
    rae.choose_dimension(dens.diag_a, epsilon=1.5)
  model = rae.make_rae(dens.phi, dens.phi_inv, dens.diag_a, epsilon=0.1)
  assert model.dim == 1 and list(model.kept) == [1]
  with pytest.raises(ValueError, match="last dimension D = 2"):
    model.encode(jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match="codes must have last dimension d = 1"):
    model.decode(jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match="lipschitz must be > 0"):
    rae.error_bound(model, lipschitz=0.0)


def test_rae_config_per_dataset_overrides():
  """configs/pullback_rae.py: each set gets its own settings, eps is shared."""
  from configs import pullback_rae  # pylint: disable=g-import-not-at-top
  config = pullback_rae.get_config()
  assert set(config.datasets) <= set(config.per_dataset)
  assert max(toy_densities.get_density(n).dim for n in config.datasets) == 100
  assert max(toy_densities.get_density(n).intrinsic_dim
             for n in config.datasets) >= 2
  c = pullback_rae.dataset_config(config, "sinusoid_1_100")
  assert c.flow.scale_type == "sigmoid" and config.flow.scale_type == "tanh"
  assert c.epsilon == config.epsilon == 0.1
  c = pullback_rae.dataset_config(config, "sinusoid_1_3")
  assert c.loss.iso_estimator == "length" and c.loss.lambda_iso == 5.0
  # Unknown sets get the shared defaults.
  assert pullback_rae.dataset_config(config, "digits").loss.lambda_iso == 0.5
  config.per_dataset.sinusoid_1_3.loss.lambda_isometry = 1.0
  with pytest.raises(ValueError, match="unknown key 'lambda_isometry'"):
    pullback_rae.dataset_config(config, "sinusoid_1_3")
