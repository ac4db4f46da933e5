import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_endpoints_and_monotone(name):
  module = schedules.make_schedule(name, gamma_min=-10.0, gamma_max=4.0)
  params = schedules.init_schedule(module, jax.random.key(3))
  gamma_fn = jax.jit(schedules.bind(module, params))
  t = jnp.linspace(0.0, 1.0, 2001)
  g = gamma_fn(t)
  np.testing.assert_allclose(g[0], -10.0, atol=1e-5)
  np.testing.assert_allclose(g[-1], 4.0, atol=1e-5)
  assert np.all(np.diff(np.asarray(g)) > 0), "schedule must be strictly increasing"
  _, dg = schedules.gamma_and_derivative(gamma_fn, t)
  assert np.all(np.asarray(dg) > 0)


def test_learned_net_is_nonlinear_and_endpoints_exact_after_perturbation():
  module = schedules.MonotoneNetSchedule(gamma_min=-13.3, gamma_max=5.0,
                                         n_features=64)
  params = schedules.init_schedule(module, jax.random.key(0))
  # Perturb every shape parameter: the endpoints must not move (normalised form).
  params = jax.tree.map_with_path(
      lambda p, x: x + 0.7 if schedules.is_shape_param(p) else x, params)
  gamma_fn = schedules.bind(module, params)
  np.testing.assert_allclose(gamma_fn(0.0), -13.3, atol=1e-5)
  np.testing.assert_allclose(gamma_fn(1.0), 5.0, atol=1e-5)
  # Random init is visibly not the straight line.
  mid = float(gamma_fn(0.5))
  assert abs(mid - (-13.3 + 5.0) / 2) > 0.05


def test_derivative_matches_finite_difference():
  gamma_fn = lambda t: schedules.cosine_gamma(t, gamma_min=-13.3, gamma_max=5.0)
  t = jnp.array([0.2, 0.5, 0.8], jnp.float32)
  _, dg = schedules.gamma_and_derivative(gamma_fn, t)
  h = 1e-3
  fd = (gamma_fn(t + h) - gamma_fn(t - h)) / (2 * h)
  np.testing.assert_allclose(dg, fd, rtol=2e-3)


def test_alpha_sigma_stable_and_variance_preserving():
  g = jnp.array([-13.3, 0.0, 5.0, 15.0, 20.0], jnp.float32)
  np.testing.assert_allclose(schedules.alpha2(g) + schedules.sigma2(g), 1.0, rtol=1e-6)
  # alpha^2 at gamma = 20 is ~2e-9; 1 - sigmoid(20) would be exactly 0 in float32.
  np.testing.assert_allclose(schedules.alpha2(g)[-1], 1 / (1 + np.exp(20.0)), rtol=1e-5)
  np.testing.assert_allclose(schedules.snr(g), np.exp(-np.asarray(g)), rtol=1e-6)
  np.testing.assert_allclose(jnp.exp(schedules.log_alpha2(g)), schedules.alpha2(g), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_bad_endpoints_raise(name):
  with pytest.raises(ValueError, match="gamma_0 must be < gamma_1"):
    schedules.make_schedule(name, gamma_min=5.0, gamma_max=-13.3)


def test_unknown_schedule_raises():
  with pytest.raises(ValueError, match="Unknown schedule"):
    schedules.make_schedule("quadratic")


def test_learned_net_endpoints_cannot_cross_under_a_large_learning_rate():
  """gamma_1 = gamma_0 + softplus(width): SGD pulling the ends past each other never crosses them."""
  module = schedules.MonotoneNetSchedule(gamma_min=-13.3, gamma_max=5.0, n_features=8)
  params = schedules.init_schedule(module, jax.random.key(0))
  gamma_fn = schedules.bind(module, params)
  np.testing.assert_allclose([gamma_fn(0.0), gamma_fn(1.0)], [-13.3, 5.0], atol=1e-5)

  def swapped(p):  # pulls gamma(0) towards 5 and gamma(1) towards -13.3
    g = schedules.bind(module, p)
    return (g(0.0) - 5.0) ** 2 + (g(1.0) + 13.3) ** 2

  grad = jax.jit(jax.grad(swapped))
  lr = 0.4  # with free endpoints one step lands them at 1.3 and -9.6: crossed
  for _ in range(6):
    params = jax.tree.map(lambda p, g: p - lr * g, params, grad(params))
    g = np.asarray(schedules.bind(module, params)(jnp.linspace(0.0, 1.0, 101)))
    assert g[-1] > g[0], (g[0], g[-1])
    assert np.all(np.diff(g) >= 0)
  assert g[0] > -10.0  # the pull did move the endpoints towards each other


def test_linear_and_cosine_gamma_reject_decreasing_endpoints():
  for fn in (schedules.linear_gamma, schedules.cosine_gamma):
    with pytest.raises(ValueError, match=r"gamma_min must be <= gamma_max .*got gamma_min=5.0 "
                                         r"and gamma_max=-13.3"):
      fn(jnp.float32(0.5), gamma_min=5.0, gamma_max=-13.3)
    np.testing.assert_allclose(fn(jnp.float32(0.5), gamma_min=-2.0, gamma_max=-2.0), -2.0,
                               rtol=1e-5)  # constant: a process that never adds noise


def test_check_increasing_names_the_values():
  with pytest.raises(ValueError, match=r"gamma_fn must be increasing in t .*got gamma\(0\) = 1.0 and gamma\(1\) = -1.0"):
    schedules.check_increasing(jnp.float32(1.0), jnp.float32(-1.0))
