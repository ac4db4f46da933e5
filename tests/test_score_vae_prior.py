"""ScoreVAE with a VDM prior: the score adapter, nats agreement with VDM's L_inf,
Tweedie's final step, data/checkpoint mismatch errors, and the prior loaders."""

import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import losses
from vdm_jax import schedules
from vdm_jax import score_vae
from vdm_jax.model import VDM
from vdm_jax.score_vae.linear_gaussian import random_model
from vdm_jax.sde import samplers
from vdm_jax.sde import score_fns
from vdm_jax.sde import ScheduleVPSDE
from vdm_jax.sde import VPSDE


class _TinyNet(nn.Module):
  """A 3x3 conv whose bias depends on t_in: the VDM network interface, cheap."""

  @nn.compact
  def __call__(self, z, t_in, train=False):
    del train
    h = nn.Conv(z.shape[-1], (3, 3))(z)
    return h + nn.Dense(z.shape[-1])(t_in[:, None])[:, None, None, :]


def _tiny_vdm():
  vdm = VDM(schedule=schedules.LearnedLinearSchedule(gamma_min=-6.0,
                                                     gamma_max=4.0),
            network=_TinyNet(), vocab_size=17, gamma_min=-6.0, gamma_max=4.0)
  x_int = jnp.zeros((2, 4, 4, 1), jnp.int32)
  params = vdm.init(jax.random.key(0), x_int)
  # Perturb every parameter so eps_hat depends on t and the schedule.
  params = jax.tree.map(
      lambda p: p + 0.05 * jax.random.normal(jax.random.key(1), p.shape), params)
  return vdm, params


def test_score_from_vdm_is_minus_eps_over_sigma():
  vdm, params = _tiny_vdm()
  x = jax.random.normal(jax.random.key(2), (3, 4, 4, 1))
  t = jnp.array([0.05, 0.5, 0.95])
  got = jax.jit(score_vae.score_from_vdm(vdm))(params, x, t)
  g = vdm.gamma_fn(params)(t)
  want = -vdm.eps_fn(params)(x, g) / jnp.sqrt(jax.nn.sigmoid(g))[:, None, None,
                                                                   None]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_likelihood_weighted_bound_equals_vdm_diffusion_loss():
  # An encoder that ignores x adds no score, so the likelihood-weighted
  # ScoreVAE term on the VDM's own SDE is the VDM continuous-time diffusion loss
  # 1/2 gamma'(t) ||eps - eps_hat||^2 in nats (same units as the VAE's NLL).
  vdm, params = _tiny_vdm()
  sde = ScheduleVPSDE(gamma_fn=vdm.gamma_fn(params), eps=0.0)

  def encoder_apply(p, x, t):
    del t
    return jnp.zeros((x.shape[0], 2)) + p, jnp.zeros((x.shape[0], 2))

  terms = score_vae.make_scorevae_terms(
      sde, score_vae.score_from_vdm(vdm), encoder_apply, beta=0.0,
      weighting="likelihood", t_min=0.0)
  ks = jax.random.split(jax.random.key(3), 3)
  x0 = losses.encode_discrete(jax.random.randint(ks[0], (4, 4, 4, 1), 0, 17), 17)
  noise = jax.random.normal(ks[1], x0.shape)
  t = jnp.array([0.1, 0.3, 0.6, 0.9])
  got = jax.jit(terms)(jnp.float32(0.2), params, x0, t, noise,
                       jax.random.normal(ks[2], (4, 2)))["dsm"]
  g, dg = schedules.gamma_and_derivative(vdm.gamma_fn(params), t)
  z_t = (jnp.sqrt(jax.nn.sigmoid(-g))[:, None, None, None] * x0
         + jnp.sqrt(jax.nn.sigmoid(g))[:, None, None, None] * noise)
  want = losses.diffusion_loss_continuous(noise, vdm.eps_fn(params)(z_t, g), dg)
  np.testing.assert_allclose(got, want, rtol=1e-4)


@pytest.mark.parametrize("t_val", [0.05, 0.5])
def test_tweedie_denoise_is_exact_posterior_mean(t_val):
  # Data N(0, S): E[x_0 | x_t] = a S (a^2 S + s^2 I)^{-1} x_t.
  sde = VPSDE()
  lg = random_model(sde, d=3, k=2, seed=4)
  x = jax.random.normal(jax.random.key(5), (6, 3))
  t = jnp.full((6,), t_val)
  got = jax.jit(functools.partial(score_fns.tweedie_denoise, sde,
                                  lg.prior_score))(x, t)
  a, s = (float(v[0]) for v in sde.marginal_coeffs(t))
  gain = a * lg.S @ np.linalg.inv(a**2 * lg.S + s**2 * np.eye(3))
  np.testing.assert_allclose(got, x @ gain.T, rtol=1e-4, atol=1e-5)


