"""ScoreVAE's training wrappers, encoder factory and feature spaces, on tiny models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import score_vae
from vdm_jax.sde import VPSDE


def _data(n=64):
  return np.asarray(jax.random.normal(jax.random.key(0), (n, 4, 4, 1)))


def _prior(sde):
  return score_vae.score_from_eps(lambda p, x, t: p * x, sde), jnp.asarray(0.5)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_make_encoder_gives_mean_and_log_var_of_latent_size(kind):
  enc = score_vae.make_encoder(kind, 3, hidden=(16,), ch=4, ch_mult=(1, 2),
                               emb_dim=8)
  x = jnp.ones((2, 4, 4, 1))
  # Shapes only: traced, not compiled (eagerly, each op compiles alone).
  params = jax.eval_shape(enc.init, jax.random.key(0), x, jnp.zeros((2,)))
  mean, log_var = jax.eval_shape(enc.apply, params, x, jnp.zeros((2,)))
  assert mean.shape == log_var.shape == (2, 3)
  with pytest.raises(ValueError, match="'mlp' or 'conv'"):
    score_vae.make_encoder("rnn", 3)


def test_train_vae_and_scorevae_plus_keep_the_encoder_frozen():
  sde = VPSDE(beta_min=0.1, beta_max=20.0, eps=1e-3)
  prior, prior_params = _prior(sde)
  x = _data()
  fit = dict(steps=4, batch_size=8, lr=1e-3)
  enc = score_vae.make_encoder("mlp", 2, hidden=(16,), emb_dim=8)
  vae = score_vae.train_vae(enc, x, latent_dim=2, beta=0.1, decoder_hidden=(16,),
                            rng=jax.random.key(1), **fit)
  assert set(vae.params) == {"encoder", "decoder"} and np.isfinite(vae.final_loss)
  assert vae.encoder is enc and vae.decoder is not None
  terms = dict(weighting="likelihood", include_log_var=True, t_min=1e-3)
  sv = score_vae.train_scorevae(enc, sde, prior, prior_params, x, latent_dim=2,
                                beta=0.1, rng=jax.random.key(2), **terms, **fit)
  assert isinstance(sv, score_vae.TrainedModel) and np.isfinite(sv.final_loss)
  plus = score_vae.train_scorevae_plus(
      sv, sde, prior, prior_params, x, latent_dim=2, hidden=(16,), emb_dim=8,
      rng=jax.random.key(3), **terms, **fit)
  assert plus.params[0] is sv.params and plus.encoder is enc
  z = jnp.zeros((2, 2))
  s = plus.score(prior_params, plus.params, jnp.asarray(x[:2]),
                 jnp.full((2,), 0.5), z)
  assert s.shape == (2, 4, 4, 1) and bool(jnp.all(jnp.isfinite(s)))


def test_train_dsm_prior_lowers_the_dsm_loss():
  sde = VPSDE(beta_min=0.1, beta_max=20.0, eps=1e-3)
  init, eps_apply = score_vae.make_eps_network("mlp", (4, 4, 1), hidden=(32,),
                                               emb_dim=8)
  x = _data(256)
  kw = dict(t_min=1e-3, batch_size=64, lr=3e-3, ema=0.0, rng=jax.random.key(0))
  short = score_vae.train_dsm_prior(init, eps_apply, sde, x, steps=2, **kw)
  long = score_vae.train_dsm_prior(init, eps_apply, sde, x, steps=400, **kw)
  assert long.final_loss < short.final_loss


def test_feature_space_pca_and_classifier():
  full = score_vae.load_images(source="digits", max_train=400)
  x = full.x_train / 16.0 * 2 - 1
  pca = score_vae.make_feature_space("pca", x, full.y_train, feature_dim=5,
                                     classifier_steps=1, rng=jax.random.key(0))
  assert pca.features(x[:7]).shape == (7, 5) and pca.classify is None
  clf = score_vae.make_feature_space("classifier", x, full.y_train,
                                     feature_dim=6, classifier_steps=200,
                                     rng=jax.random.key(0))
  assert clf.features(x[:7]).shape == (7, 6)
  assert np.mean(clf.classify(x) == full.y_train) > 0.8
  with pytest.raises(ValueError, match="features"):
    score_vae.make_feature_space("inception", x, None, feature_dim=5,
                                 classifier_steps=1, rng=jax.random.key(0))
