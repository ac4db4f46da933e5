"""Tests for vdm_jax.multiscale.nonuniform (Batzolis et al. 2022, arXiv 2207.09786)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules
from vdm_jax.multiscale import nonuniform as nu


def test_default_windows_table():
  p = nu.make_process(3)
  assert p.ends == (0.25, 0.5, 0.75, 1.0)
  assert [(s.first, s.t_lo, s.t_hi) for s in nu.stages(p)] == [
      (0, 0.0, 0.25), (1, 0.25, 0.5), (2, 0.5, 0.75), (3, 0.75, 1.0)]
  lam = np.asarray(nu.log_snr_table(p, [0.0, 0.25, 0.5, 0.75]))
  np.testing.assert_allclose(lam[:, 0], 10.0, atol=1e-5)
  # Every band reaches log-SNR -10 at its own end time.
  for k, e in enumerate(p.ends):
    np.testing.assert_allclose(-nu.scale_gamma(p, k, e), -10.0, atol=1e-4)
  # Computed in closed form, lambda_k(t) = 10 - 20 t / T_k (the paper's code starts
  # at eps = 1e-3, here 0, hence ~0.02 differences): coarser bands lag.
  np.testing.assert_allclose(lam[3, 1:], [5.0, 0.0, -5.0], atol=0.03)
  np.testing.assert_allclose(lam[2, 1:3], [10 / 3, -10 / 3], atol=0.03)
  np.testing.assert_allclose(lam[1, 1], 0.0, atol=0.03)


def test_derivative_is_window_slope_and_zero_after_drop():
  p = nu.make_process(2)
  t = jnp.array([0.1, 0.5, 0.9])
  _, dg0 = nu.scale_gamma_and_derivative(p, 0, t)
  _, dg2 = nu.scale_gamma_and_derivative(p, 2, t)
  np.testing.assert_allclose(dg0, [20.0 / (1 / 3), 0.0, 0.0], rtol=1e-5)
  np.testing.assert_allclose(dg2, [20.0] * 3, rtol=1e-5)


def _simulate(p, x_bands, grid, n, seed):
  """Simulates the forward Markov chain on `grid`, returning bands at each time."""
  keys = jax.random.split(jax.random.key(seed), len(grid))
  z = nu.diffuse(p, [jnp.broadcast_to(b, (n,) + b.shape[1:]) for b in x_bands],
                 grid[0], [jax.random.normal(jax.random.fold_in(keys[0], i),
                                             (n,) + b.shape[1:])
                           for i, b in enumerate(x_bands)])
  out = [z]
  for i in range(1, len(grid)):
    noise = [jax.random.normal(jax.random.fold_in(keys[i], j), b.shape)
             for j, b in enumerate(z)]
    z = nu.forward_transition(p, z, grid[i - 1], grid[i], noise)
    out.append(z)
  return out


def test_simulated_marginals_match_closed_form():
  p = nu.make_process(2, ends=(0.3, 0.6, 1.0), starts=(0.0, 0.1, 0.0))
  x = jax.random.uniform(jax.random.key(1), (1, 8, 8, 1), minval=-1, maxval=1)
  bands = nu.decompose(p, x)
  grid = np.linspace(0.0, 1.0, 6)
  n = 4000
  sims = jax.jit(lambda: _simulate(p, bands, grid, n, 0))()
  for i, t in enumerate(grid):
    for k, xb in enumerate(bands):
      g = nu.scale_gamma(p, k, t)
      mean = np.asarray(sims[i][k].mean(0))
      var = np.asarray(sims[i][k].var(0))
      np.testing.assert_allclose(mean, schedules.alpha(g) * xb[0], atol=0.07)
      np.testing.assert_allclose(var.mean(), schedules.sigma2(g), atol=0.03 + 0.02 * float(schedules.sigma2(g)))


def test_equal_windows_equal_uniform_diffusion():
  levels = 2
  p = nu.uniform_process(levels)
  assert len(nu.stages(p)) == 1
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 2))
  eps = jax.random.normal(jax.random.key(1), x.shape)
  t = jnp.array([0.1, 0.5, 0.95])

  @jax.jit
  def both(x, eps, t):
    z_ms = nu.diffuse(p, nu.decompose(p, x), t, nu.decompose(p, eps))
    g = schedules.linear_gamma(t, gamma_min=-10.0, gamma_max=10.0)[:, None, None, None]
    z_uni = schedules.alpha(g) * x + schedules.sigma(g) * eps
    return nu.reconstruct(z_ms), z_uni

  z_ms, z_uni = both(x, eps, t)
  np.testing.assert_allclose(z_ms, z_uni, atol=1e-5)
  # ...and levels = 0 is that same uniform process on pixels.
  p0 = nu.make_process(0)
  np.testing.assert_allclose(nu.diffuse(p0, [x], t, [eps])[0], z_uni, atol=1e-6)


def test_prior_kl_closed_form():
  p = nu.make_process(1)
  x = jnp.ones((2, 4, 4, 1))
  kl = nu.prior_kl(p, nu.decompose(p, x))
  a2 = 1.0 / (1.0 + np.exp(10.0))
  log_s2 = -np.log1p(np.exp(-10.0))
  bands = nu.decompose(p, x)
  expect = sum(0.5 * np.sum(a2 * (np.asarray(b[0], np.float64) ** 2 - 1) - log_s2)
               for b in bands)
  np.testing.assert_allclose(kl, [expect, expect], rtol=1e-4)
  assert kl.shape == (2,) and float(kl[0]) > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(levels=2, ends=(0.3, 0.6, 1.2)), "inside \\[0, 1\\]"),
    (dict(levels=2, starts=(-0.1, 0.0, 0.0)), "inside \\[0, 1\\]"),
    (dict(levels=1, ends=(0.5, 1.0), starts=(0.5, 0.0)), "window is empty"),
    (dict(levels=2, ends=(0.6, 0.3, 1.0)), "non-decreasing"),
    (dict(levels=1, ends=(0.5, 0.9)), "ends\\[-1\\] must be 1.0"),
    (dict(levels=2, ends=(0.5, 1.0)), "one entry per scale"),
    (dict(levels=-1), "levels must be an int"),
    (dict(levels=1, gamma_min=5.0, gamma_max=-5.0), "gamma_0 must be < gamma_1"),
])
def test_bad_configs_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    nu.make_process(**kwargs)


def test_bad_band_count_raises():
  p = nu.make_process(2)
  x = jnp.zeros((1, 8, 8, 1))
  bands = nu.decompose(p, x)
  with pytest.raises(ValueError, match="bands must hold scales 0..2"):
    nu.diffuse(p, bands[1:], 0.5, bands[1:])
  with pytest.raises(ValueError, match="divisible by 2\\^levels = 4"):
    nu.decompose(p, jnp.zeros((1, 6, 8, 1)))
