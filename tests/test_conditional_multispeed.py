"""Multi-speed joint SDE: marginals vs simulation, single-speed reduction, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import conditional as cond
from vdm_jax.conditional import gaussian
from vdm_jax.sde import samplers
from vdm_jax.sde import sdes


def test_marginals_match_euler_maruyama_simulation():
  """VP x and VE y: simulated (x_t, y_t) moments match `marginal`."""
  joint = cond.MultiSpeedSDE(sdes.VPSDE(beta_min=0.1, beta_max=5.0),
                             sdes.VESDE(sigma_min=0.01, sigma_max=1.0),
                             allow_faster_y=True)  # VE's sigma_min > VP's s at t~0.
  n, steps, t_end = 20_000, 400, 0.6
  x0 = jnp.full((n, 2), 1.5)
  y0 = jnp.full((n, 1), -0.7)

  @jax.jit
  def simulate(rng):
    dt = t_end / steps

    def body(state, i):
      t = jnp.full((n,), i * dt)
      (fx, fy), (gx, gy) = joint.drift_diffusion(state, t)
      kx, ky = jax.random.split(jax.random.fold_in(rng, i))
      x, y = state
      x = x + fx * dt + gx[:, None] * jnp.sqrt(dt) * jax.random.normal(kx, x.shape)
      y = y + fy * dt + gy[:, None] * jnp.sqrt(dt) * jax.random.normal(ky, y.shape)
      return (x, y), None

    return jax.lax.scan(body, (x0, y0), jnp.arange(steps))[0]

  x, y = simulate(jax.random.key(0))
  (mx, my), (sx, sy) = joint.marginal((x0[:1], y0[:1]), jnp.array([t_end]))
  # VE std from an unperturbed start is sqrt(sigma(t)^2 - sigma_min^2).
  sy_exact = jnp.sqrt(sy**2 - 0.01**2)
  np.testing.assert_allclose(x.mean(0), mx[0], atol=0.02)
  np.testing.assert_allclose(x.std(0), jnp.full((2,), sx[0]), rtol=0.02)
  np.testing.assert_allclose(y.mean(0), my[0], atol=0.02)
  np.testing.assert_allclose(y.std(0), sy_exact, rtol=0.02)


@pytest.mark.parametrize("sde", [sdes.VESDE(sigma_min=0.01, sigma_max=5.0),
                                 sdes.VPSDE()])
def test_equal_speeds_reduce_to_the_single_speed_joint_sde(sde):
  """MultiSpeedSDE(sde, sde) == sde on the concatenated state [x; y]."""
  joint = cond.MultiSpeedSDE(sde, sde)
  np.testing.assert_allclose(joint.speed_ratio(jnp.array([0.1, 0.5, 1.0])), 1.0,
                             rtol=1e-5)
  x = jax.random.normal(jax.random.key(1), (4, 3))
  y = jax.random.normal(jax.random.key(2), (4, 2))
  v = jnp.concatenate([x, y], -1)
  t = jnp.array([0.05, 0.3, 0.6, 0.9])
  split = lambda a: (a[:, :3], a[:, 3:])
  score_v = lambda a, t: -a * (1.0 + t[:, None]) + jnp.sin(a)
  score_xy = lambda s, t: split(score_v(jnp.concatenate(s, -1), t))

  (fx, fy), (gx, gy) = joint.drift_diffusion((x, y), t)
  f, g = sde.drift_diffusion(v, t)
  np.testing.assert_allclose(jnp.concatenate([fx, fy], -1), f, rtol=1e-6)
  np.testing.assert_allclose(gx, g, rtol=1e-6)
  np.testing.assert_allclose(gy, g, rtol=1e-6)

  (mx, my), (sx, sy) = joint.marginal((x, y), t)
  m, s = sde.marginal(v, t)
  np.testing.assert_allclose(jnp.concatenate([mx, my], -1), m, rtol=1e-6)
  np.testing.assert_allclose(sx, s, rtol=1e-6)
  np.testing.assert_allclose(sy, s, rtol=1e-6)

  for pf in (False, True):
    (rx, ry), (hx, hy) = joint.reverse(score_xy, pf).drift_diffusion((x, y), t)
    r, h = sde.reverse(score_v, pf).drift_diffusion(v, t)
    np.testing.assert_allclose(jnp.concatenate([rx, ry], -1), r, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(hx, h, atol=1e-6)
    (rx, ry), (hx, _) = joint.reverse(score_xy, pf).discretize((x, y), t, 0.01)
    r, h = sde.reverse(score_v, pf).discretize(v, t, 0.01)
    np.testing.assert_allclose(jnp.concatenate([rx, ry], -1), r, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(hx, h, atol=1e-6)
  np.testing.assert_allclose(joint.prior_logp((x, y)), sde.prior_logp(v),
                             rtol=1e-5)


def test_speed_ratio_matches_the_flop_count():
  """VE blocks with a shared sigma_min: ratio = (sigma_max,y / sigma_max,x)^t."""
  joint = cond.MultiSpeedSDE(sdes.VESDE(sigma_min=5e-3, sigma_max=277.128),
                             sdes.VESDE(sigma_min=5e-3, sigma_max=0.5))
  np.testing.assert_allclose(joint.speed_ratio(jnp.array([0.5])), [0.042476],
                             rtol=1e-4)


@pytest.mark.slow
def test_joint_reverse_sde_recovers_the_gaussian_data():
  """Reverse SDE and PF ODE of the joint with the exact score map p_T to p_0."""
  p = gaussian.make_linear_gaussian([1.0, -0.5], [[1.0, 0.6], [0.6, 0.8]],
                                    [[1.0, 0.5]], [[0.1]])
  joint = cond.MultiSpeedSDE(sdes.VESDE(sigma_min=0.01, sigma_max=5.0),
                             sdes.VESDE(sigma_min=0.01, sigma_max=1.0))

  def score(state, t):
    (ax, sx), (ay, sy) = joint.marginal_coeffs(t)
    return gaussian.joint_score(p, state[0], state[1], x_scale=ax, x_std=sx,
                                y_scale=ay, y_std=sy)

  n = 4000
  # Exact p_T draw (the Gaussian joint at T) so only the sampler is tested.
  cov_t = jnp.linalg.inv(gaussian.joint_precision(
      p, 1, x_std=5.0, y_std=1.0)[0])
  mean = jnp.concatenate([p.mu, p.a @ p.mu])
  v = jax.random.multivariate_normal(jax.random.key(3), mean, cov_t, (n,))
  cov_0 = jnp.linalg.inv(gaussian.joint_precision(p, 1, x_std=0.0, y_std=0.0)[0])
  for pf in (False, True):
    out = jax.jit(lambda r, s: samplers.sample_reverse(
        r, joint.reverse(score, pf), s, n_steps=200,
        predictor="reverse_diffusion")[0])(
            jax.random.key(5), (v[:, :2], v[:, 2:]))
    got = np.concatenate(out, -1)
    np.testing.assert_allclose(got.mean(0), mean, atol=0.08)
    np.testing.assert_allclose(np.cov(got.T), cov_0, atol=0.12)


def test_faster_y_and_bad_configs_raise():
  fast = sdes.VESDE(sigma_min=0.01, sigma_max=50.0)
  slow = sdes.VESDE(sigma_min=0.01, sigma_max=1.0)
  with pytest.raises(ValueError, match="faster"):
    cond.MultiSpeedSDE(slow, fast)
  cond.MultiSpeedSDE(slow, fast, allow_faster_y=True)  # allowed on request
  with pytest.raises(ValueError, match="faster"):
    cond.make_estimator("ms_cdiffe", slow, lambda *a: None, y_sde=fast)
  with pytest.raises(ValueError, match="needs y_sde"):
    cond.make_estimator("ms_cdiffe", slow, lambda *a: None)
  with pytest.raises(ValueError, match="one clock"):
    cond.MultiSpeedSDE(fast, sdes.VESDE(sigma_min=0.01, sigma_max=1.0, T=2.0))
  with pytest.raises(TypeError, match="vdm_jax.sde.SDE"):
    cond.MultiSpeedSDE(fast, "ve")
  with pytest.raises(ValueError, match="unknown estimator"):
    cond.make_estimator("sr3", fast, lambda *a: None)
  with pytest.raises(ValueError, match="weighting"):
    cond.make_cde_loss(fast, lambda *a: None, weighting="g2")
  joint = cond.MultiSpeedSDE(fast, slow)
  with pytest.raises(TypeError, match="pair"):
    joint.marginal(jnp.zeros((2, 3)), jnp.zeros((2,)))
  with pytest.raises(ValueError, match="batch"):
    joint.marginal((jnp.zeros((2, 3)), jnp.zeros((3, 1))), jnp.zeros((2,)))


def test_mismatched_x_and_y_shapes_raise_by_name():
  sde = sdes.VESDE(sigma_min=0.01, sigma_max=8.0)
  x = jnp.zeros((2, 8, 8, 1))
  y_small = jnp.zeros((2, 4, 4, 1))
  for name in cond.ESTIMATORS:
    est = cond.make_estimator(name, sde, lambda p, a, b, t: a,
                              y_sde=sdes.VESDE(sigma_min=0.01, sigma_max=1.0))
    with pytest.raises(ValueError, match=r"y must have shape \[B, \.\.\., Cy\]"):
      est.loss_fn(None, jax.random.key(0), x, y_small)
    with pytest.raises(ValueError, match=r"y must have shape"):
      est.score_fn(None, y_small, jax.random.key(0))(x, jnp.full((2,), 0.5))
  with pytest.raises(ValueError, match="y0 must|y must"):
    cond.make_estimator("cde", sde, lambda *a: None).loss_fn(
        None, jax.random.key(0), x, jnp.zeros((3, 8, 8, 1)))
  # A network with the wrong number of output channels is named too.
  est = cond.make_estimator("cdiffe", sde, lambda p, a, b, t: a)
  with pytest.raises(ValueError, match="Cx \\+ Cy"):
    est.loss_fn(None, jax.random.key(0), x, jnp.zeros((2, 8, 8, 1)))
