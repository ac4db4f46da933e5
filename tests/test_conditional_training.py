"""A few hundred training steps of each estimator cut the score error.

Jointly Gaussian (x, y) whose exact scores are known (`conditional.gaussian`);
each estimator trains a small `ScoreMLP` (y as extra inputs) and its learned
score is compared with the closed form in eps units (sigma * score), averaged
over t ~ U(eps, 1) and the data.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vdm_jax import conditional as cond
from vdm_jax.conditional import gaussian
from vdm_jax.models import ScoreMLP
from vdm_jax.sde import sdes

X_SDE = sdes.VESDE(sigma_min=0.01, sigma_max=5.0)
Y_SDE = sdes.VESDE(sigma_min=0.01, sigma_max=0.5)


def _problem():
  return gaussian.make_linear_gaussian(
      [0.5, -0.5], [[1.0, 0.5], [0.5, 0.8]], [[1.0, -1.0]], [[0.05]])


def _score_error(est, apply_fn, params, problem, rng, n=2048):
  """E ||s * (learned - exact)||^2 over t, (x, y) and the forward noise."""
  kd, kt, kz = jax.random.split(rng, 3)
  x, y = gaussian.sample(problem, kd, n)
  t = jax.random.uniform(kt, (n,), minval=1e-3, maxval=1.0)
  if est.joint is None:
    x_t, _ = X_SDE.perturb(kz, x, t)
    a, s = X_SDE.marginal_coeffs(t)
    exact = gaussian.conditional_score(problem, x_t, y, x_scale=a, x_std=s)
    got = cond.cde_score(X_SDE, apply_fn, params, y)(x_t, t)
    return jnp.mean(jnp.sum((s[:, None] * (got - exact)) ** 2, -1))
  (x_t, y_t), _ = est.joint.perturb(kz, (x, y), t)
  (ax, sx), (ay, sy) = est.joint.marginal_coeffs(t)
  ex, ey = gaussian.joint_score(problem, x_t, y_t, x_scale=ax, x_std=sx,
                                y_scale=ay, y_std=sy)
  gx, gy = cond.joint_score(est.joint, apply_fn, params)((x_t, y_t), t)
  return jnp.mean(jnp.sum((sx[:, None] * (gx - ex)) ** 2, -1)
                  + jnp.sum((sy[:, None] * (gy - ey)) ** 2, -1))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cde", "cdiffe", "ms_cdiffe"])
def test_training_reduces_score_error(name):
  problem = _problem()
  y_sde = X_SDE if name == "cdiffe" else Y_SDE
  out_dim = 2 if name == "cde" else 3
  net = ScoreMLP(hidden=(64, 64), emb_dim=16, out_dim=out_dim)
  apply_fn = lambda p, x_in, y_in, t: net.apply(p, x_in, t, y=y_in)
  est = cond.make_estimator(name, X_SDE, apply_fn, y_sde=y_sde)
  params = net.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros((1,)),
                    y=jnp.zeros((1, 1)))
  opt = optax.adam(3e-3)

  @jax.jit
  def train(params, rng):
    def step(carry, i):
      params, opt_state = carry
      kd, kl = jax.random.split(jax.random.fold_in(rng, i))
      x, y = gaussian.sample(problem, kd, 256)
      loss, grads = jax.value_and_grad(
          lambda p: jnp.mean(est.loss_fn(p, kl, x, y)))(params)
      updates, opt_state = opt.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state), loss
    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)),
                                       jnp.arange(400))
    return params, losses

  err = jax.jit(lambda p: _score_error(est, apply_fn, p, problem,
                                       jax.random.key(9)))
  before = float(err(params))
  trained, losses = train(params, jax.random.key(1))
  after = float(err(trained))
  assert np.isfinite(np.asarray(losses)).all()
  assert after < before / 8, (before, after)
