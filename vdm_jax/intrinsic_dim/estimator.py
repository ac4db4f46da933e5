"""Intrinsic dimension from a score model: the normal bundle seen in score spectra.

Near a k-dimensional data manifold M in R^D the score of the slightly noised
density points back to M, so the scores at points perturbed around one anchor
x0 span the normal space N_{x0}M. Stacking K such (centred) scores as the rows
of a K x D matrix S and taking its singular values s_1 >= ... >= s_D, the
spectrum drops after n = D - k values:

.. math::

  z^{(i)} = \\alpha x_0 + \\sigma \\epsilon_i, \\quad
  S_{i,:} = s_\\theta(z^{(i)}, t_0) - \\tfrac{1}{K}\\sum_j s_\\theta(z^{(j)}, t_0),

  \\hat n(x_0) = \\arg\\max_{i \\in \\{1, \\ldots, D-1\\}} (s_i - s_{i+1}), \\qquad
  \\hat k(x_0) = D - \\hat n(x_0).

With the VE kernel of the paper alpha = 1 and sigma = sigma_{t0}; with the VP /
VDM process alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma) at the same
gamma(t0) at which the score is evaluated. A common scale of the scores does not
move the gap, so an eps-model (score = -eps / sigma) may be passed directly.

Rules for the normal dimension n from one spectrum (`rule=`):

* ``'gap'`` (default, the paper's): the largest absolute gap s_i - s_{i+1}.
* ``'log_gap'``: the largest ratio s_i / s_{i+1} (gap in log-spectrum); scale
  free, but it can fire inside a tail of near-zero values, so it is only
  advisable when the spectrum has no exact zeros (learned scores).
* ``'threshold'``: the number of singular values with s_i >= threshold * s_1.
  Theory (log p_t(x) ~ -dist(x, M)^2 / (2 sigma^2) near the manifold M) puts
  normal values at O(1/sigma) and tangential ones at O(1), so any threshold
  well inside (sigma, (1 - sqrt(D/K))^2) works; 0.1 is the default.

Deviations from the authors' code (released with Stanczuk et al. 2022), on
purpose: the 'gap' rule searches all D - 1 gaps as the paper's algorithm box does (the code skips the
first one and normalises by s_1 - s_2, which cannot move the argmax otherwise),
and anchors are summarised by the mode of the per-anchor estimates (the code
logs the mean, which is returned too). The VP kernel alpha x0 + sigma eps is
used with vdm_jax models instead of the VE kernel x0 + sigma eps (the VP
marginal is q(z | x0) = N(alpha x0, sigma^2)).

The centring follows the authors' code (it removes the common mean score; the
algorithm box of the paper does not centre; both give the same answer on the
closed-form tests). Hence K >= D + 1 perturbations are needed for the matrix to
have D informative singular values; the paper uses K ~ 4D.

Second reading (`method='jacobian'`): the spectrum of the normalised,
symmetrised Jacobian of the score at the (scaled) anchor itself,

.. math::

  A(x_0) = -\\tfrac{\\sigma^2}{2} \\big(\\nabla s + \\nabla s^T\\big)(\\alpha x_0, t_0),
  \\qquad \\lambda_1 \\ge \\ldots \\ge \\lambda_D = \\mathrm{eig}(A).

Near M, log p_t(z) ~ -||z - alpha pi(z / alpha)||^2 / (2 sigma^2), so A tends
to the projector onto N_{x0}M: normal eigenvalues -> 1, tangential ones
O(sigma^2 / R^2) at the anchor (R the curvature radius) and O(sigma / R) at a
point sigma away from M. The score matrix is, to first order, sigma J eps_i,
so it reads the same operator through K random probes, but (i) it adds a
Marchenko-Pastur spread of (1 +- sqrt(D / K)) to every value, and (ii) its
rows sit sigma away from M, where the tangent eigenvalues are O(sigma / R);
reading A at the anchor removes both, so a larger sigma (one at which a
learned score resolves the curvature normals) can be used. The scale of A is
known (normal = 1), which gives the rule

* ``'log_gap'`` with a floor f: n = argmax_i log(max(lambda_i, f) /
  max(lambda_{i+1}, f)), eigenvalues below f being read as tangential (their
  ratios are then 1). A learned score that resolves the curvature normals only
  partly (lambda ~ 0.2 there, 1 off the span, 0.003 on the tangents) is read
  right by it, where the largest absolute gap lands between 1 and 0.2.

References:
  Stanczuk, Batzolis, Deveney, Schonlieb. Your diffusion model secretly knows
  the dimension of the data manifold. https://arxiv.org/abs/2212.12611, 2022
  (ICML 2024).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax import schedules

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]

RULES = ("gap", "log_gap", "threshold")
METHODS = ("score_matrix", "jacobian")


class IntrinsicDimEstimate(NamedTuple):
  """Result of `estimate_intrinsic_dim` for N anchors in R^D (D = prod shape).

  Attributes:
    dimension: `[]` int32, the most frequent per-anchor estimate (the mode).
    per_point: `[N]` int32, k_hat(x0_n) = D - normal_dim.
    normal_dim: `[N]` int32, the number of singular values above the chosen
      gap (its 1-based location in the spectrum).
    spectra: `[N, min(K, D)]` float32 singular values, sorted descending.
    gap_ratio: `[N]` float32, s_n / s_{n+1} at the chosen gap (how clear it is).
    mean: `[]` float32, the mean of `per_point` over anchors.
  """
  dimension: jax.Array
  per_point: jax.Array
  normal_dim: jax.Array
  spectra: jax.Array
  gap_ratio: jax.Array
  mean: jax.Array


def default_num_perturbations(shape) -> int:
  """K = 4 D, the authors' choice (about 4D rows in their code)."""
  return 4 * int(math.prod(shape))


