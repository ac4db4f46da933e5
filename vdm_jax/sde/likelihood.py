"""Exact likelihoods through the probability-flow ODE, and bits/dim of discrete data.

The probability-flow ODE dx/dt = f~(x, t) = f - g^2 s / 2 is a continuous
normalising flow, so (instantaneous change of variables)

.. math::

  \\log p_{\\epsilon}(x) = \\log \\pi(x_T) + \\int_{\\epsilon}^{T}
  \\nabla \\cdot \\tilde f(x_t, t)\\, dt,

where x_t solves the ODE forward from x_eps = x. The divergence is exact
(D Jacobian-vector products; small D) or Hutchinson's estimate
eps^T (d f~/dx) eps with one Rademacher or Gaussian eps per example, drawn once
and held fixed along the trajectory, which makes the log-likelihood estimate
unbiased. Integration uses diffrax (Tsit5 with a PID controller by default),
inside `jit`.

For discrete data x in {0..V-1}^D, y = (x + u) / V with u ~ q(u | x) on
[0, 1)^D (uniform, or a learned "variational" dequantiser) and the model
variable z = lo + (hi - lo) y, Jensen gives the bound

.. math::

  -\\log_2 P(x) \\le \\mathbb{E}_q[-\\log_2 p_Z(z) + \\log_2 q(u|x)]
   - D \\log_2 (hi - lo) + D \\log_2 V,

so bpd = bound / D. For V = 256 this is score_sde's offset: +7 for data in
[-1, 1] and +8 for [0, 1] (log2 V - log2(hi - lo) with V = 256).

Caveat: the exact divergence and the per-example Hutchinson estimate assume the
score of example b depends only on x_b (no batch statistics in the network).

References:
  Song et al. Score-Based Generative Modeling through SDEs.
  https://arxiv.org/abs/2011.13456, 2021 (Sec. 4.3, App. D.2).
  Grathwohl et al. FFJORD. https://arxiv.org/abs/1810.01367, 2019.
  Hutchinson. A stochastic estimator of the trace of the influence matrix for
  Laplacian smoothing splines, 1990.
  Ho et al. Flow++ (variational dequantisation).
  https://arxiv.org/abs/1902.00275, 2019.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.sde import samplers
from vdm_jax.sde import sdes

DIVERGENCES = ("exact", "rademacher", "gaussian")


def exact_divergence(fn: Callable, x):
  """sum_d d fn(x)_d / d x_d per example, with D forward-mode JVPs.

  Args:
    fn: `[B, ...] -> [B, ...]`, acting independently on each example.
    x: `[B, ...]`.

  Returns:
    `[B]` divergences.
  """
  d = math.prod(x.shape[1:])
  basis = jnp.eye(d, dtype=x.dtype).reshape((d, 1) + x.shape[1:])

  def one(e):
    v = jnp.broadcast_to(e, x.shape)
    return _checks.sum_except_batch(jax.jvp(fn, (x,), (v,))[1] * v)

  return jnp.sum(jax.lax.map(one, basis), axis=0)


def hutchinson_divergence(fn: Callable, x, probe):
  """Hutchinson's estimate probe^T (d fn / d x) probe per example; `[B]`."""
  _checks.check_same_shape(x, probe, "x", "probe")
  return _checks.sum_except_batch(jax.jvp(fn, (x,), (probe,))[1] * probe)


def draw_probe(rng, shape, kind: str = "rademacher", dtype=jnp.float32):
  """A Rademacher (+-1) or standard Gaussian probe of the given shape."""
  if kind == "rademacher":
    return jax.random.rademacher(rng, shape, dtype)
  if kind == "gaussian":
    return jax.random.normal(rng, shape, dtype)
  raise ValueError(f"probe kind must be 'rademacher' or 'gaussian', got {kind!r}.")


