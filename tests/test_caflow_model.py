"""Tests for vdm_jax/caflow/model.py: exact inverse, exact log-det, sampling, checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import caflow
from vdm_jax import flows
from tests import params as params_lib


def _img(shape, seed):
  return jax.random.normal(jax.random.key(seed), shape) * 1.2 + 0.1




def _model_and_params(x_shape, cy, seed=0, levels=2):
  model = caflow.CAFlow(levels=levels, source_steps=1, target_steps=1,
                        cond_steps=1, hidden=8)
  x = _img(x_shape, seed)
  y = _img(x_shape[:3] + (cy,), seed + 1)
  params = params_lib.perturb(jax.jit(model.init)(jax.random.key(seed), x, y))
  return model, params, x, y


@pytest.fixture(scope="module")
def model_8x8():
  return _model_and_params((2, 8, 8, 1), cy=2)


def test_round_trip_whole_model(model_8x8):
  model, params, x, y = model_8x8
  zs, logdet = jax.jit(lambda a, b: model.apply(params, a, b, method="forward"))(
      x, y)
  assert tuple(z.shape for z in zs) == flows.latent_shapes(x.shape, 2)
  assert logdet.shape == (2,)
  x_back = jax.jit(lambda z, b: model.apply(params, z, b, method="inverse"))(
      zs, y)
  np.testing.assert_allclose(x_back, x, atol=2e-5)


def test_log_prob_is_forward_plus_normal_and_depends_on_y(model_8x8):
  model, params, x, y = model_8x8
  lp = jax.jit(lambda a, b: model.apply(params, a, b, method="log_prob"))
  zs, logdet = jax.jit(
      lambda a, b: model.apply(params, a, b, method="forward"))(x, y)
  expected = logdet + sum(flows.standard_normal_log_prob(z) for z in zs)
  np.testing.assert_allclose(lp(x, y), expected, rtol=1e-5, atol=1e-3)
  # Conditioning matters: another y changes log p(x|y).
  assert np.all(np.abs(lp(x, y[::-1]) - lp(x, y)) > 1e-3)
  # __call__ gives (log p(x|y), log p(y)) in one pass.
  both = jax.jit(lambda a, b: model.apply(params, a, b))(x, y)
  np.testing.assert_allclose(both[0], expected, rtol=1e-5, atol=1e-3)
  source = jax.jit(lambda b: model.apply(params, b, method="source_log_prob"))
  np.testing.assert_allclose(both[1], source(y), rtol=1e-5, atol=1e-3)


@pytest.mark.slow
def test_conditional_log_det_matches_brute_force_jacobian():
  shape = (1, 4, 4, 1)
  # ActNorm initialises from batch statistics: init on 8 examples (the 1x1 top
  # level of one example has no spread), differentiate on one.
  model, params, x, y = _model_and_params((8, 4, 4, 1), cy=1, seed=3)
  x, y = x[:1], y[:1]

  def flat(v):
    zs, logdet = model.apply(params, v.reshape(shape), y, method="forward")
    return jnp.concatenate([z.reshape(-1) for z in zs]), logdet

  # One compile: the model's log-det rides along as jacfwd's aux output.
  jac, logdet = jax.jit(jax.jacfwd(flat, has_aux=True))(x.reshape(-1))
  sign, expected = jnp.linalg.slogdet(jac)
  assert sign != 0
  np.testing.assert_allclose(logdet[0], expected, rtol=1e-4, atol=1e-3)


def test_sampling_temperature_zero_is_deterministic(model_8x8):
  model, params, x, y = model_8x8
  sample = caflow.make_sampler(model, channels=1)
  a = sample(params, jax.random.key(1), y, 0.0)
  b = sample(params, jax.random.key(2), y, 0.0)
  np.testing.assert_array_equal(a, b)
  zeros = tuple(jnp.zeros(s) for s in flows.latent_shapes(x.shape, 2))
  inverse = jax.jit(lambda z, b: model.apply(params, z, b, method="inverse"))
  np.testing.assert_allclose(a, inverse(zeros, y), rtol=1e-5, atol=1e-5)
  c = sample(params, jax.random.key(1), y, 1.0)
  d = sample(params, jax.random.key(2), y, 1.0)
  assert c.shape == x.shape and not np.allclose(c, d)


def test_condition_image_channels_and_resolution():
  ls = [jnp.ones((2, 4, 4, 2)), 2 * jnp.ones((2, 2, 2, 8))]
  ms = [None, 3 * jnp.ones((2, 2, 2, 8))]
  c0 = caflow.condition_image(0, ls, ms)
  assert c0.shape == (2, 4, 4, 18)
  np.testing.assert_array_equal(c0[..., 2:10], 2.0)
  np.testing.assert_array_equal(c0[..., 10:], 3.0)
  assert caflow.condition_image(1, ls, ms).shape == (2, 2, 2, 8)


def test_bad_shapes_and_temperature_raise_clearly(model_8x8):
  model, params, x, y = model_8x8
  with pytest.raises(ValueError, match="divisible by 2\\^levels = 4"):
    caflow.check_pair((2, 6, 6, 1), (2, 6, 6, 1), 2)
  with pytest.raises(ValueError, match="divisible by 2\\^levels = 4"):
    model.init(jax.random.key(0), jnp.zeros((2, 12, 6, 1)),
               jnp.zeros((2, 12, 6, 1)))
  with pytest.raises(ValueError, match="share batch and spatial size"):
    model.apply(params, x, y[:1], method="log_prob")
  with pytest.raises(ValueError, match="resize_condition"):
    model.apply(params, x, y[:, :4, :4], method="log_prob")
  with pytest.raises(ValueError, match="rank 4|shape \\[B, H, W, C\\]"):
    model.apply(params, x[0], y[0], method="log_prob")
  with pytest.raises(TypeError, match="floating"):
    model.apply(params, x.astype(jnp.int32), y, method="log_prob")
  with pytest.raises(ValueError, match="temperature must be"):
    caflow.make_sampler(model, channels=1)(params, jax.random.key(0), y, -0.5)
  with pytest.raises(ValueError, match="temperature must be"):
    model.apply(params, jax.random.key(0), y, channels=1, temperature=-1.0,
                method="sample")
  with pytest.raises(ValueError, match="one per level"):
    model.apply(params, (jnp.zeros((2, 4, 4, 2)),), y, method="inverse")
  with pytest.raises(ValueError, match="levels must be >= 1"):
    caflow.CAFlow(levels=0).init(jax.random.key(0), x, y)
