"""The non-uniform (multi-scale) forward process: one log-SNR window per Haar scale.

An image is split by an L-level orthonormal Haar transform into K = L + 1
*scales* (bands), indexed ``k = 0..K-1`` finest first:
``(d_1, ..., d_L, a_L)``. Scale ``k`` diffuses with its own variance-preserving
schedule, linear in log-SNR over its own time window ``[s_k, e_k]``:

.. math::

  \\gamma_k(t) = \\gamma_{\\min} + (\\gamma_{\\max} - \\gamma_{\\min})
    \\,\\mathrm{clip}\\!\\left(\\frac{t - s_k}{e_k - s_k}, 0, 1\\right), \\qquad
  q(z^k_t | x^k) = N(\\alpha_k(t) x^k, \\sigma_k^2(t) I),

with ``gamma = -log SNR``, ``alpha_k^2 = sigmoid(-gamma_k)`` and
``sigma_k^2 = sigmoid(gamma_k)`` (`vdm_jax.schedules`). The defaults follow the
paper: log-SNR from +10 to -10 (``gamma_min=-10``, ``gamma_max=10``), all
windows start at 0 and scale k ends at ``e_k = (k + 1) / K``, so the finest
details are pure noise first. At ``t = e_k`` scale k is *dropped* (its marginal
is ~N(0, I): alpha^2 = sigmoid(-10) = 4.5e-5); the reverse process inserts it
again as fresh N(0, I) noise when it reaches ``e_k``.

Stages. The distinct end times ``e^{(1)} < ... < e^{(S)} = 1`` cut [0, 1] into
stages; in stage ``(e^{(j-1)}, e^{(j)}]`` the *active* scales are those with
``e_k >= e^{(j)}``, a suffix ``first..K-1`` of the band list (ends must be
non-decreasing from fine to coarse), and one score network sees exactly those
bands, i.e. the level-``first`` approximation image. With every window equal
there is a single stage and the process is uniform diffusion in Haar
coordinates, which (Q orthonormal) is uniform diffusion of the image.

Deviation from the paper's code: the paper uses ``lambda_k(t) = 10 - 20 (t -
eps)/(T_k - eps)`` with ``eps = 1e-3``; here windows start at ``s_k`` (default
0) so stage boundaries are exactly ``k / K``. This is a 1e-3 shift of the time
axis and changes nothing else.

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022.
  Kingma, Salimans, Poole, Ho. Variational Diffusion Models.
  https://arxiv.org/abs/2107.00630, 2021 (VP marginals in gamma form).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import schedules
from vdm_jax.multiscale import haar

LOG_SNR_MAX = 10.0
LOG_SNR_MIN = -10.0


class NonUniformProcess(NamedTuple):
  """Static description of a non-uniform forward process (host-side floats).

  Attributes:
    levels: number of Haar levels L; there are K = L + 1 scales.
    starts: per-scale window start ``s_k`` (finest first), in [0, 1).
    ends: per-scale window end / drop time ``e_k``, in (0, 1], non-decreasing,
      ``ends[-1] == 1``.
    gamma_min: gamma at the window start (= -max log-SNR).
    gamma_max: gamma at the window end (= -min log-SNR).
  """
  levels: int
  starts: tuple
  ends: tuple
  gamma_min: float = -LOG_SNR_MAX
  gamma_max: float = -LOG_SNR_MIN

  @property
  def num_scales(self) -> int:
    return self.levels + 1


class Stage(NamedTuple):
  """One stage of the process: scales ``first..K-1`` are active on ``(t_lo, t_hi]``."""
  first: int
  t_lo: float
  t_hi: float


def make_process(levels: int, *, ends: Sequence[float] | None = None,
                 starts: Sequence[float] | None = None,
                 gamma_min: float = -LOG_SNR_MAX,
                 gamma_max: float = -LOG_SNR_MIN) -> NonUniformProcess:
  """Builds and validates a `NonUniformProcess`.

  Args:
    levels: Haar levels L >= 0 (0 gives uniform diffusion of the image).
    ends: K drop times, finest scale first; default ``(1/K, 2/K, ..., 1)``.
    starts: K window starts; default all 0.
    gamma_min: gamma at each window's start (default -10, log-SNR +10).
    gamma_max: gamma at each window's end (default +10, log-SNR -10).

  Returns:
    The validated process.

  Raises:
    ValueError: naming the bad field, if a window lies outside [0, 1], is
      empty, the ends decrease from fine to coarse, the last end is not 1, the
      lengths do not match K, or gamma_min >= gamma_max.
  """
  if not isinstance(levels, int) or isinstance(levels, bool) or levels < 0:
    raise ValueError(f"levels must be an int >= 0, got {levels!r}.")
  k = levels + 1
  ends = tuple(float(e) for e in ends) if ends is not None else tuple(
      (i + 1) / k for i in range(k))
  starts = tuple(float(s) for s in starts) if starts is not None else (0.0,) * k
  for name, seq in (("ends", ends), ("starts", starts)):
    if len(seq) != k:
      raise ValueError(
          f"{name} must have one entry per scale, K = levels + 1 = {k}, got "
          f"{len(seq)}: {seq}.")
  for i, (s, e) in enumerate(zip(starts, ends)):
    if not (math.isfinite(s) and math.isfinite(e)) or s < 0.0 or e > 1.0:
      raise ValueError(
          f"scale {i} window [start={s}, end={e}] must lie inside [0, 1].")
    if s >= e:
      raise ValueError(
          f"scale {i} window is empty: start={s} must be < end={e}.")
  for i in range(k - 1):
    if ends[i] > ends[i + 1]:
      raise ValueError(
          f"ends must be non-decreasing from fine to coarse (a finer scale is "
          f"dropped no later than a coarser one), got ends[{i}]={ends[i]} > "
          f"ends[{i + 1}]={ends[i + 1]}.")
  if ends[-1] != 1.0:
    raise ValueError(
        f"the coarsest scale must reach the prior at t = 1: ends[-1] must be "
        f"1.0, got {ends[-1]}.")
  schedules.check_endpoints(gamma_min, gamma_max, "NonUniformProcess")
  return NonUniformProcess(levels, starts, ends, float(gamma_min),
                           float(gamma_max))


def uniform_process(levels: int, **kwargs) -> NonUniformProcess:
  """Every scale on the same window [0, 1]: uniform diffusion in Haar coordinates."""
  k = levels + 1
  return make_process(levels, ends=(1.0,) * k, starts=(0.0,) * k, **kwargs)


def process_from_config(cfg) -> NonUniformProcess:
  """Builds the process from a config section with fields ``levels`` and,
  optionally, ``ends``, ``starts``, ``gamma_min``, ``gamma_max`` (None = default)."""
  get = lambda key: cfg.get(key, None) if hasattr(cfg, "get") else getattr(
      cfg, key, None)
  kwargs = {}
  for key in ("gamma_min", "gamma_max"):
    if get(key) is not None:
      kwargs[key] = get(key)
  return make_process(int(get("levels")), ends=get("ends"),
                      starts=get("starts"), **kwargs)


def stages(process: NonUniformProcess) -> tuple:
  """The stages of the process, earliest (finest, full resolution) first.

  Returns:
    tuple of `Stage`; stage j covers ``(t_lo, t_hi]`` with ``t_lo`` the
    previous distinct drop time (0 for the first stage) and has active scales
    ``first..K-1``.
  """
  distinct = sorted(set(process.ends))
  out = []
  lo = 0.0
  for e in distinct:
    first = min(i for i, end in enumerate(process.ends) if end >= e)
    out.append(Stage(first, lo, e))
    lo = e
  return tuple(out)


def drop_times(process: NonUniformProcess) -> tuple:
  """Time at which each scale (finest first) becomes pure noise and is dropped."""
  return tuple(process.ends)


def scale_time(process: NonUniformProcess, k: int, t):
  """Local diffusion time of scale k: ``clip((t - s_k) / (e_k - s_k), 0, 1)``."""
  s, e = process.starts[k], process.ends[k]
  return jnp.clip((jnp.asarray(t, jnp.float32) - s) / (e - s), 0.0, 1.0)


def scale_gamma(process: NonUniformProcess, k: int, t):
  """gamma_k(t) = -log SNR of scale k at global time t (scalar or [B])."""
  return schedules.linear_gamma(scale_time(process, k, t),
                                gamma_min=process.gamma_min,
                                gamma_max=process.gamma_max)


def scale_gamma_and_derivative(process: NonUniformProcess, k: int, t):
  """(gamma_k(t), d gamma_k / dt); the derivative is 0 outside the window."""
  return schedules.gamma_and_derivative(lambda u: scale_gamma(process, k, u), t)


def log_snr_table(process: NonUniformProcess, times: Sequence[float]):
  """log-SNR ``-gamma_k(t)`` for every scale and time, ``[K, len(times)]`` (host)."""
  times = jnp.asarray(times, jnp.float32)
  return jnp.stack([-scale_gamma(process, k, times)
                    for k in range(process.num_scales)])


def decompose(process: NonUniformProcess, x) -> tuple:
  """Image ``[B, H, W, C]`` -> band tuple ``(d_1, ..., d_L, a_L)``."""
  return haar.coefficients_to_list(haar.wavedec(x, process.levels))


def reconstruct(bands: Sequence) -> jnp.ndarray:
  """Band tuple ``(d_k, ..., d_L, a_L)`` -> level-(k-1) approximation image."""
  bands = tuple(bands)
  return haar.waverec(bands[-1], bands[:-1])


def _check_bands(process, bands, first):
  k = process.num_scales
  if len(bands) != k - first:
    raise ValueError(
        f"bands must hold scales {first}..{k - 1} ({k - first} arrays) of a "
        f"{process.levels}-level process, got {len(bands)}.")
  for b in bands:
    _checks.check_rank(b, 4, "each band [B, h, w, c]")
    _checks.check_floating(b, "band")


def diffuse(process: NonUniformProcess, bands: Sequence, t, noise: Sequence,
            *, first: int = 0) -> tuple:
  """Samples the forward marginals ``z^k_t = alpha_k(t) x^k + sigma_k(t) eps^k``.

  Args:
    process: the process.
    bands: clean bands of scales ``first..K-1``, each ``[B, h_k, w_k, c_k]``.
    t: scalar or ``[B]`` global time in [0, 1].
    noise: standard normal arrays shaped like `bands`.
    first: index of the finest band passed.

  Returns:
    tuple of noisy bands, same shapes.
  """
  bands, noise = tuple(bands), tuple(noise)
  _check_bands(process, bands, first)
  if len(noise) != len(bands):
    raise ValueError(f"noise must have {len(bands)} arrays, got {len(noise)}.")
  out = []
  for j, (x, e) in enumerate(zip(bands, noise)):
    _checks.check_same_shape(x, e, "band", "noise")
    _checks.check_batch(t, x)
    g = _checks.broadcast_to_data(scale_gamma(process, first + j, t), x)
    out.append(schedules.alpha(g) * x + schedules.sigma(g) * e)
  return tuple(out)


def forward_transition(process: NonUniformProcess, z_s: Sequence, s, t,
                       noise: Sequence, *, first: int = 0) -> tuple:
  """One step of the forward Markov chain ``q(z_t | z_s)``, s < t, per scale.

  .. math::

    z^k_t = \\alpha_{k, t|s} z^k_s + \\sigma_{k, t|s} \\epsilon, \\quad
    \\alpha_{k,t|s}^2 = e^{\\mathrm{softplus}(\\gamma_s) - \\mathrm{softplus}(\\gamma_t)},
    \\quad \\sigma_{k,t|s}^2 = -\\mathrm{expm1}(\\gamma_s - \\gamma_t)\\,\\sigma_t^2.

  Args:
    process: the process.
    z_s: noisy bands at time s (scales ``first..K-1``).
    s: scalar or ``[B]`` earlier time.
    t: scalar or ``[B]`` later time.
    noise: standard normal arrays shaped like `z_s`.
    first: index of the finest band passed.

  Returns:
    tuple of bands at time t.
  """
  z_s, noise = tuple(z_s), tuple(noise)
  _check_bands(process, z_s, first)
  out = []
  for j, (z, e) in enumerate(zip(z_s, noise)):
    gs = _checks.broadcast_to_data(scale_gamma(process, first + j, s), z)
    gt = _checks.broadcast_to_data(scale_gamma(process, first + j, t), z)
    a_ts = jnp.exp(0.5 * (jax.nn.softplus(gs) - jax.nn.softplus(gt)))
    var_ts = -jnp.expm1(gs - gt) * schedules.sigma2(gt)
    out.append(a_ts * z + jnp.sqrt(var_ts) * e)
  return tuple(out)


def prior_kl(process: NonUniformProcess, bands: Sequence):
  """KL of each scale's marginal at its drop time to N(0, I), summed: ``[B]`` nats.

  .. math::

    \\sum_k \\mathrm{KL}(q(z^k_{e_k} | x^k) \\| N(0, I)) = \\sum_k \\tfrac12
    \\sum_i \\big(\\sigma_k^2 + \\alpha_k^2 (x^k_i)^2 - 1 - \\log \\sigma_k^2\\big)

  at ``gamma_k(e_k) = gamma_max``. This is the prior term of the non-uniform
  VLB: each scale enters the reverse process as fresh N(0, I) noise.

  Args:
    process: the process.
    bands: clean bands ``(d_1, ..., d_L, a_L)``.

  Returns:
    ``[B]`` float32 KL in nats.
  """
  bands = tuple(bands)
  _check_bands(process, bands, 0)
  g = jnp.float32(process.gamma_max)
  a2 = schedules.alpha2(g)
  total = 0.0
  for x in bands:
    # sigma^2 - 1 = -alpha^2, written so nothing cancels.
    kl = 0.5 * (a2 * (jnp.square(x) - 1.0) - schedules.log_sigma2(g))
    total = total + _checks.sum_except_batch(kl)
  return total
