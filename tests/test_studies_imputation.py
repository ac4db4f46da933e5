"""Masks hit their rates; imputers never touch observed entries; bad input fails."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.sde import sdes
from vdm_jax.studies import imputation as imp


def _data(n=80, d=5, seed=0):
  r = np.random.default_rng(seed)
  z = r.normal(size=(n, 2))
  return (z @ r.normal(size=(2, d)) + 0.3 * r.normal(size=(n, d))).astype(np.float64)


@pytest.mark.parametrize("mech", imp.MECHANISMS)
def test_mask_rates_and_mechanisms(mech):
  x = _data(n=2000, d=6)
  m = imp.make_mask(np.random.default_rng(1), x, mech, 0.3)
  assert m.dtype == bool and m.shape == x.shape
  assert not m.all(1).any()
  rate = m.mean() if mech != "mar" else m[:, m.any(0)].mean()
  assert abs(rate - 0.3) < 0.03, rate
  if mech == "mnar":  # Self-masking: missing values are larger on average.
    assert x[m].mean() > x[~m].mean() + 0.3


# Few rounds on purpose. Matched by message: a warning class from scikit-learn
# would make pytest's main process import it (~1.6 s) to report the warning.
_FEW_ROUNDS = "ignore:\\[IterativeImputer\\] Early stopping criterion not reached"


@pytest.mark.filterwarnings(_FEW_ROUNDS)
@pytest.mark.parametrize("name", ["mean", "knn", "iterative", "missforest"])
def test_sklearn_imputers_keep_observed_entries(name):
  x = _data()
  m = imp.make_mask(np.random.default_rng(2), x, "mcar", 0.3)
  xn = imp.apply_mask(x, m)
  out = imp.impute_sklearn(name, xn, m, reference=x[:10], max_iter=2)
  np.testing.assert_array_equal(out[~m], x[~m])
  assert np.all(np.isfinite(out))


def test_diffusion_imputer_keeps_observed_and_matches_gaussian_conditional():
  # Exact score of N(0, C) under the VP SDE: -(a^2 C + s^2 I)^{-1} x.
  c = np.array([[1.0, 0.9], [0.9, 1.0]], np.float32)
  sde = sdes.VPSDE()

  def score_fn(x, t):
    a, s = sde.marginal_coeffs(t)
    cov = a[:, None, None] ** 2 * c + s[:, None, None] ** 2 * jnp.eye(2)
    return -jnp.linalg.solve(cov, x[..., None])[..., 0]

  x = np.zeros((400, 2))
  x[:, 0] = 1.5
  m = np.zeros((400, 2), bool)
  m[:, 1] = True
  out = imp.diffusion_inpaint(jax.random.key(0), score_fn, sde, x, m,
                              n_steps=100, n_resample=10)
  np.testing.assert_array_equal(out[:, 0], 1.5)
  # p(x2 | x1) = N(0.9 x1, 1 - 0.81) = N(1.35, 0.436^2) with RePaint resampling;
  # plain replacement (U = 1) is known to under-shoot the conditional mean.
  assert abs(out[:, 1].mean() - 1.35) < 0.08
  assert abs(out[:, 1].std() - 0.436) < 0.08
  plain = imp.diffusion_inpaint(jax.random.key(0), score_fn, sde, x, m,
                                n_steps=100)
  np.testing.assert_array_equal(plain[:, 0], 1.5)
  assert plain[:, 1].mean() < 1.15


def test_bad_inputs():
  x = _data()
  m = np.zeros_like(x, bool)
  m[0, 0] = True
  xn = x.copy()
  xn[1, 1] = np.nan
  with pytest.raises(ValueError, match="outside the mask"):
    imp.impute_sklearn("mean", xn, m)
  with pytest.raises(ValueError, match="same shape"):
    imp.impute_sklearn("mean", x, m[:, :3])
  with pytest.raises(TypeError, match="boolean"):
    imp.impute_sklearn("mean", x, m.astype(int))
  with pytest.raises(ValueError, match="mechanism"):
    imp.make_mask(np.random.default_rng(0), x, "nmar", 0.2)
  with pytest.raises(ValueError, match="rate"):
    imp.make_mask(np.random.default_rng(0), x, "mcar", 1.2)
  with pytest.raises(ValueError, match="imputer"):
    imp.impute_sklearn("median", x, m)
