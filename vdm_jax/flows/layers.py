"""Glow/RealNVP image flow layers: squeeze, actnorm, 1x1 conv, coupling, split.

Every layer is a bijection of NHWC images with an exact inverse and an exact
log-determinant. Each is a Flax module with one compact ``__call__(x, cond=None,
*, reverse=False)`` and two thin wrappers,

* ``forward(x, cond=None) -> (y, logdet)``, ``logdet`` of shape ``[B]`` (nats),
  :math:`\\log|\\det \\partial y / \\partial x|` per example;
* ``inverse(y, cond=None) -> x``.

Parameters are created by the *forward* pass, so initialise with
``module.init(rng, x, method='forward')``; `ActNorm` then sets its parameters
from the statistics of that batch (Glow's data-dependent initialisation).
`Split` maps ``x`` to a pair ``(z_keep, eps)`` rather than one array (see its
docstring); everything else maps an array to an array of the same size.

References:
  Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP.
  https://arxiv.org/abs/1605.08803, 2016.
  Kingma, Dhariwal. Glow: Generative flow with invertible 1x1 convolutions.
  https://arxiv.org/abs/1807.03039, 2018.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from vdm_jax import _checks
from vdm_jax.flows import coupling


def _check_image(x, name: str) -> None:
  _checks.check_floating(x, name)
  _checks.check_rank(x, 4, name)


def _check_channels(module, name: str, c: int, x) -> None:
  """Raises if `module` was initialised for a channel count other than `c`."""
  if module.has_variable("params", name):
    n = module.get_variable("params", name).shape[0]
    if n != c:
      raise ValueError(
          f"{type(module).__name__} was initialised for {n} channels, got x of "
          f"shape {tuple(x.shape)}.")


def _check_cond(cond, x, name_x: str = "x") -> None:
  """`cond` must be None or a [B, H, W, Cc] image matching x's B, H, W."""
  if cond is None:
    return
  _check_image(cond, "cond")
  if cond.shape[:3] != x.shape[:3]:
    raise ValueError(
        f"cond must have shape [B, H, W, Cc] matching {name_x}'s [B, H, W] = "
        f"{tuple(x.shape[:3])}, got {tuple(cond.shape)}.")


# ------------------------------------------------------------------- squeeze --
def squeeze(x):
  """Space-to-depth by 2x2 blocks: ``[B, H, W, C] -> [B, H/2, W/2, 4C]``.

  A permutation of the entries, so :math:`\\log|\\det| = 0`. Channel ``c`` of
  pixel ``(i, j)`` in block ``(h, w)`` goes to channel ``(2i + j) C + c``.

  Args:
    x: ``[B, H, W, C]`` floating array, H and W even.

  Returns:
    ``[B, H/2, W/2, 4C]`` array.
  """
  _check_image(x, "x")
  b, h, w, c = x.shape
  if h % 2 or w % 2:
    raise ValueError(
        f"squeeze needs even height and width, got x of shape {tuple(x.shape)}"
        "; crop or pad the image so that H and W are divisible by 2.")
  x = x.reshape(b, h // 2, 2, w // 2, 2, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(y):
  """Depth-to-space, the inverse of `squeeze`: ``[B, H, W, 4C] -> [B, 2H, 2W, C]``."""
  _check_image(y, "y")
  b, h, w, c4 = y.shape
  if c4 % 4:
    raise ValueError(
        f"unsqueeze needs a channel count divisible by 4, got y of shape "
        f"{tuple(y.shape)}.")
  c = c4 // 4
  y = y.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, 2 * h, 2 * w, c)


class _Bijector(nn.Module):
  """Adds ``forward``/``inverse`` wrappers around ``__call__(.., reverse=)``."""

  def forward(self, x, cond=None):
    return self(x, cond, reverse=False)

  def inverse(self, y, cond=None):
    return self(y, cond, reverse=True)


class Squeeze(_Bijector):
  """`squeeze` as a flow layer (no parameters, log-det 0); ``cond`` is ignored."""

  @nn.compact
  def __call__(self, x, cond=None, *, reverse: bool = False):
    del cond
    if reverse:
      return unsqueeze(x)
    return squeeze(x), jnp.zeros((x.shape[0],), x.dtype)