def vp_kernel(gamma):
  """(alpha, sigma) of the VP / VDM forward kernel at log-SNR -gamma."""
  return schedules.alpha(gamma), schedules.sigma(gamma)


def perturb(rng, x0, *, num_perturbations: int, alpha=1.0, sigma):
  """Draws K points z_i = alpha x0 + sigma eps_i around one anchor.

  Args:
    rng: a `jax.random.key`.
    x0: `[...]` one anchor (a vector `[D]` or an image `[H, W, C]`).
    num_perturbations: K.
    alpha: scalar mean scale of the forward kernel (1 for VE).
    sigma: scalar noise standard deviation of the forward kernel.

  Returns:
    `[K, ...]` perturbed points, same dtype as `x0`.
  """
  eps = jax.random.normal(rng, (num_perturbations,) + x0.shape, x0.dtype)
  return alpha * x0[None] + sigma * eps


def _chunked(fn, z, chunk_size: int):
  """Applies a batched `fn` to `z` in chunks of rows (bounded memory)."""
  k = z.shape[0]
  if k <= chunk_size:
    return fn(z)
  n_chunks = -(-k // chunk_size)
  pad = n_chunks * chunk_size - k
  zp = jnp.concatenate([z, jnp.repeat(z[:1], pad, axis=0)], axis=0) if pad else z
  out = jax.lax.map(fn, zp.reshape((n_chunks, chunk_size) + z.shape[1:]))
  return out.reshape((n_chunks * chunk_size,) + out.shape[2:])[:k]


def score_matrix(score_fn: ScoreFn, rng, x0, *, t, num_perturbations: int,
                 alpha=1.0, sigma, chunk_size: int = 1024):
  """The K x D matrix of scores at K perturbations of one anchor.

  Args:
    score_fn: ``score_fn(z [B, ...], t []) -> [B, ...]``, the score (or any
      fixed multiple of it, e.g. an eps prediction) of the noised density.
    rng: a `jax.random.key`.
    x0: `[...]` one anchor.
    t: scalar time passed to `score_fn`.
    num_perturbations: K.
    alpha, sigma: the forward kernel used to perturb (see `perturb`).
    chunk_size: rows per call of `score_fn`.

  Returns:
    `[K, D]` float32 scores, one flattened score per row (not centred).
  """
  z = perturb(rng, x0, num_perturbations=num_perturbations, alpha=alpha,
              sigma=sigma)
  t = jnp.asarray(t, jnp.float32)
  scores = _chunked(lambda zc: score_fn(zc, t), z, chunk_size)
  if scores.shape != z.shape:
    raise ValueError(f"score_fn must return the shape of its input {z.shape}, "
                     f"got {scores.shape}.")
  return scores.reshape(num_perturbations, -1).astype(jnp.float32)


def singular_spectrum(scores, *, centre: bool = True):
  """Singular values of a `[K, D]` score matrix, sorted descending.

  Args:
    scores: `[K, D]` score rows.
    centre: subtract the mean row first (the authors' code does).

  Returns:
    `[min(K, D)]` singular values, descending.
  """
  _checks.check_rank(scores, 2, "scores [K, D]")
  if centre:
    scores = scores - jnp.mean(scores, axis=0, keepdims=True)
  return jnp.linalg.svd(scores, compute_uv=False)


def normal_dim_from_spectrum(spectrum, *, rule: str = "gap",
                             threshold: float = 0.1, floor: float | None = None):
  """The normal dimension n (values above the gap) from sorted spectra.

  .. math::

    \\text{gap}: \\hat n = \\arg\\max_i (s_i - s_{i+1}), \\quad
    \\text{log\\_gap}: \\hat n = \\arg\\max_i \\log(s_i / s_{i+1}), \\quad
    \\text{threshold}: \\hat n = \\#\\{i : s_i \\ge \\tau s_1\\},

  with i = 1..M-1 (1-based), so 1 <= n <= M - 1 for 'gap' and 'log_gap'.

  Args:
    spectrum: `[..., M]` singular values sorted descending (M >= 2).
    rule: 'gap', 'log_gap' or 'threshold'.
    threshold: tau for rule='threshold', in (0, 1).
    floor: for 'log_gap', values below `floor` are raised to it first, so a
      tail of near-zero (or negative Jacobian) values has ratio 1 (default:
      the smallest positive float32).

  Returns:
    (n `[...]` int32, gap_ratio `[...]` float32 = s_n / s_{n+1}; inf where
    s_{n+1} = 0, and for 'threshold' with n = M).
  """
  if rule not in RULES:
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}.")
  if spectrum.shape[-1] < 2:
    raise ValueError(f"spectrum needs at least 2 values, got shape {spectrum.shape}.")
  s = spectrum.astype(jnp.float32)
  if rule == "gap":
    n = jnp.argmax(s[..., :-1] - s[..., 1:], axis=-1) + 1
  elif rule == "log_gap":
    tiny = jnp.finfo(jnp.float32).tiny if floor is None else floor
    if not tiny > 0:
      raise ValueError(f"floor must be > 0, got {floor}.")
    logs = jnp.log(jnp.maximum(s, tiny))
    n = jnp.argmax(logs[..., :-1] - logs[..., 1:], axis=-1) + 1
  else:
    if not 0.0 < threshold < 1.0:
      raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    n = jnp.sum(s >= threshold * s[..., :1], axis=-1)
  n = n.astype(jnp.int32)
  above = jnp.take_along_axis(s, (n - 1)[..., None], axis=-1)[..., 0]
  below_idx = jnp.minimum(n, s.shape[-1] - 1)[..., None]
  below = jnp.where(n < s.shape[-1],
                    jnp.take_along_axis(s, below_idx, axis=-1)[..., 0], 0.0)
  ratio = jnp.where(below > 0, above / jnp.where(below > 0, below, 1.0), jnp.inf)
  return n, ratio


