"""Multi-scale Glow/RealNVP flow: exact log p(x), latents per scale, sampling.

Level ``i = 0..L-1`` applies `squeeze`, ``K`` `FlowStep`s, and (except the last
level) a `Split` that factors out half the channels as a standard-normal latent
``eps_i``; the last level's output is the top latent. The flow is a bijection
``x -> (z_0, ..., z_{L-1})`` with every latent standard normal, so

.. math::

  \\log p(x) = \\textstyle\\sum_i \\log N(z_i; 0, I)
  + \\log|\\det \\partial (z_0..z_{L-1}) / \\partial x|.

Shapes for ``x`` of ``[B, H, W, C]``: ``z_i`` is ``[B, H/2^{i+1}, W/2^{i+1},
2^{i+1} C]`` for ``i < L-1`` and the top latent ``[B, H/2^L, W/2^L, 2^{L+1}
C]``. These per-scale latents are the ``l_i`` / ``m_i`` of CAFLOW.

References:
  Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP.
  https://arxiv.org/abs/1605.08803, 2016.
  Kingma, Dhariwal. Glow: Generative flow with invertible 1x1 convolutions.
  https://arxiv.org/abs/1807.03039, 2018.
  Batzolis, Carioni, Etmann, Afyouni, Kourtzi, Schoenlieb. CAFLOW: Conditional
  autoregressive flows. https://arxiv.org/abs/2106.02531, 2021.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax.flows import layers


def check_divisible(shape: Sequence[int], levels: int, name: str = "x") -> None:
  """Raises ValueError unless ``shape = [B, H, W, C]`` with H, W divisible by 2^levels."""
  if len(shape) != 4:
    raise ValueError(f"{name} must have shape [B, H, W, C], got {tuple(shape)}.")
  k = 2 ** levels
  if shape[1] % k or shape[2] % k:
    raise ValueError(
        f"{name} of shape {tuple(shape)}: height and width must be divisible by "
        f"2^levels = {k} (levels = {levels}); crop/pad the image or use fewer "
        "levels.")


def latent_shapes(shape: Sequence[int], levels: int) -> tuple[tuple[int, ...], ...]:
  """Shapes of the per-scale latents of a `MultiScaleFlow` on ``shape`` images."""
  check_divisible(shape, levels)
  b, h, w, c = shape
  out = []
  for i in range(levels):
    h, w, c = h // 2, w // 2, 4 * c
    if i < levels - 1:
      c = c // 2
      out.append((b, h, w, c))
  out.append((b, h, w, c))
  return tuple(out)


def standard_normal_log_prob(z):
  """:math:`\\log N(z; 0, I)` summed over all but the batch axis: ``[B, ...] -> [B]`` nats."""
  return _checks.sum_except_batch(-0.5 * (z ** 2 + jnp.log(2 * jnp.pi)))


class MultiScaleFlow(nn.Module):
  """Multi-scale flow ``x <-> (z_0, ..., z_{L-1})`` (see the module docstring).

  ``forward(x, cond=None) -> (zs, logdet [B])``; ``inverse(zs, cond=None) -> x``;
  ``log_prob(x, cond=None) -> [B]`` nats; ``sample(rng, shape, cond=None, *,
  temperature=1.) -> x`` draws every latent from N(0, T^2 I) (T = 0 gives the
  deterministic mode-like sample f^{-1}(0)).

  ``cond``, if given, is a sequence with one image per level, ``cond[i]`` of
  shape ``[B, H/2^{i+1}, W/2^{i+1}, Cc_i]``, fed to that level's couplings and
  split prior.

  Attributes:
    levels: number of scales L (H and W must be divisible by 2^L).
    steps_per_level: FlowSteps K per level.
    hidden: coupling conditioner channels.
    scale_type: coupling scale map, ``'tanh'`` or ``'sigmoid'``.
    learned_prior: learned conditional Gaussian in each `Split`.
  """
  levels: int = 2
  steps_per_level: int = 2
  hidden: int = 32
  scale_type: str = "tanh"
  learned_prior: bool = True

  def _cond(self, cond, i):
    if cond is None:
      return None
    if len(cond) != self.levels:
      raise ValueError(
          f"cond must hold one image per level ({self.levels}), got {len(cond)}.")
    return cond[i]

  @nn.compact
  def __call__(self, x, cond=None, *, reverse: bool = False):
    if self.levels < 1 or self.steps_per_level < 0:
      raise ValueError(
          f"levels must be >= 1 and steps_per_level >= 0, got {self.levels} and "
          f"{self.steps_per_level}.")
    steps = [[layers.FlowStep(self.hidden, self.scale_type, seed=1000 * i + k,
                              name=f"level{i}_step{k}")
              for k in range(self.steps_per_level)] for i in range(self.levels)]
    splits = [layers.Split(self.learned_prior, name=f"level{i}_split")
              for i in range(self.levels - 1)]
    if reverse:
      zs = tuple(x)
      if len(zs) != self.levels:
        raise ValueError(
            f"zs must hold {self.levels} latents (one per level), got {len(zs)}.")
      h = zs[-1]
      for i in reversed(range(self.levels)):
        c = self._cond(cond, i)
        if i < self.levels - 1:
          h = splits[i]((h, zs[i]), c, reverse=True)
        for step in reversed(steps[i]):
          h = step(h, c, reverse=True)
        h = layers.unsqueeze(h)
      return h
    layers._check_image(x, "x")
    check_divisible(x.shape, self.levels)
    logdet = jnp.zeros((x.shape[0],), x.dtype)
    zs = []
    h = x
    for i in range(self.levels):
      c = self._cond(cond, i)
      h = layers.squeeze(h)
      for step in steps[i]:
        h, ld = step(h, c)
        logdet = logdet + ld
      if i < self.levels - 1:
        (h, eps), ld = splits[i](h, c)
        logdet = logdet + ld
        zs.append(eps)
    zs.append(h)
    return tuple(zs), logdet

  def forward(self, x, cond=None):
    return self(x, cond, reverse=False)

  def inverse(self, zs, cond=None):
    return self(zs, cond, reverse=True)

  def log_prob(self, x, cond=None):
    zs, logdet = self(x, cond, reverse=False)
    return logdet + sum(standard_normal_log_prob(z) for z in zs)

  def sample(self, rng, shape, cond=None, *, temperature: float = 1.0):
    shapes = latent_shapes(shape, self.levels)
    keys = jax.random.split(rng, len(shapes))
    zs = tuple(temperature * jax.random.normal(k, s)
               for k, s in zip(keys, shapes))
    return self(zs, cond, reverse=True)


def bits_per_dim(log_prob, shape: Sequence[int], *, num_bins: int = 256,
                 data_range: float = 1.0):
  """Converts a continuous log-density into discrete bits/dim after dequantisation.

  For 8-bit data mapped to ``[0, data_range]`` with uniform dequantisation, bin
  width ``data_range / num_bins``:

  .. math::

    \\mathrm{bpd} = -\\frac{\\log p(x) + D \\log(\\mathrm{range}/\\mathrm{bins})}
    {D \\log 2}, \\quad D = H W C.

  Args:
    log_prob: ``[B]`` nats, log-density of the dequantised, scaled data.
    shape: data shape ``[B, H, W, C]`` (or ``[H, W, C]``).
    num_bins: number of discrete levels (256 for 8-bit; keyword-only).
    data_range: width of the interval the levels were mapped to.

  Returns:
    ``[B]`` bits per dimension (an upper bound on the discrete NLL).
  """
  d = int(np.prod(shape[-3:]))
  return -(log_prob + d * np.log(data_range / num_bins)) / (d * np.log(2.0))
