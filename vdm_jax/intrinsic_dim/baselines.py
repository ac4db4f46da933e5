"""Classical intrinsic-dimension estimators, the baselines of the score-spectrum method.

Host-side (numpy / scikit-learn / scikit-dimension) functions of a data matrix
`[N, D]` (images are flattened), each returning one global estimate:

* `ppca_dimension`: probabilistic PCA with a model-selection rule over the
  latent size q: Minka's Laplace evidence (scikit-learn ``PCA(n_components=
  'mle')``, the authors' baseline) or BIC of the closed-form ML fit,

  .. math::

    \\log L_q = -\\tfrac{N}{2}\\Big(\\sum_{i \\le q} \\log \\lambda_i
    + (D - q) \\log \\bar\\sigma^2_q + D \\log 2\\pi + D\\Big), \\quad
    \\bar\\sigma^2_q = \\tfrac{1}{D - q} \\sum_{i > q} \\lambda_i,

    \\mathrm{BIC}(q) = -2 \\log L_q + (Dq - q(q-1)/2 + D + 1) \\log N.

* `mle_dimension`: Levina-Bickel maximum likelihood with m neighbours,
  m_hat(x) = [ (1/(m-1)) sum_{j<m} log(T_m(x) / T_j(x)) ]^{-1}, pooled over
  points (``skdim.id.MLE``).
* `twonn_dimension`: TwoNN, the ratio mu = r_2 / r_1 of the two nearest
  distances is Pareto(d) distributed (``skdim.id.TwoNN``).
* `local_pca_dimension`: PCA in each point's neighbourhood with the
  Fukunaga-Olsen criterion (eigenvalues above alpha * lambda_1), averaged
  (the rule of ``skdim.id.lPCA(ver='FO')``, batched in numpy because skdim
  fits one PCA object per point), as R's ``pcaLocalDimEst(data, 'FO')``.

scikit-dimension is an optional dependency (the ``[benchmarks]`` extra); only
PPCA works without it.

References:
  Tipping & Bishop, Probabilistic principal component analysis, JRSS-B 1999.
  Minka, Automatic choice of dimensionality for PCA, NeurIPS 2000.
  Levina & Bickel, Maximum likelihood estimation of intrinsic dimension,
  NeurIPS 2004.
  Facco, d'Errico, Rodriguez, Laio, Estimating the intrinsic dimension of
  datasets by a minimal neighborhood information, Sci. Rep. 2017,
  https://arxiv.org/abs/1803.06992.
  Fukunaga & Olsen, An algorithm for finding intrinsic dimensionality of data,
  IEEE Trans. Computers 1971.
  Bac et al., Scikit-dimension: a Python package for intrinsic dimension
  estimation, Entropy 2021, https://arxiv.org/abs/2109.02596.
"""

from __future__ import annotations

import numpy as np


def _as_matrix(x, name: str = "x") -> np.ndarray:
  x = np.asarray(x)
  if x.ndim < 2:
    raise ValueError(f"{name} must have shape [N, D] or [N, H, W, C], got {x.shape}.")
  if not np.issubdtype(x.dtype, np.floating):
    raise TypeError(f"{name} must have a floating dtype, got {x.dtype}.")
  x = x.reshape(x.shape[0], -1).astype(np.float64)
  if x.shape[0] < 3:
    raise ValueError(f"{name} needs at least 3 points, got {x.shape[0]}.")
  return x


def _skdim():
  try:
    import skdim  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - depends on the environment.
    raise ImportError("The MLE, TwoNN and local-PCA baselines need scikit-dimension: "
                      "pip install 'vdm_jax[benchmarks]'.") from e
  return skdim


def ppca_log_likelihoods(eigenvalues, num_points: int):
  """Maximised PPCA log-likelihoods log L_q for q = 0..D-1 (nats, whole data set).

  Args:
    eigenvalues: `[D]` sample covariance eigenvalues, any order.
    num_points: N.

  Returns:
    `[D]` float64 log L_q.
  """
  lam = np.sort(np.maximum(np.asarray(eigenvalues, np.float64), 1e-300))[::-1]
  d = lam.size
  out = np.empty(d)
  for q in range(d):
    s2 = lam[q:].mean()
    out[q] = -0.5 * num_points * (np.log(lam[:q]).sum() + (d - q) * np.log(s2)
                                  + d * np.log(2 * np.pi) + d)
  return out