def ode_logp(rng, score_fn: Callable, sde: sdes.SDE, x, *,
             divergence: str = "rademacher", solver: str = "tsit5",
             rtol: float = 1e-5, atol: float = 1e-5, n_steps: int = 100,
             max_steps: int = 4096, t_start: Optional[float] = None):
  """log p(x) at t_start under the probability-flow ODE model (nats).

  Args:
    rng: PRNG key for the Hutchinson probe (unused for 'exact').
    score_fn: `score_fn(x [B, ...], t [B]) -> [B, ...]`.
    sde: the forward `SDE` (its prior closes the flow at t = T).
    x: `[B, ...]` data, in the scaling the model was trained on.
    divergence: 'exact', 'rademacher' or 'gaussian'.
    solver: diffrax solver name (see `samplers.ODE_SOLVERS`).
    rtol, atol: tolerances of the adaptive solver (score_sde uses 1e-5).
    n_steps: initial (adaptive) or fixed (heun/euler) number of steps.
    max_steps: cap on the adaptive solver's steps.
    t_start: start time; None means `sde.eps`.

  Returns:
    `(logp, z_T, n_evals)`: `[B]` log-density in nats, `[B, ...]` latent at T
    and the number of vector-field evaluations (each costs one score call plus
    its JVP(s)).
  """
  x = sdes.check_x(x)
  if divergence not in DIVERGENCES:
    raise ValueError(f"divergence must be one of {DIVERGENCES}, got "
                     f"{divergence!r}.")
  if not callable(score_fn):
    raise TypeError(f"score_fn must be callable, got {type(score_fn)}.")
  t_start = sde.eps if t_start is None else float(t_start)
  if not 0 <= t_start < sde.T:
    raise ValueError(f"t_start must satisfy 0 <= t_start < T = {sde.T}, got "
                     f"{t_start}.")
  rev = sde.reverse(score_fn, probability_flow=True)
  b = x.shape[0]
  probe = (None if divergence == "exact"
           else draw_probe(rng, x.shape, divergence, x.dtype))

  def vector_field(t, state, args):
    del args
    y, _ = state
    tt = jnp.full((b,), t, y.dtype)
    drift_fn = lambda z: rev.drift_diffusion(z, tt)[0]
    if probe is None:
      dy = drift_fn(y)
      div = exact_divergence(drift_fn, y)
    else:
      dy, jvp = jax.jvp(drift_fn, (y,), (probe,))
      div = _checks.sum_except_batch(jvp * probe)
    return dy, div

  state0 = (x, jnp.zeros((b,), x.dtype))
  (z, delta), n_evals = samplers._solve(  # pylint: disable=protected-access
      vector_field, state0, t_start, sde.T, solver=solver, rtol=rtol,
      atol=atol, n_steps=n_steps, max_steps=max_steps)
  return sde.prior_logp(z) + delta, z, n_evals


# ----------------------------------------------------------------------------
# Dequantisation and bits/dim.
# ----------------------------------------------------------------------------
def uniform_dequantizer(rng, x_int):
  """u ~ U[0, 1)^D; returns `(u [B, ...], log_q [B] = 0)`."""
  u = jax.random.uniform(rng, x_int.shape, jnp.float32)
  return u, jnp.zeros((x_int.shape[0],), jnp.float32)


def logit_normal_dequantizer(mean_fn: Callable, log_scale_fn: Callable):
  """A variational dequantiser q(u | x): u = sigmoid(m(x) + e^{l(x)} eps).

  .. math::

    \\log q(u|x) = \\log N(\\epsilon; 0, 1) - l(x) - \\log\\sigma'(h),
    \\quad h = m(x) + e^{l(x)}\\epsilon, \\;
    \\log\\sigma'(h) = -\\mathrm{softplus}(h) - \\mathrm{softplus}(-h).

  Args:
    mean_fn: `x_int [B, ...] -> m [B, ...]` (e.g. a small network, closed over
      its parameters, trained to maximise the bound).
    log_scale_fn: `x_int -> l [B, ...]`.

  Returns:
    A dequantiser `(rng, x_int) -> (u [B, ...] in (0, 1), log_q [B])`.
  """

  def dequantizer(rng, x_int):
    m = mean_fn(x_int)
    log_s = log_scale_fn(x_int)
    _checks.check_same_shape(m, x_int, "mean_fn(x_int)", "x_int")
    _checks.check_same_shape(log_s, x_int, "log_scale_fn(x_int)", "x_int")
    eps = jax.random.normal(rng, x_int.shape, jnp.float32)
    h = m + jnp.exp(log_s) * eps
    log_q = (-0.5 * eps**2 - 0.5 * math.log(2 * math.pi) - log_s
             + jax.nn.softplus(h) + jax.nn.softplus(-h))
    # Clip away from {0, 1} so that x + u stays inside bin x in float32.
    u = jnp.clip(jax.nn.sigmoid(h), 1e-6, 1 - 1e-6)
    return u, _checks.sum_except_batch(log_q)

  return dequantizer


