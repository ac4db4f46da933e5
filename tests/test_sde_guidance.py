"""Classifier and classifier-free guidance with exact scores of a Gaussian mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.sde import guidance
from vdm_jax.sde import samplers
from vdm_jax.sde import score_fns
from vdm_jax.sde import sdes

MEANS = np.array([[-2., 0.], [2., 1.], [0., -2.5]], np.float32)
COVS = np.tile(0.2 * np.eye(2, dtype=np.float32), (3, 1, 1))
LOG_W = np.log(np.array([.5, .3, .2], np.float32))


def _exact_classifier(sde):
  """log p_t(y | x) from the mixture's per-component marginals at time t."""

  def log_prob(x, t, y):
    a, s = sde.marginal_coeffs(t)
    var = a[:, None]**2 * 0.2 + s[:, None]**2  # [B, 1]
    d = x[:, None, :] - a[:, None, None] * MEANS[None]  # [B, K, 2]
    logp = LOG_W - 0.5 * jnp.sum(d**2, -1) / var - jnp.log(var)  # [B, K]
    logpost = jax.nn.log_softmax(logp, -1)
    return jnp.take_along_axis(logpost, y[:, None], 1)[:, 0]

  return log_prob


def test_classifier_guidance_scale1_is_exact_conditional_score():
  sde = sdes.VPSDE()
  score_fn, _ = score_fns.gaussian_mixture_score(MEANS, COVS, LOG_W, sde)
  guided = guidance.classifier_guided_score(score_fn, _exact_classifier(sde),
                                            scale=1.0)
  x = jax.random.normal(jax.random.key(0), (4, 2)) * 2
  t = jnp.array([0.05, 0.3, 0.6, 0.95])
  y = jnp.array([1, 1, 2, 0])
  got = jax.jit(guided)(x, t, y)
  for k in range(3):
    comp_score, _ = score_fns.gaussian_mixture_score(
        MEANS[k:k + 1], COVS[k:k + 1], [0.], sde)
    want = jax.jit(comp_score)(x, t)
    sel = np.asarray(y) == k
    np.testing.assert_allclose(np.asarray(got)[sel], np.asarray(want)[sel],
                               rtol=1e-3, atol=1e-3)


def test_classifier_guidance_shifts_mass_to_chosen_component():
  sde = sdes.VPSDE()
  score_fn, _ = score_fns.gaussian_mixture_score(MEANS, COVS, LOG_W, sde)
  guided = guidance.classifier_guided_score(score_fn, _exact_classifier(sde),
                                            scale=1.0)
  n = 400
  y = jnp.full((n,), 2)  # the lightest component (weight 0.2)
  x, _ = jax.jit(lambda k: samplers.ddim_sample(
      k, lambda x, t: guided(x, t, y), sde, (n, 2), n_steps=40))(
          jax.random.key(0))
  nearest = np.argmin(((np.asarray(x)[:, None] - MEANS[None])**2).sum(-1), 1)
  frac = np.mean(nearest == 2)
  assert frac > 0.97, frac
  np.testing.assert_allclose(np.asarray(x).mean(0), MEANS[2], atol=0.12)


def test_cfg_w0_is_conditional_and_formula():
  def cond_score(x, t, y):  # toy conditional "network"; label 3 is null
    return -x + (y[:, None].astype(x.dtype) - 1.0) * t[:, None]

  x = jax.random.normal(jax.random.key(0), (5, 2))
  t = jnp.linspace(0.1, 0.9, 5)
  y = jnp.array([0, 1, 2, 0, 1])
  g0 = guidance.classifier_free_guided_score(cond_score, w=0.0, null_label=3)
  np.testing.assert_allclose(jax.jit(g0)(x, t, y), cond_score(x, t, y),
                             rtol=1e-6)
  g2 = guidance.classifier_free_guided_score(cond_score, w=2.0, null_label=3)
  want = 3 * cond_score(x, t, y) - 2 * cond_score(x, t, jnp.full((5,), 3))
  np.testing.assert_allclose(g2(x, t, y), want, rtol=1e-5, atol=1e-6)


def test_drop_labels_rate():
  labels = jnp.arange(20000) % 10
  out = guidance.drop_labels(jax.random.key(0), labels, p_uncond=0.2,
                             null_label=10)
  dropped = np.asarray(out == 10)
  assert abs(dropped.mean() - 0.2) < 0.015
  np.testing.assert_array_equal(np.asarray(out)[~dropped],
                                np.asarray(labels)[~dropped])


def test_guidance_bad_inputs():
  with pytest.raises(ValueError, match="p_uncond"):
    guidance.drop_labels(jax.random.key(0), jnp.zeros((3,), jnp.int32),
                         p_uncond=1.5, null_label=10)
  with pytest.raises(ValueError, match="labels must have rank 1"):
    guidance.drop_labels(jax.random.key(0), jnp.zeros((3, 1), jnp.int32),
                         p_uncond=0.1, null_label=10)
  g = guidance.classifier_guided_score(lambda x, t: -x,
                                       lambda x, t, y: jnp.sum(x))
  with pytest.raises(ValueError, match="log_prob_fn must return"):
    g(jnp.ones((2, 2)), jnp.ones((2,)) * .5, jnp.zeros((2,), jnp.int32))
  cfg = guidance.classifier_free_guided_score(lambda x, t, y: -x, w=1.,
                                              null_label=3)
  with pytest.raises(ValueError, match="y must be"):
    cfg(jnp.ones((2, 2)), jnp.ones((2,)) * .5, jnp.zeros((3,), jnp.int32))
