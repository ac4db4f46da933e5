"""PF-ODE likelihoods against closed forms; Hutchinson unbiasedness; bits/dim."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vdm_jax.schedules import linear_gamma
from vdm_jax.sde import likelihood
from vdm_jax.sde import score_fns
from vdm_jax.sde import sdes

MU3 = np.array([0.3, -0.5, 1.0], np.float32)
L3 = np.array([[0.6, 0., 0.], [0.3, 0.5, 0.], [-0.2, 0.25, 0.4]], np.float32)
COV3 = L3 @ L3.T


def pf_ode_gaussian_logp(sde, x, mu, cov, t_start):
  """Closed-form log-density of the PF-ODE model for N(mu, cov) data, prior N(0, p^2).

  The flow from T to t_start is affine: x_eps = m_eps + A (x_T - m_T) with
  A = C_eps^{1/2} C_T^{-1/2} (all C_t share cov's eigenvectors), so the model
  is N(m_eps - A m_T, p^2 A A^T).
  """
  lam, q = np.linalg.eigh(cov.astype(np.float64))
  (a0, a1), (s0, s1) = [np.asarray(v, np.float64) for v in
                        sde.marginal_coeffs(jnp.array([t_start, sde.T]))]
  c0, c1 = a0**2 * lam + s0**2, a1**2 * lam + s1**2
  amat = q @ np.diag(np.sqrt(c0 / c1)) @ q.T
  mean = a0 * mu - amat @ (a1 * mu)
  model_cov = sde.prior_std**2 * amat @ amat.T
  return stats.multivariate_normal(mean, model_cov).logpdf(np.asarray(x, np.float64))


def test_closed_form_1d_vp():
  """VP beta-linear, eps=1e-5, mu=.3, s=.5, x=.9 -> -0.948152.

  Computed in closed form: the PF-ODE flow is affine, p_ODE(x) = N(x; m, A^2)
  with A^2 = V_eps / V_1, m = a_eps mu - A a_1 mu, V_t = a_t^2 s^2 + s_t^2.
  """
  sde = sdes.VPSDE()
  score_fn, _ = score_fns.gaussian_mixture_score([[0.3]], [[[0.25]]], [0.], sde)
  logp, _, n_evals = jax.jit(lambda k, x: likelihood.ode_logp(
      k, score_fn, sde, x, divergence="exact"))(jax.random.key(0),
                                                 jnp.array([[0.9]]))
  np.testing.assert_allclose(logp, [-0.948152], atol=2e-5)
  assert int(n_evals) > 6


@pytest.mark.parametrize("sde", [sdes.VPSDE(), sdes.SubVPSDE(),
                                 sdes.VESDE(sigma_max=20.)],
                         ids=["vp", "subvp", "ve"])
def test_exact_divergence_matches_closed_form_3d(sde):
  score_fn, _ = score_fns.gaussian_mixture_score(MU3[None], COV3[None], [0.],
                                                 sde)
  x = jnp.array([[0.1, 0.2, 0.3], [1.0, -1.0, 2.0]])
  logp, _, _ = jax.jit(lambda k, x: likelihood.ode_logp(
      k, score_fn, sde, x, divergence="exact"))(jax.random.key(0), x)
  want = pf_ode_gaussian_logp(sde, x, MU3, COV3, sde.eps)
  np.testing.assert_allclose(logp, want, atol=2e-3, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(kind):
  sde = sdes.VPSDE()
  score_fn, _ = score_fns.gaussian_mixture_score(MU3[None], COV3[None], [0.],
                                                 sde)
  n = 256
  x = jnp.tile(jnp.array([[0.1, 0.2, 0.3]]), (n, 1))
  est, _, _ = jax.jit(lambda k, x: likelihood.ode_logp(
      k, score_fn, sde, x, divergence=kind, rtol=1e-4, atol=1e-4))(
          jax.random.key(3), x)
  est = np.asarray(est, np.float64)
  exact = pf_ode_gaussian_logp(sde, x[:1], MU3, COV3, sde.eps)
  se = est.std(ddof=1) / math.sqrt(n)
  assert se > 1e-3  # the estimator is genuinely random for this covariance
  assert abs(est.mean() - exact) < 4 * se + 2e-3, (est.mean(), exact, se)


def test_exact_divergence_of_linear_map():
  mat = jnp.array([[1., 2., 0.], [0., -3., 1.], [4., 0., 0.5]])
  fn = lambda x: x @ mat.T
  x = jax.random.normal(jax.random.key(0), (5, 3))
  np.testing.assert_allclose(likelihood.exact_divergence(fn, x),
                             np.full(5, -1.5), rtol=1e-6)
  probe = likelihood.draw_probe(jax.random.key(1), x.shape, "rademacher")
  np.testing.assert_allclose(
      likelihood.hutchinson_divergence(fn, x, probe),
      jnp.einsum("bi,ij,bj->b", probe, mat, probe), rtol=1e-5)


def test_bpd_offsets():
  assert likelihood.bpd_offset(vocab_size=256, data_range=(-1., 1.)) == 7.0
  assert likelihood.bpd_offset(vocab_size=256, data_range=(0., 1.)) == 8.0


@pytest.mark.slow
def test_ode_bpd_bounds_discrete_probability():
  """Gaussian model on V = 17 levels: ODE bpd = direct Jensen bound >= -log2 P."""
  sde = sdes.VPSDE()
  vocab = 17
  mu, s = 0.1, 0.4
  score_fn, _ = score_fns.gaussian_mixture_score([[mu]], [[[s * s]]], [0.], sde)
  x_int = jnp.array([[3], [8], [12]], jnp.int32)
  rng = jax.random.key(0)
  bpd, _ = jax.jit(lambda k, x: likelihood.ode_bpd(
      k, score_fn, sde, x, vocab_size=vocab, divergence="exact"))(rng, x_int)
  # Same dequantisation draw, density from the closed-form PF-ODE model.
  z, _ = likelihood.dequantize(jax.random.split(rng)[0], x_int,
                               vocab_size=vocab)
  logp = pf_ode_gaussian_logp(sde, np.asarray(z), np.array([mu]),
                              np.array([[s * s]]), sde.eps)
  want = (-logp - math.log(2.0) + math.log(vocab)) / math.log(2.0)
  np.testing.assert_allclose(bpd, want, atol=2e-4)
  # Averaged over u, the bound is >= -log2 P(bin) and close to it (Jensen gap).
  reps = 128
  xr = jnp.repeat(x_int, reps, axis=0)
  bpd_r, _ = jax.jit(lambda k, x: likelihood.ode_bpd(
      k, score_fn, sde, x, vocab_size=vocab, divergence="exact"))(
          jax.random.key(1), xr)
  mean_bpd = np.asarray(bpd_r).reshape(3, reps).mean(1)
  edges = -1 + 2 * (np.asarray(x_int[:, 0])[:, None] + np.array([0, 1])) / vocab
  a0, s0 = sde.marginal_coeffs(jnp.array([sde.eps]))
  p_bin = np.diff(stats.norm(float(a0[0]) * mu, math.sqrt(
      float(a0[0])**2 * s * s + float(s0[0])**2)).cdf(edges), axis=1)[:, 0]
  exact_bits = -np.log2(p_bin)  # D = 1
  assert np.all(mean_bpd > exact_bits - 0.01), (mean_bpd, exact_bits)
  assert np.all(mean_bpd < exact_bits + 0.05), (mean_bpd, exact_bits)


def test_logit_normal_dequantizer_density():
  """log q(u|x) is a normalised density on (0, 1) and u stays in the bin."""
  deq = likelihood.logit_normal_dequantizer(
      lambda x: 0.3 * jnp.ones(x.shape), lambda x: -0.5 * jnp.ones(x.shape))
  x_int = jnp.zeros((64, 1), jnp.int32)
  u, log_q = deq(jax.random.key(0), x_int)
  assert np.all((np.asarray(u) > 0) & (np.asarray(u) < 1))
  # Exact logit-normal density at the drawn points.
  uu = np.asarray(u[:5, 0], np.float64)
  h = np.log(uu) - np.log1p(-uu)
  want = stats.norm(0.3, np.exp(-0.5)).logpdf(h) - np.log(uu * (1 - uu))
  np.testing.assert_allclose(log_q[:5], want, rtol=1e-3, atol=1e-3)


def test_likelihood_bad_inputs():
  sde = sdes.VPSDE()
  f = lambda x, t: -x
  with pytest.raises(ValueError, match="divergence"):
    likelihood.ode_logp(jax.random.key(0), f, sde, jnp.zeros((2, 2)),
                        divergence="hutch")
  with pytest.raises(TypeError, match="integer"):
    likelihood.dequantize(jax.random.key(0), jnp.zeros((2, 2)), vocab_size=4)
  with pytest.raises(ValueError, match="data_range"):
    likelihood.dequantize(jax.random.key(0), jnp.zeros((2, 2), jnp.int32),
                          vocab_size=4, data_range=(1., -1.))
  with pytest.raises(ValueError, match="t_start"):
    likelihood.ode_logp(jax.random.key(0), f, sde, jnp.zeros((2, 2)),
                        t_start=1.0)


@pytest.mark.slow
def test_forward_dequantized_bound_is_tight_with_exact_score():
  """Discrete data, exact mixture score: the bound equals -log2 P(x) per dim.

  x takes V = 4 values with probabilities p in each of D = 2 independent
  dimensions, so q(z_t) is a 16-component mixture of point masses noised by
  the VDM schedule; with sigma_0 << 2 / V, log q(z_0|x) - log q(z_0) is
  log q(x|z_0) - log P(x) with q(x|z_0) ~ 1 = p(x|z_0). gamma_max = 12 makes
  q(z_1) ~ N(0, I) to 1e-3 nats per draw, so one draw per example suffices.
  """
  vocab, gamma_min = 4, -8.0
  sde = sdes.ScheduleVPSDE(gamma_fn=lambda t: linear_gamma(
      t, gamma_min=gamma_min, gamma_max=12.0))
  p = np.array([0.1, 0.2, 0.3, 0.4])
  centres = (2 * np.arange(vocab) + 1) / vocab - 1
  grid = np.stack(np.meshgrid(np.arange(vocab), np.arange(vocab),
                              indexing="ij"), -1).reshape(-1, 2)
  means = centres[grid]
  log_w = np.log(p[grid]).sum(-1)
  covs = np.zeros((len(grid), 2, 2))
  score_fn, _ = score_fns.gaussian_mixture_score(means, covs, log_w, sde)
  x_int = jnp.asarray(grid, jnp.int32)
  bpd, terms, nfe = jax.jit(lambda k, x: likelihood.forward_dequantized_ode_bpd(
      k, score_fn, sde, x, vocab_size=vocab, rtol=1e-5, atol=1e-5))(
          jax.random.key(0), x_int)
  want = -np.log2(p[grid]).mean(-1)
  np.testing.assert_allclose(bpd, want, atol=5e-3)
  # ~0 nats up to float32 rounding (1.3e-6 seen, depending on XLA:CPU fusion).
  assert np.all(np.asarray(terms["reconstruction"]) < 1e-5)
  assert int(nfe) > 10
  # A wrong model (uniform weights) is charged log2 V = 2 bits per dim.
  score_u, _ = score_fns.gaussian_mixture_score(means, covs,
                                                np.zeros(len(grid)), sde)
  bpd_u, _, _ = jax.jit(lambda k, x: likelihood.forward_dequantized_ode_bpd(
      k, score_u, sde, x, vocab_size=vocab))(jax.random.key(0), x_int)
  np.testing.assert_allclose(bpd_u, 2.0, atol=5e-3)


def test_forward_dequantized_bound_needs_schedule_sde():
  with pytest.raises(TypeError, match="ScheduleVPSDE"):
    likelihood.forward_dequantized_ode_bpd(
        jax.random.key(0), lambda x, t: -x, sdes.VPSDE(),
        jnp.zeros((2, 3), jnp.int32), vocab_size=4)


def test_dequantize_rejects_pixels_outside_the_vocabulary():
  """A pixel of -1 used to land below data_range and still get a likelihood."""
  x = jnp.array([[0, 3], [-1, 2]], jnp.int32)
  with pytest.raises(ValueError, match=r"x_int must lie in \[0, 3\] for vocab_size=4, got min -1 and max 3"):
    likelihood.dequantize(jax.random.key(0), x, vocab_size=4)


def test_bpd_offset_rejects_a_single_value_vocabulary():
  with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 2, got 1\."):
    likelihood.bpd_offset(vocab_size=1)
