"""Tests for vdm_jax/compression/elbo.py and chain.py: closed forms of the T-step chain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules
from vdm_jax.compression import chain as chain_lib
from vdm_jax.compression import elbo


def _point_mass_eps(value, vocab_size):
  """The exact denoiser when every pixel equals `value`: x_hat = c_value."""
  c = (2.0 * value + 1.0) / vocab_size - 1.0

  def eps_fn(z, gamma):
    g = gamma.reshape((-1,) + (1,) * (z.ndim - 1))
    return (z - jnp.sqrt(jax.nn.sigmoid(-g)) * c) / jnp.sqrt(jax.nn.sigmoid(g))

  return eps_fn


def _recon_by_quadrature(value, vocab_size, gamma0):
  """E_eps[-log p(x = value | z_0)] per dimension, by quadrature (float64)."""
  c = (2.0 * np.arange(vocab_size) + 1.0) / vocab_size - 1.0
  e = np.linspace(-10, 10, 4001)
  w = np.exp(-e ** 2 / 2) / np.sqrt(2 * np.pi) * (e[1] - e[0])
  z = c[value] + np.exp(gamma0 / 2) * e
  logits = -0.5 * (z[:, None] - c[None, :]) ** 2 * np.exp(-gamma0)
  logp = logits[:, value] - np.logaddexp.reduce(logits, axis=1)
  return -(w * logp).sum()


def test_recon_quadrature_reproduces_closed_form():
  # Computed in closed form (quadrature, `_recon_by_quadrature`) at gamma_0 = -13.3,
  # V = 256 (edge and interior values).
  np.testing.assert_allclose(_recon_by_quadrature(0, 256, -13.3), 0.0036228, rtol=1e-4)
  np.testing.assert_allclose(_recon_by_quadrature(128, 256, -13.3), 0.0072456, rtol=1e-4)


@pytest.mark.parametrize("value", [3])
def test_point_mass_nelbo_closed_forms(value):
  # With the exact denoiser of point-mass data, L_T = 0; the recon
  # and prior terms are closed forms. gamma_0 = -6 keeps the recon Monte Carlo
  # estimate out of the rare-event regime (at -13.3 it is tail dominated).
  vocab, g0, g1 = 16, -6.0, 5.0
  gamma_fn = lambda t: schedules.linear_gamma(t, gamma_min=g0, gamma_max=g1)
  x = jnp.full((64, 8, 8, 1), value, jnp.int32)
  terms = jax.jit(lambda key: elbo.discrete_time_nelbo(
      key, x, eps_fn=_point_mass_eps(value, vocab), gamma_fn=gamma_fn,
      vocab_size=vocab, num_steps=10))(jax.random.key(0))
  assert terms.diffusion.shape == (64,)
  np.testing.assert_allclose(terms.diffusion, 0.0, atol=1e-3)
  np.testing.assert_allclose(terms.recon.mean() / 64, _recon_by_quadrature(value, vocab, g0),
                             rtol=0.05)
  f = 2 * (value + 0.5) / vocab - 1
  a2, s2 = 1 / (1 + np.exp(g1)), 1 / (1 + np.exp(-g1))
  prior = 0.5 * (a2 * f ** 2 + s2 - np.log(s2) - 1) * 64
  np.testing.assert_allclose(terms.prior, prior, rtol=1e-3)


def test_full_sum_and_single_step_estimates_agree():
  # Both are unbiased for the same -ELBO: compare the means of many draws.
  eps_fn = lambda z, g: 0.3 * z
  x = jnp.asarray(np.random.default_rng(0).integers(0, 5, (512, 3)), jnp.int32)
  kw = dict(eps_fn=eps_fn, gamma_fn=schedules.linear_gamma, vocab_size=5, num_steps=8)
  full = jax.jit(lambda k: elbo.discrete_time_nelbo(k, x, full_sum=True, **kw).diffusion.mean())
  one = jax.jit(lambda k: elbo.discrete_time_nelbo(k, x, full_sum=False, **kw).diffusion.mean())
  f = np.mean([full(jax.random.key(s)) for s in range(5)])
  o = np.mean([one(jax.random.key(s)) for s in range(60)])
  np.testing.assert_allclose(o, f, rtol=0.1)


def test_nelbo_rejects_bad_inputs():
  kw = dict(eps_fn=lambda z, g: z, gamma_fn=schedules.linear_gamma, vocab_size=5)
  with pytest.raises(TypeError, match="x_int"):
    elbo.discrete_time_nelbo(jax.random.key(0), jnp.zeros((2, 3)), num_steps=4, **kw)
  with pytest.raises(ValueError, match="num_steps"):
    elbo.discrete_time_nelbo(jax.random.key(0), jnp.zeros((2, 3), jnp.int32), num_steps=0, **kw)


def test_chain_coefficients_closed_forms():
  ch = chain_lib.make_chain(schedules.linear_gamma, num_steps=16, latent_precision=3)
  g = ch.gamma
  a2, s2 = 1 / (1 + np.exp(g)), 1 / (1 + np.exp(-g))
  np.testing.assert_allclose(ch.alpha ** 2 + ch.sigma ** 2, 1.0, rtol=1e-12)
  i = np.arange(1, 17)
  # q(z_t|z_s): alpha_{t|s} = alpha_t / alpha_s, sigma^2_{t|s} = sigma_t^2 - alpha_{t|s}^2 sigma_s^2.
  np.testing.assert_allclose(ch.fwd_scale[i], np.sqrt(a2[i] / a2[i - 1]), rtol=1e-10)
  np.testing.assert_allclose(ch.fwd_std[i] ** 2, s2[i] - a2[i] / a2[i - 1] * s2[i - 1],
                             rtol=1e-6)
  # Reverse variance sigma_s^2 c and the posterior form c = 1 - SNR_t / SNR_s.
  np.testing.assert_allclose(ch.c[i], 1 - np.exp(g[i - 1] - g[i]), rtol=1e-10)
  np.testing.assert_allclose(ch.rev_std[i] ** 2, s2[i - 1] * ch.c[i], rtol=1e-10)
  # Grid widths: S bins within the narrowest std that codes each latent.
  assert np.all(ch.delta[:-1] * 8 <= ch.rev_std[1:] * (1 + 1e-12))
  assert np.all(ch.delta[1:] * 8 <= ch.fwd_std[1:] * (1 + 1e-12))
  probs = chain_lib.decoder_probs(np.array([-1.0, 0.1, 0.99]), ch, 7)
  np.testing.assert_allclose(probs.sum(1), 1.0)
  assert list(probs.argmax(1)) == [0, 3, 6]


def test_chain_rejects_bad_schedules():
  with pytest.raises(ValueError, match="strictly increasing"):
    chain_lib.make_chain(lambda t: -t, num_steps=4, latent_precision=2)
  with pytest.raises(ValueError, match="latent_precision"):
    chain_lib.make_chain(schedules.linear_gamma, num_steps=4, latent_precision=20)
  with pytest.raises(ValueError, match="num_steps"):
    chain_lib.make_chain(schedules.linear_gamma, num_steps=0, latent_precision=2)


def test_agrees_with_vdm_jax_losses():
  # The codec's -ELBO helper and the training loss (vdm_jax.losses) implement the
  # same T-step formulas: the prior term is identical; the Monte Carlo terms agree
  # in the mean.
  from vdm_jax import losses  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(0).integers(0, 5, (4096, 3)), jnp.int32)
  kw = dict(eps_fn=lambda z, g: 0.5 * z, gamma_fn=schedules.linear_gamma, vocab_size=5)
  mine = jax.jit(lambda k: elbo.discrete_time_nelbo(k, x, num_steps=8, full_sum=False, **kw))(
      jax.random.key(0))
  theirs = jax.jit(lambda k: losses.vlb_terms(k, x, num_steps=8, **kw))(jax.random.key(1))
  np.testing.assert_allclose(mine.prior, theirs.prior, rtol=1e-5)
  np.testing.assert_allclose(mine.diffusion.mean(), theirs.diffusion.mean(), rtol=0.05)
  np.testing.assert_allclose(mine.recon.mean(), theirs.recon.mean(), rtol=0.1, atol=1e-3)


@pytest.mark.parametrize("x,vocab_size,gamma_fn,message", [
    # -1 used to wrap to the top bin: a finite 1.1e6 nats.
    ([[-1, 0, 1]], 4, schedules.linear_gamma,
     r"x_int must lie in \[0, 3\] for vocab_size=4, got min -1 and max 1"),
    ([[0, 0, 0]], 1, schedules.linear_gamma, r"vocab_size must be an integer >= 2, got 1"),
    # A reversed schedule used to give a negative diffusion term.
    ([[0, 1, 2]], 4, lambda t: 5.0 - 18.3 * t,
     r"gamma_fn must be increasing in t on the grid .*got min\(gamma_i - gamma_\{i-1\}\) = -4.57"),
])
def test_nelbo_rejects_out_of_range_pixels_small_vocab_and_decreasing_gamma(
    x, vocab_size, gamma_fn, message):
  with pytest.raises(ValueError, match=message):
    elbo.discrete_time_nelbo(jax.random.key(0), jnp.asarray(x, jnp.int32),
                             eps_fn=lambda z, g: 0.9 * z, gamma_fn=gamma_fn,
                             vocab_size=vocab_size, num_steps=4)


def test_pixel_helpers_reject_bad_vocabularies():
  with pytest.raises(ValueError, match=r"x_int must lie in \[0, 3\] for vocab_size=4, got min -1 and max 3"):
    chain_lib.encode_pixels(np.array([-1, 3]), 4)
  chain = chain_lib.make_chain(schedules.linear_gamma, num_steps=4, latent_precision=4)
  with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 2, got 0\."):
    chain_lib.decoder_probs(np.zeros(3), chain, 0)
