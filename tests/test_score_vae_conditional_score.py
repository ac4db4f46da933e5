"""Bayes' rule for scores on the linear-Gaussian model (closed forms) and decoding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import score_vae
from vdm_jax.sde import VPSDE

from vdm_jax.score_vae.linear_gaussian import LinearGaussian
from vdm_jax.score_vae.linear_gaussian import random_model


class _Fixed:
  """A stand-in SDE with constant (alpha, sigma) for the scalar fixture."""

  def __init__(self, a, s):
    self.a, self.s = a, s

  def marginal_coeffs(self, t):
    return jnp.full(t.shape, self.a), jnp.full(t.shape, self.s)


def test_scalar_fixture_matches_closed_form():
  # S=1, W=1, V=0.25, alpha=0.6, sigma=0.8, x_t=0.5, z=1.0, computed in closed
  # form: P = 1/(a^2 S + s^2) = 1, B = V + W (S - a^2 S P S) W = 0.89.
  lg = LinearGaussian([[1.0]], [[1.0]], [[0.25]], _Fixed(0.6, 0.8))
  x = jnp.array([[0.5]])
  t = jnp.array([0.3])
  z = jnp.array([[1.0]])
  prior = jax.jit(lg.prior_score)(x, t)
  total = jax.jit(lambda x, t, z: score_vae.bayes_rule_score(
      lg.prior_score, lg.latent_log_likelihood, x, t, z))(x, t, z)
  np.testing.assert_allclose(prior, [[-0.5]], atol=1e-6)
  np.testing.assert_allclose(total - prior, [[0.471910]], atol=1e-5)
  np.testing.assert_allclose(total, [[-0.028090]], atol=1e-5)
  np.testing.assert_allclose(lg.posterior_score(x, t, z), total, atol=1e-5)
  _, b = lg.latent_mean_var(x, t)
  np.testing.assert_allclose(b, [[0.89]], atol=1e-6)


@pytest.mark.parametrize("t_val", [0.01, 0.3, 0.9])
def test_composed_score_equals_exact_posterior_score(t_val):
  sde = VPSDE()
  lg = random_model(sde, d=3, k=2, seed=1)
  rng = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(rng[0], (5, 3))
  z = jax.random.normal(rng[1], (5, 2))
  t = jnp.full((5,), t_val)
  got = jax.jit(lambda x, t, z: score_vae.bayes_rule_score(
      lg.prior_score, lg.latent_log_likelihood, x, t, z))(x, t, z)
  want = lg.posterior_score(x, t, z)
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


def _diag_model(sde):
  # One latent: the exact p_t(z | x_t) has a scalar variance, so it lies in the
  # diagonal-Gaussian encoder family.
  return LinearGaussian([[1.0, 0.4], [0.4, 0.6]], [[1.0, -0.5]], [[0.3]], sde)


def _exact_encoder(lg):
  def apply(params, x, t):
    del params
    mean, var = lg.latent_mean_var(x, t)
    return mean, jnp.log(var)
  return apply


@pytest.mark.parametrize("include_log_var", [True, False])
def test_encoder_path_equals_exact(include_log_var):
  # ell does not depend on x_t here, so dropping its gradient is harmless.
  sde = VPSDE()
  lg = _diag_model(sde)
  score = score_vae.make_conditional_score(
      lambda p, x, t: lg.prior_score(x, t), _exact_encoder(lg),
      include_log_var=include_log_var)
  x = jax.random.normal(jax.random.key(1), (4, 2))
  z = jax.random.normal(jax.random.key(2), (4, 1))
  t = jnp.array([0.05, 0.2, 0.5, 0.8])
  got = jax.jit(score)({}, {}, x, t, z)
  np.testing.assert_allclose(got, lg.posterior_score(x, t, z), rtol=2e-4,
                             atol=1e-4)


def test_log_var_term_when_variance_depends_on_x():
  # mu = M x, ell = C x: the exact x-gradient of log N(z; mu, diag(e^ell)) is
  # M^T e^{-ell}(z - mu) + 1/2 C^T((z - mu)^2 e^{-ell} - 1); the code-style
  # density (include_log_var=False) lacks the -1/2 C^T 1 term.
  M = jnp.array([[0.5, -1.0, 0.2], [0.3, 0.1, 0.7]])
  C = jnp.array([[0.2, 0.1, -0.3], [-0.4, 0.2, 0.1]])
  enc = lambda p, x, t: (x @ M.T, x @ C.T)
  zero_prior = lambda p, x, t: jnp.zeros_like(x)
  x = jax.random.normal(jax.random.key(3), (6, 3))
  z = jax.random.normal(jax.random.key(4), (6, 2))
  t = jnp.full((6,), 0.4)
  mu, ell = x @ M.T, x @ C.T
  r = z - mu
  exact = (r * jnp.exp(-ell)) @ M + 0.5 * (r**2 * jnp.exp(-ell) - 1.0) @ C
  full = jax.jit(score_vae.make_conditional_score(zero_prior, enc))({}, {}, x, t, z)
  code = jax.jit(score_vae.make_conditional_score(
      zero_prior, enc, include_log_var=False))({}, {}, x, t, z)
  np.testing.assert_allclose(full, exact, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(code - full, 0.5 * jnp.ones((6, 2)) @ C, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sde", "ode"])
def test_decoding_reproduces_exact_posterior(method):
  sde = VPSDE()
  lg = random_model(sde, d=2, k=1, seed=3)
  z_one = jnp.array([1.2])
  n = 4000
  z = jnp.broadcast_to(z_one, (n, 1))
  score = score_vae.make_conditional_score(
      lambda p, x, t: lg.prior_score(x, t),
      lambda p, x, t: (lg.latent_mean_var(x, t)[0],
                       jnp.log(lg.latent_mean_var(x, t)[1])))
  decode = jax.jit(score_vae.make_decoder(
      sde, score, (2,), n_steps=400 if method == "sde" else 100, method=method,
      t_min=1e-3))
  x = decode({}, {}, z, jax.random.key(5))
  m, C = lg.posterior(z_one)
  mean = x.mean(0)
  cov = jnp.cov(x.T)
  scale = float(jnp.sqrt(jnp.max(jnp.diag(C))))
  np.testing.assert_allclose(mean, m, atol=0.06 * scale)
  np.testing.assert_allclose(cov, C, atol=0.08 * scale**2)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["ddim_eta1", "pc_em"])
def test_decoding_with_sde_toolkit_samplers(which):
  # Any vdm_jax.sde sampler decodes: DDIM with eta = 1 is the ancestral
  # sampler p(x_s | x_t); pc_sample is Euler-Maruyama predictor-corrector.
  import functools  # pylint: disable=g-import-not-at-top
  from vdm_jax.sde import samplers  # pylint: disable=g-import-not-at-top
  sde = VPSDE()
  lg = random_model(sde, d=2, k=1, seed=4)
  z_one = jnp.array([-0.7])
  n = 3000
  enc = lambda p, x, t: (lg.latent_mean_var(x, t)[0],
                         jnp.log(lg.latent_mean_var(x, t)[1]))
  score = score_vae.make_conditional_score(lambda p, x, t: lg.prior_score(x, t), enc)
  sampler = {
      "ddim_eta1": functools.partial(samplers.ddim_sample, n_steps=200, eta=1.0),
      "pc_em": functools.partial(samplers.pc_sample, n_steps=300),
  }[which]
  decode = jax.jit(score_vae.make_decoder(sde, score, (2,), sampler=sampler))
  x = decode({}, {}, jnp.broadcast_to(z_one, (n, 1)), jax.random.key(6))
  m, C = lg.posterior(z_one)
  scale = float(jnp.sqrt(jnp.max(jnp.diag(C))))
  np.testing.assert_allclose(x.mean(0), m, atol=0.07 * scale)
  np.testing.assert_allclose(jnp.cov(x.T), C, atol=0.1 * scale**2)