# ------------------------------------------------------------------- actnorm --
def actnorm_init(x, *, eps: float = 1e-6) -> dict[str, Any]:
  """Data-dependent ActNorm parameters: unit variance, zero mean per channel.

  .. math::

    b_c = -\\mathrm{mean}(x_{\\cdot c}), \\quad
    s_c = -\\log(\\mathrm{std}(x_{\\cdot c}) + \\epsilon)

  so that :math:`(x + b) e^{s}` has per-channel mean 0 and std ~1 on ``x``.

  Args:
    x: ``[B, H, W, C]`` floating batch.
    eps: added to the std (keyword-only), guards constant channels.

  Returns:
    ``{'bias': [C], 'log_scale': [C]}``.
  """
  _check_image(x, "x")
  mean = jnp.mean(x, axis=(0, 1, 2))
  std = jnp.std(x, axis=(0, 1, 2))
  return {"bias": -mean, "log_scale": -jnp.log(std + eps)}


class ActNorm(_Bijector):
  """Per-channel affine map with data-dependent initialisation (Glow, Sec. 3.1).

  .. math::

    y = (x + b) \\odot e^{s}, \\qquad
    \\log|\\det \\partial y/\\partial x| = H W \\textstyle\\sum_c s_c.

  Attributes:
    data_init: if True (default), ``init`` sets ``b, s`` by `actnorm_init` on the
      batch it sees; otherwise ``b = s = 0`` (the identity).
  """
  data_init: bool = True

  @nn.compact
  def __call__(self, x, cond=None, *, reverse: bool = False):
    del cond
    _check_image(x, "x")
    c = x.shape[-1]
    if self.data_init:
      init = lambda name: (lambda rng: actnorm_init(x)[name])
    else:
      init = lambda name: (lambda rng: jnp.zeros((c,), x.dtype))
    _check_channels(self, "bias", c, x)
    bias = self.param("bias", init("bias"))
    log_scale = self.param("log_scale", init("log_scale"))
    if reverse:
      return x * jnp.exp(-log_scale) - bias
    logdet = x.shape[1] * x.shape[2] * jnp.sum(log_scale)
    return (x + bias) * jnp.exp(log_scale), jnp.full((x.shape[0],), logdet)


# ------------------------------------------------------------------- 1x1 conv --
def _lu_init(c: int, seed: int):
  """P, L, U and sign(diag U) of a random rotation, as in Glow's LU variant."""
  rng = np.random.default_rng(seed)
  w, _ = np.linalg.qr(rng.standard_normal((c, c)))
  p, l, u = scipy.linalg.lu(w)
  d = np.diag(u)
  return (p.astype(np.float32), l.astype(np.float32),
          np.triu(u, 1).astype(np.float32), np.sign(d).astype(np.float32),
          np.log(np.abs(d)).astype(np.float32))


class InvConv1x1(_Bijector):
  """Invertible 1x1 convolution, LU-parameterised (Glow, Sec. 3.2).

  .. math::

    W = P L (U + \\mathrm{diag}(\\mathrm{sign}(s) e^{\\log|s|})), \\quad
    y_{hw} = W x_{hw}, \\quad
    \\log|\\det| = H W \\textstyle\\sum_c \\log|s_c|.

  ``P`` (a permutation) and ``sign(s)`` are fixed numpy constants drawn from
  ``seed``; ``L`` (unit lower, stored strictly-lower), ``U`` (strictly upper)
  and ``log|s|`` are trained. At init ``W`` is a random rotation. The inverse
  uses two triangular solves, not a general matrix inverse.

  Attributes:
    seed: seeds the initial rotation (give each layer its own).
  """
  seed: int = 0

  @nn.compact
  def __call__(self, x, cond=None, *, reverse: bool = False):
    del cond
    _check_image(x, "x")
    c = x.shape[-1]
    _check_channels(self, "log_s", c, x)
    p, l0, u0, sign, logs0 = _lu_init(c, self.seed)
    lower = self.param("lower", lambda rng: jnp.asarray(l0))
    upper = self.param("upper", lambda rng: jnp.asarray(u0))
    log_s = self.param("log_s", lambda rng: jnp.asarray(logs0))
    eye = jnp.eye(c, dtype=x.dtype)
    l_mat = jnp.tril(lower, -1) + eye
    u_mat = jnp.triu(upper, 1) + jnp.diag(sign * jnp.exp(log_s))
    if reverse:
      # x = W^{-1} y = U^{-1} L^{-1} P^T y, applied to rows: x^T = y^T P L^{-T} U^{-T}.
      flat = x.reshape(-1, c) @ p                       # rows of P^T y
      flat = jax.scipy.linalg.solve_triangular(
          l_mat, flat.T, lower=True, unit_diagonal=True)
      flat = jax.scipy.linalg.solve_triangular(u_mat, flat, lower=False)
      return flat.T.reshape(x.shape)
    w = jnp.asarray(p) @ l_mat @ u_mat
    y = jnp.einsum("bhwc,dc->bhwd", x, w)
    logdet = x.shape[1] * x.shape[2] * jnp.sum(log_s)
    return y, jnp.full((x.shape[0],), logdet)


