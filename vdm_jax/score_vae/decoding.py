"""ScoreVAE decoding: sample p(x | z) by the reverse SDE, or decode by the PF-ODE.

Decoding integrates, from `x_T ~ p_T` down to `t_min`, the reverse-time SDE or
the probability-flow ODE of the forward SDE, driven by the conditional score
`s(x_t, z, t) = s_theta(x_t, t) + grad log q_phi(z | x_t, t)`:

.. math::

  dx = [f(x, t) - c\\, g(t)^2 s(x, z, t)]\\,dt + \\mathbb{1}[c = 1]\\, g(t)\\,
  d\\bar w, \\qquad c \\in \\{1, \\tfrac12\\}.

`make_decoder` decodes with the `vdm_jax.sde` samplers: 'sde' is
`samplers.pc_sample` with the Euler--Maruyama predictor (stochastic decoding, a
draw from `p(x | z)`); 'ode' is `samplers.ode_sample` with Heun's method
(deterministic decoding: the map from `x_T` to `x_0` is a bijection, so a fixed
`x_T` gives a deterministic decoder). Any other sampler of that toolkit taking
`score_fn(x, t)` can be passed instead.

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
    tweedie: end the 'sde'/'ode' decoders with
      `vdm_jax.sde.score_fns.tweedie_denoise` at `t_min`.
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
    shape = (z.shape[0],) + data_shape
    if method == "sde":
      return samplers.pc_sample(rng, score_fn, sde, shape, n_steps=n_steps,
                                t_end=t_min, tweedie=tweedie)[0]
    # ode_sample draws x_T from its key: the first half of a split keeps the
    # x_T (and so the decoded images) of the earlier in-module Heun solver.
    return samplers.ode_sample(jax.random.split(rng)[0], score_fn, sde, shape,
                               solver="heun", n_steps=n_steps, t_end=t_min,
                               tweedie=tweedie)[0]

  return decode
