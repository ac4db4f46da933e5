"""Orthonormal multi-level 2-D Haar transform of image batches.

One level maps each non-overlapping 2x2 block ``[[p00, p01], [p10, p11]]`` of
every channel to four coefficients with the orthogonal matrix ``Q`` (entries
+-1/2):

.. math::

  \\begin{aligned}
  LL &= \\tfrac12 (p_{00} + p_{01} + p_{10} + p_{11}), &
  H_1 &= \\tfrac12 (p_{00} + p_{01} - p_{10} - p_{11}), \\\\
  H_2 &= \\tfrac12 (p_{00} - p_{01} + p_{10} - p_{11}), &
  H_3 &= \\tfrac12 (p_{00} - p_{01} - p_{10} + p_{11}),
  \\end{aligned}

so ``Q Q^T = I``: norms, i.i.d. Gaussian noise and scores are preserved (a
score maps between pixel and Haar space with the same matrix, no Jacobian).
``LL`` is the *approximation* ``a`` (half the side, twice the local mean) and
``d = [H_1, H_2, H_3]`` (concatenated on channels, ``3 C`` channels) the
*details*. Repeating on ``a`` gives ``L`` levels:

  ``x -> (d_1, d_2, ..., d_L, a_L)``, with ``d_k`` of side ``H / 2^k``.

Everything is reshapes and adds, so it is jittable, exact in float arithmetic
up to rounding, and works for any batch size and number of channels.

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (Haar multi-scale decomposition).
  Etmann, Ke, Schonlieb. iUNets: Learnable invertible up- and downsampling
  for large-scale inverse problems. https://arxiv.org/abs/2005.05220, 2020.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax.numpy as jnp

from vdm_jax import _checks


class HaarCoefficients(NamedTuple):
  """The L-level Haar decomposition of a batch of images.

  Attributes:
    details: tuple ``(d_1, ..., d_L)``, finest first; ``d_k`` has shape
      ``[B, H / 2^k, W / 2^k, 3 C]`` with channel groups ``[H1, H2, H3]``.
    approx: the coarsest approximation ``a_L``, ``[B, H / 2^L, W / 2^L, C]``.
  """
  details: tuple
  approx: object


def check_levels(image_shape: Sequence[int], levels: int,
                 name: str = "image") -> None:
  """Raises ValueError unless ``levels >= 0`` and H, W are divisible by 2^levels.

  Args:
    image_shape: ``[..., H, W, C]`` shape (only H and W are read).
    levels: number of Haar levels.
    name: what to call the image in the message.
  """
  if not isinstance(levels, int) or isinstance(levels, bool) or levels < 0:
    raise ValueError(f"levels must be an int >= 0, got {levels!r}.")
  if len(image_shape) < 3:
    raise ValueError(f"{name} must have shape [..., H, W, C], got {tuple(image_shape)}.")
  hgt, wdt = image_shape[-3], image_shape[-2]
  factor = 2 ** levels
  if hgt % factor or wdt % factor:
    raise ValueError(
        f"{name} size {hgt}x{wdt} must be divisible by 2^levels = {factor} "
        f"(levels={levels}); crop or pad the images or use fewer levels.")


def haar_step(x):
  """One Haar level: ``[B, H, W, C] -> (a [B, H/2, W/2, C], d [B, H/2, W/2, 3C])``.

  Args:
    x: floating ``[B, H, W, C]`` with even H and W.

  Returns:
    ``(a, d)``: approximation ``LL`` and details ``concat(H1, H2, H3)``.
  """
  _checks.check_rank(x, 4, "x [B, H, W, C]")
  _checks.check_floating(x, "x")
  check_levels(x.shape, 1, "x")
  b, hgt, wdt, c = x.shape
  blocks = x.reshape(b, hgt // 2, 2, wdt // 2, 2, c)
  p00, p01 = blocks[:, :, 0, :, 0], blocks[:, :, 0, :, 1]
  p10, p11 = blocks[:, :, 1, :, 0], blocks[:, :, 1, :, 1]
  top, bottom = p00 + p01, p10 + p11        # row sums
  left_m_right_t, left_m_right_b = p00 - p01, p10 - p11
  a = 0.5 * (top + bottom)
  h1 = 0.5 * (top - bottom)
  h2 = 0.5 * (left_m_right_t + left_m_right_b)
  h3 = 0.5 * (left_m_right_t - left_m_right_b)
  return a, jnp.concatenate([h1, h2, h3], axis=-1)


def inverse_haar_step(a, d):
  """Inverse of `haar_step`: ``(a, d) -> x [B, 2h, 2w, C]`` (``Q^T = Q^{-1}``).

  Args:
    a: ``[B, h, w, C]`` approximation.
    d: ``[B, h, w, 3C]`` details ``concat(H1, H2, H3)``.

  Returns:
    ``[B, 2h, 2w, C]`` image.
  """
  _checks.check_rank(a, 4, "a [B, h, w, C]")
  _checks.check_rank(d, 4, "d [B, h, w, 3C]")
  b, hgt, wdt, c = a.shape
  if d.shape != (b, hgt, wdt, 3 * c):
    raise ValueError(
        f"details d must have shape [B, h, w, 3C] = {(b, hgt, wdt, 3 * c)} to "
        f"match the approximation a {a.shape}, got {d.shape}.")
  h1, h2, h3 = d[..., :c], d[..., c:2 * c], d[..., 2 * c:]
  # Q is symmetric up to row order; its transpose gives each pixel as a signed
  # half-sum of the four coefficients.
  p00 = 0.5 * (a + h1 + h2 + h3)
  p01 = 0.5 * (a + h1 - h2 - h3)
  p10 = 0.5 * (a - h1 + h2 - h3)
  p11 = 0.5 * (a - h1 - h2 + h3)
  row0 = jnp.stack([p00, p01], axis=3)      # [B, h, w, 2, C]
  row1 = jnp.stack([p10, p11], axis=3)
  blocks = jnp.stack([row0, row1], axis=2)  # [B, h, 2, w, 2, C]
  return blocks.reshape(b, 2 * hgt, 2 * wdt, c)


def wavedec(x, levels: int) -> HaarCoefficients:
  """L-level orthonormal Haar decomposition ``x -> (d_1, ..., d_L), a_L``.

  .. math::

    a_0 = x, \\qquad (a_k, d_k) = \\mathrm{Haar}(a_{k-1}), \\quad k = 1..L.

  Args:
    x: floating ``[B, H, W, C]``; H and W divisible by ``2^levels``.
    levels: number of levels L >= 0 (0 returns ``((), x)``).

  Returns:
    `HaarCoefficients` with ``details[k-1] = d_k`` ``[B, H/2^k, W/2^k, 3C]``
    and ``approx = a_L`` ``[B, H/2^L, W/2^L, C]``.
  """
  _checks.check_rank(x, 4, "x [B, H, W, C]")
  _checks.check_floating(x, "x")
  check_levels(x.shape, levels, "x")
  details = []
  a = x
  for _ in range(levels):
    a, d = haar_step(a)
    details.append(d)
  return HaarCoefficients(tuple(details), a)


def waverec(approx, details: Sequence) -> jnp.ndarray:
  """Inverse of `wavedec`: rebuilds ``a_{k-1}`` from ``a_L`` and ``(d_k, ..., d_L)``.

  Passing only the coarser details ``details = (d_k, ..., d_L)`` returns the
  level-(k-1) approximation image ``a_{k-1}`` of side ``H / 2^{k-1}``, which is
  what a multi-scale score network sees.

  Args:
    approx: ``a_L`` ``[B, h, w, C]``.
    details: finest first, ``details[i]`` of side ``h * 2^(len(details)-1-i)``.

  Returns:
    ``[B, h * 2^len(details), w * 2^len(details), C]`` image.
  """
  a = approx
  for d in reversed(tuple(details)):
    a = inverse_haar_step(a, d)
  return a


def coefficients_to_list(coeffs: HaarCoefficients) -> tuple:
  """Flattens to the band order used by the multi-scale process: ``(d_1..d_L, a_L)``."""
  return tuple(coeffs.details) + (coeffs.approx,)


def list_to_coefficients(bands: Sequence) -> HaarCoefficients:
  """Inverse of `coefficients_to_list`."""
  bands = tuple(bands)
  if not bands:
    raise ValueError("bands must hold at least the approximation a_L, got ().")
  return HaarCoefficients(bands[:-1], bands[-1])
