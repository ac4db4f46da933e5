"""ScoreVAE training objective: DSM of the composed score plus beta * KL.

Only the encoder `phi` is trained; the diffusion prior `theta` is frozen:

.. math::

  \\mathcal{L}(\\phi) = \\mathbb{E}_{x_0}\\Big[\\tfrac12\\, (T - \\epsilon)\\,
  \\mathbb{E}_{t \\sim U(\\epsilon, T),\\, x_t \\mid x_0,\\, z \\sim q_\\phi(z|x_0, 0)}
  w(t)\\, \\big\\| s_\\theta(x_t, t) + \\nabla_{x_t} \\log q_\\phi(z | x_t, t)
  - \\nabla_{x_t} \\log p_{0t}(x_t | x_0) \\big\\|^2
  + \\beta\\, \\mathrm{KL}\\big(q_\\phi(z|x_0, 0) \\,\\|\\, \\mathcal{N}(0, I)\\big)\\Big]

with `x_t = m_t(x_0) + sigma_t * eps`, so the DSM target is `-eps / sigma_t`,
the norm summed over data dimensions, and `w(t)` either `sigma_t^2`
('sigma2', the weighting of the paper-era code: `1/2 ||sigma_t s + eps||^2`)
or `g(t)^2` ('likelihood', for which the first term bounds `-log p(x_0 | z)`
up to a constant, Song et al. 2021). The `(T - eps)` factor makes the t-average
an estimate of the time integral.

The prior is frozen twice: its parameters pass through `jax.lax.stop_gradient`
and the training step differentiates only the encoder argument.

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
  Song, Durkan, Murray, Ermon, Maximum Likelihood Training of Score-Based
  Diffusion Models, https://arxiv.org/abs/2101.09258, 2021.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.score_vae import conditional_score
from vdm_jax.score_vae import encoder as encoder_lib

_WEIGHTINGS = ("sigma2", "likelihood")


def make_score_dsm(sde, score: Callable[..., Any], *, weighting: str = "sigma2",
                   t_min: float | None = None):
  """DSM of any latent-conditional score for *given* latents, per example.

  .. math::

    \\ell(x_0, z, t, \\epsilon) = \\tfrac12 (T - t_{min})\\, w(t)
    \\big\\| s(x_t, z, t) + \\epsilon / \\sigma_t \\big\\|^2

  Args:
    sde: a `vdm_jax.sde` SDE (`marginal`, `drift_diffusion`, `T`, `eps`).
    score: `score(prior_params, cond_params, x_t, t, z) -> [B, ...]`, e.g. from
      `conditional_score.make_conditional_score` (cond = encoder parameters)
      or `correction.make_corrected_score` (cond = (encoder, correction)).
    weighting: 'sigma2' (w = sigma_t^2) or 'likelihood' (w = g(t)^2).
    t_min: smallest time; defaults to `sde.eps`.

  Returns:
    `dsm(cond_params, prior_params, x0 [B, ...], z [B, K], t [B],
    noise [B, ...]) -> [B]` in nats (per example, summed over dimensions); the
    prior parameters pass through `stop_gradient`.
  """
  if weighting not in _WEIGHTINGS:
    raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}.")
  t_min = sde.eps if t_min is None else float(t_min)
  if not 0.0 <= t_min < sde.T:
    raise ValueError(f"t_min must be in [0, T={sde.T}), got {t_min}.")

  def dsm(cond_params, prior_params, x0, z, t, noise):
    _checks.check_floating(x0, "x0")
    _checks.check_same_shape(x0, noise, "x0", "noise")
    _checks.check_rank(t, 1, "t [B]")
    _checks.check_batch(t, x0, "t", "x0")
    prior_params = jax.lax.stop_gradient(prior_params)
    mean, std = sde.marginal(x0, t)
    std_b = _checks.broadcast_to_data(std, x0)
    x_t = mean + std_b * noise
    s = score(prior_params, cond_params, x_t, t, z)
    if weighting == "sigma2":
      err = _checks.sum_except_batch(jnp.square(std_b * s + noise))
    else:
      _, g = sde.drift_diffusion(x_t, t)
      err = jnp.square(g) * _checks.sum_except_batch(
          jnp.square(s + noise / std_b))
    return 0.5 * (sde.T - t_min) * err

  return dsm


def make_latent_dsm(sde, prior_score_apply: Callable[..., Any],
                    encoder_apply: Callable[..., Any], *,
                    weighting: str = "sigma2", include_log_var: bool = True,
                    t_min: float | None = None):
  """`make_score_dsm` of the ScoreVAE score s_theta + grad log q_phi.

  Args:
    sde, weighting, t_min: as in `make_score_dsm`.
    prior_score_apply: `(prior_params, x, t) -> score`, frozen.
    encoder_apply: `(encoder_params, x, t) -> (mean [B, K], log_var [B, K])`.
    include_log_var: exact encoder density in the score (see
      `conditional_score.encoder_log_likelihood`).

  Returns:
    `dsm(encoder_params, prior_params, x0 [B, ...], z [B, K], t [B],
    noise [B, ...]) -> [B]` in nats (per example, summed over dimensions).
  """
  score = conditional_score.make_conditional_score(
      prior_score_apply, encoder_apply, include_log_var=include_log_var)
  return make_score_dsm(sde, score, weighting=weighting, t_min=t_min)


def make_scorevae_terms(sde, prior_score_apply, encoder_apply, *,
                        beta: float, weighting: str = "sigma2",
                        include_log_var: bool = True,
                        t_min: float | None = None):
  """Deterministic ScoreVAE loss terms given all the randomness.

  Args:
    sde, prior_score_apply, encoder_apply, weighting, include_log_var, t_min:
      as in `make_latent_dsm`.
    beta: weight of the latent KL (>= 0).

  Returns:
    `terms(encoder_params, prior_params, x0 [B, ...], t [B], noise [B, ...],
    latent_noise [B, K]) -> dict` with per-example `[B]` entries 'dsm', 'kl'
    and 'loss' = dsm + beta * kl (nats), where `z = mu(x0, 0) + exp(ell/2) *
    latent_noise` is drawn from the encoder at t = 0.
  """
  if beta < 0:
    raise ValueError(f"beta must be >= 0, got {beta}.")
  dsm = make_latent_dsm(sde, prior_score_apply, encoder_apply,
                        weighting=weighting, include_log_var=include_log_var,
                        t_min=t_min)

  def terms(encoder_params, prior_params, x0, t, noise, latent_noise):
    mean, log_var = encoder_apply(encoder_params, x0, jnp.zeros_like(t))
    z = encoder_lib.sample_latent(mean, log_var, latent_noise)
    d = dsm(encoder_params, prior_params, x0, z, t, noise)
    kl = encoder_lib.kl_to_standard_normal(mean, log_var)
    return {"dsm": d, "kl": kl, "loss": d + beta * kl}

  return terms


def _check_latent_shape(shape, batch: int, latent_dim: int):
  if tuple(shape) != (batch, latent_dim):
    raise ValueError(
        f"encoder outputs latents of shape {tuple(shape)}, expected "
        f"[B, latent_dim] = {(batch, latent_dim)}; latent_dim mismatch.")


def _draw(rng, x0, latent_dim: int, t_lo: float, t_hi: float):
  """Times t ~ U(t_lo, t_hi) [B], data noise [B, ...], latent noise [B, K]."""
  rng_t, rng_x, rng_z = jax.random.split(rng, 3)
  b = x0.shape[0]
  t = jax.random.uniform(rng_t, (b,), minval=t_lo, maxval=t_hi)
  noise = jax.random.normal(rng_x, x0.shape, x0.dtype)
  latent_noise = jax.random.normal(rng_z, (b, latent_dim), x0.dtype)
  return t, noise, latent_noise


def make_scorevae_loss(sde, prior_score_apply, encoder_apply, *,
                       latent_dim: int, beta: float, weighting: str = "sigma2",
                       include_log_var: bool = True,
                       t_min: float | None = None):
  """The ScoreVAE loss with its randomness drawn from one rng.

  Args:
    latent_dim: K; the encoder's latent size (checked at trace time).
    Others: as in `make_scorevae_terms`.

  Returns:
    `loss_fn(encoder_params, prior_params, rng, x0 [B, ...]) -> (loss [B],
    terms dict)`, per example in nats; differentiate with respect to the
    first argument only (the prior is frozen).
  """
  terms_fn = make_scorevae_terms(
      sde, prior_score_apply, encoder_apply, beta=beta, weighting=weighting,
      include_log_var=include_log_var, t_min=t_min)
  t_lo = sde.eps if t_min is None else float(t_min)

  def loss_fn(encoder_params, prior_params, rng, x0):
    _checks.check_min_rank(x0, 2, "x0 [B, ...]")
    b = x0.shape[0]
    out = jax.eval_shape(encoder_apply, encoder_params, x0, jnp.zeros((b,)))
    _check_latent_shape(out[0].shape, b, latent_dim)
    t, noise, latent_noise = _draw(rng, x0, latent_dim, t_lo, sde.T)
    terms = terms_fn(encoder_params, prior_params, x0, t, noise, latent_noise)
    return terms["loss"], terms

  return loss_fn


def make_scorevae_plus_loss(sde, score_plus: Callable[..., Any],
                            encoder_apply: Callable[..., Any], *,
                            latent_dim: int, weighting: str = "sigma2",
                            t_min: float | None = None):
  """ScoreVAE+ loss: the DSM of the corrected score, encoder and prior frozen.

  .. math::

    \\mathcal{L}(\\psi) = \\mathbb{E}\\, \\tfrac12 (T - \\epsilon)\\, w(t)
    \\big\\| s_+(x_t, z, t) + \\epsilon / \\sigma_t \\big\\|^2,
    \\quad z \\sim q_\\phi(z \\mid x_0, 0),

  with `s_+` from `correction.make_corrected_score`. No KL term: the encoder,
  hence the rate, is fixed.

  Args:
    sde, weighting, t_min: as in `make_score_dsm`.
    score_plus: `score_plus(prior_params, (encoder_params, correction_params),
      x_t, t, z)`.
    encoder_apply: the (trained) ScoreVAE encoder, used at t = 0 to draw z.
    latent_dim: K (checked at trace time).

  Returns:
    `loss_fn(correction_params, encoder_params, prior_params, rng, x0) -> [B]`
    in nats; the encoder and prior parameters pass through `stop_gradient`.
  """
  dsm = make_score_dsm(sde, score_plus, weighting=weighting, t_min=t_min)
  t_lo = sde.eps if t_min is None else float(t_min)

  def loss_fn(correction_params, encoder_params, prior_params, rng, x0):
    _checks.check_min_rank(x0, 2, "x0 [B, ...]")
    encoder_params = jax.lax.stop_gradient(encoder_params)
    b = x0.shape[0]
    mean, log_var = encoder_apply(encoder_params, x0, jnp.zeros((b,)))
    _check_latent_shape(mean.shape, b, latent_dim)
    t, noise, latent_noise = _draw(rng, x0, latent_dim, t_lo, sde.T)
    z = encoder_lib.sample_latent(mean, log_var, latent_noise)
    return dsm((encoder_params, correction_params), prior_params, x0, z, t,
               noise)

  return loss_fn
