"""Diffeomorphisms of R^D for pullback geometry: affine maps and a RealNVP flow.

A `Diffeomorphism` bundles three pure maps of ONE point: ``forward`` phi
``[D] -> [D]``, ``inverse`` phi^{-1} ``[D] -> [D]`` and ``log_det`` log|det Dphi|
``[D] -> []``. `affine` builds one from a matrix, `flow_maps` from a trained
`RealNVP`; both plug straight into `vdm_jax.geometry.pullback`.

The flow is a stack of affine coupling layers with alternating even/odd masks,

.. math::

  y_{\\bar m} = x_{\\bar m} \\odot s(x_m) + t(x_m), \\quad y_m = x_m, \\quad
  \\log|\\det Dy| = \\textstyle\\sum_{\\bar m} \\log s(x_m),

with a residual-MLP conditioner. Two scale maps are offered (``scale_type``):

* ``'tanh'`` (default, a deviation from the paper): log s = c tanh(h / c) with
  c = ``log_scale_bound``; bounded, can expand or contract, and the identity at
  initialisation (the last layer is zero-init).
* ``'sigmoid'`` (the paper's code): s = sigmoid(h + 2) + 1e-3 in
  (0.001, 1.001), so every layer contracts; with a fixed A = I such a flow
  cannot expand a low-variance axis to unit variance, which handicaps the
  standard-flow baseline. With a learned A it fixes the scale gauge between
  phi and A: a contraction of one axis cannot be paid for by an expansion of
  another, so the volume term lambda_vol |log det Dphi| charges it. The RAE
  on Sinusoid(1, 100) needs this (``configs/pullback_rae.py``).

References:
  Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP.
  https://arxiv.org/abs/1605.08803, 2016.
  Diepeveen, Batzolis, Shumaylov, Schoenlieb. Score-based pullback Riemannian
  geometry. https://arxiv.org/abs/2410.01950, 2024 (Sec. 6, architecture).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax.flows import coupling


class Diffeomorphism(NamedTuple):
  """phi, phi^{-1} and log|det Dphi| as pure maps of one point ``[D]``."""
  forward: Callable[[jax.Array], jax.Array]
  inverse: Callable[[jax.Array], jax.Array]
  log_det: Callable[[jax.Array], jax.Array]


def affine(weight, shift=None) -> Diffeomorphism:
  """The affine diffeomorphism phi(x) = W (x - mu).

  .. math::

    \\varphi(x) = W(x - \\mu), \\quad \\varphi^{-1}(z) = W^{-1} z + \\mu, \\quad
    \\log|\\det D\\varphi| = \\log|\\det W|.

  Args:
    weight: W, an invertible ``[D, D]`` matrix.
    shift: mu, ``[D]``, or None for 0.

  Returns:
    A `Diffeomorphism`.
  """
  weight = jnp.asarray(weight)
  _checks.check_floating(weight, "weight")
  _checks.check_rank(weight, 2, "weight")
  d = weight.shape[0]
  if weight.shape != (d, d):
    raise ValueError(f"weight must be square [D, D], got shape {weight.shape}.")
  shift = jnp.zeros((d,), weight.dtype) if shift is None else jnp.asarray(shift)
  if shift.shape != (d,):
    raise ValueError(
        f"shift must have shape [D] = [{d}] to match weight, got {shift.shape}.")
  if not isinstance(weight, jax.core.Tracer):
    cond = np.linalg.cond(np.asarray(weight, np.float64))
    if not np.isfinite(cond) or cond > 1e7:
      raise ValueError(
          f"weight must be invertible, got condition number {cond:.3g}.")
  weight_inv = jnp.linalg.inv(weight)
  log_det = jnp.linalg.slogdet(weight)[1]

  def forward(x):
    _check_point(x, d)
    return weight @ (x - shift)

  def inverse(z):
    _check_point(z, d, "z")
    return weight_inv @ z + shift

  def log_det_fn(x):
    _check_point(x, d)
    return log_det

  return Diffeomorphism(forward, inverse, log_det_fn)


def _check_point(x, d, name="x"):
  if jnp.shape(x) != (d,):
    raise ValueError(
        f"{name} must be one point of shape [D] = [{d}], got {jnp.shape(x)}.")


# ----------------------------------------------------------------------------
# RealNVP.
# ----------------------------------------------------------------------------
class ResidualNet(nn.Module):
  """A residual MLP conditioner ``[..., D] -> [..., out_dim]`` (zero-init output)."""
  out_dim: int
  hidden: int = 64
  n_blocks: int = 2

  @nn.compact
  def __call__(self, x):
    h = nn.Dense(self.hidden)(x)
    for _ in range(self.n_blocks):
      r = nn.Dense(self.hidden)(nn.relu(h))
      r = nn.Dense(self.hidden)(nn.relu(r))
      h = h + r
    return nn.Dense(self.out_dim, kernel_init=nn.initializers.zeros)(nn.relu(h))


class AffineCoupling(nn.Module):
  """One affine coupling layer; ``mask`` (1 = conditioning coords) is static.

  With m the mask, :math:`y = m \\odot x + (1 - m) \\odot (x \\odot e^{\\log s}
  + t)` and :math:`(t, \\log s) = \\mathrm{NN}(m \\odot x) \\odot (1 - m)`; the
  maths is `vdm_jax.flows.coupling.affine_coupling` (Dinh et al. 2016,
  eqs. 4-6 with a binary mask, eq. 9).
  """
  mask: Sequence[int]
  hidden: int = 64
  n_blocks: int = 2
  log_scale_bound: float = 2.0
  scale_type: str = "tanh"

  def setup(self):
    if self.scale_type not in ("tanh", "sigmoid"):
      raise ValueError(
          f"scale_type must be 'tanh' or 'sigmoid', got {self.scale_type!r}.")
    self.net = ResidualNet(2 * len(self.mask), self.hidden, self.n_blocks)

  def _shift_log_scale(self, x_cond):
    m = jnp.asarray(self.mask, x_cond.dtype)
    h = self.net(x_cond * m)
    t, h_s = jnp.split(h, 2, axis=-1)
    if self.scale_type == "sigmoid":
      log_s = coupling.offset_sigmoid_log_scale(h_s)
    else:
      log_s = coupling.tanh_log_scale(h_s, self.log_scale_bound)
    return t * (1.0 - m), log_s * (1.0 - m), m

  def __call__(self, x):
    # t and log s vanish on the conditioning coordinates (m = 1), so the
    # affine map is the identity there and they add 0 to the log-det.
    t, log_s, m = self._shift_log_scale(x)
    y, log_det = coupling.affine_coupling(x, t, log_s, event_ndim=1)
    return m * x + (1.0 - m) * y, log_det

  def inverse(self, y):
    t, log_s, m = self._shift_log_scale(y)
    x = coupling.elementwise_affine(y, t, log_s, inverse=True)
    return m * y + (1.0 - m) * x


class RealNVP(nn.Module):
  """A RealNVP flow phi: R^D -> R^D with exact inverse and log-determinant.

  Call as ``z, log_det = model.apply(params, x)`` with ``x`` ``[D]`` or
  ``[B, D]``, and ``x = model.apply(params, z, method=RealNVP.inverse)``.

  Attributes:
    dim: D (>= 2).
    n_steps: number of coupling layers (masks alternate even/odd).
    hidden: conditioner width.
    n_blocks: residual blocks per conditioner.
    log_scale_bound: c in log s = c tanh(h / c).
    scale_type: 'tanh' or 'sigmoid' (the paper's s = sigmoid(h + 2) + 1e-3).
    mask_type: 'alternating' (even/odd coordinates, the paper's) or 'random':
      layer pair p splits the coordinates by a fixed permutation seeded with
      p (first half conditions the second, then the reverse), so that every
      coordinate is eventually conditioned on every other; this matters when
      the intrinsic coordinates sit together (e.g. the last k of Sinusoid).
  """
  dim: int
  n_steps: int = 4
  hidden: int = 64
  n_blocks: int = 2
  log_scale_bound: float = 2.0
  scale_type: str = "tanh"
  mask_type: str = "alternating"

  def setup(self):
    if self.dim < 2:
      raise ValueError(f"RealNVP needs dim >= 2, got dim={self.dim}.")
    self.layers = [
        AffineCoupling(mask, self.hidden, self.n_blocks, self.log_scale_bound,
                       self.scale_type) for mask in coupling_masks(
                           self.dim, self.n_steps, self.mask_type)]

  def _check(self, x, name):
    _checks.check_floating(x, name)
    _checks.check_rank(x, (1, 2), name)
    if x.shape[-1] != self.dim:
      raise ValueError(
          f"{name} must have last dimension D = {self.dim}, got shape "
          f"{x.shape}.")

  def __call__(self, x):
    self._check(x, "x")
    log_det = jnp.zeros(x.shape[:-1], x.dtype)
    for layer in self.layers:
      x, ld = layer(x)
      log_det = log_det + ld
    return x, log_det

  def inverse(self, z):
    self._check(z, "z")
    for layer in reversed(self.layers):
      z = layer.inverse(z)
    return z


def coupling_masks(dim: int, n_steps: int, mask_type: str = "alternating"):
  """The static conditioning masks (1 = conditioning coordinate) per layer."""
  if mask_type == "alternating":
    even = tuple(int(i % 2 == 0) for i in range(dim))
    odd = tuple(1 - e for e in even)
    return [even if k % 2 == 0 else odd for k in range(n_steps)]
  if mask_type == "random":
    masks = []
    for k in range(n_steps):
      perm = np.random.default_rng(k // 2).permutation(dim)
      first = np.zeros(dim, int)
      first[perm[: dim // 2]] = 1
      masks.append(tuple(int(v) for v in (first if k % 2 == 0 else 1 - first)))
    return masks
  raise ValueError(
      f"mask_type must be 'alternating' or 'random', got {mask_type!r}.")


def init_flow(model: RealNVP, rng) -> Any:
  """Initialises a `RealNVP`'s parameters (the identity map)."""
  # Jitted: an eager Flax init compiles each op alone (the same bits for RealNVP).
  return jax.jit(model.init)(rng, jnp.zeros((1, model.dim), jnp.float32))


def flow_maps(model: RealNVP, params) -> Diffeomorphism:
  """Binds a flow's parameters into a `Diffeomorphism` of one point ``[D]``."""

  def forward(x):
    _check_point(x, model.dim)
    return model.apply(params, x)[0]

  def inverse(z):
    _check_point(z, model.dim, "z")
    return model.apply(params, z, method=RealNVP.inverse)

  def log_det(x):
    _check_point(x, model.dim)
    return model.apply(params, x)[1]

  return Diffeomorphism(forward, inverse, log_det)
