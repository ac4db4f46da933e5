"""Denoising score matching for score SDEs, with the standard time weightings.

.. math::

  \\mathcal{J}_{DSM}(\\theta; \\lambda) = \\tfrac12 \\int_{\\epsilon}^{T}
  \\lambda(t)\\, \\mathbb{E}_{x_0, x_t}\\big\\|s_\\theta(x_t, t)
  - \\nabla_{x_t} \\log p_{0t}(x_t | x_0)\\big\\|^2 dt,
  \\qquad \\nabla \\log p_{0t} = -\\epsilon / s_t,

with lambda(t) = s_t^2 ('std2', score_sde's default: the loss is
||s_t s_theta + eps||^2, i.e. the eps-MSE), lambda(t) = g(t)^2 ('likelihood':
Song, Durkan, Murray & Ermon's bound, Thm. 1) or lambda = 1 ('none').

The per-example value returned is a one-sample unbiased Monte-Carlo estimate of
the integral above, t ~ U(eps, T), i.e. it *includes* the factor (T - eps) (a
constant 1 - 1e-5 for the defaults; score_sde omits it). With `reduce='sum'`
the squared norm is summed over dimensions and halved, so that with the
likelihood weighting and `ScheduleVPSDE` (eps = 0) the loss equals VDM's
continuous diffusion loss L_inf = 1/2 gamma'(t) ||eps - eps_hat||^2 *exactly*,
sample by sample (for s = -eps_hat / sigma, g^2 ||s + eps / sigma||^2 =
gamma' ||eps - eps_hat||^2). `reduce='mean'` averages over dimensions
without the 1/2 (score_sde's reduce_mean=True).

References:
  Song et al. Score-Based Generative Modeling through SDEs.
  https://arxiv.org/abs/2011.13456, 2021 (eq. 7).
  Song, Durkan, Murray, Ermon. Maximum Likelihood Training of Score-Based
  Diffusion Models. https://arxiv.org/abs/2101.09258, 2021.
  Kingma et al. Variational Diffusion Models. https://arxiv.org/abs/2107.00630.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.sde import score_fns
from vdm_jax.sde import sdes

WEIGHTINGS = ("std2", "likelihood", "none")
REDUCTIONS = ("sum", "mean")


def dsm_loss(score, noise, std, diffusion=None, *, weighting: str = "std2",
             reduce: str = "sum"):
  """Per-example weighted DSM loss for given score estimates and noises.

  .. math::

    \\ell = \\lambda(t)\\, \\rho\\big(s - (-\\epsilon / s_t)\\big), \\quad
    \\rho = \\tfrac12 \\textstyle\\sum_d (\\cdot)^2 \\;(\\text{sum})
    \\text{ or } \\mathrm{mean}_d (\\cdot)^2 \\;(\\text{mean}).

  Args:
    score: `[B, ...]` score estimates s_theta(x_t, t).
    noise: `[B, ...]` the eps used in x_t = a_t x_0 + s_t eps.
    std: `[B]` marginal standard deviations s_t.
    diffusion: `[B]` g(t); required for `weighting='likelihood'`.
    weighting: 'std2' (lambda = s_t^2), 'likelihood' (lambda = g^2) or 'none'.
    reduce: 'sum' (1/2 sum over dims, nats-compatible) or 'mean'.

  Returns:
    `[B]` loss values.
  """
  if weighting not in WEIGHTINGS:
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
  if reduce not in REDUCTIONS:
    raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}.")
  _checks.check_floating(score, "score")
  _checks.check_same_shape(score, noise, "score", "noise")
  _checks.check_rank(std, 1, "std")
  _checks.check_batch(std, score, "std", "score")
  std_b = _checks.broadcast_to_data(std, score).astype(score.dtype)
  if weighting == "std2":
    # lambda = s^2: ||s * score + eps||^2, well conditioned as s -> 0.
    sq = jnp.square(std_b * score + noise)
    lam = jnp.ones_like(std)
  else:
    sq = jnp.square(score + noise / std_b)
    if weighting == "likelihood":
      if diffusion is None:
        raise ValueError("diffusion g(t) [B] is required for weighting="
                         "'likelihood'.")
      _checks.check_batch(diffusion, score, "diffusion", "score")
      lam = jnp.square(diffusion)
    else:
      lam = jnp.ones_like(std)
  if reduce == "sum":
    per = 0.5 * _checks.sum_except_batch(sq)
  else:
    per = jnp.mean(sq.reshape(sq.shape[0], -1), axis=-1)
  return lam * per


def sample_sde_times(rng, batch_size: int, sde: sdes.SDE, *,
                     antithetic: bool = False):
  """t ~ U(sde.eps, sde.T), iid or low-discrepancy (t_i = eps + (T-eps)((u0 + i/B) mod 1))."""
  if antithetic:
    u = jnp.mod(jax.random.uniform(rng, ()) +
                jnp.arange(batch_size, dtype=jnp.float32) / batch_size, 1.0)
  else:
    u = jax.random.uniform(rng, (batch_size,))
  return sde.eps + (sde.T - sde.eps) * u


def make_dsm_loss_fn(sde: sdes.SDE, model_fn: Callable, *,
                     parameterization: str = "eps", weighting: str = "std2",
                     reduce: str = "sum", antithetic: bool = False) -> Callable:
  """Builds `loss_fn(params, rng, x0, *model_args) -> [B]` for any score network.

  Args:
    sde: the forward SDE.
    model_fn: `model_fn(params, x_t [B, ...], t [B], *model_args) -> pred`,
      e.g. `lambda p, x, t: mlp.apply(p, x, t)`; `model_args` carries labels
      or conditioning.
    parameterization: what the network predicts: 'eps', 'x0', 'v' or 'score'
      (see `vdm_jax.sde.score_fns`).
    weighting: 'std2', 'likelihood' or 'none' (see `dsm_loss`).
    reduce: 'sum' or 'mean'.
    antithetic: low-discrepancy t sampling (lower variance, same mean).

  Returns:
    `loss_fn(params, rng, x0, *model_args)` returning `[B]` per-example losses,
    an unbiased estimate of (1/2) int_eps^T lambda E||s - grad log p_0t||^2 dt.
  """
  if weighting not in WEIGHTINGS:
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
  if reduce not in REDUCTIONS:
    raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}.")
  if parameterization not in score_fns.PARAMETERIZATIONS:
    raise ValueError(f"parameterization must be one of "
                     f"{score_fns.PARAMETERIZATIONS}, got {parameterization!r}.")
  if not callable(model_fn):
    raise TypeError(f"model_fn must be callable, got {type(model_fn)}.")

  def loss_fn(params, rng, x0, *model_args):
    x0 = sdes.check_x(x0, "x0")
    t_rng, n_rng = jax.random.split(rng)
    t = sample_sde_times(t_rng, x0.shape[0], sde, antithetic=antithetic)
    noise = jax.random.normal(n_rng, x0.shape, x0.dtype)
    return dsm_loss_at(sde, lambda x, tt: model_fn(params, x, tt, *model_args),
                       x0, t, noise, parameterization=parameterization,
                       weighting=weighting, reduce=reduce)

  return loss_fn


def dsm_loss_at(sde: sdes.SDE, model_fn: Callable, x0, t, noise, *,
                parameterization: str = "eps", weighting: str = "std2",
                reduce: str = "sum"):
  """DSM loss at given times and noises (deterministic; for tests and studies).

  Args:
    sde: the forward SDE.
    model_fn: `model_fn(x_t, t) -> pred` (already closed over its params).
    x0: `[B, ...]` clean data.
    t: `[B]` times in [eps, T].
    noise: `[B, ...]` standard normal noise.
    parameterization, weighting, reduce: as in `make_dsm_loss_fn`.

  Returns:
    `[B]` per-example loss, including the (T - eps) factor.
  """
  x0 = sdes.check_x(x0, "x0")
  _checks.check_same_shape(x0, noise, "x0", "noise")
  t = sdes.check_time(t, x0, sde.T)
  a, s = sde.marginal_coeffs(t)
  x_t = (_checks.broadcast_to_data(a, x0).astype(x0.dtype) * x0 +
         _checks.broadcast_to_data(s, x0).astype(x0.dtype) * noise)
  pred = model_fn(x_t, t)
  score = score_fns.to_score(pred, x_t, a, s, parameterization=parameterization)
  g = sde.drift_diffusion(x_t, t)[1] if weighting == "likelihood" else None
  return (sde.T - sde.eps) * dsm_loss(score, noise, s, g, weighting=weighting,
                                      reduce=reduce)
