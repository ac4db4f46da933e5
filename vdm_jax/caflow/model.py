"""CAFLOW: conditional auto-regressive multi-scale flows for image-to-image translation.

Two unconditional multi-scale flows (`vdm_jax.flows.MultiScaleFlow`) encode the
source image ``y`` and the target image ``x`` into per-scale latents,

.. math::

  F(y) = (l_0, \\dots, l_{L-1}), \\qquad T(x) = (m_0, \\dots, m_{L-1}),

with ``i = 0`` the finest scale and ``L-1`` the coarsest (the paper's
``1..n``). A conditional flow ``G_i`` per scale maps ``m_i`` to a standard
normal ``z_i`` given everything coarser in x and everything as coarse or
coarser in y, so that the conditional density factorises auto-regressively
from coarse to fine,

.. math::

  p(m \\mid l) = \\prod_{i=0}^{L-1} p(m_i \\mid m_{>i}, l_{\\ge i}), \\qquad
  \\log p(m_i \\mid m_{>i}, l_{\\ge i}) = \\log N(z_i; 0, I)
  + \\log|\\det \\partial z_i / \\partial m_i|,

and, since ``T`` is a bijection and ``F`` a bijection (conditioning on ``l``
is conditioning on ``y``), the conditional likelihood is exact:

.. math::

  \\log p(x \\mid y) = \\textstyle\\sum_i \\log p(m_i \\mid m_{>i}, l_{\\ge i})
  + \\log|\\det \\partial m / \\partial x|.

Each ``G_i`` is ``K`` `vdm_jax.flows.FlowStep`s at the resolution of ``m_i``
followed by a conditional affine base (`ConditionalAffine`); the condition
image ``c_i`` of every coupling net is the channel concatenation of ``l_i`` and
the nearest-upsampled ``l_j, m_j`` for ``j > i`` (`condition_image`). The paper's
``G_i`` are themselves multi-scale (they squeeze ``m_i`` further and inject the
coarser conditions at their own resolution); here they stay at one
resolution, which is what 8x8 images allow (a 2-level flow on 8x8 leaves
2x2 top latents) and which keeps every conditioning factor at the scale it
describes.

``y`` must have x's batch and spatial size (its channel count may differ): the
tasks of `vdm_jax.conditional.tasks` already give y at x's size (the low-res
image of super-resolution is nearest-upsampled, see
`vdm_jax.conditional.tasks.resize_condition`).

References:
  Batzolis, Carioni, Etmann, Afyouni, Kourtzi, Schoenlieb. CAFLOW: Conditional
  autoregressive flows. https://arxiv.org/abs/2106.02531, 2021.
  Kingma, Dhariwal. Glow: Generative flow with invertible 1x1 convolutions.
  https://arxiv.org/abs/1807.03039, 2018.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax.flows import coupling
from vdm_jax.flows import layers
from vdm_jax.flows import multiscale


def _check_image(x, name: str) -> None:
  _checks.check_floating(x, name)
  _checks.check_rank(x, 4, f"{name} [B, H, W, C]")


def check_pair(x_shape: Sequence[int], y_shape: Sequence[int], levels: int) -> None:
  """Raises ValueError unless x and y are ``[B, H, W, C]`` images CAFLOW can pair.

  Both must be rank 4 with the same batch size B and spatial size H, W (the
  channel counts may differ), and H, W must be divisible by ``2^levels``.

  Args:
    x_shape: shape of the target images ``[B, H, W, Cx]``.
    y_shape: shape of the source (condition) images ``[B, H, W, Cy]``.
    levels: number of scales L.
  """
  if len(x_shape) != 4 or len(y_shape) != 4:
    raise ValueError(
        f"x and y must both have shape [B, H, W, C], got x {tuple(x_shape)} "
        f"and y {tuple(y_shape)}.")
  if tuple(x_shape[:3]) != tuple(y_shape[:3]):
    raise ValueError(
        f"x and y must share batch and spatial size [B, H, W], got x "
        f"{tuple(x_shape)} and y {tuple(y_shape)}; bring a low-resolution y to "
        "x's size first (vdm_jax.conditional.tasks.resize_condition).")
  multiscale.check_divisible(x_shape, levels, "x")


def check_temperature(temperature) -> None:
  """Raises ValueError if a concrete ``temperature`` is negative (tracers pass)."""
  if isinstance(temperature, jax.core.Tracer):
    return
  t = np.asarray(temperature)
  if t.ndim != 0 or not np.isfinite(t) or t < 0:
    raise ValueError(
        f"temperature must be a finite scalar >= 0, got {temperature!r}.")


def upsample_to(z, size: int):
  """Nearest-neighbour upsampling of ``[B, h, w, C]`` to ``[B, size, size*w/h, C]``.

  Args:
    z: ``[B, h, w, C]`` latent.
    size: target height, a multiple of h.

  Returns:
    ``[B, size, size * w / h, C]``.
  """
  f = size // z.shape[1]
  if f < 1 or size % z.shape[1]:
    raise ValueError(
        f"cannot upsample a latent of height {z.shape[1]} to height {size}.")
  return jnp.repeat(jnp.repeat(z, f, axis=1), f, axis=2)


def condition_image(i: int, ls: Sequence[jax.Array], ms: Sequence[jax.Array]):
  """The condition ``c_i = [l_i, up(l_{i+1}), up(m_{i+1}), ..., up(l_{L-1}), up(m_{L-1})]``.

  Args:
    i: the scale (0 finest).
    ls: the L source latents ``l_j`` (``[B, h_j, w_j, c_j]``, finest first).
    ms: target latents; only ``ms[j]`` for ``j > i`` are read (entries
      ``j <= i`` may be None).

  Returns:
    ``[B, h_i, w_i, sum of channels]`` at the resolution of ``l_i``.
  """
  size = ls[i].shape[1]
  parts = [ls[i]]
  for j in range(i + 1, len(ls)):
    parts += [upsample_to(ls[j], size), upsample_to(ms[j], size)]
  return jnp.concatenate(parts, axis=-1)


class ConditionalAffine(nn.Module):
  """Conditional Gaussian base for one scale: ``z = (h - mu(c)) e^{-log sigma(c)}``.

  .. math::

    (\\mu, \\log\\sigma) = \\mathrm{Conv}_{3\\times3}(c), \\quad
    z = (h - \\mu) \\odot e^{-\\log\\sigma}, \\quad
    \\log|\\det \\partial z / \\partial h| = -\\textstyle\\sum \\log\\sigma.

  The map is the inverse affine coupling of `vdm_jax.flows.coupling` with
  shift ``mu`` and log-scale ``log sigma``. The conv is zero-initialised
  (``N(0, I)`` at init). It lets ``G_i`` shift
  and scale ``m_i`` by a linear function of the condition in one layer, which
  is the whole of the exact map for jointly Gaussian (x, y).
  """

  @nn.compact
  def __call__(self, h, cond, *, reverse: bool = False):
    out = nn.Conv(2 * h.shape[-1], (3, 3), name="prior",
                  kernel_init=nn.initializers.zeros)(cond)
    mu, log_sigma = out[..., 0::2], out[..., 1::2]
    if reverse:
      return coupling.elementwise_affine(h, mu, log_sigma)
    return coupling.affine_coupling(h, mu, log_sigma, inverse=True)


class ScaleConditionalFlow(nn.Module):
  """``G_i``: the conditional flow of one scale, ``m_i <-> z_i`` given ``c_i``.

  ``K`` `vdm_jax.flows.FlowStep`s (actnorm, LU 1x1 conv, affine coupling whose
  net sees ``[m_a, c_i]``) then a `ConditionalAffine` base:

  .. math::

    \\log|\\det \\partial z_i / \\partial m_i| =
    \\textstyle\\sum_k \\log|\\det|_{\\text{step } k} - \\sum \\log\\sigma(c_i).

  Attributes:
    steps: K.
    hidden: coupling conditioner channels.
    scale_type: coupling scale map (see `vdm_jax.flows.AffineCoupling`).
    seed: seeds the 1x1 convs' initial rotations.
  """
  steps: int = 2
  hidden: int = 32
  scale_type: str = "tanh"
  seed: int = 0

  @nn.compact
  def __call__(self, m, cond, *, reverse: bool = False):
    steps = [layers.FlowStep(self.hidden, self.scale_type, seed=self.seed + k,
                             name=f"step{k}") for k in range(self.steps)]
    base = ConditionalAffine(name="base")
    if reverse:
      h = base(m, cond, reverse=True)
      for step in reversed(steps):
        h = step(h, cond, reverse=True)
      return h
    logdet = jnp.zeros((m.shape[0],), m.dtype)
    h = m
    for step in steps:
      h, ld = step(h, cond)
      logdet = logdet + ld
    z, ld = base(h, cond)
    return z, logdet + ld


class CAFlow(nn.Module):
  """CAFLOW model: source flow F, target flow T, conditional flows G_0..G_{L-1}.

  Methods (all take NHWC float images, ``x [B, H, W, Cx]``, ``y [B, H, W, Cy]``):

  * ``forward(x, y) -> (zs, logdet [B])``: the bijection ``x -> (z_0..z_{L-1})``
    for fixed y, ``logdet`` = :math:`\\log|\\det \\partial z / \\partial x|` (nats).
  * ``inverse(zs, y) -> x``.
  * ``log_prob(x, y) -> [B]``: exact :math:`\\log p(x \\mid y)` in nats.
  * ``source_log_prob(y) -> [B]``: :math:`\\log p(y)` of the source flow.
  * ``sample(rng, y, *, channels, temperature=1.) -> x``: draws ``z_i`` from
    :math:`N(0, T^2 I)` coarse to fine (T = 0 is deterministic).
  * ``__call__(x, y) -> (log p(x|y), log p(y))``: use it to ``init`` (it touches
    every parameter; ActNorm layers initialise from that batch).

  Attributes:
    levels: number of scales L (H and W divisible by 2^L).
    source_steps: FlowSteps per level of the source flow F.
    target_steps: FlowSteps per level of the target flow T.
    cond_steps: FlowSteps of each conditional flow G_i.
    hidden: coupling channels of F and T.
    cond_hidden: coupling channels of the G_i (None: ``hidden``).
    scale_type: coupling scale map.
    learned_prior: learned conditional Gaussian in the splits of F and T.
  """
  levels: int = 2
  source_steps: int = 2
  target_steps: int = 2
  cond_steps: int = 2
  hidden: int = 32
  cond_hidden: int | None = None
  scale_type: str = "tanh"
  learned_prior: bool = True

  def setup(self):
    if self.levels < 1:
      raise ValueError(f"levels must be >= 1, got {self.levels}.")
    for name in ("source_steps", "target_steps", "cond_steps"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
    self.source = multiscale.MultiScaleFlow(
        self.levels, self.source_steps, self.hidden, self.scale_type,
        self.learned_prior)
    self.target = multiscale.MultiScaleFlow(
        self.levels, self.target_steps, self.hidden, self.scale_type,
        self.learned_prior)
    hid = self.hidden if self.cond_hidden is None else self.cond_hidden
    self.cond_flows = [
        ScaleConditionalFlow(self.cond_steps, hid, self.scale_type,
                             seed=50_000 + 1000 * i)
        for i in range(self.levels)]

  def _check(self, x, y):
    _check_image(x, "x")
    _check_image(y, "y")
    check_pair(x.shape, y.shape, self.levels)

  def encode_source(self, y):
    """``y -> ((l_0..l_{L-1}), log|det dl/dy| [B])``."""
    _check_image(y, "y")
    return self.source.forward(y)

  def _encode(self, x, y):
    """One pass: ``(zs, log|det dz/dx|, ls, log|det dl/dy|)``."""
    self._check(x, y)
    ls, source_logdet = self.source.forward(y)
    ms, logdet = self.target.forward(x)
    zs = [None] * self.levels
    for i in reversed(range(self.levels)):
      z, ld = self.cond_flows[i](ms[i], condition_image(i, ls, ms))
      zs[i] = z
      logdet = logdet + ld
    return tuple(zs), logdet, ls, source_logdet

  def forward(self, x, y):
    zs, logdet, _, _ = self._encode(x, y)
    return zs, logdet

  def inverse(self, zs, y):
    _check_image(y, "y")
    zs = tuple(zs)
    if len(zs) != self.levels:
      raise ValueError(
          f"zs must hold {self.levels} latents (one per level), got {len(zs)}.")
    ls, _ = self.source.forward(y)
    for i, (z, l) in enumerate(zip(zs, ls)):
      if z.shape[:3] != l.shape[:3]:
        raise ValueError(
            f"zs[{i}] must have [B, H, W] = {tuple(l.shape[:3])} (that of y's "
            f"latent at scale {i}), got {tuple(z.shape)}.")
    ms = [None] * self.levels
    for i in reversed(range(self.levels)):
      ms[i] = self.cond_flows[i](zs[i], condition_image(i, ls, ms),
                                 reverse=True)
    return self.target.inverse(tuple(ms))

  def log_prob(self, x, y):
    zs, logdet = self.forward(x, y)
    return logdet + sum(multiscale.standard_normal_log_prob(z) for z in zs)

  def source_log_prob(self, y):
    _check_image(y, "y")
    return self.source.log_prob(y)

  def sample(self, rng, y, *, channels: int, temperature=1.0):
    _check_image(y, "y")
    check_temperature(temperature)
    x_shape = tuple(y.shape[:3]) + (channels,)
    check_pair(x_shape, y.shape, self.levels)
    shapes = multiscale.latent_shapes(x_shape, self.levels)
    keys = jax.random.split(rng, len(shapes))
    zs = tuple(temperature * jax.random.normal(k, s, y.dtype)
               for k, s in zip(keys, shapes))
    return self.inverse(zs, y)

  def __call__(self, x, y):
    zs, logdet, ls, source_logdet = self._encode(x, y)
    normal = multiscale.standard_normal_log_prob
    return (logdet + sum(normal(z) for z in zs),
            source_logdet + sum(normal(l) for l in ls))
