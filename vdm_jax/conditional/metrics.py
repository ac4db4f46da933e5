"""Metrics for conditional samples: PSNR, SSIM, consistency and diversity.

All functions take numpy or jax float images ``[N, H, W, C]`` in [-1, 1] (the
convention of `vdm_jax.conditional.tasks`; pass ``data_range=1.0`` for images in
[0, 1]) and return numpy values, one per image (reduce with ``np.mean``).
PSNR and SSIM call `skimage.metrics` on the host; they are evaluation code, not
training code.

.. math::

  \\mathrm{PSNR} = 10 \\log_{10} \\frac{R^2}{\\mathrm{MSE}(\\hat x, x)},\\qquad
  \\mathrm{consistency} = \\sqrt{\\tfrac{1}{D_y}\\|A(\\hat x) - y\\|^2},\\qquad
  \\mathrm{diversity} = \\tfrac{1}{D}\\sum_d \\mathrm{std}_k(\\hat x^{(k)}_d),

with :math:`R` = ``data_range``, :math:`A` the task operator and :math:`k`
running over samples drawn for the same condition y.

References:
  Batzolis, Stanczuk, Schönlieb, Etmann, Conditional Image Generation with
  Score-Based Diffusion Models, https://arxiv.org/abs/2111.13606, 2021.
  Wang, Bovik, Sheikh, Simoncelli, Image quality assessment: from error
  visibility to structural similarity, IEEE TIP, 2004 (SSIM).
"""

from __future__ import annotations

import numpy as np

from vdm_jax import _checks


def _as_images(x, name):
  x = np.asarray(x, np.float64)
  _checks.check_rank(x, 4, f"{name} [N, H, W, C]")
  return x


def psnr(x_hat, x, *, data_range: float = 2.0):
  """Peak signal-to-noise ratio per image, in dB: ``[N, H, W, C] x2 -> [N]``."""
  from skimage.metrics import peak_signal_noise_ratio  # pylint: disable=g-import-not-at-top
  x_hat, x = _as_images(x_hat, "x_hat"), _as_images(x, "x")
  _checks.check_same_shape(x_hat, x, "x_hat", "x")
  out = []
  for a, b in zip(x_hat, x):
    if np.array_equal(a, b):
      out.append(np.inf)
    else:
      out.append(peak_signal_noise_ratio(b, a, data_range=data_range))
  return np.asarray(out)


def ssim(x_hat, x, *, data_range: float = 2.0):
  """Structural similarity per image (scikit-image, uniform 7x7 window or smaller).

  Small images (the 8x8 digits) use the largest odd window that fits.

  Returns:
    `[N]` values in [-1, 1].
  """
  from skimage.metrics import structural_similarity  # pylint: disable=g-import-not-at-top
  x_hat, x = _as_images(x_hat, "x_hat"), _as_images(x, "x")
  _checks.check_same_shape(x_hat, x, "x_hat", "x")
  side = min(x.shape[1], x.shape[2], 7)
  win = side if side % 2 else side - 1
  if win < 3:
    raise ValueError(f"SSIM needs images of at least 3x3, got {x.shape[1:3]}.")
  return np.asarray([
      structural_similarity(b, a, data_range=data_range, channel_axis=-1,
                            win_size=win)
      for a, b in zip(x_hat, x)])


def consistency(x_hat, y, operator, aux=None):
  """Root-mean-square mismatch between ``A(x_hat)`` and the observed ``y``.

  Args:
    x_hat: `[N, H, W, C]` samples.
    y: `[N, ...]` observations, in the units of ``operator``'s output.
    operator: ``A(x, aux) -> y`` (a `Task.observe`), or ``A(x)`` when ``aux``
      is None.
    aux: the task's auxiliary data (masks) for these N conditions.

  Returns:
    `[N]` RMS of ``A(x_hat) - y`` (0 = perfectly consistent).
  """
  x_hat = _as_images(x_hat, "x_hat")
  a_x = operator(x_hat.astype(np.float32)) if aux is None else operator(
      x_hat.astype(np.float32), aux)
  a_x = np.asarray(a_x, np.float64)
  y = np.asarray(y, np.float64)
  _checks.check_same_shape(a_x, y, "A(x_hat)", "y")
  return np.sqrt(np.mean((a_x - y) ** 2, axis=tuple(range(1, y.ndim))))


def diversity(samples):
  """Mean per-pixel standard deviation across samples of one condition.

  Args:
    samples: `[K, N, H, W, C]`: K >= 2 samples for each of N conditions.

  Returns:
    `[N]` mean over pixels of the std across the K samples (data units).
  """
  samples = np.asarray(samples, np.float64)
  _checks.check_rank(samples, 5, "samples [K, N, H, W, C]")
  if samples.shape[0] < 2:
    raise ValueError(f"diversity needs K >= 2 samples per condition, got {samples.shape[0]}.")
  return samples.std(axis=0, ddof=1).mean(axis=(1, 2, 3))
