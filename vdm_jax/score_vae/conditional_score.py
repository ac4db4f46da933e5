"""Bayes' rule for scores: the ScoreVAE decoder score s(x_t, t) + grad log e(z|x_t, t).

For a latent `z` and a diffused input `x_t`,

.. math::

  \\log p_t(x_t \\mid z) = \\log p_t(x_t) + \\log p_t(z \\mid x_t) - \\log p(z)

and `log p(z)` does not depend on `x_t`, so

.. math::

  \\nabla_{x_t} \\log p_t(x_t \\mid z) = s_\\theta(x_t, t)
  + \\nabla_{x_t} \\log q_\\phi(z \\mid x_t, t),

with `s_theta` a (frozen) unconditional score model and `q_phi` the
time-dependent Gaussian encoder. No decoder network is trained: any sampler of
the reverse SDE or probability-flow ODE driven by this score decodes `z`.

The encoder term costs one encoder forward and one VJP per evaluation. Scores
are per example: the encoder must not mix examples (no batch statistics).

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
  Song et al., Score-Based Generative Modeling through Stochastic Differential
  Equations, https://arxiv.org/abs/2011.13456, 2021 (conditional scores, App. I).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.score_vae import encoder as encoder_lib

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]            # (x [B,...], t [B]) -> [B,...]
LogLikelihoodFn = Callable[[Array, Array, Array], Array]  # (x_t, t, z) -> [B]


def _check_inputs(x_t, t, z):
  _checks.check_min_rank(x_t, 2, "x_t [B, ...]")
  _checks.check_floating(x_t, "x_t")
  _checks.check_rank(t, 1, "t [B]")
  _checks.check_batch(t, x_t, "t", "x_t")
  _checks.check_rank(z, 2, "latent z [B, K]")
  if z.shape[0] != x_t.shape[0]:
    raise ValueError(
        f"latent z has batch {z.shape[0]} but x_t has batch {x_t.shape[0]}.")


def bayes_rule_score(prior_score: ScoreFn, log_likelihood: LogLikelihoodFn,
                     x_t, t, z, *, guidance_scale: float = 1.0):
  """Conditional score from an unconditional score and a latent likelihood.

  .. math::

    \\nabla_{x_t} \\log p_t(x_t \\mid z) = s(x_t, t)
    + w\\, \\nabla_{x_t} \\log p_t(z \\mid x_t)

  with `s` = `prior_score`, `log p_t(z | x_t)` = `log_likelihood` and
  `w` = `guidance_scale` (1 is Bayes' rule; other values sharpen or flatten the
  conditioning, as classifier guidance does).

  Args:
    prior_score: `(x_t [B, ...], t [B]) -> [B, ...]` unconditional score.
    log_likelihood: `(x_t, t, z) -> [B]` log-density of `z` given `x_t`; it must
      treat examples independently (its gradient is taken through the sum).
    x_t: `[B, ...]` diffused inputs.
    t: `[B]` times.
    z: `[B, K]` latents.
    guidance_scale: weight w of the likelihood score.

  Returns:
    `[B, ...]` conditional score, same shape as `x_t`.
  """
  _check_inputs(x_t, t, z)
  s = prior_score(x_t, t)
  _checks.check_same_shape(s, x_t, "prior score", "x_t")
  grad_ll = jax.grad(lambda x: jnp.sum(log_likelihood(x, t, z)))(x_t)
  return s + guidance_scale * grad_ll


def encoder_log_likelihood(encoder_apply: Callable[..., Any], encoder_params, *,
                           include_log_var: bool = True) -> LogLikelihoodFn:
  """`(x_t, t, z) -> log q_phi(z | x_t, t)` `[B]` for a Gaussian encoder.

  Args:
    encoder_apply: `(params, x [B, ...], t [B]) -> (mean [B, K], log_var [B, K])`.
    encoder_params: the encoder's parameters.
    include_log_var: use the exact Gaussian density (True) or only its quadratic
      part, as the official ScoreVAE code does (False; drops `-1/2 grad ell`).
  """
  def log_likelihood(x_t, t, z):
    mean, log_var = encoder_apply(encoder_params, x_t, t)
    return encoder_lib.gaussian_log_prob(z, mean, log_var,
                                         include_log_var=include_log_var)
  return log_likelihood


def make_conditional_score(prior_score_apply: Callable[..., Array],
                           encoder_apply: Callable[..., Any], *,
                           include_log_var: bool = True,
                           guidance_scale: float = 1.0):
  """Builds the ScoreVAE decoder score as a pure function of all its inputs.

  .. math::

    s(x_t, z, t) = s_\\theta(x_t, t) + w\\, \\nabla_{x_t}
    \\log q_\\phi(z \\mid x_t, t)

  Args:
    prior_score_apply: `(prior_params, x [B, ...], t [B]) -> score [B, ...]`,
      the unconditional score model (wrap an eps-model with
      `vdm_jax.score_vae.prior.score_from_eps`).
    encoder_apply: `(encoder_params, x, t) -> (mean [B, K], log_var [B, K])`.
    include_log_var: exact encoder density (see `encoder_log_likelihood`).
    guidance_scale: w; 1 is Bayes' rule.

  Returns:
    `score(prior_params, encoder_params, x_t [B, ...], t [B], z [B, K])
    -> [B, ...]`.
  """
  def score(prior_params, encoder_params, x_t, t, z):
    return bayes_rule_score(
        lambda x, s: prior_score_apply(prior_params, x, s),
        encoder_log_likelihood(encoder_apply, encoder_params,
                               include_log_var=include_log_var),
        x_t, t, z, guidance_scale=guidance_scale)
  return score


def bind_latent(score, prior_params, encoder_params, z) -> ScoreFn:
  """Fixes parameters and latent: returns `score_fn(x, t)` for SDE samplers.

  Args:
    score: the function returned by `make_conditional_score`.
    prior_params: frozen prior parameters.
    encoder_params: encoder parameters.
    z: `[B, K]` latents, one per sample to decode.

  Returns:
    `score_fn(x [B, ...], t [B]) -> [B, ...]`, the vdm_jax.sde score interface.
  """
  _checks.check_rank(z, 2, "latent z [B, K]")
  return lambda x, t: score(prior_params, encoder_params, x, t, z)
