"""ScoreVAE decoding: sample p(x | z) by the reverse SDE, or decode by the PF-ODE.

Decoding integrates, from `x_T ~ p_T` down to `t_min`, the reverse-time SDE or
the probability-flow ODE of the forward SDE, driven by the conditional score
`s(x_t, z, t) = s_theta(x_t, t) + grad log q_phi(z | x_t, t)`:

.. math::

  dx = [f(x, t) - c\\, g(t)^2 s(x, z, t)]\\,dt + \\mathbb{1}[c = 1]\\, g(t)\\,
  d\\bar w, \\qquad c \\in \\{1, \\tfrac12\\}.

`sample_reverse_sde` is an Euler--Maruyama sampler (stochastic decoding, a draw
from `p(x | z)`); `solve_probability_flow` is Heun's method on the ODE
(deterministic decoding, the map from `x_T` to `x_0` is a bijection, so a fixed
`x_T` gives a deterministic decoder). Both only use the `vdm_jax.sde` interface
(`reverse`, `prior_sample`, `T`, `eps`) and run in one `lax.scan`, so they can be
swapped for any sampler of that toolkit taking `score_fn(x, t)`.

References:
  Song et al., Score-Based Generative Modeling through Stochastic Differential
  Equations, https://arxiv.org/abs/2011.13456, 2021 (Sec. 4).
  Karras et al., Elucidating the Design Space of Diffusion-Based Generative
  Models, https://arxiv.org/abs/2206.00364, 2022 (Heun's method).
  Batzolis, Stanczuk, Schonlieb, ScoreVAE, https://arxiv.org/abs/2304.12141, 2023.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.sde import samplers
from vdm_jax.score_vae import conditional_score

Array = jax.Array


def _time_grid(sde, n_steps: int, t_min: float | None):
  if n_steps < 1:
    raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
  t_min = sde.eps if t_min is None else float(t_min)
  if not 0.0 <= t_min < sde.T:
    raise ValueError(f"t_min must be in [0, T={sde.T}), got {t_min}.")
  return jnp.linspace(sde.T, t_min, n_steps + 1)


def tweedie_denoise(sde, score_fn, x, t):
  """Posterior mean of the clean data from a noisy state (Tweedie's formula).

  .. math::

    \\mathbb{E}[x_0 \\mid x_t] = \\big(x_t + s_t^2\\, \\nabla_{x_t} \\log p_t(x_t)\\big)
    / a_t

  for the Gaussian kernel `p_0t(x_t | x_0) = N(a_t x_0, s_t^2 I)`; with the
  conditional score of ScoreVAE it is `E[x_0 | x_t, z]`. Used as the last step
  of decoding so that the remaining noise at `t_min` is removed, not kept.

  Args:
    sde: a `vdm_jax.sde` SDE (`marginal_coeffs`).
    score_fn: `(x [B, ...], t [B]) -> [B, ...]`.
    x: `[B, ...]` state at time `t`.
    t: `[B]` times.

  Returns:
    `[B, ...]` the denoised mean.

  References:
    Efron, Tweedie's Formula and Selection Bias, JASA 106 (496), 2011.
  """
  _checks.check_min_rank(x, 2, "x [B, ...]")
  _checks.check_rank(t, 1, "t [B]")
  _checks.check_batch(t, x, "t", "x")
  a, s = sde.marginal_coeffs(t)
  a, s = _checks.broadcast_to_data(a, x), _checks.broadcast_to_data(s, x)
  return (x + jnp.square(s) * score_fn(x, t)) / a


def sample_reverse_sde(sde, score_fn, rng, x_T, *, n_steps: int,
                       t_min: float | None = None, denoise: bool = True,
                       tweedie: bool = False):
  """Euler--Maruyama on the reverse-time SDE from `x_T` at T down to `t_min`.

  .. math::

    x_{t - \\Delta} = x_t - \\bar f(x_t, t)\\,\\Delta + g(t)\\sqrt{\\Delta}\\,\\xi

  Args:
    sde: a `vdm_jax.sde` SDE.
    score_fn: `(x [B, ...], t [B]) -> [B, ...]`.
    rng: PRNG key for the Brownian increments.
    x_T: `[B, ...]` start, usually `sde.prior_sample(rng, shape)`.
    n_steps: number of Euler--Maruyama steps.
    t_min: end time (defaults to `sde.eps`).
    denoise: return the noise-free mean of the last step.
    tweedie: instead, end with `tweedie_denoise` at `t_min` (E[x_0 | x_{t_min}]).

  Returns:
    `[B, ...]` samples at `t_min` (or their Tweedie means).
  """
  _checks.check_min_rank(x_T, 2, "x_T [B, ...]")
  ts = _time_grid(sde, n_steps, t_min)
  rev = sde.reverse(score_fn, probability_flow=False)
  b = x_T.shape[0]

  def step(carry, inp):
    x, _ = carry
    t, t_next, key = inp
    noise = jax.random.normal(key, x.shape, x.dtype)
    x_new, mean = samplers.euler_maruyama_step(rev, x, jnp.full((b,), t), t - t_next,
                                               noise)
    return (x_new, mean), None

  keys = jax.random.split(rng, n_steps)
  (x, mean), _ = jax.lax.scan(step, (x_T, x_T), (ts[:-1], ts[1:], keys))
  if tweedie:
    return tweedie_denoise(sde, score_fn, x, jnp.full((b,), ts[-1]))
  return mean if denoise else x


def solve_probability_flow(sde, score_fn, x_T, *, n_steps: int,
                           t_min: float | None = None, tweedie: bool = False):
  """Heun's (2nd-order) method on the probability-flow ODE from T to `t_min`.

  .. math::

    \\frac{dx}{dt} = f(x, t) - \\tfrac12 g(t)^2 s(x, t)

  Args:
    sde: a `vdm_jax.sde` SDE.
    score_fn: `(x [B, ...], t [B]) -> [B, ...]`.
    x_T: `[B, ...]` start.
    n_steps: number of Heun steps (2 score evaluations each, 1 on the last).
    t_min: end time (defaults to `sde.eps`).
    tweedie: end with `tweedie_denoise` at `t_min`.

  Returns:
    `[B, ...]` the ODE solution at `t_min` (deterministic in `x_T`).
  """
  _checks.check_min_rank(x_T, 2, "x_T [B, ...]")
  ts = _time_grid(sde, n_steps, t_min)
  ode = sde.reverse(score_fn, probability_flow=True)
  b = x_T.shape[0]

  def velocity(x, t):
    return ode.drift_diffusion(x, jnp.full((b,), t))[0]

  def step(x, inp):
    t, t_next = inp
    dt = t - t_next
    d1 = velocity(x, t)
    x_euler = x - d1 * dt
    d2 = velocity(x_euler, t_next)
    return x - 0.5 * (d1 + d2) * dt, None

  x, _ = jax.lax.scan(step, x_T, (ts[:-1], ts[1:]))
  if tweedie:
    return tweedie_denoise(sde, score_fn, x, jnp.full((b,), ts[-1]))
  return x


def encode(encoder_apply: Callable, encoder_params, x0, rng=None):
  """Latents of clean data from the t = 0 encoder q_phi(z | x_0).

  Args:
    encoder_apply: `(params, x, t) -> (mean [B, K], log_var [B, K])`.
    encoder_params: encoder parameters.
    x0: `[B, ...]` data.
    rng: if given, draw `z ~ q(z | x0)`; otherwise return the mean.

  Returns:
    `[B, K]` latents.
  """
  mean, log_var = encoder_apply(encoder_params, x0, jnp.zeros((x0.shape[0],)))
  if rng is None:
    return mean
  return mean + jnp.exp(0.5 * log_var) * jax.random.normal(rng, mean.shape)


def make_decoder(sde, score, data_shape: Sequence[int], *, n_steps: int = 100,
                 method: str = "sde", t_min: float | None = None,
                 sampler: Callable | None = None, tweedie: bool = False):
  """Builds `decode(prior_params, encoder_params, z [B, K], rng) -> x [B, ...]`.

  Args:
    sde: the forward SDE of the prior.
    score: conditional score from `conditional_score.make_conditional_score`.
    data_shape: shape of one example.
    n_steps: sampler steps.
    method: 'sde' (stochastic, Euler--Maruyama) or 'ode' (probability flow,
      Heun; deterministic given rng, which only draws x_T). Ignored when
      `sampler` is given.
    t_min: end time (defaults to `sde.eps`).
    sampler: optional sampler of the `vdm_jax.sde.samplers` form
      `sampler(rng, score_fn, sde, shape) -> (x, n_evals)`, e.g.
      ``functools.partial(samplers.pc_sample, corrector='langevin')`` or
      ``functools.partial(samplers.ode_sample, solver='tsit5')``.
    tweedie: end the 'sde'/'ode' decoders with `tweedie_denoise` at `t_min`.
  """
  if sampler is None and method not in ("sde", "ode"):
    raise ValueError(f"method must be 'sde' or 'ode', got {method!r}.")
  data_shape = tuple(int(d) for d in data_shape)

  def decode(prior_params, encoder_params, z, rng):
    _checks.check_rank(z, 2, "latent z [B, K]")
    score_fn = conditional_score.bind_latent(score, prior_params,
                                             encoder_params, z)
    if sampler is not None:
      return sampler(rng, score_fn, sde, (z.shape[0],) + data_shape)[0]
    rng_T, rng_path = jax.random.split(rng)
    x_T = sde.prior_sample(rng_T, (z.shape[0],) + data_shape)
    if method == "sde":
      return sample_reverse_sde(sde, score_fn, rng_path, x_T, n_steps=n_steps,
                                t_min=t_min, tweedie=tweedie)
    return solve_probability_flow(sde, score_fn, x_T, n_steps=n_steps,
                                  t_min=t_min, tweedie=tweedie)

  return decode
