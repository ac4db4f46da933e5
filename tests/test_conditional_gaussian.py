"""Closed-form checks of CDE, CDiffE and MS-CDiffE on a jointly Gaussian (x, y).

Theory: Batzolis, Stanczuk, Schonlieb, Etmann, Conditional Image Generation with
Score-Based Diffusion Models, 2021 (arXiv 2111.13606); numbers computed in closed form.
The "optimal" networks below compute the exact scores from the closed form (no
training) and are plugged into `vdm_jax.conditional.estimators`, so the
estimators' losses and sampling-time scores are checked end to end.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import conditional as cond
from vdm_jax.conditional import gaussian
from vdm_jax.sde import sdes


def _scalar_problem():
  return gaussian.make_linear_gaussian([0.0], [[1.0]], [[1.0]], [[0.25]])


def _random_problem(seed=0, dx=3, dy=2):
  rs = np.random.default_rng(seed)
  m = rs.normal(size=(dx, dx))
  return gaussian.make_linear_gaussian(
      rs.normal(size=dx), m @ m.T / dx + 0.5 * np.eye(dx),
      rs.normal(size=(dy, dx)), 0.1 * np.eye(dy))


def test_scalar_fixture_matches_closed_form():
  """Scalar fixture: x~N(0,1), y=x+n, R=0.25, sigma_x=1, x_t=0.3, y=0.8.

  Computed in closed form: m0 = y / (1 + R) = 0.64, C0 = R / (1 + R) = 0.2,
  score = -(x_t - m0) / (C0 + sigma_x^2) = 0.283333.
  """
  p = _scalar_problem()
  xt, y = jnp.array([[0.3]]), jnp.array([[0.8]])
  m0, c0 = gaussian.posterior(p, y)
  np.testing.assert_allclose(m0, [[0.64]], rtol=1e-5)
  np.testing.assert_allclose(c0 + 1.0, [[1.2]], rtol=1e-5)
  score = jax.jit(lambda a, b: gaussian.conditional_score(p, a, b, x_std=1.0))
  np.testing.assert_allclose(score(xt, y), [[0.283333]], rtol=1e-5)
  for sy, s_at_y, err in ((1.0, 0.035714, 0.142948), (0.1, 0.277632, 0.004361)):
    sx, _ = gaussian.joint_score(p, xt, y, x_std=1.0, y_std=sy)
    np.testing.assert_allclose(sx, [[s_at_y]], rtol=1e-4)
    total, _ = gaussian.diffusive_error(p, xt, y, x_std=1.0, y_std=sy)
    np.testing.assert_allclose(total, [err], rtol=1e-4)


def test_cde_target_is_conditional_tweedie():
  """grad log p(x_t|y) = -(x_t - E[x0 | x_t, y]) / s^2 (VE and VP kernels)."""
  p = _random_problem()

  @jax.jit
  def both(a, s):
    x, y = gaussian.sample(p, jax.random.key(1), 5)
    xt = x + 0.7 * jax.random.normal(jax.random.key(2), x.shape)
    m0, c0 = gaussian.posterior(p, y)
    # E[x0 | x_t, y] with x_t = a x0 + s xi and x0 | y ~ N(m0, C0).
    gain = jnp.linalg.solve(a**2 * c0 + s**2 * jnp.eye(3), a * c0).T
    post_mean = m0 + (xt - a * m0) @ gain.T
    expected = -(xt - a * post_mean) / s**2
    return gaussian.conditional_score(p, xt, y, x_scale=a, x_std=s), expected

  for a, s in ((1.0, 0.7), (0.8, 0.6)):
    got, expected = both(a, s)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_joint_score_is_autodiff_of_joint_density_and_x_block_conditions_on_y_t():
  """Joint score = grad log N(K_t); its x block = grad log p(x_t | y_t)."""
  p = _random_problem()
  a_x, s_x, a_y, s_y = 0.9, 0.5, 0.95, 0.3

  @jax.jit
  def compute():
    x, y = gaussian.sample(p, jax.random.key(3), 4)
    xt = a_x * x + s_x * jax.random.normal(jax.random.key(4), x.shape)
    yt = a_y * y + s_y * jax.random.normal(jax.random.key(5), y.shape)
    sx, sy = gaussian.joint_score(p, xt, yt, x_scale=a_x, x_std=s_x,
                                  y_scale=a_y, y_std=s_y)
    mean = jnp.concatenate([a_x * p.mu, a_y * p.a @ p.mu])
    cov = jnp.linalg.inv(gaussian.joint_precision(
        p, 1, x_scale=a_x, x_std=s_x, y_scale=a_y, y_std=s_y)[0])
    logp = lambda v: jax.scipy.stats.multivariate_normal.logpdf(v, mean, cov)
    auto = jax.vmap(jax.grad(logp))(jnp.concatenate([xt, yt], -1))
    # x block = conditional score of the observation model y_t/a_y = A x + n',
    # n' ~ N(0, R + (s_y/a_y)^2 I).
    p2 = p._replace(noise_cov=p.noise_cov + (s_y / a_y) ** 2 * jnp.eye(2))
    cond_y_t = gaussian.conditional_score(p2, xt, yt / a_y, x_scale=a_x,
                                          x_std=s_x)
    return jnp.concatenate([sx, sy], -1), auto, sx, cond_y_t

  joint, auto, sx, cond_y_t = compute()
  np.testing.assert_allclose(joint, auto, rtol=1e-3, atol=1e-3)
  np.testing.assert_allclose(sx, cond_y_t, rtol=1e-3, atol=1e-3)


def test_diffusive_error_closed_form_matches_monte_carlo():
  """E_{y_t|y}||s^x(x_t, y_t) - s_CDE(x_t, y)||^2 = bias^2 + s_y^2 ||P_xy||_F^2."""
  p = _random_problem()
  xt, y = jnp.array([[0.2, -0.4, 1.0]]), jnp.array([[0.5, -1.0]])
  s_y = 0.5

  @jax.jit
  def compute():
    total, bias = gaussian.diffusive_error(p, xt, y, x_std=1.0, y_std=s_y)
    n = 40_000
    yt = y + s_y * jax.random.normal(jax.random.key(6), (n, 2))
    sx, _ = gaussian.joint_score(p, jnp.repeat(xt, n, 0), yt, x_std=1.0,
                                 y_std=s_y)
    s_cde = gaussian.conditional_score(p, xt, y, x_std=1.0)
    return total, bias, jnp.mean(jnp.sum((sx - s_cde) ** 2, -1))

  total, bias, mc = compute()
  np.testing.assert_allclose(total[0], mc, rtol=0.03)
  assert 0.0 < bias[0] < total[0]


def _exact_apply(problem, joint_or_sde, kind):
  """An 'optimal network' in the estimators' parameterisation (out = s * score)."""
  def apply_fn(params, x_in, y_in, t):
    del params
    if kind == "cde":
      a, s = joint_or_sde.marginal_coeffs(t)
      x_t = x_in * jnp.sqrt(a**2 + s**2)[:, None]
      return s[:, None] * gaussian.conditional_score(problem, x_t, y_in,
                                                     x_scale=a, x_std=s)
    (ax, sx), (ay, sy) = joint_or_sde.marginal_coeffs(t)
    x_t = x_in * jnp.sqrt(ax**2 + sx**2)[:, None]
    y_t = y_in * jnp.sqrt(ay**2 + sy**2)[:, None]
    gx, gy = gaussian.joint_score(problem, x_t, y_t, x_scale=ax, x_std=sx,
                                  y_scale=ay, y_std=sy)
    return jnp.concatenate([sx[:, None] * gx, sy[:, None] * gy], -1)
  return apply_fn


