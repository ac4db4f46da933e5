"""Tests for vdm_jax.sde.sdes: closed-form marginals, SDE consistency, errors."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules
from vdm_jax.sde import sdes

jax.config.update("jax_enable_x64", False)


def _net_schedule_fn():
  module = schedules.make_schedule("learned_net")
  params = schedules.init_schedule(module, jax.random.key(3))
  return schedules.bind(module, params)


def _all_sdes():
  return {
      "vp": sdes.VPSDE(),
      "subvp": sdes.SubVPSDE(),
      "ve": sdes.VESDE(sigma_min=0.01, sigma_max=5.0),
      "sched_linear": sdes.ScheduleVPSDE(schedules.linear_gamma),
      "sched_cosine": sdes.ScheduleVPSDE(
          functools.partial(schedules.cosine_gamma, gamma_min=-10., gamma_max=6.)),
  }


SDE_NAMES = list(_all_sdes())


@pytest.mark.parametrize("name", SDE_NAMES)
def test_fokker_planck_moments_match_marginal(name):
  """For a linear SDE, d a/dt = -beta/2 a and d s^2/dt = -beta s^2 + g^2."""
  sde = _all_sdes()[name]
  t = jnp.linspace(0.05, 0.95, 7)
  x = jnp.ones((7, 1))

  def coeffs(tt):
    return sde.marginal_coeffs(tt)

  (a, s), (da, ds) = jax.jvp(coeffs, (t,), (jnp.ones_like(t),))
  f, g = jax.jit(sde.drift_diffusion)(x, t)
  drift_coeff = f[:, 0]  # f(x, t) = drift_coeff * x with x = 1.
  np.testing.assert_allclose(da, drift_coeff * a, rtol=2e-3, atol=1e-5)
  np.testing.assert_allclose(2 * s * ds, 2 * drift_coeff * s**2 + g**2,
                             rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("name", SDE_NAMES)
def test_exact_discretize_composes_to_marginal(name):
  """Chaining `discretize` steps from t0 reproduces the closed-form moments."""
  sde = _all_sdes()[name]
  n, t0, t1 = 37, 0.0, 0.9
  mu, var = jnp.array([[0.7]]), jnp.array([0.25])  # data x0 ~ N(0.7, 0.5^2)
  a0, s0 = sde.marginal_coeffs(jnp.array([t0]))
  m, v = a0[:, None] * mu, a0**2 * var + s0**2
  dt = (t1 - t0) / n

  @jax.jit
  def run(m, v):
    def body(carry, i):
      m, v = carry
      t = jnp.full((1,), t0 + i * dt)
      fm, g_i = sde.discretize(m, t, dt)
      ratio = (sde.discretize(jnp.ones_like(m), t, dt)[0] + 1.0)[:, 0]
      return (m + fm, ratio**2 * v + g_i**2), None
    return jax.lax.scan(body, (m, v), jnp.arange(n))[0]

  m, v = run(m, v)
  a1, s1 = sde.marginal_coeffs(jnp.array([t1]))
  np.testing.assert_allclose(m, a1[:, None] * mu, rtol=1e-4)
  np.testing.assert_allclose(v, a1**2 * var + s1**2, rtol=1e-3)


@pytest.mark.parametrize("name", ["vp", "subvp", "ve", "sched_linear"])
def test_marginal_matches_euler_maruyama_simulation(name):
  """Gaussian data: simulate the forward SDE and compare with the closed form."""
  sde = _all_sdes()[name]
  n_samples, n_steps, t1 = 8000, 400, 1.0
  mu, std = jnp.array([0.5, -1.0]), jnp.array([0.3, 1.2])
  k0, k1, k2 = jax.random.split(jax.random.key(0), 3)
  x0 = mu + std * jax.random.normal(k0, (n_samples, 2))
  # At t = 0 the process starts from p_00(. | x0) (sigma_min / sigma_0 noise).
  t_start = jnp.zeros((n_samples,))
  m0, s0 = sde.marginal(x0, t_start)
  x = m0 + s0[:, None] * jax.random.normal(k1, x0.shape)
  dt = t1 / n_steps

  @jax.jit
  def simulate(x, key):
    def body(x, inp):
      i, k = inp
      t = jnp.full((n_samples,), i * dt)
      f, g = sde.drift_diffusion(x, t)
      return x + f * dt + g[:, None] * math.sqrt(dt) * jax.random.normal(
          k, x.shape), None
    return jax.lax.scan(body, x, (jnp.arange(n_steps), jax.random.split(
        key, n_steps)))[0]

  xt = simulate(x, k2)
  a, s = sde.marginal_coeffs(jnp.array([t1]))
  want_mean = a * mu
  want_var = a**2 * std**2 + s**2
  se_mean = np.sqrt(want_var / n_samples)
  np.testing.assert_array_less(np.abs(xt.mean(0) - want_mean), 5 * se_mean + 1e-3)
  # Relative variance error: sampling (~1.6% s.e. at 8e3) plus O(dt) EM bias.
  np.testing.assert_allclose(xt.var(0), want_var, rtol=0.08)


@pytest.mark.parametrize("gamma_fn", [
    schedules.linear_gamma,
    functools.partial(schedules.cosine_gamma, gamma_min=-10., gamma_max=6.),
    "net",
])
def test_schedule_vp_matches_vdm_forward_process(gamma_fn):
  if gamma_fn == "net":
    gamma_fn = _net_schedule_fn()
  sde = sdes.ScheduleVPSDE(gamma_fn)
  t = jnp.linspace(0., 1., 6)
  x = jax.random.normal(jax.random.key(1), (6, 3, 2))
  mean, std = jax.jit(sde.marginal)(x, t)
  g = gamma_fn(t)  # op by op: float32 rounding differs from the jitted, fused path.
  np.testing.assert_allclose(mean, schedules.alpha(g)[:, None, None] * x,
                             rtol=1e-5)
  np.testing.assert_allclose(std, schedules.sigma(g), rtol=1e-5)
  # beta(t) = sigma_t^2 gamma'(t) = -2 d/dt log alpha_t.
  dlog_alpha = jax.jit(jax.vmap(jax.grad(lambda tt: jnp.log(schedules.alpha(
      gamma_fn(tt))))))(t)
  _, gdiff = jax.jit(sde.drift_diffusion)(x, t)
  np.testing.assert_allclose(gdiff**2, -2 * dlog_alpha, rtol=1e-3, atol=1e-6)


def test_vp_equals_schedule_vp_with_its_log_snr():
  vp = sdes.VPSDE()
  svp = sdes.ScheduleVPSDE(vp.log_snr)
  t = jnp.linspace(0.01, 1., 5)
  x = jax.random.normal(jax.random.key(2), (5, 4))
  for a, b in zip(vp.marginal(x, t), svp.marginal(x, t)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  for a, b in zip(vp.drift_diffusion(x, t), svp.drift_diffusion(x, t)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  # gamma(t) = log(e^{B(t)} - 1): gamma(1e-5) ~ -13.8 and gamma(1) ~ 10.05.
  np.testing.assert_allclose(vp.log_snr(jnp.array([1e-5, 1.])),
                             [-13.8155, 10.05], atol=2e-2)


@pytest.mark.parametrize("name", SDE_NAMES)
def test_prior_sample_and_logp(name):
  sde = _all_sdes()[name]
  z = sde.prior_sample(jax.random.key(0), (4000, 3))
  np.testing.assert_allclose(z.std(), sde.prior_std, rtol=0.05)
  zz = jnp.array([[0.3, -1.0, 2.0]])
  want = jax.scipy.stats.norm.logpdf(zz, scale=sde.prior_std).sum(-1)
  np.testing.assert_allclose(jax.jit(sde.prior_logp)(zz), want, rtol=1e-5)


@pytest.mark.parametrize("pf", [False, True])
def test_reverse_drift_and_discretize(pf):
  sde = sdes.VPSDE()
  score = lambda x, t: -2.0 * x + t[:, None]
  rev = sde.reverse(score, probability_flow=pf)
  x = jax.random.normal(jax.random.key(4), (3, 2))
  t = jnp.array([0.2, 0.5, 0.9])
  f, g = sde.drift_diffusion(x, t)
  rf, rg = jax.jit(rev.drift_diffusion)(x, t)
  c = 0.5 if pf else 1.0
  np.testing.assert_allclose(rf, f - c * g[:, None]**2 * score(x, t), rtol=1e-5)
  np.testing.assert_allclose(rg, 0. * g if pf else g, rtol=1e-6)
  df, dg = jax.jit(rev.discretize)(x, t, 0.01)
  ff, fg = sde.discretize(x, t - 0.01, 0.01)
  np.testing.assert_allclose(df, ff - c * fg[:, None]**2 * score(x, t),
                             rtol=1e-5)
  np.testing.assert_allclose(dg, 0. * fg if pf else fg, rtol=1e-6)


def test_kw_only_base_fields_and_hashable():
  sde = sdes.VPSDE(0.2, 10.0, eps=1e-3)
  assert (sde.beta_min, sde.beta_max, sde.T, sde.eps) == (0.2, 10.0, 1.0, 1e-3)
  assert hash(sdes.VESDE()) == hash(sdes.VESDE())
  with pytest.raises(dataclasses_error()):
    sde.beta_min = 1.0


def dataclasses_error():
  import dataclasses
  return dataclasses.FrozenInstanceError


def test_bad_inputs_raise_by_name():
  with pytest.raises(ValueError, match="sigma_min must be < sigma_max"):
    sdes.VESDE(sigma_min=1.0, sigma_max=1.0)
  with pytest.raises(ValueError, match="sigma_min must be < sigma_max"):
    sdes.VESDE(sigma_min=2.0, sigma_max=1.0)
  with pytest.raises(ValueError, match="beta_min"):
    sdes.VPSDE(beta_min=5.0, beta_max=1.0)
  with pytest.raises(ValueError, match="eps"):
    sdes.SubVPSDE(eps=2.0)
  with pytest.raises(TypeError, match="gamma_fn"):
    sdes.ScheduleVPSDE(3.0)
  sde = sdes.VPSDE()
  x = jnp.zeros((3, 2))
  with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
    sde.marginal(x, jnp.array([0.1, 0.2, 1.5]))
  with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
    sde.drift_diffusion(x, jnp.array([-0.1, 0.2, 0.5]))
  with pytest.raises(ValueError, match="t must be a scalar or have shape"):
    sde.drift_diffusion(x, jnp.array([0.1, 0.2]))
  with pytest.raises(TypeError, match="x must have a floating dtype"):
    sde.drift_diffusion(jnp.zeros((3, 2), jnp.int32), jnp.array([.1, .2, .3]))
  with pytest.raises(ValueError, match="shape"):
    sde.prior_sample(jax.random.key(0), ())
  with pytest.raises(TypeError, match="score_fn"):
    sde.reverse(None)
  rev = sde.reverse(lambda x, t: x[:, :1])
  with pytest.raises(ValueError, match="score_fn must return"):
    rev.drift_diffusion(x, jnp.array([.1, .2, .3]))


def test_schedule_vp_sde_rejects_a_decreasing_gamma_fn():
  """beta(t) = sigma^2 gamma'(t) < 0 used to give NaN diffusion with no error."""
  with pytest.raises(ValueError, match=r"ScheduleVPSDE: gamma_fn must be increasing in t .*"
                                       r"got gamma\(0\) = 5.0 and gamma\(1\) = -13\.[23]"):
    sdes.ScheduleVPSDE(gamma_fn=lambda t: 5.0 - 18.3 * t)


def test_schedule_vp_sde_beta_rejects_a_locally_decreasing_gamma_fn():
  sde = sdes.ScheduleVPSDE(gamma_fn=lambda t: -13.3 + 18.3 * t + 8.0 * jnp.sin(2 * math.pi * t))
  with pytest.raises(ValueError, match=r"gamma_fn must be increasing in t \(beta\(t\) = sigma_t\^2 "
                                       r"gamma'\(t\) >= 0\), got a minimum gamma'\(t\) of -31.9"):
    sde.beta(jnp.array([0.1, 0.5], jnp.float32))