def dequantize(rng, x_int, *, vocab_size: int, data_range=(-1.0, 1.0),
               dequantizer: Optional[Callable] = None):
  """Maps integers to continuous model inputs z = lo + (hi - lo)(x + u)/V.

  Args:
    rng: PRNG key.
    x_int: `[B, ...]` integers in {0..V-1}.
    vocab_size: V.
    data_range: (lo, hi) of the model's data scaling.
    dequantizer: `(rng, x_int) -> (u, log_q)`; None means uniform.

  Returns:
    `(z [B, ...] float32, log_q [B])`.

  Raises:
    ValueError: vocab_size < 2; x_int outside [0, V - 1] (concrete values;
      under `jit` a `checkify` check, and z is NaN, see `vdm_jax.checked`).
  """
  _checks.check_min_rank(x_int, 1, "x_int")
  if not jnp.issubdtype(jnp.asarray(x_int).dtype, jnp.integer):
    raise TypeError(f"x_int must have an integer dtype, got "
                    f"{jnp.asarray(x_int).dtype}.")
  lo, hi = (float(v) for v in data_range)
  if not lo < hi:
    raise ValueError(f"data_range must be (lo, hi) with lo < hi, got "
                     f"{data_range}.")
  vocab_size = _checks.check_vocab_size(vocab_size)
  x_int = jnp.asarray(x_int)
  # Out-of-range data would silently fall outside data_range and still get a bpd.
  ok = _checks.int_range_ok(x_int, vocab_size, "x_int")
  dequantizer = uniform_dequantizer if dequantizer is None else dequantizer
  u, log_q = dequantizer(rng, x_int)
  y = (x_int.astype(jnp.float32) + u) / vocab_size
  return _checks.poison(ok, lo + (hi - lo) * y, log_q)


def bpd_offset(*, vocab_size: int, data_range=(-1.0, 1.0)) -> float:
  """Bits/dim added to -log2 p_Z(z)/D: log2 V - log2(hi - lo) (7 for 256, [-1, 1])."""
  vocab_size = _checks.check_vocab_size(vocab_size)
  lo, hi = data_range
  return math.log2(vocab_size) - math.log2(hi - lo)


def ode_bpd(rng, score_fn: Callable, sde: sdes.SDE, x_int, *,
            vocab_size: int = 256, data_range=(-1.0, 1.0),
            dequantizer: Optional[Callable] = None,
            divergence: str = "rademacher", **ode_kwargs):
  """Upper bound on -log2 P(x_int) / D via dequantisation and the PF-ODE.

  Args:
    rng: PRNG key (dequantisation noise and Hutchinson probe).
    score_fn: score model on the continuous scale `data_range`.
    sde: the forward `SDE`.
    x_int: `[B, ...]` integers in {0..V-1}.
    vocab_size: V (256 for 8-bit images, 17 for the digits data).
    data_range: (lo, hi) that [0, 1] is mapped to for the model.
    dequantizer: None (uniform) or `(rng, x_int) -> (u, log_q)`.
    divergence: 'exact', 'rademacher' or 'gaussian'.
    **ode_kwargs: passed to `ode_logp` (solver, rtol, atol, ...).

  Returns:
    `(bpd [B], n_evals)`.
  """
  d_rng, o_rng = jax.random.split(rng)
  z, log_q = dequantize(d_rng, x_int, vocab_size=vocab_size,
                        data_range=data_range, dequantizer=dequantizer)
  logp, _, n_evals = ode_logp(o_rng, score_fn, sde, z, divergence=divergence,
                              **ode_kwargs)
  d = math.prod(z.shape[1:])
  bpd = (-logp + log_q) / (d * math.log(2.0)) + bpd_offset(
      vocab_size=vocab_size, data_range=data_range)
  return bpd, n_evals