X_SDE = sdes.VESDE(sigma_min=0.01, sigma_max=10.0)


@pytest.mark.parametrize("name", ["cde", "cdiffe", "ms_cdiffe"])
def test_optimal_networks_minimise_the_estimator_losses(name):
  """DSM minimiser property: the exact score beats a 10 % mis-scaled one."""
  p = _random_problem()
  y_sde = sdes.VESDE(sigma_min=0.01, sigma_max=1.0)
  est = cond.make_estimator(name, X_SDE, lambda *a: None, y_sde=y_sde)
  exact = _exact_apply(p, X_SDE if name == "cde" else est.joint, name)
  x, y = gaussian.sample(p, jax.random.key(7), 20_000)

  @jax.jit
  def losses(rng):
    out = []
    for scale in (1.0, 0.9, 1.1):
      e = cond.make_estimator(name, X_SDE, lambda *a: scale * exact(*a),
                              y_sde=y_sde)
      out.append(jnp.mean(e.loss_fn(None, rng, x, y)))
    return jnp.stack(out)

  l = losses(jax.random.key(8))
  assert l[0] < l[1] and l[0] < l[2], l


def test_sampling_time_scores_match_theory():
  """CDE is exact; CDiffE's error is the closed form; MS-CDiffE shrinks it."""
  p = _random_problem()
  n = 20_000
  xt = jnp.repeat(jnp.array([[0.2, -0.4, 1.0]]), n, 0)
  y = jnp.repeat(jnp.array([[0.5, -1.0]]), n, 0)
  t = jnp.full((n,), 0.5)
  _, s_x = X_SDE.marginal_coeffs(t[:1])
  target = gaussian.conditional_score(p, xt[:1], y[:1], x_std=s_x)

  cde = cond.make_estimator("cde", X_SDE, _exact_apply(p, X_SDE, "cde"))
  np.testing.assert_allclose(cde.score_fn(None, y[:1])(xt[:1], t[:1]), target,
                             rtol=1e-4, atol=1e-5)

  errors = []
  for sigma_max_y in (10.0, 1.0, 0.1):
    y_sde = sdes.VESDE(sigma_min=0.01, sigma_max=sigma_max_y)
    name = "cdiffe" if sigma_max_y == 10.0 else "ms_cdiffe"
    est = cond.make_estimator(name, X_SDE, lambda *a: None, y_sde=y_sde)
    est = cond.make_estimator(name, X_SDE, _exact_apply(p, est.joint, name),
                              y_sde=y_sde)
    score = jax.jit(est.score_fn(None, y, jax.random.key(9)))(xt, t)
    mc = float(jnp.mean(jnp.sum((score - target) ** 2, -1)))
    _, s_y = y_sde.marginal_coeffs(t[:1])
    closed, _ = gaussian.diffusive_error(p, xt[:1], y[:1], x_std=s_x, y_std=s_y)
    np.testing.assert_allclose(mc, closed[0], rtol=0.05)
    errors.append(mc)
  # CDiffE is biased; the bias falls monotonically as y's speed drops.
  assert errors[0] > errors[1] > errors[2]
  assert errors[0] > 0.05 and errors[2] < 1e-2 * errors[0]


def test_bias_vanishes_with_y_speed_and_reaches_cde():
  """Trend on a 3-d x / 2-d y problem: error -> 0 as sigma_y -> 0."""
  p = _random_problem()

  @jax.jit
  def errors(sy):
    x, y = gaussian.sample(p, jax.random.key(10), 64)
    xt = x + jax.random.normal(jax.random.key(11), x.shape)
    return jnp.mean(gaussian.diffusive_error(p, xt, y, x_std=1.0, y_std=sy)[0])

  errs = [float(errors(sy)) for sy in (1.0, 0.5, 0.1, 0.01, 0.0)]
  assert all(a > b for a, b in zip(errs[:-2], errs[1:-1]))
  assert errs[-1] < 1e-8