def test_tweedie_final_step_of_decoders():
  # Tweedie at t_min applied to the last state: for data N(0, S) decoded with
  # the exact score, the ODE's Tweedie output is the gain times its plain output.
  sde = VPSDE(eps=0.05)
  lg = random_model(sde, d=3, k=2, seed=6)
  x_T = jax.random.normal(jax.random.key(7), (4, 3))
  ode = functools.partial(samplers.ode_sample, jax.random.key(0), lg.prior_score,
                          sde, x_T.shape, solver="heun", n_steps=20, t_end=None,
                          x_init=x_T)
  # jitted: eagerly, every op of the solver compiles on its own.
  plain, n_plain = jax.jit(ode)()
  tw, n_tw = jax.jit(functools.partial(ode, tweedie=True))()
  assert int(n_tw) == int(n_plain) + 1
  a, s = (float(v[0]) for v in sde.marginal_coeffs(jnp.array([0.05])))
  gain = a * lg.S @ np.linalg.inv(a**2 * lg.S + s**2 * np.eye(3))
  np.testing.assert_allclose(tw, plain @ gain.T, rtol=1e-4, atol=1e-5)
  out, n_evals = jax.jit(lambda k: samplers.pc_sample(
      k, lg.prior_score, sde, x_T.shape, n_steps=10, t_end=None, x_init=x_T,
      tweedie=True))(jax.random.key(8))
  assert out.shape == x_T.shape and bool(jnp.all(jnp.isfinite(out)))
  assert int(n_evals) == 11


def test_vdm_checkpoint_mismatch_raises():
  ok = dict(image_shape=(8, 8, 1), vocab_size=17, data_shape=(8, 8, 1),
            data_levels=17, scaling="bins")
  score_vae.check_vdm_matches_data(**ok)
  with pytest.raises(ValueError, match="shape"):
    score_vae.check_vdm_matches_data(**dict(ok, data_shape=(16, 16, 1)))
  with pytest.raises(ValueError, match="grey levels"):
    score_vae.check_vdm_matches_data(**dict(ok, data_levels=256))
  with pytest.raises(ValueError, match="data.scaling"):
    score_vae.check_vdm_matches_data(**dict(ok, scaling="unit"))


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_load_vdm_prior_rejects_unit_scaling_and_missing_checkpoint(tmp_path):
  kw = dict(vdm_config=os.path.join(_ROOT, "configs/vdm_digits.py"),
            vdm_workdir=str(tmp_path), data_shape=(8, 8, 1), t_min=0.0,
            train_if_missing=False)
  with pytest.raises(ValueError, match="data.scaling='bins'"):
    score_vae.load_vdm_prior(levels=17, scaling="unit", **kw)
  with pytest.raises(ValueError, match="grey levels"):
    score_vae.load_vdm_prior(levels=256, scaling="bins", **kw)
  with pytest.raises(ValueError, match="no VDM checkpoint"):
    score_vae.load_vdm_prior(levels=17, scaling="bins", **kw)


@pytest.mark.parametrize("model", ["mlp", "unet"])
def test_eps_network_maps_data_shape_to_data_shape(model):
  init, eps_apply = score_vae.make_eps_network(
      model, (8, 8, 1), hidden=(16,), emb_dim=8, ch=8, n_blocks=1,
      ch_mult=(1,))
  # Shapes only: traced, not compiled (eagerly, a UNet compiles each op alone).
  params = jax.eval_shape(init, jax.random.key(0))
  out = jax.eval_shape(eps_apply, params, jnp.ones((3, 8, 8, 1)), jnp.full((3,), 0.5))
  assert out.shape == (3, 8, 8, 1)
  with pytest.raises(ValueError, match="'mlp' or 'unet'"):
    score_vae.make_eps_network("resnet", (8, 8, 1))


def test_dsm_prior_trained_saved_and_restored_identically(tmp_path):
  sde = VPSDE(beta_min=0.1, beta_max=20.0, eps=1e-3)
  x = np.asarray(jax.random.normal(jax.random.key(0), (64, 4, 4, 1)))
  kw = dict(model="mlp", hidden=(16,), emb_dim=8, t_min=1e-3, steps=4,
            batch_size=8, lr=1e-3, ema=0.9, rng=jax.random.key(1))
  score, params, info = score_vae.train_or_load_dsm_prior(
      sde, x, workdir=str(tmp_path), **kw)
  assert np.isfinite(info["final_loss"])
  with open(info["saved_to"] + ".json") as f:
    assert json.load(f)["data_shape"] == [4, 4, 1]
  _, loaded, info2 = score_vae.train_or_load_dsm_prior(
      sde, x, checkpoint=info["saved_to"], **kw)
  assert info2 == {"loaded_from": info["saved_to"]}
  jax.tree.map(np.testing.assert_array_equal, params, loaded)
  t = jnp.full((2,), 0.3)
  np.testing.assert_allclose(score(params, jnp.asarray(x[:2]), t),
                             score(loaded, jnp.asarray(x[:2]), t))
  with pytest.raises(ValueError, match="shape"):   # recorded data shape differs
    score_vae.train_or_load_dsm_prior(sde, x[:, :2, :2], checkpoint=info["saved_to"],
                                      **kw)
