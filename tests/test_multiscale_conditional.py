"""Tests for vdm_jax.multiscale.conditional against vdm_jax.conditional.gaussian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules
from vdm_jax.conditional import gaussian
from vdm_jax.multiscale import conditional as msc
from vdm_jax.multiscale import nonuniform as nu
from vdm_jax.multiscale import sampling

# Scalar fixture (as in tests/test_conditional_gaussian.py): x ~ N(0, 1),
# y = x + n, R = 0.25.
PROBLEM = gaussian.make_linear_gaussian([0.0], [[1.0]], [[1.0]], [[0.25]])


def _exact_joint_eps(process):
  def apply_fn(params, x_t, y_t, t):
    del params
    shape = x_t.shape
    b = shape[0]
    gx, gy = process.gamma_x(t), process.gamma_y(t)
    sx, sy = schedules.sigma(gx), schedules.sigma(gy)
    score_x, score_y = gaussian.joint_score(
        PROBLEM, x_t.reshape(b, -1), y_t.reshape(b, -1), x_scale=schedules.alpha(gx),
        x_std=sx, y_scale=schedules.alpha(gy), y_std=sy)
    return (-sx[:, None] * score_x).reshape(shape), -sy[:, None] * score_y
  return apply_fn


@pytest.mark.parametrize("gamma_y1", [-10.0, -4.0, 0.0, 10.0])
def test_fresh_y_error_matches_closed_form(gamma_y1):
  proc = msc.make_conditional_process(gamma_y1=gamma_y1)
  n = 20000
  t = jnp.full((n,), 0.6)
  x_t = jnp.full((n, 1), 0.3)
  y = jnp.full((n, 1), 0.8)
  eps = jax.jit(lambda k: msc.conditional_eps(proc, _exact_joint_eps(proc), None, k,
                                              x_t, y, t))(jax.random.key(0))
  gx, gy = proc.gamma_x(t), proc.gamma_y(t)
  sx = schedules.sigma(gx)
  s_cde = gaussian.conditional_score(PROBLEM, x_t, y, x_scale=schedules.alpha(gx), x_std=sx)
  err_mc = float(jnp.mean(jnp.sum((-eps / sx[:, None] - s_cde) ** 2, -1)))
  total, _ = gaussian.diffusive_error(PROBLEM, x_t[:1], y[:1], x_scale=schedules.alpha(gx[:1]),
                                      x_std=sx[:1], y_scale=schedules.alpha(gy[:1]),
                                      y_std=schedules.sigma(gy[:1]))
  np.testing.assert_allclose(err_mc, float(total[0]), rtol=0.05, atol=1e-6)
  if gamma_y1 == -10.0:  # y never noised: CDE, unbiased.
    assert err_mc < 1e-3


def test_slower_condition_means_smaller_error():
  errs = []
  for gamma_y1 in (10.0, 0.0, -6.0, -10.0):
    proc = msc.make_conditional_process(gamma_y1=gamma_y1)
    gx, gy = proc.gamma_x(0.7), proc.gamma_y(0.7)
    tot, _ = gaussian.diffusive_error(
        PROBLEM, jnp.array([[0.3]]), jnp.array([[0.8]]), x_scale=schedules.alpha(gx),
        x_std=schedules.sigma(gx), y_scale=schedules.alpha(gy), y_std=schedules.sigma(gy))
    errs.append(float(tot[0]))
  assert all(a > b for a, b in zip(errs, errs[1:])), errs


@pytest.mark.slow
def test_cde_limit_samples_the_posterior():
  proc = msc.make_conditional_process(gamma_y1=-10.0)
  x_proc = nu.make_process(0)
  sampler = sampling.make_sampler(x_proc, [msc.make_sampler_eps_fn(proc, _exact_joint_eps(proc))],
                                  image_shape=(1, 1, 1), steps_per_unit=300)
  n = 4000
  y = jnp.full((n, 1), 0.8)
  x = jax.jit(sampler.sample, static_argnums=2)(((None, y, jax.random.key(1)),),
                                                jax.random.key(0), n)
  m0, c0 = gaussian.posterior(PROBLEM, y[:1])   # 0.64, 0.2
  np.testing.assert_allclose(float(x.mean()), float(m0[0, 0]), atol=0.03)
  np.testing.assert_allclose(float(x.var()), float(c0[0, 0]), rtol=0.1)


def test_joint_loss_closed_form_and_checks():
  proc = msc.make_conditional_process(gamma_y1=0.0)
  loss = msc.make_joint_loss_fn(proc, lambda p, xt, yt, t: (jnp.zeros_like(xt), jnp.zeros_like(yt)))
  x, y = jnp.zeros((4000, 3)), jnp.zeros((4000, 2))
  val = jax.jit(loss)(None, jax.random.key(0), x, y)
  # zero predictor: E = 1/2 (20 * 3 + 10 * 2) = 40 nats.
  np.testing.assert_allclose(float(val.mean()), 40.0, rtol=0.05)
  with pytest.raises(ValueError, match="gamma_y1 must lie in"):
    msc.make_conditional_process(gamma_y1=12.0)
  with pytest.raises(ValueError, match="batch sizes differ"):
    loss(None, jax.random.key(0), x, y[:3])
