"""ScoreVAE evaluation: batching, decoder keys, the rate, prior samples."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import score_vae
from vdm_jax.score_vae.linear_gaussian import random_model
from vdm_jax.sde import VPSDE


def test_map_batches_equals_one_call():
  x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
  out = score_vae.map_batches(lambda v, c: v * c + 1, x, 5, 3.0)
  np.testing.assert_allclose(out, x * 3 + 1)


def test_decode_and_score_keys_and_pixels():
  noise = lambda pp, cp, z, key: z + jax.random.normal(key, z.shape)
  z = np.zeros((6, 3), np.float32)
  rng = jax.random.key(4)
  both = score_vae.decode_and_score(
      {"a": noise, "b": noise}, None, None, z, rng, to_pixels=lambda v: 2 * v,
      score_fn=lambda r: {"mean": float(np.mean(r))}, batch_size=6)
  second = score_vae.decode_and_score(
      {"b": noise}, None, None, z, rng, to_pixels=lambda v: 2 * v,
      score_fn=lambda r: {"mean": float(np.mean(r))}, batch_size=6,
      first_index=1)
  # decoder d draws from fold_in(rng, first_index + d).
  np.testing.assert_array_equal(both["b"][1], second["b"][1])
  np.testing.assert_allclose(
      both["a"][1], 2 * np.asarray(jax.random.normal(jax.random.fold_in(rng, 0),
                                                     z.shape)))
  assert both["a"][0]["mean"] == float(np.mean(both["a"][1]))


class _Fixed(nn.Module):
  """Encoder with a learned mean and log-variance that ignore the input."""

  @nn.compact
  def __call__(self, x, t):
    m = self.param("m", nn.initializers.constant(0.5), (2,))
    lv = self.param("lv", nn.initializers.constant(-1.0), (2,))
    b = x.shape[0]
    return jnp.broadcast_to(m, (b, 2)), jnp.broadcast_to(lv, (b, 2))


def test_mean_kl_closed_form():
  enc = _Fixed()
  x = jnp.zeros((5, 3))
  params = enc.init(jax.random.key(0), x, jnp.zeros((5,)))
  want = 2 * 0.5 * (np.exp(-1.0) + 0.25 - 1.0 + 1.0)
  np.testing.assert_allclose(score_vae.mean_kl(enc, params, x), want, rtol=1e-6)


def test_prior_samples_and_decoders_shapes():
  sde = VPSDE(beta_min=0.1, beta_max=20.0, eps=1e-3)
  lg = random_model(sde, d=3, k=2)
  prior = lambda params, x, t: lg.prior_score(x, t)
  out = score_vae.sample_prior(sde, prior, None, (4, 3), jax.random.key(1),
                               n_steps=10, t_min=1e-3, tweedie=True)
  assert out.shape == (4, 3) and bool(jnp.all(jnp.isfinite(out)))
  decs = score_vae.scorevae_decoders(
      sde, prior, _Fixed(), (3,), include_log_var=True, sde_steps=5,
      ode_steps=3, guidance_scales=(2.0,), t_min=1e-3, tweedie=False)
  assert list(decs) == ["ScoreVAE", "ScoreVAE (PF-ODE)",
                        "ScoreVAE (guidance 2)"]
  enc_params = _Fixed().init(jax.random.key(0), jnp.zeros((1, 3)), jnp.zeros((1,)))
  for dec in decs.values():
    x = dec(None, enc_params, jnp.zeros((4, 2)), jax.random.key(2))
    assert x.shape == (4, 3) and bool(jnp.all(jnp.isfinite(x)))
