"""Samplers with the exact score of a 2-D Gaussian mixture reproduce the mixture."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.sde import samplers
from vdm_jax.sde import score_fns
from vdm_jax.sde import sdes

MEANS = np.array([[-2., 0.], [2., 1.], [0., -2.5]], np.float32)
COVS = np.array([[[.3, .1], [.1, .2]], [[.2, 0.], [0., .4]],
                 [[.25, -.1], [-.1, .3]]], np.float32)
WEIGHTS = np.array([.5, .3, .2], np.float32)
N = 1000


def mixture_samples(rng, n):
  k1, k2 = jax.random.split(rng)
  comp = jax.random.choice(k1, 3, (n,), p=jnp.asarray(WEIGHTS))
  chol = np.linalg.cholesky(COVS)
  z = jax.random.normal(k2, (n, 2))
  return np.asarray(MEANS[comp] + jnp.einsum("nij,nj->ni", chol[comp], z))


def responsibilities(x):
  x = np.asarray(x, np.float64)
  logps = []
  for m, c, w in zip(MEANS, COVS, WEIGHTS):
    d = x - m
    prec = np.linalg.inv(c)
    logps.append(-0.5 * np.einsum("ni,ij,nj->n", d, prec, d)
                 - 0.5 * np.log(np.linalg.det(2 * np.pi * c)) + np.log(w))
  logp = np.stack(logps, -1)
  logp -= logp.max(-1, keepdims=True)
  p = np.exp(logp)
  return p / p.sum(-1, keepdims=True)


def energy_permutation_pvalue(x, y, n_perm=200, seed=0):
  """Two-sample energy-distance permutation test (Szekely & Rizzo 2004)."""
  z = np.concatenate([x, y]).astype(np.float64)
  dist = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
  n, m = len(x), len(y)
  rs = np.random.default_rng(seed)
  idx = np.stack([np.arange(n + m)] + [rs.permutation(n + m)
                                       for _ in range(n_perm)])
  # Row r: the first n points of permutation r form sample "a".
  first = np.broadcast_to((np.arange(n + m) < n).astype(np.float64), idx.shape)
  ind_a = np.zeros(idx.shape)
  np.put_along_axis(ind_a, idx, first, axis=1)
  ind_b = 1.0 - ind_a
  da, db = ind_a @ dist, ind_b @ dist
  e_ab = (da * ind_b).sum(1) / (n * m)
  e_aa = (da * ind_a).sum(1) / n**2
  e_bb = (db * ind_b).sum(1) / m**2
  stats = 2 * e_ab - e_aa - e_bb
  return (1 + np.sum(stats[1:] >= stats[0])) / (1 + n_perm), stats[0]


def assert_matches_mixture(x):
  x = np.asarray(x)
  assert np.all(np.isfinite(x))
  ref = mixture_samples(jax.random.key(123), N)
  # Mixture weights (soft assignment): sampling s.e. ~ sqrt(w(1-w)/N) ~ 0.013.
  w = responsibilities(x).mean(0)
  np.testing.assert_allclose(w, WEIGHTS, atol=0.045)
  # Means and covariance of the whole mixture.
  true_mean = (WEIGHTS[:, None] * MEANS).sum(0)
  true_cov = sum(wk * (c + np.outer(m - true_mean, m - true_mean))
                 for wk, m, c in zip(WEIGHTS, MEANS, COVS))
  se = np.sqrt(np.diag(true_cov) / N)
  np.testing.assert_array_less(np.abs(x.mean(0) - true_mean), 4 * se + 0.02)
  np.testing.assert_allclose(np.cov(x.T), true_cov, atol=0.25)
  # Per-component means, by hard assignment.
  comp = responsibilities(x).argmax(-1)
  for k in range(3):
    np.testing.assert_allclose(x[comp == k].mean(0), MEANS[k], atol=0.12)
  p, _ = energy_permutation_pvalue(x[:600], ref[:600])
  assert p > 0.005, f"energy two-sample test rejects (p={p})"


CASES = {
    "em_vp": ("vp", functools.partial(samplers.pc_sample, n_steps=200), 200),
    "rd_vp": ("vp", functools.partial(samplers.pc_sample, n_steps=200,
                                      predictor="reverse_diffusion"), 200),
    "pc_ve": ("ve", functools.partial(samplers.pc_sample, n_steps=200,
                                      predictor="reverse_diffusion",
                                      corrector="langevin"), 400),
    "em_langevin_subvp": ("subvp", functools.partial(
        samplers.pc_sample, n_steps=150, corrector="langevin"), 300),
    "ddim_vp": ("vp", functools.partial(samplers.ddim_sample, n_steps=50), 50),
    "ddim_eta1_subvp": ("subvp", functools.partial(
        samplers.ddim_sample, n_steps=150, eta=1.0), 150),
    "ode_tsit5_vp": ("vp", samplers.ode_sample, None),
    "ode_heun_ve": ("ve", functools.partial(samplers.ode_sample, solver="heun",
                                            n_steps=40), 80),
}


def _sde(name):
  return {"vp": sdes.VPSDE(), "subvp": sdes.SubVPSDE(),
          "ve": sdes.VESDE(sigma_min=0.01, sigma_max=20.)}[name]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_sampler_reproduces_mixture(case):
  sde_name, sampler, want_evals = CASES[case]
  sde = _sde(sde_name)
  score_fn, _ = score_fns.gaussian_mixture_score(MEANS, COVS, np.log(WEIGHTS),
                                                 sde)
  x, n_evals = jax.jit(lambda k: sampler(k, score_fn, sde, (N, 2)))(
      jax.random.key(7))
  if want_evals is not None:
    assert int(n_evals) == want_evals
  else:
    assert 10 < int(n_evals) < 1000
  assert_matches_mixture(x)


@pytest.mark.parametrize("name,fn", [
    ("pc", functools.partial(samplers.pc_sample, n_steps=5,
                             predictor="reverse_diffusion",
                             corrector="langevin", n_corrector_steps=2)),
    ("ddim", functools.partial(samplers.ddim_sample, n_steps=5, eta=0.5)),
    ("ode", samplers.ode_sample),
    ("pc_tweedie", functools.partial(samplers.pc_sample, n_steps=4,
                                     tweedie=True)),
    ("ode_heun_tweedie", functools.partial(samplers.ode_sample, solver="heun",
                                           n_steps=4, tweedie=True)),
])
def test_reported_evals_equal_actual_calls(name, fn):
  sde = sdes.VPSDE()
  score_fn, _ = score_fns.gaussian_mixture_score(MEANS, COVS, np.log(WEIGHTS),
                                                 sde)
  counted, counter = samplers.count_score_evals(score_fn)
  _, n_evals = jax.jit(lambda k: fn(k, counted, sde, (8, 2)))(jax.random.key(0))
  jax.effects_barrier()
  assert counter["n"] == int(n_evals), name


def test_ddim_eta0_is_deterministic_given_x_init():
  sde = sdes.VPSDE()
  score_fn, _ = score_fns.gaussian_mixture_score(MEANS, COVS, np.log(WEIGHTS),
                                                 sde)
  x_init = jax.random.normal(jax.random.key(1), (4, 2))
  run = jax.jit(lambda k: samplers.ddim_sample(k, score_fn, sde, (4, 2),
                                               n_steps=10, x_init=x_init)[0])
  np.testing.assert_allclose(run(jax.random.key(0)), run(jax.random.key(5)))


def test_ode_sample_matches_fixed_step_on_linear_flow():
  # Gaussian data: the PF-ODE maps N(0, 1)-ish prior to N(mu, s^2) affinely.
  sde = sdes.VPSDE()
  score_fn, _ = score_fns.gaussian_mixture_score(
      np.array([[0.3]]), np.array([[[0.25]]]), np.zeros(1), sde)
  x_init = jnp.array([[-1.0], [0.0], [2.0]])
  xa, _ = samplers.ode_sample(jax.random.key(0), score_fn, sde, (3, 1),
                              x_init=x_init, t_end=1e-5)
  # Closed form: x_eps = m_eps + sqrt(V_eps / V_T) (x_T - m_T).
  a, s = sde.marginal_coeffs(jnp.array([1e-5, 1.0]))
  v = a**2 * 0.25 + s**2
  want = a[0] * 0.3 + jnp.sqrt(v[0] / v[1]) * (x_init - a[1] * 0.3)
  np.testing.assert_allclose(xa, want, atol=2e-4)


def test_sampler_bad_inputs():
  sde = sdes.VPSDE()
  f = lambda x, t: -x
  with pytest.raises(ValueError, match="predictor"):
    samplers.pc_sample(jax.random.key(0), f, sde, (2, 2), predictor="heun")
  with pytest.raises(ValueError, match="t_end"):
    samplers.pc_sample(jax.random.key(0), f, sde, (2, 2), t_end=1.5)
  with pytest.raises(ValueError, match="n_steps"):
    samplers.ddim_sample(jax.random.key(0), f, sde, (2, 2), n_steps=0)
  with pytest.raises(ValueError, match="eta"):
    samplers.ddim_sample(jax.random.key(0), f, sde, (2, 2), eta=2.)
  with pytest.raises(ValueError, match="solver"):
    samplers.ode_sample(jax.random.key(0), f, sde, (2, 2), solver="rk4")
  with pytest.raises(ValueError, match="shape"):
    samplers.ode_sample(jax.random.key(0), f, sde, (0, 2))
  with pytest.raises(TypeError, match="sde"):
    samplers.ode_sample(jax.random.key(0), f, "vp", (2, 2))
  with pytest.raises(ValueError, match="x_init"):
    samplers.ddim_sample(jax.random.key(0), f, sde, (2, 2),
                         x_init=jnp.zeros((3, 2)))


def test_sample_reverse_takes_pytree_states():
  # Two independent blocks in one tuple state: each block follows the array
  # sampler's update, with its own noise, and the tuple structure comes back.
  sde = sdes.VPSDE()
  rev = sde.reverse(lambda x, t: -x)

  class Pair:
    T, sde = rev.T, rev.sde
    score_fn = None

    @staticmethod
    def discretize(state, t, dt):
      out = [rev.discretize(v, t, dt) for v in state]
      return tuple(o[0] for o in out), tuple(o[1] for o in out)

  init = (jnp.ones((3, 2)), jnp.zeros((3, 4, 1)))
  out, n_evals = samplers.sample_reverse(jax.random.key(0), Pair, init,
                                         n_steps=5,
                                         predictor="reverse_diffusion")
  assert [o.shape for o in out] == [(3, 2), (3, 4, 1)] and int(n_evals) == 5
  alone, _ = samplers.sample_reverse(jax.random.key(0), rev, init[0], n_steps=5,
                                     predictor="reverse_diffusion")
  # denoise=True: the last step's mean; the noise of earlier steps differs.
  assert np.all(np.isfinite(np.asarray(out[0]))) and not np.allclose(out[0], alone)
  with pytest.raises(ValueError, match="array state"):
    samplers.sample_reverse(jax.random.key(0), Pair, init, n_steps=2,
                            corrector="langevin")
  with pytest.raises(ValueError, match="array state"):
    samplers.sample_reverse(jax.random.key(0), Pair, init, n_steps=2,
                            tweedie=True)


def test_pc_sample_is_sample_reverse_from_a_prior_draw():
  sde = sdes.VESDE(sigma_min=0.01, sigma_max=5.)
  f = lambda x, t: -x / (1. + sde.marginal_coeffs(t)[1][:, None] ** 2)  # noqa: E731
  kw = dict(n_steps=6, predictor="reverse_diffusion", corrector="langevin")
  got, n = samplers.pc_sample(jax.random.key(3), f, sde, (4, 2), **kw)
  k_init, k_loop = jax.random.split(jax.random.key(3))
  want, m = samplers.sample_reverse(k_loop, sde.reverse(f),
                                    sde.prior_sample(k_init, (4, 2)),
                                    t_end=1e-3, **kw)
  np.testing.assert_array_equal(got, want)
  assert int(n) == int(m) == 12


_WIGGLY = lambda t: -13.3 + 18.3 * t + 8.0 * jnp.sin(2 * math.pi * t)  # noqa: E731


@pytest.mark.parametrize("sampler", [
    functools.partial(samplers.pc_sample, n_steps=8),
    functools.partial(samplers.ddim_sample, n_steps=8),  # used to return plausible numbers
    functools.partial(samplers.ode_sample, solver="heun", n_steps=8),
])
def test_samplers_reject_a_schedule_whose_noise_falls(sampler):
  """Ordered endpoints but gamma decreasing around t = 0.5: no valid reverse process."""
  import vdm_jax
  sde = sdes.ScheduleVPSDE(gamma_fn=_WIGGLY)
  run = lambda k: sampler(k, lambda x, t: -x, sde, (2, 2))[0]  # noqa: E731
  message = r"sde \(ScheduleVPSDE\) must have an SNR a_t\^2/s_t\^2 that decreases in t"
  with pytest.raises(ValueError, match=message):
    run(jax.random.key(0))
  assert np.all(np.isnan(jax.jit(run)(jax.random.key(0))))
  with pytest.raises(ValueError, match="must have an SNR|gamma_fn must be increasing"):
    vdm_jax.checked(run)(jax.random.key(0))
