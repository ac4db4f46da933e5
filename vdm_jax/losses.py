"""The variational lower bound of Variational Diffusion Models, and plain denoising losses.

For discrete data x in {0..V-1}^D, encoded as f = 2(x + 1/2)/V - 1 in [-1, 1],

.. math::

  -\\mathrm{VLB}(x) = \\underbrace{KL(q(z_1|x) \\| N(0, I))}_{\\text{prior}}
    + \\underbrace{E_{q(z_0|x)}[-\\log p(x|z_0)]}_{\\text{reconstruction}}
    + \\underbrace{L_T(x)}_{\\text{diffusion}}

with the diffusion loss in eps form (VDM eq. 13 and 17)

.. math::

  L_T = \\tfrac{T}{2} E_{\\epsilon, i}[\\mathrm{expm1}(\\gamma_t - \\gamma_s)
        \\|\\epsilon - \\hat\\epsilon_\\theta(z_t; t)\\|^2],\\ s = t - 1/T, \\qquad
  L_\\infty = \\tfrac12 E_{\\epsilon, t}[\\gamma'(t) \\|\\epsilon - \\hat\\epsilon\\|^2]
            = -\\tfrac12 E_{\\epsilon, t}[\\mathrm{SNR}'(t) \\|x - \\hat x\\|^2].

Every function returns **per-example values** (shape `[B]`, in nats unless the
name says bpd): reductions, weighting and `pmean` belong to the caller.

Bad input is an error, never a number. Static arguments (`vocab_size` >= 2,
`num_steps` >= 0, `num_dims` >= 1) raise `ValueError` at trace time. Checks on
values -- integer data in [0, V - 1] and a schedule that increases with t (a
decreasing gamma makes the diffusion loss negative) -- raise `ValueError` when
the values are concrete; under a plain `jit` the affected outputs become NaN,
never a plausible number, and `vdm_jax.checked(fn)` (or a training step
wrapped by `vdm_jax.checkified`) raises a `checkify` error with the same
message (see `vdm_jax._checks`). Training pipelines check
each batch on the host with `check_discrete_range`.
Bits per dimension are nats / (D ln 2) with D = H W C; no dequantisation offset is
added because the VDM is a discrete model of {0..V-1}^D.

References:
  Kingma, Salimans, Poole, Ho. Variational Diffusion Models.
  https://arxiv.org/abs/2107.00630, 2021 (Sec. 3.5, 4, 5; App. E).
  Vincent. A Connection Between Score Matching and Denoising Autoencoders. 2011.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import parameterizations
from vdm_jax import schedules

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]  # (z [B, ...], gamma [B]) -> eps_hat


# ----------------------------------------------------------------------------
# Discrete data <-> [-1, 1].
# ----------------------------------------------------------------------------
def encode_discrete(x_int, vocab_size: int):
  """Integer data in {0..V-1} to bin centres in [-1, 1]: f = 2(x + 1/2)/V - 1.

  Raises:
    TypeError: non-integer input.
    ValueError: vocab_size < 2; concrete values outside [0, V - 1]. Under
      `jit` the range is a `checkify` check and out-of-range data give NaN
      (module docstring), so a negative pixel can no longer wrap to bin V - 1.
  """
  vocab_size = _checks.check_vocab_size(vocab_size)
  if not jnp.issubdtype(jnp.asarray(x_int).dtype, jnp.integer):
    raise TypeError(
        f"encode_discrete expects integer data in [0, {vocab_size - 1}], got "
        f"dtype {jnp.asarray(x_int).dtype}. Pass the raw integer pixels, not "
        "images already scaled to floats.")
  x_int = jnp.asarray(x_int)
  f = 2.0 * (x_int.astype(jnp.float32) + 0.5) / vocab_size - 1.0
  return _checks.poison(_checks.int_range_ok(x_int, vocab_size, "x_int"), f)


def check_discrete_range(x_int, vocab_size: int, *, name: str = "x_int",
                         step: int | None = None) -> None:
  """Host-side check that concrete integer data lie in [0, vocab_size - 1].

  Numpy min/max only, cheap enough for every training batch; `step` (the
  training step the batch belongs to) is named in the message.

  Raises:
    ValueError: a value outside [0, V - 1], or vocab_size < 2.
  """
  _checks.check_int_range(x_int, vocab_size, name,
                          "" if step is None else f"(batch of step {step})")


def bin_centres(vocab_size: int):
  """The V bin centres c_k = (2k + 1)/V - 1 of `encode_discrete`."""
  vocab_size = _checks.check_vocab_size(vocab_size)
  return (2.0 * jnp.arange(vocab_size, dtype=jnp.float32) + 1.0) / vocab_size - 1.0


def decoder_logits(z0_rescaled, gamma_0, vocab_size: int):
  """Logits of p(x|z_0) over the V values, per dimension (VDM eq. 7-8, App. A).

  .. math::

    \\ell_k = -\\tfrac12 (\\tilde z_0 - c_k)^2 e^{-\\gamma_0}, \\quad
    \\tilde z_0 = z_0 / \\alpha_0,

  i.e. q(z_0 | x = c_k) normalised over k (a uniform prior over values).

  Args:
    z0_rescaled: `[B, ...]` the latent divided by alpha_0. Pass
      f + exp(gamma_0/2) eps rather than dividing z_0 by alpha_0: alpha_0 is
      within a few ulps of 1 at gamma_0 = -13.3.
    gamma_0: scalar or `[B]`.
    vocab_size: V.

  Returns:
    `[B, ..., V]` logits.
  """
  vocab_size = _checks.check_vocab_size(vocab_size)
  g0 = _checks.broadcast_to_data(gamma_0, z0_rescaled)[..., None]
  diff = z0_rescaled[..., None] - bin_centres(vocab_size)
  return -0.5 * jnp.square(diff) * jnp.exp(-g0)


# ----------------------------------------------------------------------------
# The three VLB terms.
# ----------------------------------------------------------------------------
def reconstruction_loss(x_int, eps_0, gamma_0, vocab_size: int):
  """-log p(x | z_0) with z_0/alpha_0 = f + e^{gamma_0/2} eps_0; `[B]` nats.

  The log-softmax of `decoder_logits` at the data value, computed by
  `decoder_nll`, which also gives its derivatives in the same pass over the
  V values instead of a backward pass through the `[B, ..., V]` logits.
  """
  f = encode_discrete(x_int, vocab_size)
  _checks.check_same_shape(f, eps_0, "x", "eps_0")
  g0 = _checks.broadcast_to_data(jnp.asarray(gamma_0, jnp.float32), f)
  z0_rescaled = f + jnp.exp(0.5 * g0) * eps_0
  return _checks.sum_except_batch(decoder_nll(z0_rescaled, g0, x_int, vocab_size))


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def decoder_nll(z0_rescaled, gamma_0, x_int, vocab_size: int):
  """-log p(x | z_0) per dimension: the negative log-softmax of `decoder_logits` at x.

  .. math::

    -\\log p(x|z_0) = \\log \\sum_k e^{\\ell_k} - \\ell_x, \\qquad
    \\ell_k = -\\tfrac12 (\\tilde z_0 - c_k)^2 e^{-\\gamma_0}

  (VDM eq. 7-8, App. A). Its derivatives are expectations under the decoder
  p_k = softmax(l)_k: d/d z~ = e^{-gamma_0} (E_p[c] - c_x) and d/d gamma_0 =
  l_x - E_p[l]. They are accumulated in the forward pass together with the
  normaliser, so reverse mode needs no `[..., V]` residual and no second pass
  over the logits (a custom JVP, so forward mode works too). The log-sum-exp is
  shifted by the logit of the bin nearest to z~, the largest logit. When
  gamma_0 is low enough that every bin more than `_DECODER_WINDOW` places from
  the nearest one has a weight e^{l_k - l_max} that underflows to exactly 0 in
  float32 (gamma_0 < -10.9 for V = 256), only the 2 * 8 + 1 bins around it are
  summed: the same float32 terms, 15x fewer exponentials at V = 256.

  Args:
    z0_rescaled: `[B, ...]` z_0 / alpha_0.
    gamma_0: scalar, or broadcastable to `z0_rescaled` (`broadcast_to_data`).
    x_int: `[B, ...]` integer data in [0, V - 1] (no derivative).
    vocab_size: V.

  Returns:
    `[B, ...]` nats.
  """
  return _decoder_nll_and_partials(z0_rescaled, gamma_0, x_int, vocab_size)[0]


# Half-width J of the window of bins around the nearest one that `decoder_nll`
# sums over when every other weight underflows to exactly 0 in float32.
_DECODER_WINDOW = 8
# exp(x) is exactly 0 in float32 for x < -103.3 (below the smallest subnormal);
# the window is used when every weight outside it is below exp(-110).
_DECODER_UNDERFLOW = 110.0


def _decoder_sums(e_of, k_near, vocab_size, offsets, *, window: bool):
  """sum_j w_j, sum_j j w_j, sum_j e_j w_j over bins k_near + j, j in `offsets`.

  w_j = exp(e_j) with e_j = l_{k_near + j} - l_{k_near}; with `window`, the
  offsets may reach bins outside [0, V - 1], which get weight 0.
  """
  e = e_of(offsets)
  w = jnp.exp(e)
  if window:
    k = k_near[..., None] + offsets
    w = jnp.where((k >= 0) & (k <= vocab_size - 1), w, 0.0)
  return jnp.sum(w, -1), jnp.sum(offsets * w, -1), jnp.sum(e * w, -1)


def _decoder_nll_and_partials(z, gamma_0, x_int, vocab_size):
  """-log p(x|z~) and its partial derivatives in z~ and gamma_0.

  Everything is written relative to the nearest bin k*: with u = z~ - c_{k*},
  Delta = 2/V and s = e^{-gamma_0}, the logit differences are
  e_j = l_{k* + j} - l_{k*} = s j Delta (u - j Delta / 2), exactly 0 at j = 0
  and computed without the cancellation of (z~ - c_k)^2 s at large s. Then
  -log p = log sum_j e^{e_j} - e_m (m = x - k*),
  d/d z~ = s Delta (E_p[j] - m), d/d gamma_0 = e_m - E_p[e].
  """
  vocab_size = _checks.check_vocab_size(vocab_size)
  s = jnp.exp(-jnp.asarray(gamma_0, jnp.float32))
  delta = 2.0 / vocab_size
  k_near = jnp.clip(jnp.floor((z + 1.0) * (0.5 * vocab_size)), 0, vocab_size - 1)
  u = z - ((2.0 * k_near + 1.0) / vocab_size - 1.0)
  m = jnp.asarray(x_int).astype(jnp.float32) - k_near
  s_v = s[..., None] if jnp.ndim(s) else s
  e_of = lambda j: s_v * (j * delta) * (u[..., None] - j * (0.5 * delta))
  width = _DECODER_WINDOW
  full = lambda: _decoder_sums(
      e_of, k_near, vocab_size,
      jnp.arange(vocab_size, dtype=jnp.float32) - k_near[..., None], window=False)
  if 2 * width + 1 >= vocab_size:
    sums = full()
  else:
    # A bin j places from the nearest has e_j <= -s Delta^2 |j|(|j|-1)/2: outside
    # the window every weight is below exp(-_DECODER_UNDERFLOW), i.e. exactly 0
    # in float32, when this holds.
    narrow = (jnp.min(s) * delta ** 2 * width * (width + 1) / 2.0
              >= _DECODER_UNDERFLOW)
    window = lambda: _decoder_sums(e_of, k_near, vocab_size,
                                   jnp.arange(-width, width + 1, dtype=jnp.float32),
                                   window=True)
    if _checks.is_concrete(narrow):
      sums = window() if bool(narrow) else full()
    else:
      sums = jax.lax.cond(narrow, window, full)
  norm, sum_j, sum_e = sums
  e_m = s * (m * delta) * (u - m * (0.5 * delta))
  nll = jnp.log(norm) - e_m
  return nll, s * delta * (sum_j / norm - m), e_m - sum_e / norm


@decoder_nll.defjvp
def _decoder_nll_jvp(vocab_size, primals, tangents):
  z, gamma_0, x_int = primals
  dz, dg, _ = tangents
  nll, d_z, d_g = _decoder_nll_and_partials(z, gamma_0, x_int, vocab_size)
  return nll, d_z * dz + d_g * dg


def prior_kl(f, gamma_1):
  """KL(q(z_1|x) || N(0, I)) = 1/2 sum[alpha_1^2 f^2 + sigma_1^2 - log sigma_1^2 - 1]; `[B]`."""
  g1 = _checks.broadcast_to_data(gamma_1, f)
  # sigma^2 - log sigma^2 - 1 = softplus(-gamma) - alpha^2: written without the
  # "- 1", which cancels catastrophically in float32 when sigma_1^2 ~ 1.
  kl = 0.5 * (schedules.alpha2(g1) * jnp.square(f)
              + jax.nn.softplus(-g1) - schedules.alpha2(g1))
  return _checks.sum_except_batch(kl)


def diffusion_loss_continuous(eps, eps_hat, dgamma_dt):
  """L_inf per example: 1/2 gamma'(t) ||eps - eps_hat||^2 (VDM eq. 17); `[B]` nats.

  Raises ValueError (a `checkify` check and NaN under `jit`) if gamma'(t) < 0:
  a decreasing schedule would make the loss negative.
  """
  _checks.check_same_shape(eps, eps_hat, "eps", "eps_hat")
  dgamma_dt = jnp.asarray(dgamma_dt)
  ok = _checks.check_values(
      jnp.all(dgamma_dt >= 0),
      "dgamma_dt must be >= 0 (gamma_fn increasing in t; a decreasing schedule "
      "makes the diffusion loss negative), got a minimum of {lo}.",
      lo=jnp.min(dgamma_dt))
  return _checks.poison(
      ok, 0.5 * dgamma_dt * _checks.sum_except_batch(jnp.square(eps - eps_hat)))


def diffusion_loss_continuous_snr(x, x_hat, dsnr_dt):
  """L_inf in SNR form: -1/2 SNR'(t) ||x - x_hat||^2 (VDM eq. 15); `[B]` nats.

  Equal to `diffusion_loss_continuous` because ||x - x_hat||^2 =
  e^{gamma} ||eps - eps_hat||^2 and SNR' = -gamma' e^{-gamma}. Numerically
  worse near t = 0 (SNR ~ 6e5), which is why training uses the eps form.
  """
  _checks.check_same_shape(x, x_hat, "x", "x_hat")
  dsnr_dt = jnp.asarray(dsnr_dt)
  ok = _checks.check_values(
      jnp.all(dsnr_dt <= 0),
      "dsnr_dt must be <= 0 (SNR decreasing in t; an increasing SNR makes the "
      "diffusion loss negative), got a maximum of {hi}.", hi=jnp.max(dsnr_dt))
  return _checks.poison(
      ok, -0.5 * dsnr_dt * _checks.sum_except_batch(jnp.square(x - x_hat)))


def diffusion_loss_discrete(eps, eps_hat, gamma_t, gamma_s, num_steps: int):
  """L_T per example: T/2 expm1(gamma_t - gamma_s) ||eps - eps_hat||^2 (VDM eq. 13); `[B]`.

  expm1 rather than exp - 1: at T = 1e5 the latter biases the bound by 2e-4.

  Raises ValueError for num_steps < 1, and (a `checkify` check and NaN under
  `jit`) for gamma_t < gamma_s, which would make the loss negative.
  """
  num_steps = _checks.check_int(num_steps, "num_steps", minimum=1)
  _checks.check_same_shape(eps, eps_hat, "eps", "eps_hat")
  ok, gap = _checks.gamma_increasing_ok(
      gamma_t, gamma_s, pair="s = t - 1/T",
      consequence="makes the diffusion loss negative")
  weight = 0.5 * num_steps * jnp.expm1(gap)
  return _checks.poison(
      ok, weight * _checks.sum_except_batch(jnp.square(eps - eps_hat)))


def nats_to_bpd(nats, num_dims: int):
  """Bits per dimension: nats / (D ln 2); ValueError unless num_dims >= 1."""
  num_dims = _checks.check_int(num_dims, "num_dims", minimum=1)
  return nats / (num_dims * math.log(2.0))


# ----------------------------------------------------------------------------
# Time sampling.
# ----------------------------------------------------------------------------
def sample_times(rng, batch_size: int, *, antithetic: bool = True,
                 num_steps: int = 0):
  """Draws t in [0, 1) for a batch: low-discrepancy if `antithetic` (VDM App. I.1).

  .. math::  t_i = (u_0 + i / B) \\bmod 1,\\quad u_0 \\sim U[0, 1)

  For a discrete-time model (`num_steps` = T > 0) t is rounded up to the grid
  {1/T, ..., 1}, and clamped so that s = t - 1/T >= 0 even if u_0 = 0.
  `jnp.arange(B) / B` is used instead of `arange(0, 1, 1/B)`, which returns B+1
  elements for some B (49, 98, 103, ...).
  """
  batch_size = _checks.check_int(batch_size, "batch_size", minimum=1)
  num_steps = _checks.check_int(num_steps, "num_steps", minimum=0)
  if antithetic:
    u0 = jax.random.uniform(rng, ())
    t = jnp.mod(u0 + jnp.arange(batch_size, dtype=jnp.float32) / batch_size, 1.0)
  else:
    t = jax.random.uniform(rng, (batch_size,))
  if num_steps:
    t = jnp.clip(jnp.ceil(t * num_steps) / num_steps, 1.0 / num_steps, 1.0)
  return t


# ----------------------------------------------------------------------------
# The VLB of a model given as callables.
# ----------------------------------------------------------------------------
class VLBTerms(NamedTuple):
  """Per-example terms of -VLB, each `[B]` nats."""
  diffusion: jax.Array
  prior: jax.Array
  recon: jax.Array

  @property
  def total(self):
    return self.diffusion + self.prior + self.recon


def diffusion_loss(rng, f, *, gamma_fn: schedules.GammaFn, eps_fn: EpsFn,
                   num_steps: int = 0, antithetic: bool = True, t=None):
  """One-sample Monte-Carlo estimate of the diffusion loss, per example.

  Args:
    rng: PRNG key for t (unless given) and eps.
    f: `[B, ...]` data in [-1, 1].
    gamma_fn: the schedule, t -> gamma(t), elementwise.
    eps_fn: `(z [B, ...], gamma [B]) -> eps_hat [B, ...]`.
    num_steps: T; 0 for the continuous-time loss L_inf.
    antithetic: low-discrepancy t sampling.
    t: optional `[B]` times (overrides sampling; for tests and variance studies).

  Returns:
    `[B]` nats.
  """
  num_steps = _checks.check_int(num_steps, "num_steps", minimum=0)
  _checks.check_floating(f, "f")
  t_rng, eps_rng = jax.random.split(rng)
  if t is None:
    t = sample_times(t_rng, f.shape[0], antithetic=antithetic, num_steps=num_steps)
  _checks.check_batch(t, f)
  eps = jax.random.normal(eps_rng, f.shape, jnp.float32)
  return diffusion_loss_at(f, eps, schedule_values(gamma_fn, t, num_steps),
                           eps_fn=eps_fn, num_steps=num_steps)


def schedule_values(gamma_fn: schedules.GammaFn, t, num_steps: int):
  """What the diffusion loss needs of the schedule at `[B]` times t.

  (gamma_t, gamma'_t) in continuous time (num_steps = 0), (gamma_t, gamma_s)
  with s = t - 1/T in discrete time.
  """
  num_steps = _checks.check_int(num_steps, "num_steps", minimum=0)
  if num_steps:
    return gamma_fn(t), gamma_fn(t - 1.0 / num_steps)
  return schedules.gamma_and_derivative(gamma_fn, t)


def diffusion_loss_at(f, eps, schedule_vals, *, eps_fn: EpsFn, num_steps: int = 0):
  """The diffusion loss for given noise and `schedule_values`; `[B]` nats."""
  num_steps = _checks.check_int(num_steps, "num_steps", minimum=0)
  gamma_t, other = schedule_vals
  z_t = _diffuse(f, eps, gamma_t)
  eps_hat = eps_fn(z_t, gamma_t)
  if num_steps:
    return diffusion_loss_discrete(eps, eps_hat, gamma_t, other, num_steps)
  return diffusion_loss_continuous(eps, eps_hat, other)


def _diffuse(f, eps, gamma):
  g = _checks.broadcast_to_data(gamma, f)
  return schedules.alpha(g) * f + schedules.sigma(g) * eps


def vlb_terms(rng, x_int, *, gamma_fn: schedules.GammaFn, eps_fn: EpsFn,
              vocab_size: int, num_steps: int = 0,
              antithetic: bool = True) -> VLBTerms:
  """The three terms of -VLB(x) for integer data, one Monte-Carlo sample each.

  Args:
    rng: PRNG key.
    x_int: `[B, ...]` integers in {0..vocab_size-1}.
    gamma_fn: schedule t -> gamma.
    eps_fn: noise-prediction network `(z, gamma [B]) -> eps_hat`.
    vocab_size: V (256 for 8-bit images, 17 for the digits).
    num_steps: T, or 0 for continuous time.
    antithetic: low-discrepancy t sampling.

  Returns:
    `VLBTerms` of `[B]` nats; `nats_to_bpd(terms.total, D)` gives bits/dim.

  Raises:
    ValueError: num_steps < 0 or vocab_size < 2 (at trace time); x_int outside
      [0, V - 1] or gamma_fn decreasing (concrete values; under `jit` these are
      `checkify` checks and the terms are NaN, see the module docstring).
  """
  num_steps = _checks.check_int(num_steps, "num_steps", minimum=0)
  vocab_size = _checks.check_vocab_size(vocab_size)
  _checks.check_min_rank(x_int, 2, "x_int [B, ...]")
  f = encode_discrete(x_int, vocab_size)
  diff_rng, recon_rng = jax.random.split(rng)
  eps_0 = jax.random.normal(recon_rng, f.shape, jnp.float32)
  prior, recon = endpoint_terms(x_int, eps_0, gamma_fn=gamma_fn,
                                vocab_size=vocab_size)
  return VLBTerms(
      diffusion=diffusion_loss(diff_rng, f, gamma_fn=gamma_fn, eps_fn=eps_fn,
                               num_steps=num_steps, antithetic=antithetic),
      prior=prior, recon=recon)


def endpoint_terms(x_int, eps_0, *, gamma_fn: schedules.GammaFn, vocab_size: int):
  """(prior KL, reconstruction loss), the terms that depend on gamma(0), gamma(1) only.

  Both are NaN under `jit` (ValueError when concrete) unless gamma(0) < gamma(1).
  """
  f = encode_discrete(x_int, vocab_size)
  gamma_0 = gamma_fn(jnp.zeros((), jnp.float32))
  gamma_1 = gamma_fn(jnp.ones((), jnp.float32))
  ok = schedules.check_increasing(gamma_0, gamma_1)
  return _checks.poison(ok, prior_kl(f, gamma_1),
                        reconstruction_loss(x_int, eps_0, gamma_0, vocab_size))


# ----------------------------------------------------------------------------
# Plain denoising losses, for users who want one piece alone.
# ----------------------------------------------------------------------------
def eps_mse(eps_hat, eps):
  """||eps - eps_hat||^2 per example; `[B]`."""
  _checks.check_same_shape(eps, eps_hat, "eps", "eps_hat")
  return _checks.sum_except_batch(jnp.square(eps - eps_hat))


def denoising_loss(pred, *, x, eps, gamma, parameterization: str = "eps",
                   weighting: str = "eps"):
  """Regression loss of a denoiser in any parameterisation with a standard weighting.

  The prediction is converted to eps-space and the loss is
  w(gamma) ||eps - eps_hat||^2, where the weighting names the space whose
  unweighted MSE it reproduces:

  =========  =======================  ==========================================
  weighting  w(gamma)                 equals
  =========  =======================  ==========================================
  'eps'      1                        ||eps - eps_hat||^2 (DDPM "simple")
  'x0'       SNR^-1 = e^gamma         ||x - x_hat||^2
  'v'        1 / alpha^2              ||v - v_hat||^2
  'score'    1 / sigma^2              ||s + eps/sigma||^2 (DSM, lambda = 1)
  'dsm'      1                        sigma^2 ||s + eps/sigma||^2 (score_sde)
  'snr_trunc' max(SNR, 1)             Min-SNR-style truncated SNR in x-space
  =========  =======================  ==========================================

  Args:
    pred: `[B, ...]` network output in `parameterization` space.
    x, eps: `[B, ...]` clean data and the noise used to make z.
    gamma: scalar or `[B]`.
    parameterization: 'eps', 'x0', 'v' or 'score'.
    weighting: a row of the table above.

  Returns:
    `[B]` weighted squared error.
  """
  _checks.check_same_shape(x, eps, "x", "eps")
  z = _diffuse(x, eps, gamma)
  eps_hat = parameterizations.convert(pred, z, gamma, source=parameterization,
                                      target="eps")
  g = jnp.asarray(gamma, jnp.float32)
  weights = {
      "eps": lambda: jnp.ones_like(g),
      "dsm": lambda: jnp.ones_like(g),
      "x0": lambda: jnp.exp(g),
      "v": lambda: 1.0 / schedules.alpha2(g),
      "score": lambda: 1.0 / schedules.sigma2(g),
      "snr_trunc": lambda: jnp.maximum(schedules.snr(g), 1.0) * jnp.exp(g),
  }
  if weighting not in weights:
    raise ValueError(f"weighting must be one of {sorted(weights)}, got {weighting!r}.")
  return weights[weighting]() * eps_mse(eps_hat, eps)


def denoising_score_matching(score, eps, sigma_t, *, weighting: str = "sigma2"):
  """DSM: lambda(t) ||s(z_t) - grad log q(z_t|x)||^2 with grad log q = -eps/sigma.

  weighting 'sigma2' (lambda = sigma^2, score_sde's default) gives
  ||sigma s + eps||^2; 'none' gives ||s + eps/sigma||^2. For likelihood
  weighting (lambda = g^2) see `vdm_jax.sde`.

  Returns `[B]`.
  """
  _checks.check_same_shape(score, eps, "score", "eps")
  sig = _checks.broadcast_to_data(sigma_t, score)
  if weighting == "sigma2":
    return _checks.sum_except_batch(jnp.square(sig * score + eps))
  if weighting == "none":
    return _checks.sum_except_batch(jnp.square(score + eps / sig))
  raise ValueError(f"weighting must be 'sigma2' or 'none', got {weighting!r}.")
