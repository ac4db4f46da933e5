"""Tests for vdm_jax/flows/layers.py: exact inverses and brute-force log-dets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import flows
from tests import params as params_lib

SHAPE = (1, 4, 4, 2)   # 32 dims: a brute-force Jacobian is cheap.


def _x(shape=SHAPE, seed=0):
  return jax.random.normal(jax.random.key(seed), shape) * 1.5 + 0.3




def _flat_out(y):
  if isinstance(y, tuple):
    return jnp.concatenate([a.reshape(-1) for a in y])
  return y.reshape(-1)


def _brute_logdet(fn, x):
  jac = jax.jit(jax.jacfwd(lambda v: _flat_out(fn(v.reshape(x.shape)))))(
      x.reshape(-1))
  return jnp.linalg.slogdet(jac)[1]


def _init(layer, x, cond=None):
  return jax.jit(lambda k, v, c: layer.init(k, v, c, method="forward"))(
      jax.random.key(0), x, cond)


def _layers():
  return {
      "squeeze": (flows.Squeeze(), None),
      "actnorm": (flows.ActNorm(), None),
      "invconv": (flows.InvConv1x1(seed=3), None),
      "coupling_tanh": (flows.AffineCoupling(hidden=8), None),
      "coupling_sigmoid": (flows.AffineCoupling(hidden=8, scale_type="sigmoid"),
                           None),
      "coupling_cond": (flows.AffineCoupling(hidden=8), (1, 4, 4, 3)),
      "split_learned": (flows.Split(), None),
      "split_cond": (flows.Split(), (1, 4, 4, 1)),
      "split_standard": (flows.Split(learned_prior=False), None),
      "step": (flows.FlowStep(hidden=8, seed=2), None),
      "step_cond": (flows.FlowStep(hidden=8, seed=2), (1, 4, 4, 3)),
  }


def _cond_for(layer_name, cond_shape, x):
  if cond_shape is None:
    return None
  spatial = x.shape[:3]
  return _x(spatial + cond_shape[3:], seed=7)


@pytest.mark.parametrize("name", sorted(_layers()))
def test_inverse_and_logdet_match_brute_force(name):
  layer, cond_shape = _layers()[name]
  x = _x()
  cond = _cond_for(name, cond_shape, x)
  params = params_lib.perturb(_init(layer, x, cond), scale=0.2)

  fwd = jax.jit(lambda v: layer.apply(params, v, cond, method="forward"))
  inv = jax.jit(lambda y: layer.apply(params, y, cond, method="inverse"))
  y, logdet = fwd(x)
  assert logdet.shape == (x.shape[0],)
  np.testing.assert_allclose(inv(y), x, atol=2e-5)
  brute = _brute_logdet(lambda v: fwd(v)[0], x)
  np.testing.assert_allclose(logdet[0], brute, rtol=1e-4, atol=1e-4)


def test_logdet_is_per_example():
  layer = flows.FlowStep(hidden=8, seed=1)
  x = _x((3, 4, 4, 2))
  params = params_lib.perturb(_init(layer, x), scale=0.2)
  fwd = jax.jit(lambda v: layer.apply(params, v, method="forward"))
  _, logdet = fwd(x)
  for i in range(3):
    _, ld_i = fwd(x[i:i + 1])
    np.testing.assert_allclose(logdet[i], ld_i[0], rtol=1e-5, atol=1e-5)


def test_squeeze_moves_2x2_blocks_to_channels():
  x = jnp.arange(16.).reshape(1, 4, 4, 1)
  y = flows.squeeze(x)
  assert y.shape == (1, 2, 2, 4)
  np.testing.assert_array_equal(y[0, 0, 0], [0., 1., 4., 5.])
  np.testing.assert_array_equal(flows.unsqueeze(y), x)


def test_actnorm_data_init_standardises_the_batch():
  x = _x((8, 4, 4, 3)) * jnp.array([0.5, 2., 4.]) + jnp.array([1., -2., 3.])
  layer = flows.ActNorm()
  params = layer.init(jax.random.key(0), x, method="forward")
  y, _ = layer.apply(params, x, method="forward")
  np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0., atol=1e-5)
  np.testing.assert_allclose(jnp.std(y, axis=(0, 1, 2)), 1., atol=1e-4)


@pytest.mark.parametrize("scale_type", ["tanh", "sigmoid"])
def test_coupling_starts_as_identity(scale_type):
  x = _x()
  layer = flows.AffineCoupling(hidden=8, scale_type=scale_type)
  params = _init(layer, x)
  y, logdet = jax.jit(lambda p, v: layer.apply(p, v, method="forward"))(
      params, x)
  np.testing.assert_allclose(y, x, atol=1e-6)
  np.testing.assert_allclose(logdet, 0., atol=1e-6)


def test_invconv_starts_as_rotation():
  x = _x()
  layer = flows.InvConv1x1(seed=4)
  params = _init(layer, x)
  y, logdet = jax.jit(lambda p, v: layer.apply(p, v, method="forward"))(
      params, x)
  np.testing.assert_allclose(logdet, 0., atol=1e-5)
  np.testing.assert_allclose(jnp.sum(y ** 2), jnp.sum(x ** 2), rtol=1e-5)


def test_split_standard_is_a_channel_split():
  x = _x()
  (z, eps), logdet = flows.Split(learned_prior=False).apply(
      {}, x, method="forward")
  np.testing.assert_array_equal(z, x[..., :1])
  np.testing.assert_array_equal(eps, x[..., 1:])
  np.testing.assert_array_equal(logdet, 0.)


def test_bad_shapes_raise_by_name():
  with pytest.raises(ValueError, match="even height and width"):
    flows.squeeze(jnp.zeros((1, 3, 4, 1)))
  with pytest.raises(ValueError, match="rank 4"):
    flows.squeeze(jnp.zeros((4, 4, 1)))
  with pytest.raises(TypeError, match="floating"):
    flows.squeeze(jnp.zeros((1, 4, 4, 1), jnp.int32))
  with pytest.raises(ValueError, match="divisible by 4"):
    flows.unsqueeze(jnp.zeros((1, 2, 2, 3)))
  x = _x()
  for layer in (flows.ActNorm(), flows.InvConv1x1()):
    params = layer.init(jax.random.key(0), x, method="forward")
    with pytest.raises(ValueError, match="initialised for 2 channels"):
      layer.apply(params, _x((1, 4, 4, 3)), method="forward")
  with pytest.raises(ValueError, match="at least 2 channels"):
    flows.AffineCoupling().init(jax.random.key(0), _x((1, 4, 4, 1)),
                                method="forward")
  with pytest.raises(ValueError, match="cond must have shape"):
    flows.AffineCoupling().init(jax.random.key(0), x, _x((1, 2, 2, 1)),
                                method="forward")
  with pytest.raises(ValueError, match="scale_type"):
    flows.AffineCoupling(scale_type="exp").init(jax.random.key(0), x,
                                                method="forward")


def test_coupling_output_depends_on_cond_and_inverts_with_it():
  x = _x()
  c1, c2 = _x((1, 4, 4, 3), seed=5), _x((1, 4, 4, 3), seed=6)
  layer = flows.AffineCoupling(hidden=8)
  params = params_lib.perturb(_init(layer, x, c1), scale=0.2)
  fwd = jax.jit(lambda v, c: layer.apply(params, v, c, method="forward"))
  y1, _ = fwd(x, c1)
  y2, _ = fwd(x, c2)
  assert not np.allclose(y1, y2)
  inv = jax.jit(lambda v, c: layer.apply(params, v, c, method="inverse"))
  np.testing.assert_allclose(inv(y2, c2), x, atol=2e-5)
