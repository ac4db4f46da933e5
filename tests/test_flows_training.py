"""Tests for vdm_jax/flows/training.py and maximum-likelihood fitting of flows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.xla_flags import RUN_OPTIONS
from vdm_jax import flows
from vdm_jax.data import digits_arrays


def _fit(flow, params, loss_fn, data_fn, steps, lr):
  opt = optax.adam(lr)
  state = opt.init(params)

  @functools.partial(jax.jit, compiler_options=RUN_OPTIONS)
  def step(params, state, rng):
    loss, grads = jax.value_and_grad(loss_fn)(params, rng, data_fn(rng))
    updates, state = opt.update(grads, state)
    return optax.apply_updates(params, updates), state, loss

  for i in range(steps):
    params, state, _ = step(params, state, jax.random.key(100 + i))
  return params


def test_dequantize_stays_in_bins():
  x = jnp.arange(16, dtype=jnp.int32).reshape(1, 4, 4, 1)
  u = flows.dequantize(jax.random.key(0), x, num_bins=16, center=False)
  np.testing.assert_array_equal(jnp.floor(u * 16), x)
  with pytest.raises(TypeError, match="integer dtype"):
    flows.dequantize(jax.random.key(0), x.astype(jnp.float32))


@pytest.mark.slow
def test_fits_a_correlated_gaussian_to_its_exact_log_density():
  # x = A eps on 4x4x1 images: log p(x) is known in closed form.
  d = 16
  a = np.eye(d) + 0.4 * np.random.default_rng(0).standard_normal((d, d))
  a = jnp.asarray(a / np.sqrt(np.mean(np.sum(a ** 2, 1))), jnp.float32)
  cov = a @ a.T
  data_fn = lambda rng: (jax.random.normal(rng, (128, d)) @ a.T).reshape(
      -1, 4, 4, 1)
  flow = flows.MultiScaleFlow(levels=1, steps_per_level=4, hidden=16)
  x0 = data_fn(jax.random.key(0))
  params = jax.jit(lambda k, v: flow.init(k, v, method="forward"))(
      jax.random.key(1), x0)
  loss = lambda p, rng, x: -jnp.mean(flow.apply(p, x, method="log_prob"))
  params = _fit(flow, params, loss, data_fn, steps=600, lr=5e-3)
  x_test = data_fn(jax.random.key(999))
  exact = jax.scipy.stats.multivariate_normal.logpdf(
      x_test.reshape(-1, d), jnp.zeros(d), cov)
  model = jax.jit(lambda p, v: flow.apply(p, v, method="log_prob"))(
      params, x_test)
  gap = float(jnp.mean(exact - model)) / d   # KL estimate, nats/dim
  # ~0.56 nats/dim at init; 600 steps get it to ~0.036.
  assert -0.02 < gap < 0.05, gap


@pytest.mark.slow
def test_nll_decreases_on_digits():
  x_int = jnp.asarray(digits_arrays("train")[0][:64], jnp.int32)
  flow = flows.MultiScaleFlow(levels=2, steps_per_level=1, hidden=8)
  nll_fn = flows.make_nll_fn(flow, num_bins=17)
  params = jax.jit(lambda k, v: flow.init(k, v, method="forward"))(
      jax.random.key(0), flows.dequantize(jax.random.key(1), x_int, num_bins=17))
  mean_nll = jax.jit(lambda p: jnp.mean(nll_fn(p, jax.random.key(2), x_int)))
  before = float(mean_nll(params))
  loss = lambda p, rng, x: jnp.mean(nll_fn(p, rng, x))
  params = _fit(flow, params, loss, lambda rng: x_int, steps=30, lr=3e-3)
  after = float(mean_nll(params))
  assert np.isfinite(after) and after < before - 0.1, (before, after)
