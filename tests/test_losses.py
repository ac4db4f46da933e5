"""Closed-form checks of the VLB (Kingma et al. 2021) on Gaussian and point-mass data."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import gaussian_oracle as oracle
from vdm_jax import losses
from vdm_jax import schedules

N = 1_000_000  # Monte-Carlo samples (1-D data, so this is cheap).


def _mc_diffusion(gamma_fn, num_steps=0, seed=0, n=N):
  rng_x, rng_l = jax.random.split(jax.random.key(seed))
  x = oracle.MU + oracle.S * jax.random.normal(rng_x, (n, 1))
  loss = jax.jit(functools.partial(
      losses.diffusion_loss, gamma_fn=gamma_fn, eps_fn=oracle.optimal_eps,
      num_steps=num_steps))(rng_l, x)
  loss = np.asarray(loss, np.float64)
  return loss.mean(), loss.std() / math.sqrt(n), x, loss


def _learned_gamma_fn(gamma_min, gamma_max, seed=1):
  module = schedules.MonotoneNetSchedule(gamma_min=gamma_min, gamma_max=gamma_max,
                                         n_features=32)
  return schedules.bind(module, schedules.init_schedule(module, jax.random.key(seed)))


def test_gaussian_data_vlb_matches_exact_neg_log_likelihood():
  """With the optimal denoiser and exact Gaussian decoder, E[-VLB] = H(x) + KL_prior."""
  g0, g1 = -13.3, 5.0
  gamma_fn = lambda t: schedules.linear_gamma(t, gamma_min=g0, gamma_max=g1)
  diff, diff_se, x, diff_per = _mc_diffusion(gamma_fn)
  prior = np.asarray(losses.prior_kl(x, jnp.float32(g1)), np.float64)
  # Exact Gaussian reconstruction: -log q(x | z_0) with q(x|z_0) = N(x_hat*(z_0), s^2 / w_0).
  eps0 = jax.random.normal(jax.random.key(7), x.shape)
  a0, s0 = schedules.alpha(g0), schedules.sigma(g0)
  z0 = a0 * x + s0 * eps0
  w0 = 1 + oracle.S ** 2 * math.exp(-g0)
  post_mean = oracle.MU + a0 * oracle.S ** 2 * (z0 - a0 * oracle.MU) / (a0 ** 2 * oracle.S ** 2 + s0 ** 2)
  post_var = oracle.S ** 2 / w0
  recon = np.asarray(0.5 * jnp.log(2 * jnp.pi * post_var) + 0.5 * (x - post_mean) ** 2 / post_var)[:, 0]
  total = diff_per + prior + recon
  se = total.std() / math.sqrt(len(total))
  expected = oracle.expected_neg_vlb(g1)
  assert abs(expected - 0.726099) < 1e-5  # computed in closed form: H(x) + KL_prior
  assert abs(total.mean() - expected) < 4 * se, (total.mean(), expected, se)
  assert se < 0.02
  # The exact -log p(x) of N(mu, s^2), averaged: the bound is tight up to the prior KL.
  neg_log_p = 0.5 * math.log(2 * math.pi * oracle.S ** 2) + 0.5 * np.mean((np.asarray(x) - oracle.MU) ** 2) / oracle.S ** 2
  assert abs(total.mean() - neg_log_p) < 4 * se + 0.01
  np.testing.assert_allclose(diff, oracle.continuous_diffusion_loss(g0, g1), atol=4 * diff_se)


@pytest.mark.parametrize("kind", ["linear", "cosine", "learned"])
def test_continuous_loss_is_invariant_to_schedule_shape(kind):
  """With fixed endpoints, E L_inf = 1/2 ln(w_0/w_1) = 5.956015 for any shape."""
  g0, g1 = -13.3, 5.0
  gamma_fn = {
      "linear": lambda t: schedules.linear_gamma(t, gamma_min=g0, gamma_max=g1),
      "cosine": lambda t: schedules.cosine_gamma(t, gamma_min=g0, gamma_max=g1),
      "learned": _learned_gamma_fn(g0, g1),
  }[kind]
  mean, se, _, _ = _mc_diffusion(gamma_fn, seed=3)
  expected = oracle.continuous_diffusion_loss(g0, g1)
  assert abs(expected - 5.956015) < 1e-5
  assert se < 0.1
  assert abs(mean - expected) < 4 * se, (kind, mean, expected, se)


def test_continuous_loss_changes_when_endpoints_change():
  gamma_fn = lambda t: schedules.cosine_gamma(t, gamma_min=-8.0, gamma_max=5.0)
  mean, se, _, _ = _mc_diffusion(gamma_fn, seed=4)
  expected = oracle.continuous_diffusion_loss(-8.0, 5.0)
  assert abs(expected - 5.956015) > 2.0
  assert abs(mean - expected) < 4 * se
  assert abs(mean - 5.956015) > 20 * se


def test_snr_form_equals_eps_form():
  k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
  x = jax.random.normal(k1, (6, 5))
  eps = jax.random.normal(k2, (6, 5))
  t = jax.random.uniform(k3, (6,))
  gamma_fn = lambda t: schedules.cosine_gamma(t, gamma_min=-6.0, gamma_max=5.0)
  g, dg = schedules.gamma_and_derivative(gamma_fn, t)
  z = schedules.alpha(g)[:, None] * x + schedules.sigma(g)[:, None] * eps
  eps_hat = 0.5 * eps + 0.1  # any imperfect prediction
  x_hat = (z - schedules.sigma(g)[:, None] * eps_hat) / schedules.alpha(g)[:, None]
  _, dsnr = jax.jvp(lambda t: schedules.snr(gamma_fn(t)), (t,), (jnp.ones_like(t),))
  np.testing.assert_allclose(
      losses.diffusion_loss_continuous(eps, eps_hat, dg),
      losses.diffusion_loss_continuous_snr(x, x_hat, dsnr), rtol=1e-4)


@pytest.mark.parametrize("num_steps,expected", [(10, 15.72756), (100, 6.485690), (1000, 6.006237)])
def test_discrete_loss_matches_closed_form_and_converges(num_steps, expected):
  """E L_T with the optimal denoiser, decreasing to L_inf = 5.956 as T grows."""
  gamma_fn = lambda t: schedules.linear_gamma(t, gamma_min=-13.3, gamma_max=5.0)
  grid = np.asarray(schedules.linear_gamma(np.linspace(0, 1, num_steps + 1)))
  assert abs(oracle.discrete_diffusion_loss(grid) - expected) < 1e-4
  mean, se, _, _ = _mc_diffusion(gamma_fn, num_steps=num_steps, seed=6)
  assert abs(mean - expected) < 4 * se + 1e-3, (mean, expected, se)
  assert expected >= oracle.continuous_diffusion_loss(-13.3, 5.0)


def _gaussian_quantiles(n):
  """Stratified N(0, 1) draws: the recon loss is heavy-tailed, so plain MC is noisy."""
  from scipy.stats import norm  # pylint: disable=g-import-not-at-top
  return jnp.asarray(norm.ppf((np.arange(n) + 0.5) / n), jnp.float32)[None]


def test_point_mass_bpd_matches_hand_computation():
  """Every value equal to k, optimal denoiser x_hat = c_k: diffusion loss 0."""
  vocab, k, d = 256, 128, 65536
  x = jnp.full((1, d), k, jnp.int32)
  c_k = float(losses.bin_centres(vocab)[k])

  def eps_fn(z, gamma):
    g = gamma[:, None]
    return (z - schedules.alpha(g) * c_k) / schedules.sigma(g)

  gamma_fn = lambda t: schedules.linear_gamma(t, gamma_min=-13.3, gamma_max=5.0)
  terms = losses.vlb_terms(jax.random.key(0), x, gamma_fn=gamma_fn, eps_fn=eps_fn,
                           vocab_size=vocab)
  assert abs(float(terms.diffusion[0])) < 1e-3
  np.testing.assert_allclose(terms.prior[0] / d, 1.13e-5, rtol=0.02)
  np.testing.assert_allclose(terms.recon[0] / d, 0.0072456, rtol=0.3)  # plain MC
  eps0 = _gaussian_quantiles(d)
  recon = losses.reconstruction_loss(x, eps0, -13.3, vocab)
  np.testing.assert_allclose(recon[0] / d, 0.0072456, rtol=0.01)
  bpd = losses.nats_to_bpd(terms.prior + recon, d)
  np.testing.assert_allclose(bpd[0], (1.13e-5 + 0.0072456) / math.log(2), rtol=0.01)
  # Edge value: half the interior reconstruction cost (one neighbour instead of two).
  edge = losses.reconstruction_loss(jnp.zeros((1, d), jnp.int32), eps0, -13.3, vocab)
  np.testing.assert_allclose(edge[0] / d, 0.0036228, rtol=0.01)


def test_bpd_of_uniform_decoder_is_log2_vocab():
  """gamma_0 -> +inf makes p(x|z_0) uniform: recon = D log V nats = log2 V bits/dim."""
  x = jnp.arange(17, dtype=jnp.int32)[None]
  recon = losses.reconstruction_loss(x, jnp.zeros((1, 17)), 30.0, 17)
  np.testing.assert_allclose(losses.nats_to_bpd(recon, 17), math.log2(17), rtol=1e-5)


def test_reconstruction_loss_vanishes_as_gamma0_to_minus_inf():
  x = jnp.arange(256, dtype=jnp.int32)[None]
  eps = jax.random.normal(jax.random.key(2), (1, 256))
  values = [float(losses.reconstruction_loss(x, eps, g0, 256)[0]) for g0 in (-8.0, -13.3, -20.0)]
  assert values[0] > values[1] > values[2] >= 0
  assert values[2] < 1e-6


def test_sample_times_antithetic_grid_and_discrete_clamp():
  t = losses.sample_times(jax.random.key(0), 49)
  assert t.shape == (49,)  # arange(0, 1, 1/49) would give 50.
  np.testing.assert_allclose(np.sort(np.diff(np.sort(np.asarray(t)))), 1 / 49, atol=1e-6)
  td = losses.sample_times(jax.random.key(0), 64, num_steps=10)
  assert float(td.min()) >= 0.1 - 1e-7 and float(td.max()) <= 1.0
  np.testing.assert_allclose(np.asarray(td) * 10, np.round(np.asarray(td) * 10), atol=1e-5)


def test_denoising_loss_weightings_match_their_spaces():
  k1, k2 = jax.random.split(jax.random.key(8))
  x = jax.random.normal(k1, (4, 6))
  eps = jax.random.normal(k2, (4, 6))
  gamma = jnp.array([-3.0, -1.0, 0.5, 2.0])
  a, s = schedules.alpha(gamma)[:, None], schedules.sigma(gamma)[:, None]
  z = a * x + s * eps
  x_hat = 0.8 * x
  eps_hat = (z - a * x_hat) / s
  np.testing.assert_allclose(
      losses.denoising_loss(x_hat, x=x, eps=eps, gamma=gamma, parameterization="x0",
                            weighting="x0"),
      jnp.sum((x - x_hat) ** 2, -1), rtol=1e-4)
  v, v_hat = a * eps - s * x, a * eps_hat - s * x_hat
  np.testing.assert_allclose(
      losses.denoising_loss(v_hat, x=x, eps=eps, gamma=gamma, parameterization="v",
                            weighting="v"),
      jnp.sum((v - v_hat) ** 2, -1), rtol=1e-4)
  score = -eps_hat / s
  np.testing.assert_allclose(
      losses.denoising_score_matching(score, eps, s[:, 0], weighting="none"),
      jnp.sum((score + eps / s) ** 2, -1), rtol=1e-4)


def test_bad_inputs_raise_clear_errors():
  gamma_fn = lambda t: schedules.linear_gamma(t)
  with pytest.raises(TypeError, match="integer data"):
    losses.vlb_terms(jax.random.key(0), jnp.ones((2, 3)), gamma_fn=gamma_fn,
                     eps_fn=lambda z, g: z, vocab_size=4)
  with pytest.raises(ValueError, match="same shape"):
    losses.diffusion_loss(jax.random.key(0), jnp.ones((2, 3)), gamma_fn=gamma_fn,
                          eps_fn=lambda z, g: z[:, :2])
  with pytest.raises(ValueError, match="must lie in"):
    losses.check_discrete_range(jnp.array([0, 17]), 17)
  with pytest.raises(ValueError, match="weighting"):
    losses.denoising_loss(jnp.ones((1, 2)), x=jnp.ones((1, 2)), eps=jnp.ones((1, 2)),
                          gamma=0.0, weighting="bogus")


# ----------------------------------------------------------------------------
# Bad input is an error, never a number.
# ----------------------------------------------------------------------------
_LINEAR = functools.partial(schedules.linear_gamma, gamma_min=-13.3, gamma_max=5.0)
_DECREASING = lambda t: 5.0 - 18.3 * t  # noqa: E731  (gamma_fn reversed)


def _shrink_eps(z, gamma):
  del gamma
  return 0.9 * z


def _vlb(x, gamma_fn=_LINEAR, **kwargs):
  kwargs.setdefault("vocab_size", 256)
  return losses.vlb_terms(jax.random.key(0), x, gamma_fn=gamma_fn, eps_fn=_shrink_eps,
                          **kwargs)


@pytest.mark.parametrize("bad", [-1, 256, 1000])
def test_pixel_outside_vocab_is_an_error(bad):
  """-1 used to wrap to bin 255 (a finite 1.2e6 nats), 256 and 1000 gave NaN."""
  x = jnp.full((2, 4, 4, 1), 7, jnp.int32).at[1, 2, 3, 0].set(bad)
  lo, hi = min(bad, 7), max(bad, 7)
  with pytest.raises(ValueError, match=rf"x_int must lie in \[0, 255\] for vocab_size=256, "
                                       rf"got min {lo} and max {hi}"):
    _vlb(x)


def test_data_beyond_a_small_vocab_is_an_error():
  """8-bit data with vocab_size=17 (the digits' V) used to give NaN."""
  x = jnp.arange(32, dtype=jnp.int32).reshape(2, 16) * 8
  with pytest.raises(ValueError, match=r"x_int must lie in \[0, 16\] for vocab_size=17, got min 0 and max 248"):
    _vlb(x, vocab_size=17)


def test_pixel_outside_vocab_raises_under_jit_and_is_never_a_number():
  import vdm_jax
  x = jnp.full((2, 3), 1, jnp.int32).at[0, 0].set(-1)
  loss = lambda x: _vlb(x, vocab_size=4).total  # noqa: E731
  assert np.all(np.isnan(jax.jit(loss)(x))), "plain jit must not return a plausible number"
  assert np.all(np.isfinite(vdm_jax.checked(loss)(x + 1)))
  with pytest.raises(ValueError, match=r"x_int must lie in \[0, 3\] for vocab_size=4, got min -1 and max 1"):
    vdm_jax.checked(loss)(x)


def test_uint8_pixels_span_the_whole_256_vocab():
  """uint8 images (CIFAR-10 as tfds stores it) with V = 256: 255 is in range.

  The range check once compared the uint8 maximum with 256 cast to uint8 (0),
  rejecting eagerly and giving NaN under jit for every 8-bit image.
  """
  x = jnp.asarray(np.array([[0, 128, 255]], np.uint8))
  np.testing.assert_allclose(losses.encode_discrete(x, 256), [[-255 / 256, 1 / 256, 255 / 256]])
  assert np.isfinite(jax.jit(lambda x: _vlb(x).total)(x)).all()
  assert np.isnan(jax.jit(lambda x: losses.encode_discrete(x, 255))(x)).all()


@pytest.mark.parametrize("num_steps", [0, 10])
def test_decreasing_gamma_fn_is_an_error(num_steps):
  """A reversed schedule used to give a negative diffusion loss (-453 nats, -209 at T = 10)."""
  x = jnp.full((2, 4), 3, jnp.int32)
  with pytest.raises(ValueError, match=r"gamma_fn must be increasing in t .*got gamma\(0\) = 5.0 "
                                       r"and gamma\(1\) = -13\.[23]"):
    _vlb(x, gamma_fn=_DECREASING, num_steps=num_steps)


@pytest.mark.parametrize("num_steps,message", [
    (0, r"dgamma_dt must be >= 0 .*got a minimum of -18.3"),
    (10, r"gamma_t must be >= gamma_s .*got min\(gamma_t - gamma_s\) = -1\.8[23]"),
])
def test_diffusion_loss_alone_rejects_a_decreasing_gamma_fn(num_steps, message):
  f = jnp.zeros((3, 2), jnp.float32)
  with pytest.raises(ValueError, match=message):
    losses.diffusion_loss(jax.random.key(0), f, gamma_fn=_DECREASING, eps_fn=_shrink_eps,
                          num_steps=num_steps)


def test_decreasing_gamma_fn_raises_under_jit():
  import vdm_jax
  x = jnp.full((2, 4), 3, jnp.int32)
  loss = lambda x: _vlb(x, gamma_fn=_DECREASING, vocab_size=4).total  # noqa: E731
  assert np.all(np.isnan(jax.jit(loss)(x)))
  with pytest.raises(ValueError, match=r"gamma_fn must be increasing in t"):
    vdm_jax.checked(loss)(x)


def test_negative_num_steps_is_an_error():
  """num_steps = -1 used to be taken as discrete time (135 nats instead of 456)."""
  with pytest.raises(ValueError, match=r"num_steps must be an integer >= 0, got -1\."):
    _vlb(jnp.zeros((2, 3), jnp.int32), num_steps=-1)


@pytest.mark.parametrize("vocab_size", [0, 1])
def test_degenerate_vocab_size_is_an_error(vocab_size):
  """vocab_size = 1 used to return numbers, vocab_size = 0 inf."""
  with pytest.raises(ValueError, match=rf"vocab_size must be an integer >= 2, got {vocab_size}\."):
    _vlb(jnp.zeros((2, 3), jnp.int32), vocab_size=vocab_size)


def test_nats_to_bpd_needs_a_dimension():
  """num_dims = 0 used to return inf."""
  with pytest.raises(ValueError, match=r"num_dims must be an integer >= 1, got 0\."):
    losses.nats_to_bpd(jnp.ones((2,)), 0)


def test_host_batch_check_names_the_step():
  x = np.zeros((4, 8, 8, 1), np.uint8)
  losses.check_discrete_range(x, 17, step=3)
  x[2, 1, 1, 0] = 17
  with pytest.raises(ValueError, match=r"x_int must lie in \[0, 16\] for vocab_size=17, "
                                       r"got min 0 and max 17 \(batch of step 3\)"):
    losses.check_discrete_range(x, 17, step=3)


def test_checked_refuses_an_already_jitted_function():
  import vdm_jax
  with pytest.raises(TypeError, match="pass the function before jax.jit"):
    vdm_jax.checked(jax.jit(lambda x: x))


def test_plain_jit_carries_no_checkify_effect():
  """An effect would send every call of a training step through slow Python dispatch."""
  x = jnp.full((2, 3), 1, jnp.int32)
  jaxpr = jax.make_jaxpr(lambda x: _vlb(x, vocab_size=4).total)(x)
  assert not jaxpr.effects


def test_reconstruction_loss_matches_log_softmax_of_decoder_logits():
  """The fused `decoder_nll` (window of bins at low gamma_0, all bins otherwise)
  equals -log_softmax(decoder_logits)[x], in value and gradients, eager and jitted."""
  def reference(x, eps, g0, vocab):
    f = losses.encode_discrete(x, vocab)
    z = f + jnp.exp(0.5 * g0) * eps
    logp = jax.nn.log_softmax(losses.decoder_logits(z, g0, vocab))
    return -jnp.sum(jnp.take_along_axis(logp, x[..., None], -1)[..., 0], axis=1)

  rng = np.random.default_rng(0)
  for vocab in (256, 17):
    x = jnp.asarray(np.concatenate([[0, vocab - 1], rng.integers(0, vocab, 62)])[None],
                    jnp.int32)
    eps = jnp.asarray(rng.normal(size=(1, 64)), jnp.float32)
    # The reference once per vocabulary, jitted (eagerly, each op compiles alone).
    ref_fn = jax.jit(jax.value_and_grad(lambda e, g: reference(x, e, g, vocab)[0], (0, 1)))
    for g0 in (-13.3, -11.5, -10.0, -5.0, 2.0):
      ref, ref_grads = ref_fn(eps, jnp.float32(g0))
      for fn in (losses.reconstruction_loss, jax.jit(losses.reconstruction_loss,
                                                     static_argnums=3)):
        val, grads = jax.value_and_grad(lambda e, g: fn(x, e, g, vocab)[0], (0, 1))(
            eps, jnp.float32(g0))
        np.testing.assert_allclose(val, ref, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(grads[1], ref_grads[1], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(grads[0], ref_grads[0], rtol=1e-3, atol=2e-4)
