"""DSM losses and parameterisation conversions; equality with VDM's L_inf."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import losses as vdm_losses
from vdm_jax import parameterizations
from vdm_jax import schedules
from vdm_jax.models import mlp
from vdm_jax.sde import losses
from vdm_jax.sde import score_fns
from vdm_jax.sde import sdes

ALL_SDES = {"vp": sdes.VPSDE(), "subvp": sdes.SubVPSDE(), "ve": sdes.VESDE(),
            "sched": sdes.ScheduleVPSDE(schedules.linear_gamma)}


@pytest.mark.parametrize("name", list(ALL_SDES))
@pytest.mark.parametrize("param", score_fns.PARAMETERIZATIONS)
def test_parameterisation_round_trip(name, param):
  sde = ALL_SDES[name]
  # Away from t = 0: score <-> x0 divides by s_t^2 (ill-conditioned as s -> 0).
  t = jnp.array([0.3, 0.6, 0.9])
  x = jax.random.normal(jax.random.key(0), (3, 4))
  score = jax.random.normal(jax.random.key(1), (3, 4))
  a, s = sde.marginal_coeffs(t)
  pred = score_fns.from_score(score, x, a, s, parameterization=param)
  back = score_fns.to_score(pred, x, a, s, parameterization=param)
  np.testing.assert_allclose(back, score, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("param", ["eps", "x0", "v", "score"])
def test_matches_core_parameterizations_for_vp(param):
  sde = sdes.ScheduleVPSDE(schedules.linear_gamma)
  t = jnp.array([0.2, 0.5, 0.7])
  z = jax.random.normal(jax.random.key(0), (3, 2, 2, 1))
  score = jax.random.normal(jax.random.key(1), z.shape)
  a, s = sde.marginal_coeffs(t)
  ours = score_fns.from_score(score, z, a, s, parameterization=param)
  core = parameterizations.convert(score, z, schedules.linear_gamma(t),
                                   source="score", target=param)
  np.testing.assert_allclose(ours, core, rtol=1e-4, atol=1e-5)


def test_likelihood_weighted_dsm_equals_vdm_continuous_loss():
  """With s = -eps_hat/sigma, g^2 DSM = 1/2 gamma' ||eps - eps_hat||^2."""
  gamma_fn = functools.partial(schedules.cosine_gamma, gamma_min=-10.,
                               gamma_max=6.)
  sde = sdes.ScheduleVPSDE(gamma_fn, eps=0.0)
  x0 = jax.random.normal(jax.random.key(0), (5, 3, 3, 1))
  noise = jax.random.normal(jax.random.key(1), x0.shape)
  t = jnp.array([0.01, 0.2, 0.5, 0.8, 0.99])
  eps_model = lambda z, tt: jnp.tanh(z) * (1 + tt[:, None, None, None])
  got = jax.jit(lambda x0, t, n: losses.dsm_loss_at(
      sde, eps_model, x0, t, n, parameterization="eps",
      weighting="likelihood"))(x0, t, noise)
  g, dg = schedules.gamma_and_derivative(gamma_fn, t)
  z = (schedules.alpha(g)[:, None, None, None] * x0 +
       schedules.sigma(g)[:, None, None, None] * noise)
  want = vdm_losses.diffusion_loss_continuous(noise, eps_model(z, t), dg)
  np.testing.assert_allclose(got, want, rtol=2e-4)


def test_std2_weighting_is_eps_mse():
  sde = sdes.VPSDE()
  x0 = jax.random.normal(jax.random.key(0), (4, 3))
  noise = jax.random.normal(jax.random.key(1), x0.shape)
  t = jnp.array([0.1, 0.3, 0.6, 0.9])
  model = lambda z, tt: 0.5 * z
  got = losses.dsm_loss_at(sde, model, x0, t, noise, weighting="std2",
                           reduce="mean")
  want = jnp.mean(jnp.square(noise - 0.5 * (
      sde.marginal(x0, t)[0] + sde.marginal(x0, t)[1][:, None] * noise)), -1)
  np.testing.assert_allclose(got, (1 - sde.eps) * want, rtol=1e-5)


@pytest.mark.slow
def test_optimal_denoiser_gives_closed_form_diffusion_loss():
  """Gaussian data, optimal eps_hat, linear gamma -> L_inf = 5.956015."""
  mu, s = 0.3, 0.5
  sde = sdes.ScheduleVPSDE(schedules.linear_gamma, eps=0.0)

  def eps_star(z, t):
    a, sig = sde.marginal_coeffs(t)
    a, sig = a[:, None], sig[:, None]
    return sig * (z - a * mu) / (a**2 * s**2 + sig**2)

  loss_fn = losses.make_dsm_loss_fn(sde, lambda p, z, t: eps_star(z, t),
                                    weighting="likelihood", antithetic=True)
  n = 100_000
  x0 = mu + s * jax.random.normal(jax.random.key(0), (n, 1))
  vals = jax.jit(loss_fn)(None, jax.random.key(1), x0)
  se = float(jnp.std(vals)) / np.sqrt(n)
  assert abs(float(jnp.mean(vals)) - 5.956015) < 4 * se + 1e-3, (
      float(jnp.mean(vals)), se)


def test_make_dsm_loss_fn_with_score_mlp_is_differentiable():
  net = mlp.ScoreMLP(hidden=(16, 16), emb_dim=8, zero_init_output=False)
  x0 = jax.random.normal(jax.random.key(0), (6, 2))
  params = net.init(jax.random.key(1), x0, jnp.zeros((6,)))
  for param, weighting in [("eps", "likelihood"), ("x0", "none"),
                           ("v", "std2"), ("score", "std2")]:
    loss_fn = losses.make_dsm_loss_fn(sdes.VESDE(), net.apply,
                                      parameterization=param,
                                      weighting=weighting)
    val, grads = jax.jit(jax.value_and_grad(
        lambda p: jnp.mean(loss_fn(p, jax.random.key(2), x0))))(params)
    assert np.isfinite(float(val))
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_loss_bad_inputs():
  sde = sdes.VPSDE()
  with pytest.raises(ValueError, match="weighting"):
    losses.make_dsm_loss_fn(sde, lambda p, x, t: x, weighting="snr")
  with pytest.raises(ValueError, match="parameterization"):
    losses.make_dsm_loss_fn(sde, lambda p, x, t: x, parameterization="mu")
  with pytest.raises(ValueError, match="diffusion"):
    losses.dsm_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones((2,)),
                    weighting="likelihood")
  with pytest.raises(ValueError, match="score and noise"):
    losses.dsm_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)), jnp.ones((2,)))
  with pytest.raises(ValueError, match="pred and x"):
    score_fns.to_score(jnp.zeros((2, 3)), jnp.zeros((3, 3)), 1., 1.,
                       parameterization="eps")
  with pytest.raises(ValueError, match="t must lie"):
    losses.dsm_loss_at(sde, lambda x, t: x, jnp.zeros((2, 3)),
                       jnp.array([0.5, 2.0]), jnp.zeros((2, 3)))