# ------------------------------------------------------------------ coupling --
class _ConvNet(nn.Module):
  """3x3 conv -> ReLU -> 1x1 conv -> ReLU -> zero-init 3x3 conv."""
  hidden: int
  out: int

  @nn.compact
  def __call__(self, h):
    h = nn.relu(nn.Conv(self.hidden, (3, 3))(h))
    h = nn.relu(nn.Conv(self.hidden, (1, 1))(h))
    return nn.Conv(self.out, (3, 3), kernel_init=nn.initializers.zeros,
                   bias_init=nn.initializers.zeros)(h)


class AffineCoupling(_Bijector):
  """Affine coupling with an optional conditioning image (RealNVP; Glow Sec. 3.3).

  With ``x = (x_a, x_b)`` split along channels (``x_a`` the first ``C // 2``),

  .. math::

    (\\log s, t) = \\mathrm{NN}([x_a, \\mathrm{cond}]), \\quad
    y = (x_a, x_b \\odot e^{\\log s} + t), \\quad
    \\log|\\det| = \\textstyle\\sum \\log s.

  The elementwise map and log-det are `vdm_jax.flows.coupling.affine_coupling`
  (Dinh et al. 2016, eqs. 4-6). The last conv is zero-initialised, so the layer
  starts as the identity. Scale maps (``scale_type``):

  * ``'tanh'`` (default): :math:`\\log s = c \\tanh(h / c)`, c = ``scale_bound``
    (`vdm_jax.flows.coupling.tanh_log_scale`).
  * ``'sigmoid'``: :math:`s = 2\\,\\sigma(h)` in (0, 2). This deviates from
    Glow's :math:`\\sigma(h + 2)` so that the zero-init layer is exactly the
    identity (Glow's starts with s = 0.88).

  Attributes:
    hidden: channels of the conditioner net.
    scale_type: ``'tanh'`` or ``'sigmoid'``.
    scale_bound: c for ``'tanh'``.
  """
  hidden: int = 32
  scale_type: str = "tanh"
  scale_bound: float = 2.0

  def _log_scale(self, h):
    if self.scale_type == "tanh":
      return coupling.tanh_log_scale(h, self.scale_bound)
    if self.scale_type == "sigmoid":
      return coupling.sigmoid_log_scale(h)
    raise ValueError(
        f"scale_type must be 'tanh' or 'sigmoid', got {self.scale_type!r}.")

  @nn.compact
  def __call__(self, x, cond=None, *, reverse: bool = False):
    _check_image(x, "x")
    _check_cond(cond, x)
    c = x.shape[-1]
    if c < 2:
      raise ValueError(
          f"AffineCoupling needs at least 2 channels, got x of shape "
          f"{tuple(x.shape)}; squeeze first.")
    ca = c // 2
    xa, xb = x[..., :ca], x[..., ca:]
    h = xa if cond is None else jnp.concatenate([xa, cond], axis=-1)
    h = _ConvNet(self.hidden, 2 * (c - ca), name="net")(h)
    log_s = self._log_scale(h[..., 0::2])
    t = h[..., 1::2]
    if reverse:
      xb = coupling.elementwise_affine(xb, t, log_s, inverse=True)
      return jnp.concatenate([xa, xb], axis=-1)
    yb, logdet = coupling.affine_coupling(xb, t, log_s)
    return jnp.concatenate([xa, yb], axis=-1), logdet