def forward_dequantized_ode_bpd(rng, score_fn: Callable,
                                sde: sdes.ScheduleVPSDE, x_int, *,
                                vocab_size: int, divergence: str = "exact",
                                **ode_kwargs):
  """Bits/dim bound for a VDM-style model: Gaussian dequantisation by q(z_0|x).

  A VDM is trained on bin centres f(x) = 2(x + 1/2)/V - 1 with the decoder
  p(x | z_0) of Kingma et al. (eq. 7-8), not on uniformly dequantised data, so
  `ode_bpd`'s uniform noise would put the data far off its density. The
  forward process itself is the dequantiser: with z_0 ~ q(z_0|x) =
  N(alpha_0 f(x), sigma_0^2 I) and the probability-flow density p_ODE(z_0)
  (run from t = 0 to 1, prior N(0, I)), Jensen gives

  .. math::

    -\\log P(x) \\le \\mathbb{E}_{q(z_0|x)}\\big[-\\log p(x | z_0)
      + \\log q(z_0 | x) - \\log p_{\\mathrm{ODE}}(z_0)\\big],

  the VDM bound with its diffusion and prior terms replaced by the exact flow
  likelihood. With the exact score and well separated bins (sigma_0 much less
  than 2/V) the bound is tight: log q(z_0|x) - log q(z_0) = log q(x|z_0) -
  log P(x) and q(x|z_0) ~ p(x|z_0) ~ 1. One z_0 is drawn per example.

  Args:
    rng: PRNG key (the draw of z_0 and the Hutchinson probe).
    score_fn: `score_fn(z [B, ...], t [B]) -> [B, ...]` on the VDM's scale.
    sde: the `ScheduleVPSDE` of the model's gamma(t) (its t = VDM t).
    x_int: `[B, ...]` integers in {0..V-1}.
    vocab_size: V.
    divergence: 'exact', 'rademacher' or 'gaussian'.
    **ode_kwargs: passed to `ode_logp` (solver, rtol, atol, ...).

  Returns:
    `(bpd [B], terms, n_evals)`: `terms` holds the `[B]` nats of
    'reconstruction' (-log p(x|z_0)), 'log_q' and 'log_p_ode'.

  References:
    Kingma et al. Variational Diffusion Models, https://arxiv.org/abs/2107.00630
    (the decoder and q(z_0|x)); Song et al. 2021 (the flow likelihood).
  """
  from vdm_jax import losses  # pylint: disable=g-import-not-at-top
  if not isinstance(sde, sdes.ScheduleVPSDE):
    raise TypeError("forward_dequantized_ode_bpd needs the ScheduleVPSDE of the "
                    f"model's gamma(t), got {type(sde).__name__}.")
  if ode_kwargs.get("t_start", 0.0) not in (0, 0.0, None):
    raise ValueError("forward_dequantized_ode_bpd integrates from t = 0; do not "
                     "pass t_start.")
  ode_kwargs.pop("t_start", None)
  f = losses.encode_discrete(x_int, vocab_size)
  e_rng, o_rng = jax.random.split(rng)
  eps0 = jax.random.normal(e_rng, f.shape, f.dtype)
  gamma_0 = sde.log_snr(jnp.zeros((f.shape[0],), f.dtype))
  g0 = _checks.broadcast_to_data(gamma_0, f)
  # z_0 = alpha_0 (f + e^{gamma_0/2} eps_0), the form that keeps sigma_0/alpha_0
  # exact (alpha_0 is within ulps of 1).
  alpha_0 = jnp.sqrt(jax.nn.sigmoid(-g0))
  z0 = alpha_0 * (f + jnp.exp(0.5 * g0) * eps0)
  recon = losses.reconstruction_loss(x_int, eps0, gamma_0, vocab_size)
  log_sigma_0 = 0.5 * jax.nn.log_sigmoid(g0)
  log_q = _checks.sum_except_batch(
      -0.5 * jnp.square(eps0) - 0.5 * math.log(2 * math.pi)
      - jnp.broadcast_to(log_sigma_0, f.shape))
  log_p, _, n_evals = ode_logp(o_rng, score_fn, sde, z0, divergence=divergence,
                               t_start=0.0, **ode_kwargs)
  d = math.prod(f.shape[1:])
  nats = recon + log_q - log_p
  terms = {"reconstruction": recon, "log_q": log_q, "log_p_ode": log_p}
  return nats / (d * math.log(2.0)), terms, n_evals
