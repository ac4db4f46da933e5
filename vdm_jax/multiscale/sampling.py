"""Scale-by-scale reverse process of a non-uniform (multi-scale) diffusion.

Sampling starts at t = 1 with the coarsest active scales drawn from N(0, I)
and walks the stages backwards. Each stage runs its own network on only its
active bands, from ``t_hi`` down to ``t_lo``; when the walk reaches a drop time
``e_k``, the finer band(s) that end there are inserted as fresh N(0, I) noise
(their marginal at gamma_max = 10 is N(0.0067 x, 0.99995 I)). The final bands
are mapped back to the image by the inverse Haar transform.

Each step ``t -> s`` updates every active band with its own gamma (DDIM in the
alpha/sigma form; ``eta = 1`` is the VDM ancestral step):

.. math::

  c = -\\mathrm{expm1}(\\gamma_s - \\gamma_t), \\quad
  z_s = \\frac{\\alpha_s}{\\alpha_t} z_t + \\sigma_s\\Big(\\sqrt{1 - \\eta^2 c}
        - \\frac{1}{\\sqrt{1 - c}}\\Big)\\hat\\epsilon + \\eta\\,\\sigma_s\\sqrt{c}\\,\\xi,

which for ``eta = 1`` is ``(alpha_s / alpha_t)(z_t - sigma_t c eps_hat) +
sigma_s sqrt(c) xi``. A band whose window has not started yet has
``gamma_s = gamma_t`` and is left unchanged. The last step returns the
noise-free mean, and the image estimate is ``z_0 / alpha_0`` per band.

Steps: ``steps_per_unit`` steps per unit of time, so a stage of length
``t_hi - t_lo`` gets ``round(steps_per_unit (t_hi - t_lo))`` steps and the
time step equals that of a uniform model with the same ``steps_per_unit``.

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (scale-by-scale sampling).
  Kingma, Salimans, Poole, Ho. Variational Diffusion Models.
  https://arxiv.org/abs/2107.00630, 2021 (ancestral step, eq. 33).
  Song, Meng, Ermon. Denoising Diffusion Implicit Models.
  https://arxiv.org/abs/2010.02502, 2020 (eta).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import schedules
from vdm_jax.multiscale import model as ms_model
from vdm_jax.multiscale import nonuniform


class Sampler(NamedTuple):
  """A built sampler.

  Attributes:
    sample: ``sample(params, rng, batch_size) -> [B, H, W, C]`` (params: one
      per stage); jit it with ``static_argnums=2``.
    run_stages: ``run_stages(params, rng, bands, first_stage) -> bands``, the
      reverse process from the start of stage `first_stage` (its active bands
      given) down to t = 0, returning noise-free bands (for tests and
      custom initial states).
    steps_per_stage: number of network calls of each stage.
    stages: the `Stage` tuple of the process.
  """
  sample: object
  run_stages: object
  steps_per_stage: tuple
  stages: tuple


def reverse_step(process: nonuniform.NonUniformProcess, bands: Sequence,
                 eps_hat: Sequence, t, s, noise: Sequence, *, first: int,
                 eta: float = 1.0) -> tuple:
  """One reverse step ``t -> s`` for every active band (see module docstring).

  Args:
    process: the process.
    bands: noisy bands of scales ``first..K-1`` at time t.
    eps_hat: predicted noise, shaped like `bands`.
    t: scalar current time.
    s: scalar target time, s < t.
    noise: standard normal arrays shaped like `bands` (multiplied by eta).
    first: finest active scale.
    eta: 0 = deterministic DDIM, 1 = ancestral.

  Returns:
    tuple of bands at time s.
  """
  out = []
  for j, (z, eh, xi) in enumerate(zip(bands, eps_hat, noise)):
    _checks.check_same_shape(z, eh, "band", "eps_hat")
    gt = nonuniform.scale_gamma(process, first + j, t)
    gs = nonuniform.scale_gamma(process, first + j, s)
    c = -jnp.expm1(gs - gt)                  # 1 - SNR_t / SNR_s, in [0, 1)
    ratio = jnp.exp(0.5 * (jax.nn.softplus(gt) - jax.nn.softplus(gs)))
    sig_s = schedules.sigma(gs)
    coef = sig_s * (jnp.sqrt(1.0 - eta ** 2 * c) - jnp.exp(0.5 * (gt - gs)))
    out.append(ratio * z + coef * eh + eta * sig_s * jnp.sqrt(c) * xi)
  return tuple(out)


def make_sampler(process: nonuniform.NonUniformProcess, eps_fns: Sequence, *,
                 image_shape: Sequence[int], steps_per_unit: int,
                 eta: float = 1.0) -> Sampler:
  """Builds the scale-by-scale sampler.

  Args:
    process: the non-uniform process.
    eps_fns: one ``eps_fn(params, bands, t [B]) -> tuple`` per stage.
    image_shape: ``(H, W, C)``.
    steps_per_unit: reverse steps per unit time (total steps of a uniform
      model on [0, 1]).
    eta: DDIM eta; 1 = ancestral (VDM), 0 = deterministic.

  Returns:
    `Sampler`.
  """
  st = nonuniform.stages(process)
  if len(eps_fns) != len(st):
    raise ValueError(f"eps_fns must have one entry per stage ({len(st)}), got "
                     f"{len(eps_fns)}.")
  if int(steps_per_unit) < 1:
    raise ValueError(f"steps_per_unit must be >= 1, got {steps_per_unit}.")
  if not 0.0 <= eta <= 1.0:
    raise ValueError(f"eta must be in [0, 1], got {eta}.")
  shapes = ms_model.band_shapes(process, image_shape)
  n_steps = tuple(max(1, int(round(steps_per_unit * (g.t_hi - g.t_lo))))
                  for g in st)

  def run_stage(j, params, rng, bands, final):
    g, n, first = st[j], n_steps[j], st[j].first
    dt = (g.t_hi - g.t_lo) / n

    def body(i, carry):
      bands, rng = carry
      rng, rng_step = jax.random.split(rng)
      t = g.t_hi - i * dt
      s = jnp.maximum(t - dt, g.t_lo)
      b = bands[0].shape[0]
      eps_hat = eps_fns[j](params, bands, jnp.full((b,), t, jnp.float32))
      keys = jax.random.split(rng_step, len(bands))
      noise = [jax.random.normal(k, v.shape, v.dtype) for k, v in zip(keys, bands)]
      if final:  # the very last step returns the noise-free mean
        last = (i == n - 1).astype(jnp.float32)
        noise = [(1.0 - last) * v for v in noise]
      return reverse_step(process, bands, eps_hat, t, s, noise, first=first,
                          eta=eta), rng

    bands, _ = jax.lax.fori_loop(0, n, body, (tuple(bands), rng))
    return bands

  def run_stages(params, rng, bands, first_stage):
    bands = tuple(bands)
    for j in reversed(range(first_stage + 1)):
      rng, rng_ins, rng_run = jax.random.split(rng, 3)
      if j != first_stage:  # insert the scales dropped at this stage's end
        new = range(st[j].first, st[j + 1].first)
        keys = jax.random.split(rng_ins, len(new))
        b = bands[0].shape[0]
        fresh = tuple(jax.random.normal(k, (b,) + shapes[i], jnp.float32)
                      for k, i in zip(keys, new))
        bands = fresh + bands
      if len(bands) != process.num_scales - st[j].first:
        raise ValueError(
            f"stage {j} needs {process.num_scales - st[j].first} bands, got "
            f"{len(bands)}.")
      bands = run_stage(j, params[j], rng_run, bands, final=(j == 0))
    # Image estimate x_hat = z_0 / alpha_0 per band.
    out = []
    for k, z in enumerate(bands):
      out.append(z / schedules.alpha(nonuniform.scale_gamma(process, k, 0.0)))
    return tuple(out)

  def sample(params, rng, batch_size: int):
    if len(params) != len(st):
      raise ValueError(f"params must have one entry per stage ({len(st)}), "
                       f"got {len(params)}.")
    rng_init, rng_run = jax.random.split(rng)
    top = st[-1].first
    keys = jax.random.split(rng_init, process.num_scales - top)
    bands = tuple(jax.random.normal(k, (batch_size,) + shapes[top + i], jnp.float32)
                  for i, k in enumerate(keys))
    bands = run_stages(params, rng_run, bands, len(st) - 1)
    return nonuniform.reconstruct(bands)

  return Sampler(sample, run_stages, n_steps, st)