# --------------------------------------------------------------------- split --
class Split(nn.Module):
  """Multi-scale factor-out: keep half the channels, standardise the other half.

  With ``x = (z, x_out)`` split along channels (``z`` the first ``C // 2``),

  .. math::

    (\\mu, \\log\\sigma) = \\mathrm{NN}([z, \\mathrm{cond}]), \\quad
    \\epsilon = (x_{\\rm out} - \\mu) e^{-\\log\\sigma}, \\quad
    \\log|\\det| = -\\textstyle\\sum \\log\\sigma.

  The factored half is thus scored by the learned conditional Gaussian
  :math:`N(x_{\\rm out}; \\mu(z), \\sigma(z)^2)` through
  :math:`\\log N(\\epsilon; 0, I) + \\log|\\det|`. Glow adds
  :math:`\\log p(x_{\\rm out} | z)` to its objective instead; writing it as a
  bijection onto a standard-normal ``eps`` is equivalent and keeps every latent
  standard normal, which is what temperature sampling and CAFLOW's
  conditional flows over the latents need. With ``learned_prior=False``,
  ``mu = 0, sigma = 1`` (a standard-normal factor-out, RealNVP).

  ``eps`` is the inverse affine-coupling map with shift ``mu`` and log-scale
  ``log sigma`` (`vdm_jax.flows.coupling.affine_coupling` with ``inverse=True``).

  ``forward(x, cond) -> ((z, eps), logdet [B])``; ``inverse((z, eps), cond) -> x``.

  Attributes:
    learned_prior: learn ``mu, log sigma`` (zero-init conv, so N(0, I) at init).
  """
  learned_prior: bool = True

  @nn.compact
  def __call__(self, x, cond=None, *, reverse: bool = False):
    if reverse:
      z, x_out = x
      _check_image(z, "z")
      _check_image(x_out, "eps")
      if z.shape[:3] != x_out.shape[:3]:
        raise ValueError(
            f"z and eps must share [B, H, W], got {tuple(z.shape)} and "
            f"{tuple(x_out.shape)}.")
    else:
      _check_image(x, "x")
      if x.shape[-1] < 2:
        raise ValueError(
            f"Split needs at least 2 channels, got x of shape {tuple(x.shape)}.")
      z, x_out = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    _check_cond(cond, z, "z")
    if self.learned_prior:
      h = z if cond is None else jnp.concatenate([z, cond], axis=-1)
      h = nn.Conv(2 * x_out.shape[-1], (3, 3), name="prior",
                  kernel_init=nn.initializers.zeros)(h)
      mu, log_sigma = h[..., 0::2], h[..., 1::2]
    else:
      mu = log_sigma = jnp.zeros_like(x_out)
    if reverse:
      x_out = coupling.elementwise_affine(x_out, mu, log_sigma)
      return jnp.concatenate([z, x_out], axis=-1)
    eps, logdet = coupling.affine_coupling(x_out, mu, log_sigma, inverse=True)
    return (z, eps), logdet

  def forward(self, x, cond=None):
    return self(x, cond, reverse=False)

  def inverse(self, zs, cond=None):
    return self(zs, cond, reverse=True)


class FlowStep(_Bijector):
  """One Glow step: `ActNorm` -> `InvConv1x1` -> `AffineCoupling` (cond-aware).

  .. math::

    \\log|\\det| = \\log|\\det|_{\\rm actnorm} + \\log|\\det|_{1\\times1}
    + \\log|\\det|_{\\rm coupling}.

  Attributes:
    hidden: coupling conditioner channels.
    scale_type: see `AffineCoupling`.
    seed: seeds the 1x1 conv's initial rotation.
  """
  hidden: int = 32
  scale_type: str = "tanh"
  seed: int = 0

  @nn.compact
  def __call__(self, x, cond=None, *, reverse: bool = False):
    layers = [ActNorm(name="actnorm"), InvConv1x1(seed=self.seed, name="invconv"),
              AffineCoupling(self.hidden, self.scale_type, name="coupling")]
    if reverse:
      for layer in reversed(layers):
        x = layer(x, cond, reverse=True)
      return x
    logdet = jnp.zeros((x.shape[0],), x.dtype)
    for layer in layers:
      x, ld = layer(x, cond)
      logdet = logdet + ld
    return x, logdet
