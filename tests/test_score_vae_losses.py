"""ScoreVAE objective: recovery of the exact p_t(z|x_t), frozen prior, beta, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vdm_jax import score_vae
from vdm_jax.models import ScoreMLP
from vdm_jax.score_vae.linear_gaussian import LinearGaussian
from vdm_jax.sde import VPSDE


class _LinearEncoder(nn.Module):
  """mean = M x + b, log_var = const: contains the exact p_t(z|x_t) at fixed t."""
  latent_dim: int

  @nn.compact
  def __call__(self, x, t):
    del t
    log_var = self.param("log_var", nn.initializers.zeros, (self.latent_dim,))
    mean = nn.Dense(self.latent_dim)(x)
    return mean, jnp.broadcast_to(log_var, mean.shape)


def _model():
  return LinearGaussian([[1.0, 0.4], [0.4, 0.6]], [[1.0, -0.5]], [[0.3]], VPSDE())


def _fit(loss, params, rng, n_steps, lr):
  opt = optax.adam(optax.exponential_decay(lr, n_steps, 0.03))

  def step(carry, key):
    params, state = carry
    g = jax.grad(loss)(params, key)
    upd, state = opt.update(g, state, params)
    return (optax.apply_updates(params, upd), state), None

  (params, _), _ = jax.jit(lambda p, r: jax.lax.scan(
      step, (p, opt.init(p)), jax.random.split(r, n_steps)))(params, rng)
  return params


@pytest.mark.slow
@pytest.mark.parametrize("t_val", [0.1, 0.3])
def test_training_recovers_exact_latent_posterior(t_val):
  lg = _model()
  sde = lg.sde
  enc = _LinearEncoder(1)
  dsm = score_vae.make_latent_dsm(sde, lambda p, x, t: lg.prior_score(x, t),
                                  enc.apply)
  params = jax.jit(enc.init)(jax.random.key(0), jnp.zeros((1, 2)),
                             jnp.zeros((1,)))
  b = 2048

  def loss(params, key):
    k1, k2 = jax.random.split(key)
    x0, z = lg.sample(k1, b)
    noise = jax.random.normal(k2, x0.shape)
    return jnp.mean(dsm(params, {}, x0, z, jnp.full((b,), t_val), noise))

  params = _fit(loss, params, jax.random.key(1), 1500, 1e-1)
  x = jnp.eye(2)
  t = jnp.full((2,), t_val)
  mean_exact, var_exact = lg.latent_mean_var(x, t)
  mean, log_var = jax.jit(enc.apply)(params, x, t)
  bias = jax.jit(enc.apply)(params, jnp.zeros((1, 2)), t[:1])[0]
  np.testing.assert_allclose(mean - bias, mean_exact, rtol=0.05, atol=0.02)
  np.testing.assert_allclose(bias, 0.0, atol=0.03)
  np.testing.assert_allclose(jnp.exp(log_var[0]), var_exact[0], rtol=0.08)


def _small_setup(beta=0.01, weighting="sigma2"):
  sde = VPSDE()
  prior = ScoreMLP(hidden=(16, 16), emb_dim=8, zero_init_output=False)
  prior_apply = lambda p, x, t: prior.apply(p, x, t)
  enc = score_vae.MLPEncoder(latent_dim=2, hidden=(16,), emb_dim=8)
  x0 = jax.random.normal(jax.random.key(0), (4, 3))
  prior_params = jax.jit(prior.init)(jax.random.key(1), x0, jnp.zeros((4,)))
  enc_params = jax.jit(enc.init)(jax.random.key(2), x0, jnp.zeros((4,)))
  terms = score_vae.make_scorevae_terms(sde, prior_apply, enc.apply, beta=beta,
                                        weighting=weighting)
  return sde, prior_apply, enc, x0, prior_params, enc_params, terms


@pytest.mark.parametrize("weighting", ["sigma2", "likelihood"])
def test_prior_frozen_and_encoder_grads_finite(weighting):
  sde, _, _, x0, pp, ep, terms = _small_setup(weighting=weighting)
  t = jnp.array([1e-5, 1e-4, 1e-3, 1.0])  # t near 0 (sde.eps) and at T = 1
  noise = jax.random.normal(jax.random.key(3), x0.shape)
  lat = jax.random.normal(jax.random.key(4), (4, 2))
  loss = lambda ep, pp: jnp.mean(terms(ep, pp, x0, t, noise, lat)["loss"])
  g_enc, g_prior = jax.jit(jax.grad(loss, argnums=(0, 1)))(ep, pp)
  leaves = jax.tree.leaves(g_enc)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves)
  assert sum(float(jnp.sum(jnp.abs(v))) for v in leaves) > 0
  # stop_gradient inside the loss: no gradient reaches the diffusion prior.
  assert all(float(jnp.max(jnp.abs(v))) == 0.0 for v in jax.tree.leaves(g_prior))


def test_loss_fn_shapes_and_sigma2_weighting_closed_form():
  # With a zero encoder score and the exact score of N(0, I) data the sigma2
  # DSM is 1/2 (T - eps) ||sigma_t s + eps||^2 with s = -x_t: check per example.
  sde = VPSDE()
  zero_enc = lambda p, x, t: (jnp.zeros((x.shape[0], 3)), jnp.zeros((x.shape[0], 3)))
  terms = score_vae.make_scorevae_terms(sde, lambda p, x, t: -x, zero_enc, beta=0.5)
  x0 = jax.random.normal(jax.random.key(0), (5, 4))
  noise = jax.random.normal(jax.random.key(1), (5, 4))
  t = jnp.linspace(0.1, 0.9, 5)
  out = jax.jit(terms)({}, {}, x0, t, noise, jnp.zeros((5, 3)))
  a, s = sde.marginal_coeffs(t)
  x_t = a[:, None] * x0 + s[:, None] * noise
  want = 0.5 * (1 - sde.eps) * jnp.sum((s[:, None] * -x_t + noise) ** 2, -1)
  np.testing.assert_allclose(out["dsm"], want, rtol=1e-5)
  np.testing.assert_allclose(out["kl"], 0.0, atol=1e-7)
  loss_fn = score_vae.make_scorevae_loss(sde, lambda p, x, t: -x, zero_enc,
                                         latent_dim=3, beta=0.5)
  loss, aux = jax.jit(loss_fn)({}, {}, jax.random.key(2), x0)
  assert loss.shape == (5,) and aux["kl"].shape == (5,)


@pytest.mark.slow
def test_beta_reduces_latent_kl():
  lg = _model()
  sde = lg.sde
  enc = score_vae.MLPEncoder(latent_dim=2, hidden=(32,), emb_dim=8)
  params0 = jax.jit(enc.init)(jax.random.key(0), jnp.zeros((1, 2)),
                              jnp.zeros((1,)))
  x_test, _ = lg.sample(jax.random.key(9), 512)
  mean_kl = jax.jit(lambda p: jnp.mean(score_vae.kl_to_standard_normal(
      *enc.apply(p, x_test, jnp.zeros((512,))))))
  kls = {}
  for beta in (0.0, 1.0):
    loss_fn = score_vae.make_scorevae_loss(
        sde, lambda p, x, t: lg.prior_score(x, t), enc.apply, latent_dim=2,
        beta=beta, t_min=1e-3)

    def loss(params, key):
      k1, k2 = jax.random.split(key)
      x0, _ = lg.sample(k1, 256)
      return jnp.mean(loss_fn(params, {}, k2, x0)[0])

    params = _fit(loss, params0, jax.random.key(1), 300, 3e-3)
    kls[beta] = float(mean_kl(params))
  assert kls[1.0] < 0.7 * kls[0.0], kls


def test_latent_size_mismatch_raises():
  sde, prior_apply, enc, x0, pp, ep, _ = _small_setup()
  score = score_vae.make_conditional_score(prior_apply, enc.apply)
  with pytest.raises(ValueError, match="latent_dim"):
    score(pp, ep, x0, jnp.full((4,), 0.5), jnp.zeros((4, 3)))
  loss_fn = score_vae.make_scorevae_loss(sde, prior_apply, enc.apply,
                                         latent_dim=5, beta=0.1)
  with pytest.raises(ValueError, match="latent_dim"):
    loss_fn(ep, pp, jax.random.key(0), x0)
  vae_loss = score_vae.make_vae_loss(
      enc.apply, score_vae.GaussianDecoder((3,)).apply, latent_dim=5, beta=0.1)
  with pytest.raises(ValueError, match="latent_dim"):
    vae_loss({"encoder": ep, "decoder": {}}, jax.random.key(0), x0)


def test_bad_hyperparameters_raise():
  sde, prior_apply, enc, *_ = _small_setup()
  with pytest.raises(ValueError, match="beta"):
    score_vae.make_scorevae_terms(sde, prior_apply, enc.apply, beta=-1.0)
  with pytest.raises(ValueError, match="weighting"):
    score_vae.make_latent_dsm(sde, prior_apply, enc.apply, weighting="g3")


def test_prior_checkpoint_shape_mismatch_raises():
  prior = ScoreMLP(hidden=(8,), emb_dim=8)
  params = prior.init(jax.random.key(0), jnp.zeros((1, 16)), jnp.zeros((1,)))
  apply = lambda p, x, t: prior.apply(p, x.reshape(x.shape[0], -1), t).reshape(x.shape)
  score_vae.check_prior_matches_data(apply, params, (4, 4, 1))  # fits
  with pytest.raises(ValueError, match=r"do not fit data of shape \(8, 8, 1\)"):
    score_vae.check_prior_matches_data(apply, params, (8, 8, 1))
  with pytest.raises(ValueError, match=r"trained on data of shape \(4, 4, 1\)"):
    score_vae.check_prior_matches_data(apply, params, (8, 8, 1),
                                       metadata={"data_shape": [4, 4, 1]})


def test_gaussian_vae_loss_closed_form():
  # Identity-like decoder at z = mean with log_scale = 0: nll = 1/2||x - mu||^2
  # + D/2 log(2 pi) when the encoder variance is tiny.
  enc = lambda p, x, t: (x[:, :2], jnp.full((x.shape[0], 2), -30.0))
  dec = lambda p, z: (jnp.concatenate([z, jnp.zeros((z.shape[0], 1))], -1), 0.0)
  loss_fn = score_vae.make_vae_loss(enc, dec, latent_dim=2, beta=0.0)
  x0 = jnp.array([[0.5, -1.0, 2.0]])
  loss, aux = jax.jit(loss_fn)({"encoder": {}, "decoder": {}}, jax.random.key(0), x0)
  np.testing.assert_allclose(loss, 0.5 * 4.0 + 1.5 * np.log(2 * np.pi), rtol=1e-5)


def _stale_encoder(lg):
  """q(z | x_t, t) = N(W x_t, V) at every t: exact at t = 0, wrong for t > 0."""
  w, log_v = lg.W, jnp.log(jnp.diag(lg.V))
  return lambda p, x, t: (x @ w.T, jnp.broadcast_to(log_v, (x.shape[0], lg.k)))


def test_scorevae_plus_starts_at_scorevae_and_trains_only_the_correction():
  sde, prior_apply, enc, x0, pp, ep, _ = _small_setup()
  corr = score_vae.CorrectionMLP(hidden=(16,), emb_dim=8)
  t = jnp.array([1e-3, 0.2, 0.6, 1.0])
  z = jax.random.normal(jax.random.key(5), (4, 2))
  cp = jax.jit(corr.init)(jax.random.key(6), x0, t, z)
  base = score_vae.make_conditional_score(prior_apply, enc.apply)
  plus = score_vae.make_corrected_score(base, corr.apply, sde)
  np.testing.assert_array_equal(plus(pp, (ep, cp), x0, t, z), base(pp, ep, x0, t, z))

  loss_fn = score_vae.make_scorevae_plus_loss(sde, plus, enc.apply, latent_dim=2)
  loss = lambda cp, ep, pp: jnp.mean(loss_fn(cp, ep, pp, jax.random.key(7), x0))
  g_c, g_e, g_p = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(cp, ep, pp)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(g_c))
  assert sum(float(jnp.sum(jnp.abs(v))) for v in jax.tree.leaves(g_c)) > 0
  for frozen in (g_e, g_p):
    assert all(float(jnp.max(jnp.abs(v))) == 0.0 for v in jax.tree.leaves(frozen))
  with pytest.raises(ValueError, match="latent_dim"):
    score_vae.make_scorevae_plus_loss(sde, plus, enc.apply, latent_dim=3)(
        cp, ep, pp, jax.random.key(0), x0)


@pytest.mark.slow
def test_correction_closes_most_of_the_gap_to_the_exact_posterior_score():
  # Linear-Gaussian model with the encoder frozen at its t = 0 posterior for
  # all t: the Bayes-rule score is biased for t > 0, the exact one is known.
  lg = _model()
  sde = lg.sde
  enc_apply = _stale_encoder(lg)
  prior_apply = lambda p, x, t: lg.prior_score(x, t)
  base = score_vae.make_conditional_score(prior_apply, enc_apply)
  corr = score_vae.CorrectionMLP(hidden=(64, 64), emb_dim=16)
  plus = score_vae.make_corrected_score(base, corr.apply, sde)
  loss_fn = score_vae.make_scorevae_plus_loss(sde, plus, enc_apply, latent_dim=1,
                                              t_min=1e-2)
  cp = jax.jit(corr.init)(jax.random.key(0), jnp.zeros((1, 2)),
                          jnp.zeros((1,)), jnp.zeros((1, 1)))

  def loss(cp, key):
    k1, k2 = jax.random.split(key)
    x0, _ = lg.sample(k1, 512)
    return jnp.mean(loss_fn(cp, {}, {}, k2, x0))

  cp = _fit(loss, cp, jax.random.key(1), 1500, 3e-3)

  # Held-out DSM of the three scores on the same draws (z from the encoder).
  n = 20000
  k1, k2, k3, k4 = jax.random.split(jax.random.key(2), 4)
  x0, _ = lg.sample(k1, n)
  z = x0 @ lg.W.T + jax.random.normal(k2, (n, 1)) * jnp.sqrt(lg.V[0, 0])
  t = jax.random.uniform(k3, (n,), minval=1e-2, maxval=1.0)
  noise = jax.random.normal(k4, x0.shape)
  exact = lambda pp, cond, x, s, zz: lg.posterior_score(x, s, zz)
  # Jitted: eagerly, each of the DSM's ops would compile on its own.
  dsm = lambda score, cond: float(jnp.mean(jax.jit(score_vae.make_score_dsm(
      sde, score, t_min=1e-2))(cond, {}, x0, z, t, noise)))
  prior_only = lambda pp, cond, x, s, zz: lg.prior_score(x, s)
  d_base, d_plus, d_exact, d_prior = (dsm(base, {}), dsm(plus, ({}, cp)),
                                      dsm(exact, {}), dsm(prior_only, {}))
  # The stale encoder is far worse than ignoring z; the corrected score must
  # beat ignoring z and come close to the exact posterior score.
  assert d_exact < d_prior < d_base, (d_exact, d_prior, d_base)
  assert d_plus < d_exact + 0.3 * (d_prior - d_exact), (d_plus, d_exact, d_prior)
