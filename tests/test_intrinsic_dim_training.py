"""Tests for vdm_jax/intrinsic_dim/score_training.py: a briefly trained MLP finds the dimension."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import parameterizations
from vdm_jax.intrinsic_dim import estimator as intrinsic_dim
from vdm_jax.intrinsic_dim import manifolds
from vdm_jax.intrinsic_dim import score_training
from vdm_jax.models import ScoreMLP

GMIN, GMAX = -10.0, -3.0


class _Affine:
  """A stand-in 'network' out = a z + b t, to check the parameterisations."""

  def apply(self, variables, z, t):
    p = variables["params"]
    return p["a"] * z + p["b"] * t[:, None]


@pytest.mark.parametrize("param", ["eps", "x0", "residual"])
def test_parameterisations_agree_with_their_definitions(param):
  z = jax.random.normal(jax.random.key(0), (3, 4))
  t = jnp.array([0.1, 0.5, 0.9])
  params = {"a": 0.3, "b": -0.2}
  out = _Affine().apply({"params": params}, z, t)
  got = score_training.predict_eps(_Affine(), params, z, t, gamma_min=GMIN,
                                   gamma_max=GMAX, parameterization=param)
  g = GMIN + (GMAX - GMIN) * t
  if param == "eps":
    want = out
  elif param == "x0":
    want = parameterizations.x0_to_eps(out, z, g)
  else:  # x_hat = z / alpha + out.
    a = jnp.sqrt(jax.nn.sigmoid(-g))[:, None]
    want = parameterizations.x0_to_eps(z / a + out, z, g)
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-5)
  score = score_training.make_score_fn(_Affine(), params, gamma_min=GMIN,
                                       gamma_max=GMAX, parameterization=param)(z, 0.5)
  want_score = parameterizations.eps_to_score(
      score_training.predict_eps(_Affine(), params, z, 0.5, gamma_min=GMIN,
                                 gamma_max=GMAX, parameterization=param), z, GMIN + 3.5)
  np.testing.assert_allclose(score, want_score, rtol=1e-5)


def test_loss_of_the_exact_eps_for_gaussian_data_is_its_closed_form():
  # x ~ N(0, v I): E[eps | z] = sigma z / (alpha^2 v + sigma^2), and the optimal
  # eps-MSE per dimension is 1 - sigma^2 / (alpha^2 v + sigma^2).
  v, d = 0.5, 3

  class _Exact:
    def apply(self, variables, z, t):
      del variables
      g = GMIN + (GMAX - GMIN) * t
      a2, s2 = jax.nn.sigmoid(-g)[:, None], jax.nn.sigmoid(g)[:, None]
      return jnp.sqrt(s2) * z / (a2 * v + s2)

  loss_fn = jax.jit(score_training.make_loss_fn(_Exact(), gamma_min=GMIN, gamma_max=GMAX))
  x = jnp.sqrt(v) * jax.random.normal(jax.random.key(1), (20000, d))
  got = float(jnp.mean(loss_fn({}, jax.random.key(2), x)))
  g = np.linspace(GMIN, GMAX, 10001)
  a2, s2 = 1 / (1 + np.exp(g)), 1 / (1 + np.exp(-g))
  want = 0.5 * d * np.trapezoid(1 - s2 / (a2 * v + s2), g)
  np.testing.assert_allclose(got, want, rtol=0.03)


def test_bad_parameterisation_and_out_of_band_gamma_raise():
  with pytest.raises(ValueError, match="parameterization"):
    score_training.predict_eps(_Affine(), {"a": 1.0, "b": 0.0}, jnp.zeros((1, 2)),
                               0.5, gamma_min=GMIN, gamma_max=GMAX,
                               parameterization="v")
  with pytest.raises(ValueError, match="outside the trained range"):
    score_training.time_for_gamma(-12.0, gamma_min=GMIN, gamma_max=GMAX)


@pytest.mark.slow
def test_briefly_trained_mlp_on_a_sphere_finds_its_dimension():
  k, d = 2, 7
  m = manifolds.sphere(k, d, seed=0)
  x = m.sample(jax.random.key(0), 4000)
  model = ScoreMLP(hidden=(64, 64), emb_dim=16)
  state, losses = score_training.train_score_model(
      model, x, jax.random.key(1), num_steps=600, batch_size=128,
      learning_rate=3e-3, gamma_min=GMIN, gamma_max=GMAX,
      parameterization="residual", steps_per_call=200)
  assert losses[-1] < losses[0]
  score_fn = score_training.make_score_fn(model, state.ema_params, gamma_min=GMIN,
                                          gamma_max=GMAX, parameterization="residual")
  gamma = -9.0
  alpha, sigma = intrinsic_dim.vp_kernel(gamma)
  est = intrinsic_dim.estimate_intrinsic_dim(
      score_fn, x[:4], jax.random.key(2),
      t=score_training.time_for_gamma(gamma, gamma_min=GMIN, gamma_max=GMAX),
      sigma=float(sigma), alpha=float(alpha))
  assert np.all(np.abs(np.asarray(est.per_point) - k) <= 1), est.per_point
  assert abs(int(est.dimension) - k) <= 1


def test_ema_forgets_the_random_initialisation_within_a_short_run():
  # With a plain 0.999 EMA, 30 steps would leave 97% of the initial weights in
  # ema_params; the warm-up min(decay, (1 + n) / (10 + n)) leaves ~1/4 of
  # them, so the EMA sits far nearer to the trained weights than to the start.
  x = jax.random.normal(jax.random.key(0), (256, 3))
  model = ScoreMLP(hidden=(16,), emb_dim=8)
  init = model.init(jax.random.split(jax.random.key(1))[0], x[:1],
                    jnp.zeros((1,)))["params"]
  state, _ = score_training.train_score_model(
      model, x, jax.random.key(1), num_steps=30, batch_size=32,
      learning_rate=1e-2, warmup_steps=1, ema_decay=0.999, steps_per_call=30)
  dist = lambda a, b: float(sum(jnp.sum(jnp.square(u - v)) for u, v in zip(
      jax.tree.leaves(a), jax.tree.leaves(b))))
  assert dist(state.ema_params, init) > 4 * dist(state.ema_params, state.params)


def _circle_readings(band, gamma_eval):
  """Trains a small residual MLP on one circle in R^4 (k = 1, span 2) on the
  log-SNR `band` and reads it at `gamma_eval`: (score-matrix and Jacobian
  per-anchor estimates, Jacobian eigenvalues)."""
  m = manifolds.flat_torus(1, 4, seed=0)
  x = m.sample(jax.random.key(1), 4000)
  gmin, gmax = band
  model = ScoreMLP(hidden=(128, 128), emb_dim=16)
  state, _ = score_training.train_score_model(
      model, x, jax.random.key(0), num_steps=1000, batch_size=128,
      learning_rate=5e-3, gamma_min=gmin, gamma_max=gmax,
      parameterization="residual", steps_per_call=500)
  score_fn = score_training.make_score_fn(model, state.ema_params, gamma_min=gmin,
                                          gamma_max=gmax, parameterization="residual")
  alpha, sigma = intrinsic_dim.vp_kernel(gamma_eval)
  t = score_training.time_for_gamma(gamma_eval, gamma_min=gmin, gamma_max=gmax)
  anchors = m.sample(jax.random.key(2), 4)
  kw = dict(t=t, sigma=float(sigma), alpha=float(alpha))
  matrix = intrinsic_dim.estimate_intrinsic_dim(score_fn, anchors, jax.random.key(3), **kw)
  jac = intrinsic_dim.estimate_intrinsic_dim(
      score_fn, anchors, jax.random.key(3), method="jacobian", rule="log_gap",
      floor=1e-2, **kw)
  return np.asarray(matrix.per_point), np.asarray(jac.per_point), np.asarray(jac.spectra)


def test_learned_score_on_a_circle_reads_k_on_the_higher_band_and_the_span_below():
  # Same model, data and budget; only the trained band and the reading level
  # differ. On [-10, -3] read at gamma -9 the net stays at the best linear
  # denoiser: A = -sigma^2 sym(grad s) has no radial (curvature-normal)
  # eigenvalue and both readings return the linear span, 2. On [-6, -3] read
  # at gamma -4.5 (sigma / r = 0.105) the radial eigenvalue is ~1 and both
  # readings return k = 1 (the exact score gives k at either level).
  matrix, jac, ev = _circle_readings((-10.0, -3.0), -9.0)
  np.testing.assert_array_equal(matrix, 2)
  np.testing.assert_array_equal(jac, 2)
  assert np.all(ev[:, 2] < 0.05), ev   # the radial direction reads as tangent.
  matrix, jac, ev = _circle_readings((-6.0, -3.0), -4.5)
  np.testing.assert_array_equal(matrix, 1)
  np.testing.assert_array_equal(jac, 1)
  assert np.all(ev[:, :3] > 0.8) and np.all(np.abs(ev[:, 3]) < 0.1), ev