def score_spectra(score_fn: ScoreFn, rng, x, *, t, sigma, alpha=1.0,
                  num_perturbations: int, centre: bool = True,
                  chunk_size: int = 1024, anchor_batch: int = 1):
  """Score spectra at N anchors; pure and jittable (close over `score_fn`).

  Args:
    score_fn: ``score_fn(z [B, ...], t) -> [B, ...]``.
    rng: a `jax.random.key`; anchor n uses ``fold_in(rng, n)``.
    x: `[N, ...]` anchors (vectors `[N, D]` or images `[N, H, W, C]`).
    t: scalar time passed to `score_fn`.
    sigma, alpha: forward kernel of the perturbations.
    num_perturbations: K (>= D + 1 with centring, >= D without).
    centre: subtract the mean score row before the SVD.
    chunk_size: rows per call of `score_fn`.
    anchor_batch: anchors processed together (memory ~ anchor_batch K D).

  Returns:
    `[N, min(K, D)]` singular values, each row sorted descending.
  """
  keys = jax.vmap(functools.partial(jax.random.fold_in, rng))(
      jnp.arange(x.shape[0]))

  def one(args):
    key, x0 = args
    s = score_matrix(score_fn, key, x0, t=t, num_perturbations=num_perturbations,
                     alpha=alpha, sigma=sigma, chunk_size=chunk_size)
    return singular_spectrum(s, centre=centre)

  return jax.lax.map(one, (keys, x), batch_size=anchor_batch)


