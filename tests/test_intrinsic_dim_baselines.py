"""Tests for vdm_jax/intrinsic_dim/baselines.py (classical intrinsic-dimension estimators)."""

import numpy as np
import pytest
import scipy.stats

from vdm_jax.intrinsic_dim import baselines


def _plane(n=600, k=3, d=10, noise=1e-3, seed=0):
  rs = np.random.RandomState(seed)
  u, _ = np.linalg.qr(rs.randn(d, k))
  return rs.randn(n, k) * np.array([3.0, 2.0, 1.0][:k]) @ u.T + noise * rs.randn(n, d)


def test_ppca_log_likelihood_is_the_gaussian_log_likelihood_of_the_ml_fit():
  rs = np.random.RandomState(1)
  x = rs.randn(200, 5) @ rs.randn(5, 5)
  xc = x - x.mean(0)
  cov = xc.T @ xc / len(x)
  lam, vecs = np.linalg.eigh(cov)
  lam, vecs = lam[::-1], vecs[:, ::-1]
  ll = baselines.ppca_log_likelihoods(lam, len(x))
  for q in range(5):
    s2 = lam[q:].mean()
    c = vecs @ np.diag(np.concatenate([lam[:q], np.full(5 - q, s2)])) @ vecs.T
    want = scipy.stats.multivariate_normal(x.mean(0), c).logpdf(x).sum()
    np.testing.assert_allclose(ll[q], want, rtol=1e-10)


@pytest.mark.parametrize("criterion", ["minka", "bic"])
def test_ppca_finds_a_noisy_plane(criterion):
  assert baselines.ppca_dimension(_plane(), criterion=criterion) == 3


def test_fukunaga_olsen_matches_scikit_dimension():
  skdim = pytest.importorskip("skdim")
  rs = np.random.RandomState(2)
  nb = rs.randn(4, 40, 8) * np.array([5, 3, 1, .5, .2, .1, .05, .01])
  got = baselines.fukunaga_olsen_count(nb, alpha=0.05)
  want = [skdim.id.lPCA(ver="FO", alphaFO=0.05).fit(n).dimension_ for n in nb]
  np.testing.assert_array_equal(got, want)


def test_neighbour_estimators_on_a_plane():
  pytest.importorskip("skdim")
  x = _plane(k=2, d=6)
  est = baselines.classical_estimates(
      x, methods=("ppca", "mle5", "mle20", "twonn", "local_pca"),
      local_pca_neighbours=50)
  assert est["ppca"] == 2.0 and est["local_pca"] == 2.0
  for m in ("mle5", "mle20", "twonn"):
    assert abs(est[m] - 2.0) < 0.3, (m, est[m])


def test_bad_inputs_fail_by_name():
  with pytest.raises(ValueError, match="N >= D"):
    baselines.ppca_dimension(np.random.randn(5, 10), criterion="minka")
  with pytest.raises(ValueError, match="unknown method"):
    baselines.classical_estimates(np.random.randn(20, 3), methods=("isomap",))
  with pytest.raises(TypeError, match="floating"):
    baselines.ppca_dimension(np.ones((20, 3), np.int32))
  with pytest.raises(ValueError, match="criterion"):
    baselines.ppca_dimension(np.random.randn(20, 3), criterion="aic")
