import jax.numpy as jnp

from vdm_jax import schedules


def test_linear_schedule_endpoints():
  g = schedules.linear_gamma(jnp.array([0.0, 1.0]))
  assert jnp.allclose(g, jnp.array([-13.3, 5.0]))