def jacobian_spectra(score_fn: ScoreFn, x, *, t, sigma, alpha=1.0,
                     chunk_size: int = 256, anchor_batch: int = 1):
  """Eigenvalues of the normalised score Jacobian at N anchors; pure, jittable.

  .. math::

    A(x_0) = -\\tfrac{\\sigma^2}{2} (J + J^T), \\quad
    J = \\nabla_z s(z, t_0) |_{z = \\alpha x_0},

  whose eigenvalues tend to 1 on N_{x0}M and 0 on T_{x0}M as sigma -> 0
  (Stanczuk et al. 2022, the normal-bundle picture behind their estimator).

  Args:
    score_fn: ``score_fn(z [B, ...], t) -> [B, ...]``, the score itself (its
      scale matters here, unlike for the score matrix: an eps model must be
      divided by -sigma first).
    x: `[N, ...]` anchors.
    t: scalar time passed to `score_fn`.
    sigma, alpha: the forward kernel at t (z = alpha x0 is where J is taken).
    chunk_size: Jacobian columns (JVPs) per vectorised batch.
    anchor_batch: anchors processed together.

  Returns:
    `[N, D]` eigenvalues of A, each row sorted descending.
  """
  shape = x.shape[1:]
  d = int(math.prod(shape))
  t = jnp.asarray(t, jnp.float32)

  def one(x0):
    z0 = (alpha * x0).astype(jnp.float32)
    f = lambda z: score_fn(z[None], t)[0].reshape(-1)
    _, jvp = jax.linearize(f, z0)
    basis = jnp.eye(d, dtype=jnp.float32).reshape((d,) + shape)
    cols = _chunked(jax.vmap(jvp), basis, chunk_size)   # [D, D]: row i = J e_i.
    jac = cols.T
    a = -0.5 * jnp.square(sigma) * (jac + jac.T)
    return jnp.linalg.eigvalsh(a)[::-1]

  return jax.lax.map(one, x, batch_size=anchor_batch)


def _check_inputs(x, num_perturbations, centre):
  _checks.check_floating(x, "x")
  _checks.check_min_rank(x, 2, "x (anchors [N, D] or [N, H, W, C])")
  if x.shape[0] < 1:
    raise ValueError(f"x must hold at least one anchor, got shape {x.shape}.")
  d = int(math.prod(x.shape[1:]))
  if d < 2:
    raise ValueError(f"the ambient dimension must be >= 2, got D = {d}.")
  k_min = d + int(centre)
  if num_perturbations < k_min:
    raise ValueError(
        f"num_perturbations must be >= D{' + 1' if centre else ''} = {k_min} "
        f"(ambient D = {d}) so that the score matrix can span the normal "
        f"space; got {num_perturbations}. The paper uses about 4 D = {4 * d}.")
  return d


