"""Ancestral sampling of a discrete-time VDM and generation of discrete data.

The reverse model is p(z_s|z_t) = q(z_s|z_t, x = x_hat(z_t; t)) (VDM eq. 9-10,
App. A eq. 26-33). With c = 1 - SNR_t/SNR_s = -expm1(gamma_s - gamma_t):

.. math::

  z_s = \\frac{\\alpha_s}{\\alpha_t}(z_t - \\sigma_t c\\, \\hat\\epsilon(z_t; t))
        + \\sigma_s \\sqrt{c}\\, \\xi, \\qquad \\xi \\sim N(0, I),

stepping t = (T - i)/T -> s = (T - i - 1)/T for i = 0..T-1 from z_1 ~ N(0, I).
T may differ from the T the model was trained with (a continuous-time model can
be sampled with any T). Discrete data are then read from p(x|z_0), by argmax or
by sampling the categorical.

A decreasing schedule (gamma_s > gamma_t) would make c < 0 and the step's
standard deviation NaN, which `decode` used to turn into an all-zero image. It
is an error instead: `ValueError` when the schedule's values are concrete, and
under `jit` a `checkify` check (run the sampler through `vdm_jax.checked` to
raise) whose failure makes the latents NaN and the decoded pixels -1, never a
valid-looking image.

Reference: Kingma et al., Variational Diffusion Models,
https://arxiv.org/abs/2107.00630, 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import losses
from vdm_jax import schedules


def reverse_step(rng, z_t, gamma_t, gamma_s, eps_hat):
  """One ancestral step z_t -> z_s given eps_hat(z_t); gammas scalar or `[B]`.

  Raises ValueError (a `checkify` check and NaN under `jit`) unless
  gamma_t >= gamma_s.
  """
  g_t = _checks.broadcast_to_data(gamma_t, z_t)
  g_s = _checks.broadcast_to_data(gamma_s, z_t)
  ok, _ = _checks.gamma_increasing_ok(
      g_t, g_s, pair="s < t", consequence="makes the step's variance negative")
  c = -jnp.expm1(g_s - g_t)
  # alpha_s / alpha_t in log space: both are ~1 near t = 0.
  ratio = jnp.exp(0.5 * (schedules.log_alpha2(g_s) - schedules.log_alpha2(g_t)))
  mean = ratio * (z_t - schedules.sigma(g_t) * c * eps_hat)
  std = jnp.sqrt(schedules.sigma2(g_s) * c)
  return _checks.poison(ok, mean + std * jax.random.normal(rng, z_t.shape, z_t.dtype))


def ancestral_sample(rng, shape, *, gamma_fn: schedules.GammaFn,
                     eps_fn: losses.EpsFn, num_steps: int):
  """Samples z_0 with T = `num_steps` ancestral steps from z_1 ~ N(0, I).

  Deterministic for a given `rng` (step i uses `fold_in(rng, i)`). Jittable:
  the loop is a `lax.fori_loop`, so compile time does not grow with T.

  Args:
    rng: PRNG key.
    shape: `(B, ...)` shape of the samples.
    gamma_fn: schedule t -> gamma.
    eps_fn: `(z [B, ...], gamma [B]) -> eps_hat`.
    num_steps: T >= 1.

  Returns:
    `[B, ...]` float32 z_0.

  Raises:
    ValueError: num_steps < 1; gamma_fn(0) >= gamma_fn(1) (when concrete;
      under `jit` a `checkify` check, and z_0 is NaN).
  """
  num_steps = _checks.check_int(num_steps, "ancestral_sample: num_steps", minimum=1)
  ok = schedules.check_increasing(gamma_fn(jnp.zeros((), jnp.float32)),
                                  gamma_fn(jnp.ones((), jnp.float32)))
  init_rng, loop_rng = jax.random.split(rng)
  z = jax.random.normal(init_rng, shape, jnp.float32)
  batch = shape[0]

  def body(i, z):
    t = (num_steps - i) / num_steps
    s = (num_steps - i - 1) / num_steps
    gamma_t = jnp.full((batch,), gamma_fn(jnp.asarray(t, jnp.float32)))
    gamma_s = jnp.full((batch,), gamma_fn(jnp.asarray(s, jnp.float32)))
    return reverse_step(jax.random.fold_in(loop_rng, i), z, gamma_t, gamma_s,
                        eps_fn(z, gamma_t))

  return _checks.poison(ok, jax.lax.fori_loop(0, num_steps, body, z))


def decode(rng, z_0, gamma_0, vocab_size: int, *, sample: bool = False):
  """Discrete data from p(x|z_0): argmax (default) or a categorical draw.

  Returns `[B, ...]` int32 values in {0..vocab_size-1}.

  Raises:
    ValueError: vocab_size < 2; a non-finite z_0 (when concrete; under `jit` a
      `checkify` check, and every pixel is -1 instead of the argmax of NaN
      logits, which is 0 and looks like a black image).
  """
  vocab_size = _checks.check_vocab_size(vocab_size)
  ok = _checks.check_values(
      jnp.all(jnp.isfinite(z_0)),
      "z_0 must be finite, got {bad} non-finite values (a decreasing gamma_fn "
      "gives NaN latents).", bad=jnp.sum(~jnp.isfinite(z_0)))
  z_rescaled = z_0 / schedules.alpha(_checks.broadcast_to_data(gamma_0, z_0))
  logits = losses.decoder_logits(z_rescaled, gamma_0, vocab_size)
  if sample:
    x = jax.random.categorical(rng, logits).astype(jnp.int32)
  else:
    x = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  return x if _checks.is_concrete(ok) else jnp.where(ok, x, -1)


def generate(rng, shape, *, gamma_fn: schedules.GammaFn, eps_fn: losses.EpsFn,
             vocab_size: int, num_steps: int, sample_softmax: bool = False):
  """Ancestral sampling followed by `decode`: `[B, ...]` int32 samples."""
  vocab_size = _checks.check_vocab_size(vocab_size)
  z_rng, x_rng = jax.random.split(rng)
  z_0 = ancestral_sample(z_rng, shape, gamma_fn=gamma_fn, eps_fn=eps_fn,
                         num_steps=num_steps)
  return decode(x_rng, z_0, gamma_fn(jnp.zeros((), jnp.float32)), vocab_size,
                sample=sample_softmax)
