"""Denoising losses of the non-uniform process, one per stage.

For a stage with active scales ``A = first..K-1`` on ``(t_lo, t_hi]``, draw
``t ~ U(t_lo, t_hi)``, noise every active band with its own schedule and
regress the per-band noise. With likelihood weighting ``g_k^2`` the DSM loss of
band k is ``g_k^2 ||s_k + eps_k / sigma_k||^2 = gamma_k'(t) ||eps_k -
eps_hat_k||^2`` (score ``s = -eps_hat / sigma``, VP process of VDM), so

.. math::

  \\mathcal{L}_j(x) = (t_{hi} - t_{lo})\\, \\mathbb{E}_{t, \\epsilon}\\Big[
    \\tfrac12 \\sum_{k \\in A} \\gamma_k'(t) \\|\\epsilon^k -
    \\hat\\epsilon^k_\\theta(z_t, t)\\|^2 \\Big]

is that stage's share of the continuous-time diffusion loss (nats); summed over
stages it is the diffusion term ``L_inf`` of the non-uniform VLB (finer,
dropped scales have ``gamma_k' = 0`` after their end time and contribute
nothing). ``weighting='eps'`` instead returns the plain mean squared error over
all active coefficients (the unweighted ``||sigma s + eps||^2`` loss of the
paper's uniform baseline), which usually gives better samples.

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (multi-scale DSM, per-scale training).
  Kingma, Salimans, Poole, Ho. Variational Diffusion Models.
  https://arxiv.org/abs/2107.00630, 2021 (L_inf = likelihood-weighted DSM).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.multiscale import nonuniform

WEIGHTINGS = ("likelihood", "eps")


def make_stage_loss_fn(process: nonuniform.NonUniformProcess, stage_index: int,
                       eps_fn, *, weighting: str = "likelihood"):
  """Builds the per-example DSM loss of one stage.

  Args:
    process: the non-uniform process.
    stage_index: which stage (0 = earliest, full resolution).
    eps_fn: ``eps_fn(params, bands, t) -> tuple`` noise predictor of that stage
      (`vdm_jax.multiscale.model.make_stage_eps_fn`).
    weighting: 'likelihood' (nats, VLB share) or 'eps' (mean squared error).

  Returns:
    ``loss_fn(params, rng, x) -> [B]`` with ``x`` clean images ``[B, H, W, C]``.
  """
  st = nonuniform.stages(process)
  if not 0 <= stage_index < len(st):
    raise ValueError(
        f"stage_index must be in [0, {len(st)}), got {stage_index}.")
  if weighting not in WEIGHTINGS:
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
  stage = st[stage_index]

  def loss_fn(params, rng, x):
    _checks.check_rank(x, 4, "x [B, H, W, C]")
    _checks.check_floating(x, "x")
    bands = nonuniform.decompose(process, x)[stage.first:]
    b = x.shape[0]
    rng_t, rng_e = jax.random.split(rng)
    t = jax.random.uniform(rng_t, (b,), minval=stage.t_lo, maxval=stage.t_hi)
    keys = jax.random.split(rng_e, len(bands))
    noise = tuple(jax.random.normal(k, v.shape, v.dtype)
                  for k, v in zip(keys, bands))
    z = nonuniform.diffuse(process, bands, t, noise, first=stage.first)
    eps_hat = eps_fn(params, z, t)
    total = jnp.zeros((b,), jnp.float32)
    if weighting == "likelihood":
      for j, (e, eh) in enumerate(zip(noise, eps_hat)):
        _, dg = nonuniform.scale_gamma_and_derivative(process, stage.first + j, t)
        total = total + 0.5 * dg * _checks.sum_except_batch(jnp.square(e - eh))
      return (stage.t_hi - stage.t_lo) * total
    count = 0
    for e, eh in zip(noise, eps_hat):
      total = total + _checks.sum_except_batch(jnp.square(e - eh))
      count += e[0].size
    return total / count

  return loss_fn


def make_loss_fns(process: nonuniform.NonUniformProcess, eps_fns, *,
                  weighting: str = "likelihood") -> tuple:
  """`make_stage_loss_fn` for every stage: tuple of ``loss_fn(params, rng, x)``."""
  st = nonuniform.stages(process)
  if len(eps_fns) != len(st):
    raise ValueError(f"eps_fns must have one entry per stage ({len(st)}), got "
                     f"{len(eps_fns)}.")
  return tuple(make_stage_loss_fn(process, j, f, weighting=weighting)
               for j, f in enumerate(eps_fns))
