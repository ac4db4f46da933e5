"""The discrete-time VDM negative ELBO that the bits-back codec's rate converges to.

Kept here, with the codec, so the benchmark compares the file size against exactly
the quantity the coder targets; ``vdm_jax.losses`` holds the same formulas for
training and can replace this helper once both are checked to agree.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import losses


class NelboTerms(NamedTuple):
  """Per-example terms of the T-step negative ELBO, in nats, each shape [B]."""
  recon: jax.Array
  prior: jax.Array
  diffusion: jax.Array

  @property
  def total(self):
    return self.recon + self.prior + self.diffusion


def discrete_time_nelbo(rng, x_int, *, eps_fn: Callable, gamma_fn: Callable, vocab_size: int,
                        num_steps: int, full_sum: bool = True) -> NelboTerms:
  r"""Unbiased estimate of the T-step VDM negative ELBO of integer images (nats).

  With f = 2(x + 1/2)/V - 1, t_i = i/T, gamma_i = gamma(t_i) and z_i = alpha_i f +
  sigma_i eps_i (Kingma et al. 2021, Variational Diffusion Models, §3-4):

  .. math::

    -\mathrm{ELBO}(x) = \underbrace{E[-\log p(x|z_0)]}_{\text{recon}}
      + \underbrace{\mathrm{KL}(q(z_1|x)\,\|\,N(0,I))}_{\text{prior}}
      + \underbrace{\sum_{i=1}^{T} \tfrac12\,\mathrm{expm1}(\gamma_i - \gamma_{i-1})\,
        E\|\epsilon_i - \hat\epsilon(z_i;\gamma_i)\|^2}_{\text{diffusion}}

  where p(x|z_0) is the softmax over k of -1/2 (z_0/alpha_0 - c_k)^2 e^{-gamma_0},
  c_k = (2k+1)/V - 1, evaluated at z_0/alpha_0 = f + e^{gamma_0/2} eps_0.
  This is the expected net codelength of the Bit-Swap coder with T steps, up to
  latent discretisation and initial bits.

  Args:
    rng: a ``jax.random`` key.
    x_int: [B, ...] integer images in [0, V).
    eps_fn: ``eps_fn(z [B, ...] float32, gamma [B] float32) -> eps_hat [B, ...]``.
    gamma_fn: schedule t -> gamma(t).
    vocab_size: V.
    num_steps: T.
    full_sum: if True, sum all T diffusion terms (T network calls, low variance);
      if False, use the one-sample estimate T * term_i with i ~ U{1..T} drawn
      per example.

  Returns:
    :class:`NelboTerms` with fields of shape [B], in nats.

  Raises:
    ValueError: num_steps < 1 or vocab_size < 2; x_int outside [0, V - 1] or a
      gamma_fn that decreases on the grid (concrete values; under `jit` these
      are `checkify` checks and the terms are NaN, see `vdm_jax.checked`).

  References:
    Kingma, Salimans, Poole, Ho, Variational Diffusion Models,
    https://arxiv.org/abs/2107.00630, 2021 (eq. 11-14).
  """
  if int(num_steps) != num_steps or num_steps < 1:
    raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}.")
  if not jnp.issubdtype(jnp.asarray(x_int).dtype, jnp.integer):
    raise TypeError(f"x_int must be integer pixels, got dtype {jnp.asarray(x_int).dtype}.")
  _checks.check_min_rank(x_int, 2, "x_int [B, ...]")
  b = x_int.shape[0]
  # Checks vocab_size >= 2 and the range of x_int (a negative pixel would wrap
  # around in take_along_axis below).
  f = losses.encode_discrete(x_int, vocab_size)
  t_grid = jnp.arange(num_steps + 1, dtype=jnp.float32) / num_steps
  g = jnp.asarray(gamma_fn(t_grid), jnp.float32)
  steps = jnp.diff(g)
  increasing = _checks.check_values(
      jnp.all(steps >= 0),
      "gamma_fn must be increasing in t on the grid t_i = i/T (a decreasing "
      "schedule makes the diffusion term negative), got min(gamma_i - gamma_{{i-1}}) "
      "= {gap}.", gap=jnp.min(steps))
  g0, g1 = g[0], g[-1]
  rng_0, rng_diff = jax.random.split(rng)
  # The three terms are the VLB's own (`vdm_jax.losses`), on the grid t_i = i/T.
  recon = losses.reconstruction_loss(x_int, jax.random.normal(rng_0, f.shape), g0,
                                     vocab_size)
  prior = losses.prior_kl(f, g1)

  def term(i, key):
    # i: scalar step (full sum) or [B] steps (one per example); one step of the
    # sum, i.e. L_T with T = 1.
    g_t = jnp.broadcast_to(g[i], (b,))
    g_s = jnp.broadcast_to(g[i - 1], (b,))
    eps = jax.random.normal(key, f.shape)
    return losses.diffusion_loss_at(f, eps, (g_t, g_s), eps_fn=eps_fn, num_steps=1)

  if full_sum:
    keys = jax.random.split(rng_diff, num_steps)
    steps = jnp.arange(1, num_steps + 1)
    diffusion = jax.lax.map(lambda ik: term(ik[0], ik[1]), (steps, keys)).sum(axis=0)
  else:
    rng_i, rng_e = jax.random.split(rng_diff)
    i = jax.random.randint(rng_i, (b,), 1, num_steps + 1)
    diffusion = num_steps * term(i, rng_e)
  return NelboTerms(*_checks.poison(increasing, recon, prior, diffusion))

