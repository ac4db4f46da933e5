"""Closed-form tests for vdm_jax.metrics.discrepancy (all JAX parts under jit)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vdm_jax.metrics import discrepancy as dis

ot = pytest.importorskip("ot")  # POT is the optional 'ot' extra.


def _rng(seed=0):
  return np.random.default_rng(seed)


def test_w1d_hand_values_and_unequal_sizes():
  f = jax.jit(functools.partial(dis.wasserstein_1d, p=1.0))
  np.testing.assert_allclose(f(jnp.array([0., 1.]), jnp.array([2., 3.])), 2.0,
                             rtol=1e-6)
  # Half the mass of {0} moves to 1.
  np.testing.assert_allclose(f(jnp.array([0.]), jnp.array([0., 1.])), 0.5,
                             rtol=1e-6)
  r = _rng()
  x, y = r.normal(size=37), r.normal(1.0, 2.0, size=53)
  for p in (1.0, 2.0):
    ours = dis.wasserstein_1d(jnp.asarray(x, jnp.float32),
                              jnp.asarray(y, jnp.float32), p=p)
    ref = ot.wasserstein_1d(x, y, p=p) ** (1 / p)
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_w1d_equal_sizes_is_sorted_difference():
  r = _rng(1)
  x, y = r.normal(size=64).astype(np.float32), r.exponential(size=64).astype(np.float32)
  ours = jax.jit(dis.wasserstein_1d)(x, y)
  np.testing.assert_allclose(ours, np.mean(np.abs(np.sort(x) - np.sort(y))),
                             rtol=1e-5)


def test_w1d_population_gaussian_shift():
  # W_1(N(0,1), N(mu,1)) = |mu|; W_2(N(0,1), N(0,s^2)) = |1 - s|.
  r = _rng(2)
  x = r.normal(size=20000).astype(np.float32)
  np.testing.assert_allclose(dis.wasserstein_1d(x, x + 0.7), 0.7, atol=1e-5)
  y = (r.normal(size=20000) * 2.0).astype(np.float32)
  np.testing.assert_allclose(dis.wasserstein_1d(x, y, p=2), 1.0, atol=0.03)


def test_gaussian_w2_closed_forms():
  f = jax.jit(dis.gaussian_w2)
  m1, m2 = jnp.array([0., 1., 2.]), jnp.array([1., 1., 0.])
  a, b = jnp.array([1., 4., 0.25]), jnp.array([9., 1., 1.])
  want = np.sqrt(5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
  np.testing.assert_allclose(f(m1, jnp.diag(a), m2, jnp.diag(b)), want, rtol=1e-5)
  # Non-commuting covariances: compare with scipy's sqrtm formula.
  from scipy.linalg import sqrtm
  r = _rng(3)
  l1, l2 = r.normal(size=(3, 3)), r.normal(size=(3, 3))
  c1, c2 = l1 @ l1.T + 0.1 * np.eye(3), l2 @ l2.T + 0.1 * np.eye(3)
  s1 = sqrtm(c1).real
  want = np.sqrt(np.trace(c1 + c2 - 2 * sqrtm(s1 @ c2 @ s1).real) + 5.0)
  np.testing.assert_allclose(
      f(m1, jnp.asarray(c1, jnp.float32), m2, jnp.asarray(c2, jnp.float32)),
      want, rtol=1e-3)
  # Symmetric and zero on the diagonal.
  np.testing.assert_allclose(f(m1, jnp.diag(a), m1, jnp.diag(a)), 0.0, atol=2e-3)


def test_frechet_of_samples_matches_gaussian_w2_squared():
  r = _rng(4)
  x = r.normal(size=(20000, 2)).astype(np.float32)
  y = (r.normal(size=(20000, 2)) * np.array([1.0, 3.0]) + 1.0).astype(np.float32)
  want = 2.0 + 0.0 + 4.0  # ||mu||^2 + (1-1)^2 + (1-3)^2
  np.testing.assert_allclose(jax.jit(dis.frechet_distance)(x, y), want, rtol=0.03)


def _rbf_mmd2_gaussians(mu, s, h):
  d = mu.shape[0]
  c = (h * h / (h * h + 2 * s * s)) ** (d / 2)
  return 2 * c * (1 - np.exp(-np.sum(mu ** 2) / (2 * (h * h + 2 * s * s))))


def test_mmd_unbiased_against_closed_form_and_biased_is_not():
  # Average many tiny-sample estimates: the U-statistic hits the population
  # value, the V-statistic is off by O(1/N).
  n, reps, h = 6, 4000, 1.0
  mu = np.array([0.5, 0.0])
  key = jax.random.key(0)
  kx, ky = jax.random.split(key)
  xs = jax.random.normal(kx, (reps, n, 2))
  ys = jax.random.normal(ky, (reps, n, 2)) + mu
  est = lambda unb: jax.jit(jax.vmap(functools.partial(
      dis.mmd2, kernel="rbf", bandwidth=h, unbiased=unb)))(xs, ys)
  u, v = np.asarray(est(True)), np.asarray(est(False))
  want = _rbf_mmd2_gaussians(mu, 1.0, h)
  se = u.std() / np.sqrt(reps)
  assert abs(u.mean() - want) < 4 * se, (u.mean(), want, se)
  assert v.mean() - want > 10 * se
  # Identical distributions: unbiased mean ~ 0 (and negative values occur).
  u0 = np.asarray(jax.jit(jax.vmap(functools.partial(
      dis.mmd2, kernel="rbf", bandwidth=h)))(xs, ys - mu))
  assert abs(u0.mean()) < 4 * u0.std() / np.sqrt(reps)
  assert (u0 < 0).any()


@pytest.mark.parametrize("kernel", dis.KERNELS)
def test_mmd_kernels_zero_for_identical_and_positive_for_shift(kernel):
  r = _rng(5)
  x = r.normal(size=(300, 3)).astype(np.float32)
  y = r.normal(size=(300, 3)).astype(np.float32)
  f = jax.jit(functools.partial(dis.mmd2, kernel=kernel))
  same, shifted = f(x, y), f(x, y + 1.0)
  assert abs(same) < 0.1 * shifted
  assert shifted > 0


def test_energy_distance_1d_cdf_identity():
  # V-statistic energy distance == 2 * int (F_N - G_M)^2 exactly.
  r = _rng(6)
  x, y = r.normal(size=23), r.normal(0.5, 1.5, size=31)
  grid = np.sort(np.concatenate([x, y]))
  fx = np.searchsorted(np.sort(x), grid[:-1], side="right") / x.size
  fy = np.searchsorted(np.sort(y), grid[:-1], side="right") / y.size
  want = 2 * np.sum((fx - fy) ** 2 * np.diff(grid))
  got = jax.jit(functools.partial(dis.energy_distance, unbiased=False))(
      jnp.asarray(x[:, None], jnp.float32), jnp.asarray(y[:, None], jnp.float32))
  # float32 |a|^2 + |b|^2 - 2ab cancellation limits the agreement to ~1e-4.
  np.testing.assert_allclose(got, want, rtol=1e-3)


def test_ks_matches_scipy():
  r = _rng(7)
  x = r.normal(size=(40, 3)).astype(np.float32)
  y = (r.normal(size=(25, 3)) + np.array([0, 0.5, 1])).astype(np.float32)
  got = jax.jit(dis.ks_statistics)(x, y)
  want = [stats.ks_2samp(x[:, d], y[:, d]).statistic for d in range(3)]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_pot_and_sliced_agree_on_simple_cases():
  r = _rng(8)
  # 1-D: exact OT, the sorted formula and the sliced estimator coincide.
  x = r.normal(size=(50, 1)).astype(np.float32)
  y = r.gamma(2.0, size=(70, 1)).astype(np.float32)
  w_pot = dis.exact_wasserstein(x, y, p=1)
  np.testing.assert_allclose(w_pot, dis.wasserstein_1d(x, y), rtol=1e-4)
  sw = jax.jit(functools.partial(dis.sliced_wasserstein, p=1, n_projections=4))(
      jax.random.key(0), x, y)
  np.testing.assert_allclose(sw, w_pot, rtol=1e-4)
  # Translation in 2-D: W2 = ||delta|| exactly, SW2^2 -> ||delta||^2 / D.
  x = r.normal(size=(200, 2)).astype(np.float32)
  delta = np.array([1.0, -0.5], np.float32)
  w2 = dis.exact_wasserstein(x, x + delta, p=2)
  np.testing.assert_allclose(w2, np.linalg.norm(delta), rtol=1e-4)
  sw2 = jax.jit(functools.partial(dis.sliced_wasserstein, p=2, n_projections=4000))(
      jax.random.key(1), x, x + delta)
  np.testing.assert_allclose(2 * sw2 ** 2, w2 ** 2, rtol=0.05)
  assert sw2 <= w2


def test_ot_assignment_gives_exact_w1():
  r = _rng(9)
  x, y = r.normal(size=(30, 2)), r.normal(size=(30, 2)) + 1.0
  perm = dis.ot_assignment(x.astype(np.float32), y.astype(np.float32))
  assert sorted(perm.tolist()) == list(range(30))
  w = np.mean(np.linalg.norm(x - y[perm], axis=1))
  np.testing.assert_allclose(w, dis.exact_wasserstein(x, y, p=1), rtol=1e-5)


def test_bad_inputs_fail_by_name():
  x = np.zeros((5, 2), np.float32)
  with pytest.raises(ValueError, match="same number of features"):
    dis.mmd2(x, np.zeros((5, 3), np.float32))
  with pytest.raises(ValueError, match="same number of features"):
    dis.exact_wasserstein(x, np.zeros((5, 3), np.float32))
  bad = x.copy()
  bad[1, 1] = np.nan
  with pytest.raises(ValueError, match="y must be finite"):
    dis.energy_distance(x, bad)
  with pytest.raises(TypeError, match="floating"):
    dis.ks_statistics(np.zeros((5, 2), np.int32), x)
  with pytest.raises(ValueError, match="rank"):
    dis.sliced_wasserstein(jax.random.key(0), np.zeros((2, 2, 2), np.float32), x)
  with pytest.raises(ValueError, match="kernel"):
    dis.mmd2(x, x, kernel="cubic")
  with pytest.raises(ValueError, match="p must be"):
    dis.wasserstein_1d(x[:, 0], x[:, 0], p=0.5)
  with pytest.raises(ValueError, match="1-D"):
    dis.wasserstein_1d(x, x)
  with pytest.raises(ValueError, match="cov2"):
    dis.gaussian_w2(jnp.zeros(2), jnp.eye(2), jnp.zeros(2), jnp.eye(3))


def test_gradients_finite_at_coincident_points():
  x = jnp.array([[0., 0.], [1., 0.], [0., 1.]])
  g = jax.grad(lambda a: dis.energy_distance(a, x))(x)
  assert np.all(np.isfinite(g))