def ppca_dimension(x, *, criterion: str = "minka") -> int:
  """PPCA latent size chosen by Minka's evidence ('minka') or by 'bic'.

  Args:
    x: `[N, D]` (or image-shaped `[N, ...]`) float data.
    criterion: 'minka' (scikit-learn, needs N >= D) or 'bic'.

  Returns:
    The selected latent dimension q.
  """
  x = _as_matrix(x)
  n, d = x.shape
  if criterion == "minka":
    if n < d:
      raise ValueError(f"PPCA with Minka's rule needs N >= D, got N = {n}, "
                       f"D = {d}; use criterion='bic'.")
    from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
    return int(PCA(n_components="mle", svd_solver="full").fit(x).n_components_)
  if criterion == "bic":
    xc = x - x.mean(0)
    lam = np.linalg.svd(xc, compute_uv=False) ** 2 / n
    lam = np.concatenate([lam, np.zeros(d - lam.size)])
    ll = ppca_log_likelihoods(lam, n)
    q = np.arange(d)
    n_params = d * q - q * (q - 1) / 2 + d + 1
    return int(np.argmin(-2 * ll + n_params * np.log(n)))
  raise ValueError(f"criterion must be 'minka' or 'bic', got {criterion!r}.")


def mle_dimension(x, *, num_neighbours: int = 20) -> float:
  """Levina-Bickel MLE with `num_neighbours` neighbours, pooled over points."""
  x = _as_matrix(x)
  if not 2 <= num_neighbours < x.shape[0]:
    raise ValueError(f"num_neighbours must be in [2, N) = [2, {x.shape[0]}), "
                     f"got {num_neighbours}.")
  return float(_skdim().id.MLE(K=num_neighbours).fit(
      x, n_neighbors=num_neighbours).dimension_)


def twonn_dimension(x) -> float:
  """TwoNN (Facco et al. 2017) with the default 10% of largest ratios discarded."""
  return float(_skdim().id.TwoNN().fit(_as_matrix(x)).dimension_)


def fukunaga_olsen_count(neighbourhoods, *, alpha: float = 0.05):
  """Fukunaga-Olsen local dimensions of a stack of neighbourhoods.

  The number of local covariance eigenvalues above `alpha` times the largest,
  computed for all neighbourhoods in one batched SVD (the same rule as
  ``skdim.id.lPCA(ver='FO')``, which fits one scikit-learn PCA per point).

  Args:
    neighbourhoods: `[A, m, D]` m neighbours of each of A anchors.
    alpha: relative eigenvalue threshold.

  Returns:
    `[A]` int local dimensions.
  """
  nb = np.asarray(neighbourhoods, np.float64)
  if nb.ndim != 3:
    raise ValueError(f"neighbourhoods must be [A, m, D], got shape {nb.shape}.")
  nb = nb - nb.mean(axis=1, keepdims=True)
  # Many small SVDs gain nothing from BLAS threads, and oversubscribed threads
  # slow them down tenfold on a busy machine.
  from threadpoolctl import threadpool_limits  # pylint: disable=g-import-not-at-top
  with threadpool_limits(limits=1, user_api="blas"):
    ev = np.linalg.svd(nb, compute_uv=False) ** 2
  return np.sum(ev > alpha * ev[:, :1], axis=-1)


def local_pca_dimension(x, *, num_neighbours: int = 100, alpha: float = 0.05,
                        max_points: int = 500, seed: int = 0) -> float:
  """Mean local-PCA (Fukunaga-Olsen) dimension over up to `max_points` anchors."""
  x = _as_matrix(x)
  if not 2 <= num_neighbours <= x.shape[0]:
    raise ValueError(f"num_neighbours must be in [2, N] = [2, {x.shape[0]}], "
                     f"got {num_neighbours}.")
  from sklearn.neighbors import NearestNeighbors  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  anchors = rng.choice(x.shape[0], min(max_points, x.shape[0]), replace=False)
  _, idx = NearestNeighbors(n_neighbors=num_neighbours).fit(x).kneighbors(x[anchors])
  return float(np.mean(fukunaga_olsen_count(x[idx], alpha=alpha)))


def classical_estimates(x, *, methods=("ppca", "mle5", "mle20", "twonn", "local_pca"),
                        local_pca_neighbours: int = 100) -> dict:
  """All requested baselines on one data set: name -> estimate (float).

  'ppca' uses Minka's rule when N >= D and BIC otherwise ('ppca_bic' forces BIC).
  """
  x = _as_matrix(x)
  out = {}
  for m in methods:
    if m == "ppca":
      crit = "minka" if x.shape[0] >= x.shape[1] else "bic"
      out[m] = float(ppca_dimension(x, criterion=crit))
    elif m == "ppca_bic":
      out[m] = float(ppca_dimension(x, criterion="bic"))
    elif m.startswith("mle"):
      out[m] = mle_dimension(x, num_neighbours=int(m[3:]))
    elif m == "twonn":
      out[m] = twonn_dimension(x)
    elif m == "local_pca":
      out[m] = local_pca_dimension(
          x, num_neighbours=min(local_pca_neighbours, x.shape[0]))
    else:
      raise ValueError(f"unknown method {m!r}; expected ppca, ppca_bic, mleM, "
                       "twonn or local_pca.")
  return out
