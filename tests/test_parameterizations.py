import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import gaussian_oracle as oracle
from vdm_jax import parameterizations as P
from vdm_jax import schedules

NAMES = P.PARAMETERIZATIONS


@pytest.mark.parametrize("source,target", list(itertools.permutations(NAMES, 2)))
def test_conversions_are_mutual_inverses(source, target):
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  z = jax.random.normal(k1, (4, 3, 3, 2))
  pred = jax.random.normal(k2, z.shape)
  gamma = jax.random.uniform(k3, (4,), minval=-8.0, maxval=4.0)
  there = jax.jit(lambda p: P.convert(p, z, gamma, source=source, target=target))(pred)
  back = P.convert(there, z, gamma, source=target, target=source)
  np.testing.assert_allclose(back, pred, rtol=2e-4, atol=2e-4)


def test_true_values_map_to_each_other():
  """With the true x and eps, every conversion lands on the true quantity."""
  k1, k2 = jax.random.split(jax.random.key(1))
  x = jax.random.normal(k1, (5, 7))
  eps = jax.random.normal(k2, (5, 7))
  gamma = jnp.linspace(-5.0, 3.0, 5)
  a = schedules.alpha(gamma)[:, None]
  s = schedules.sigma(gamma)[:, None]
  z = a * x + s * eps
  v = a * eps - s * x
  np.testing.assert_allclose(P.eps_to_x0(eps, z, gamma), x, atol=1e-4)
  np.testing.assert_allclose(P.v_to_eps(v, z, gamma), eps, atol=1e-5)
  np.testing.assert_allclose(P.v_to_x0(v, z, gamma), x, atol=1e-5)
  np.testing.assert_allclose(P.eps_to_v(eps, z, gamma), v, atol=1e-4)


def test_tweedie_gives_exact_posterior_mean_for_gaussian_data():
  z = jnp.linspace(-2.0, 2.0, 9)[:, None]
  gamma = jnp.full((9,), -1.0)
  score = oracle.optimal_score(z, gamma)
  a, sig = schedules.alpha(-1.0), schedules.sigma(-1.0)
  v = a * a * oracle.S ** 2 + sig * sig
  posterior_mean = oracle.MU + a * oracle.S ** 2 * (z - a * oracle.MU) / v
  np.testing.assert_allclose(P.tweedie(score, z, gamma), posterior_mean, rtol=1e-5)


def test_per_example_gamma_broadcasts_over_batch_not_channels():
  z = jnp.ones((3, 3))  # B == C: a trailing-axis broadcast would silently pass.
  gamma = jnp.array([-2.0, 0.0, 2.0])
  out = P.eps_to_score(jnp.ones((3, 3)), z, gamma)
  np.testing.assert_allclose(out[:, 0], -1 / schedules.sigma(gamma), rtol=1e-6)
  np.testing.assert_allclose(out[0], out[0, 0])


def test_bfloat16_inputs_keep_dtype_and_grad_works():
  z = jnp.ones((2, 4), jnp.bfloat16)
  out = P.eps_to_x0(jnp.zeros_like(z), z, jnp.zeros((2,)))
  assert out.dtype == jnp.bfloat16
  g = jax.grad(lambda e: jnp.sum(P.eps_to_x0(e, jnp.ones((2, 4)), 0.5)))(jnp.ones((2, 4)))
  np.testing.assert_allclose(g, -schedules.sigma(0.5) / schedules.alpha(0.5), rtol=1e-6)
  vm = jax.vmap(lambda zz: P.eps_to_x0(zz[None], zz[None], 0.0)[0])(jnp.ones((3, 4)))
  assert vm.shape == (3, 4)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="same shape"):
    P.eps_to_x0(jnp.ones((2, 3)), jnp.ones((2, 4)), 0.0)
  with pytest.raises(ValueError, match=r"shape \[B\]"):
    P.eps_to_x0(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.zeros((3,)))
  with pytest.raises(ValueError, match="source parameterisation"):
    P.convert(jnp.ones(2), jnp.ones(2), 0.0, source="mu", target="eps")
  with pytest.raises(TypeError, match="floating"):
    P.eps_to_x0(jnp.ones((2,), jnp.int32), jnp.ones((2,), jnp.int32), 0.0)
