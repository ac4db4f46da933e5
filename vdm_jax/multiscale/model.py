"""Multi-scale score model: one noise-prediction network per stage (active resolution).

Stage j of a `NonUniformProcess` has active scales ``first..K-1``. Its network
sees exactly those bands: they are inverse-Haared into the level-``first``
approximation image ``a_first`` (side ``H / 2^first``), a pixel-space network
predicts the noise of that image, and the prediction is Haar-transformed back
into one noise estimate per active band:

.. math::

  \\hat\\epsilon^{first..K-1} = W_{L - first}\\big(f_\\theta(W^{-1}_{L-first}
  (z^{first}, \\ldots, z^{K-1}), t)\\big),

where ``W`` is the orthonormal Haar transform (`vdm_jax.multiscale.haar`).
Because ``W`` is orthonormal, predicting the pixel noise of ``a_first`` and
predicting the band noises are the same thing. The network is conditioned on
the global time t only: every band's gamma is a fixed function of t. Bands
finer than ``first`` are pure noise in this stage and never reach a network.

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (one network per scale).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import schedules
from vdm_jax.models.unet import UNet
from vdm_jax.multiscale import haar
from vdm_jax.multiscale import nonuniform

# eps_fn(params, bands, t) -> tuple of per-band noise predictions.
EpsFn = Callable[..., tuple]


def stage_image_shape(process: nonuniform.NonUniformProcess, first: int,
                      image_shape: Sequence[int]) -> tuple:
  """Shape ``(h, w, c)`` of the approximation image a network of a stage sees."""
  hgt, wdt, c = image_shape
  return (hgt // 2 ** first, wdt // 2 ** first, c)


def band_shapes(process: nonuniform.NonUniformProcess,
                image_shape: Sequence[int]) -> tuple:
  """Per-scale band shapes ``(h, w, c)``, finest first, for an ``(H, W, C)`` image."""
  haar.check_levels(tuple(image_shape), process.levels, "image_shape")
  hgt, wdt, c = image_shape
  out = [(hgt // 2 ** (k + 1), wdt // 2 ** (k + 1), 3 * c)
         for k in range(process.levels)]
  out.append((hgt // 2 ** process.levels, wdt // 2 ** process.levels, c))
  return tuple(out)


def make_stage_eps_fn(process: nonuniform.NonUniformProcess, first: int,
                      apply_fn: Callable, *, skip: bool = False) -> EpsFn:
  """Turns a pixel-space noise predictor into a band-space one for a stage.

  With ``skip=True`` the network predicts a residual on top of the optimal
  predictor for N(0, I) data, band by band:
  ``eps_hat_k = sigma_k(t) z_k + f_k`` (``E[eps | z] = sigma z`` when x ~
  N(0, I)). A zero-initialised network then already gives sensible samples,
  which matters for short training runs; with ``skip=False`` an untrained
  network predicts 0 and the reverse process amplifies the prior noise by
  ``alpha_0 / alpha_1 ~ 150``.

  Args:
    process: the non-uniform process.
    first: finest active scale of the stage.
    apply_fn: ``apply_fn(params, image [B, h, w, C], t [B]) -> [B, h, w, C]``
      noise prediction for the level-`first` approximation image.
    skip: add ``sigma_k(t) z_k`` to each band's prediction.

  Returns:
    ``eps_fn(params, bands, t) -> tuple`` with ``bands`` the noisy scales
    ``first..K-1`` and ``t`` ``[B]``; returns one ``[B, h_k, w_k, c_k]``
    prediction per band.
  """
  n_levels = process.levels - first

  def eps_fn(params, bands, t):
    bands = tuple(bands)
    if len(bands) != n_levels + 1:
      raise ValueError(
          f"stage with first scale {first} expects {n_levels + 1} bands, got "
          f"{len(bands)}.")
    image = nonuniform.reconstruct(bands)
    out = apply_fn(params, image, t)
    if out.shape != image.shape:
      raise ValueError(
          f"network output shape {out.shape} must equal its input image shape "
          f"{image.shape}.")
    eps = haar.coefficients_to_list(haar.wavedec(out, n_levels))
    if not skip:
      return eps
    return tuple(
        e + schedules.sigma(_checks.broadcast_to_data(
            nonuniform.scale_gamma(process, first + j, t), z)) * z
        for j, (e, z) in enumerate(zip(eps, bands)))

  return eps_fn


class MultiScaleUNets(NamedTuple):
  """One `UNet` per stage plus the process and image shape they were built for."""
  process: nonuniform.NonUniformProcess
  image_shape: tuple
  modules: tuple
  skip: bool = False

  def init(self, rng) -> tuple:
    """Initialises every stage network: tuple of params, one per stage."""
    params = []
    for j, (stage, module) in enumerate(
        zip(nonuniform.stages(self.process), self.modules)):
      shape = stage_image_shape(self.process, stage.first, self.image_shape)
      z = jnp.zeros((1,) + shape, jnp.float32)
      params.append(module.init(jax.random.fold_in(rng, j), z, jnp.zeros((1,))))
    return tuple(params)

  def eps_fns(self) -> tuple:
    """Band-space noise predictors, one per stage (see `make_stage_eps_fn`)."""
    fns = []
    for stage, module in zip(nonuniform.stages(self.process), self.modules):
      apply = lambda p, z, t, m=module: m.apply(p, z, t)
      fns.append(make_stage_eps_fn(self.process, stage.first, apply,
                                   skip=self.skip))
    return tuple(fns)


def make_multiscale_unets(process: nonuniform.NonUniformProcess,
                          stage_kwargs: Sequence[dict], *,
                          image_shape: Sequence[int],
                          skip: bool = False) -> MultiScaleUNets:
  """Builds one `vdm_jax.models.UNet` per stage of `process`.

  Args:
    process: the non-uniform process (levels 0 gives the uniform baseline).
    stage_kwargs: one dict of `UNet` keyword arguments per stage, earliest
      (full resolution) stage first; ``fourier_exponents`` defaults to ().
    image_shape: ``(H, W, C)``.
    skip: residual noise prediction (see `make_stage_eps_fn`).

  Returns:
    `MultiScaleUNets`.
  """
  image_shape = tuple(int(v) for v in image_shape)
  if len(image_shape) != 3:
    raise ValueError(f"image_shape must be (H, W, C), got {image_shape}.")
  haar.check_levels(image_shape, process.levels, "image_shape")
  st = nonuniform.stages(process)
  if len(stage_kwargs) != len(st):
    raise ValueError(
        f"stage_kwargs must have one entry per stage ({len(st)} stages with "
        f"first scales {[s.first for s in st]}), got {len(stage_kwargs)}.")
  modules = []
  for kw in stage_kwargs:
    kw = dict(kw)
    kw.setdefault("fourier_exponents", ())
    modules.append(UNet(**kw))
  return MultiScaleUNets(process, image_shape, tuple(modules), bool(skip))


def count_params(params) -> int:
  """Total number of scalars in a params pytree."""
  return int(sum(x.size for x in jax.tree.leaves(params)))
