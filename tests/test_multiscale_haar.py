"""Tests for vdm_jax.multiscale.haar (orthonormal Haar, Batzolis et al. 2022)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.multiscale import haar


def _rand(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def test_single_level_matches_hand_formula():
  x = jnp.array([[1.0, 2.0], [3.0, 5.0]]).reshape(1, 2, 2, 1)
  a, d = jax.jit(haar.haar_step)(x)
  np.testing.assert_allclose(a.ravel(), [0.5 * 11], rtol=1e-6)
  # H1 = top - bottom, H2 = left - right, H3 = diagonal (all times 1/2).
  np.testing.assert_allclose(d.ravel(), [0.5 * (3 - 8), 0.5 * (4 - 7),
                                         0.5 * (1 - 2 - 3 + 5)], rtol=1e-6)


def test_matrix_is_the_orthogonal_iunets_kernel():
  # Apply one level to the 4 basis blocks: the columns of Q.
  basis = jnp.eye(4).reshape(4, 2, 2, 1)
  a, d = haar.haar_step(basis)
  q = np.concatenate([a.reshape(4, 1), d.reshape(4, 3)], axis=1).T
  np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-7)
  np.testing.assert_allclose(np.abs(q), 0.5, atol=1e-7)


@pytest.mark.parametrize("levels", [0, 1, 3])
def test_round_trip_and_norm(levels):
  x = _rand((2, 16, 8, 3))

  @jax.jit
  def fwd_inv(x):
    c = haar.wavedec(x, levels)
    return c, haar.waverec(c.approx, c.details)

  coeffs, y = fwd_inv(x)
  np.testing.assert_allclose(y, x, atol=1e-5)
  flat = jnp.concatenate([v.reshape(2, -1) for v in haar.coefficients_to_list(coeffs)], 1)
  np.testing.assert_allclose(jnp.linalg.norm(flat, axis=1),
                             jnp.linalg.norm(x.reshape(2, -1), axis=1), rtol=1e-5)
  assert flat.shape[1] == x[0].size


def test_exact_inverse_both_ways_float64():
  # Exact orthonormality: W^T W = W W^T = I on the full 64-dim space.
  d = 4 * 4 * 4
  basis = np.eye(d).reshape(d, 4, 4, 4).astype(np.float32)
  c = haar.wavedec(jnp.asarray(basis), 2)
  w = np.concatenate([v.reshape(d, -1) for v in haar.coefficients_to_list(c)], 1)
  np.testing.assert_allclose(w @ w.T, np.eye(d), atol=1e-6)
  np.testing.assert_allclose(w.T @ w, np.eye(d), atol=1e-6)


def test_constant_image_and_shapes():
  c = haar.wavedec(jnp.full((1, 128, 128, 3), 0.7), 3)
  assert [v.shape for v in c.details] == [(1, 64, 64, 9), (1, 32, 32, 9),
                                          (1, 16, 16, 9)]
  assert c.approx.shape == (1, 16, 16, 3)
  np.testing.assert_allclose(c.approx, 0.7 * 2 ** 3, rtol=1e-5)
  for d in c.details:
    np.testing.assert_allclose(d, 0.0, atol=1e-5)


def test_linear_map_commutes_with_scores():
  # For Gaussian x ~ N(0, S), the score in Haar coordinates is W applied to the
  # pixel score, because W is orthogonal: -W S^-1 x == -(W S W^T)^-1 (W x).
  rng = np.random.default_rng(0)
  d = 16
  a = rng.normal(size=(d, d))
  s = a @ a.T + d * np.eye(d)
  basis = np.eye(d).reshape(d, 4, 4, 1).astype(np.float32)
  c = haar.wavedec(jnp.asarray(basis), 2)
  w = np.concatenate([v.reshape(d, -1) for v in haar.coefficients_to_list(c)], 1).T
  x = rng.normal(size=d)
  lhs = -w @ np.linalg.solve(s, x)
  rhs = -np.linalg.solve(w @ s @ w.T, w @ x)
  np.testing.assert_allclose(lhs, rhs, atol=1e-5)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="divisible by 2\\^levels = 8"):
    haar.wavedec(jnp.zeros((1, 12, 16, 1)), 3)
  with pytest.raises(ValueError, match="levels must be an int >= 0"):
    haar.wavedec(jnp.zeros((1, 8, 8, 1)), -1)
  with pytest.raises(TypeError, match="floating"):
    haar.wavedec(jnp.zeros((1, 8, 8, 1), jnp.int32), 1)
  with pytest.raises(ValueError, match="rank 4"):
    haar.wavedec(jnp.zeros((8, 8, 1)), 1)
  with pytest.raises(ValueError, match="details d must have shape"):
    haar.inverse_haar_step(jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 4, 4, 3)))
