"""Tests for vdm_jax/flows/multiscale.py: round trip, exact log p(x), sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import flows
from tests import params as params_lib


def _x(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape) * 1.3 + 0.2




def _flow_and_params(shape, levels=2, steps=2, cond_channels=None, seed=0):
  flow = flows.MultiScaleFlow(levels=levels, steps_per_level=steps, hidden=8)
  x = _x(shape, seed)
  cond = None
  if cond_channels is not None:
    cond = tuple(_x((shape[0], shape[1] >> (i + 1), shape[2] >> (i + 1),
                     cond_channels), seed=10 + i) for i in range(levels))
  params = params_lib.perturb(jax.jit(
      lambda k, v, c: flow.init(k, v, c, method="forward"))(
          jax.random.key(0), x, cond))
  return flow, params, x, cond


@pytest.mark.parametrize("cond_channels", [None, 2])
def test_round_trip_and_latent_shapes(cond_channels):
  shape = (2, 8, 8, 1)
  flow, params, x, cond = _flow_and_params(shape, cond_channels=cond_channels)
  zs, logdet = jax.jit(
      lambda v: flow.apply(params, v, cond, method="forward"))(x)
  assert tuple(z.shape for z in zs) == flows.latent_shapes(shape, 2)
  assert tuple(z.shape for z in zs) == ((2, 4, 4, 2), (2, 2, 2, 8))
  assert logdet.shape == (2,)
  x_back = jax.jit(lambda z: flow.apply(params, z, cond, method="inverse"))(zs)
  np.testing.assert_allclose(x_back, x, atol=1e-4)


@pytest.mark.slow
def test_log_prob_matches_brute_force_jacobian():
  shape = (1, 4, 4, 1)
  flow, params, x, _ = _flow_and_params(shape)

  def flat(v):
    zs, _ = flow.apply(params, v.reshape(shape), method="forward")
    return jnp.concatenate([z.reshape(-1) for z in zs])

  jac = jax.jit(jax.jacfwd(flat))(x.reshape(-1))
  z = jax.jit(flat)(x.reshape(-1))
  expected = (jnp.linalg.slogdet(jac)[1]
              - 0.5 * jnp.sum(z ** 2) - 0.5 * z.size * jnp.log(2 * jnp.pi))
  log_prob = jax.jit(lambda v: flow.apply(params, v, method="log_prob"))(x)
  np.testing.assert_allclose(log_prob[0], expected, rtol=1e-4, atol=1e-3)


def test_sampling_temperature_zero_is_deterministic():
  shape = (2, 8, 8, 1)
  flow, params, _, _ = _flow_and_params(shape)
  sample = jax.jit(lambda rng, t: flow.apply(
      params, rng, shape, temperature=t, method="sample"))
  a = sample(jax.random.key(1), 0.)
  b = sample(jax.random.key(2), 0.)
  np.testing.assert_array_equal(a, b)
  zeros = tuple(jnp.zeros(s) for s in flows.latent_shapes(shape, 2))
  inverse = jax.jit(lambda z: flow.apply(params, z, method="inverse"))
  np.testing.assert_allclose(a, inverse(zeros), atol=1e-6)
  c = sample(jax.random.key(1), 1.)
  d = sample(jax.random.key(2), 1.)
  assert c.shape == shape and not np.allclose(c, d)


def test_bits_per_dim_of_uniform_density():
  # A uniform density on [0, 1]^D has log p = 0: 8 bits/dim for 256 bins.
  np.testing.assert_allclose(
      flows.bits_per_dim(jnp.zeros(3), (3, 2, 2, 1)), 8., rtol=1e-6)


def test_bad_shapes_raise_by_name():
  flow = flows.MultiScaleFlow(levels=3, steps_per_level=1, hidden=4)
  with pytest.raises(ValueError, match="divisible by 2\\^levels = 8"):
    flow.init(jax.random.key(0), jnp.zeros((1, 12, 12, 1)), method="forward")
  with pytest.raises(ValueError, match="divisible by 2\\^levels"):
    flows.latent_shapes((1, 6, 8, 1), 2)
  flow, params, x, _ = _flow_and_params((1, 8, 8, 1))
  zs, _ = jax.jit(lambda v: flow.apply(params, v, method="forward"))(x)
  with pytest.raises(ValueError, match="zs must hold 2 latents"):
    flow.apply(params, zs[:1], method="inverse")
  with pytest.raises(ValueError, match="one image per level"):
    flow.apply(params, x, (jnp.zeros((1, 4, 4, 2)),), method="forward")