def estimate_intrinsic_dim(score_fn: ScoreFn, x, rng, *, t, sigma, alpha=1.0,
                           num_perturbations: int | None = None,
                           rule: str = "gap", threshold: float = 0.1,
                           centre: bool = True, chunk_size: int = 1024,
                           anchor_batch: int = 1, method: str = "score_matrix",
                           floor: float | None = None) -> IntrinsicDimEstimate:
  """Estimates the intrinsic dimension at each anchor from score spectra.

  .. math::

    \\hat k(x_0) = D - \\arg\\max_{i} (s_i - s_{i+1}), \\quad
    s = \\mathrm{svd}\\big(s_\\theta(\\alpha x_0 + \\sigma \\epsilon_{1:K}, t_0)
    - \\text{mean}\\big).

  The spectra are computed under `jax.jit` (anchors through `lax.map`, score
  rows in chunks). This wrapper then checks that they are finite.

  Args:
    score_fn: ``score_fn(z [B, ...], t) -> [B, ...]``, the score of the data
      density noised by the same kernel (or a fixed multiple, e.g. eps).
    x: `[N, D]` or `[N, H, W, C]` float anchors, the points at which the
      dimension is estimated (data points).
    rng: a `jax.random.key`.
    t: scalar time given to `score_fn` (the small t0).
    sigma: scalar noise std of the perturbation kernel at t0.
    alpha: scalar mean scale of the kernel at t0 (1 for VE; use `vp_kernel`).
    num_perturbations: K; default 4 D.
    rule: 'gap' (paper), 'log_gap' or 'threshold'; see the module docstring.
    threshold: tau of rule='threshold' (relative to s_1).
    centre: subtract the mean score before the SVD (authors' code).
    chunk_size: rows per call of `score_fn`.
    anchor_batch: anchors processed together.
    method: 'score_matrix' (the paper's: singular values of K perturbed
      scores) or 'jacobian' (eigenvalues of -sigma^2 sym(grad s) at alpha x0,
      see `jacobian_spectra`; K, `centre` and `rng` are then unused and
      `score_fn` must be the score itself, not a multiple).
    floor: the 'log_gap' floor (see `normal_dim_from_spectrum`); with
      method='jacobian' a natural choice is ~1e-2, normal eigenvalues being ~1.

  Returns:
    An `IntrinsicDimEstimate` (dimensions are counts, no units); for
    method='jacobian', `spectra` holds the eigenvalues of A.

  Raises:
    ValueError: for too few perturbations (K < D + 1), a bad rule, or when
      `score_fn` returns non-finite values (the anchors are named).
    TypeError: for non-floating `x`.

  References:
    Stanczuk et al., Your diffusion model secretly knows the dimension of the
    data manifold, https://arxiv.org/abs/2212.12611, 2022.
  """
  if rule not in RULES:
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}.")
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  x = jnp.asarray(x)
  ambient = int(math.prod(np.shape(x)[1:]))
  k = num_perturbations or 4 * max(ambient, 1)
  # K only matters to the score matrix; the Jacobian reading has D columns.
  d = _check_inputs(x, k if method == "score_matrix" else ambient + 1, centre)
  for name, v in (("sigma", sigma), ("alpha", alpha), ("t", t)):
    if np.ndim(v) != 0:
      raise ValueError(f"{name} must be a scalar, got shape {np.shape(v)}.")
  if method == "jacobian":
    spectra = jax.jit(functools.partial(
        jacobian_spectra, score_fn, chunk_size=min(chunk_size, d),
        anchor_batch=anchor_batch))(x, t=t, sigma=sigma, alpha=alpha)
  else:
    spectra_fn = jax.jit(functools.partial(
        score_spectra, score_fn, num_perturbations=k, centre=centre,
        chunk_size=chunk_size, anchor_batch=anchor_batch))
    spectra = spectra_fn(rng, x, t=t, sigma=sigma, alpha=alpha)
  finite = np.asarray(jnp.all(jnp.isfinite(spectra), axis=-1))
  if not finite.all():
    bad = np.flatnonzero(~finite)
    raise ValueError(
        f"score_fn returned non-finite scores (NaN/inf) at {bad.size} of "
        f"{finite.size} anchors (indices {bad[:10].tolist()}); check the model, "
        f"t = {t} and sigma = {sigma}.")
  return summarise_spectra(spectra, ambient_dim=d, rule=rule,
                           threshold=threshold, floor=floor)


def summarise_spectra(spectra, *, ambient_dim: int, rule: str = "gap",
                      threshold: float = 0.1,
                      floor: float | None = None) -> IntrinsicDimEstimate:
  """Per-anchor and pooled dimension estimates from `[N, M]` spectra."""
  _checks.check_rank(spectra, 2, "spectra [N, M]")
  n, ratio = normal_dim_from_spectrum(spectra, rule=rule, threshold=threshold,
                                      floor=floor)
  per_point = (ambient_dim - n).astype(jnp.int32)
  counts = jnp.bincount(per_point, length=ambient_dim + 1)
  return IntrinsicDimEstimate(
      dimension=jnp.argmax(counts).astype(jnp.int32),
      per_point=per_point, normal_dim=n, spectra=spectra, gap_ratio=ratio,
      mean=jnp.mean(per_point.astype(jnp.float32)))
