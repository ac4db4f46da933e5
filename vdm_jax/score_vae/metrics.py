"""Reconstruction metrics for ScoreVAE: sharpness and Frechet distance.

* `high_frequency_energy`: mean spectral power of each image above a radial
  frequency cutoff, a sharpness measure; the ratio of reconstructions to data is
  1 for data-like sharpness and < 1 for blur.
* `frechet_distance`: the Frechet (2-Wasserstein) distance between Gaussians
  fitted to two feature sets, as in FID:

.. math::

  \\mathrm{FD} = \\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{Tr}\\big(C_1 + C_2
  - 2 (C_1 C_2)^{1/2}\\big).

PSNR and SSIM live in `vdm_jax.conditional.metrics`. These are host-side
evaluation functions on numpy arrays, not training code.

References:
  Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a
  Local Nash Equilibrium, https://arxiv.org/abs/1706.08500, 2017 (FID).
"""

from __future__ import annotations

import numpy as np

from vdm_jax import _checks
from vdm_jax.metrics.frechet import frechet_distance  # noqa: F401  (one implementation)


def high_frequency_energy(images, *, cutoff: float = 0.25):
  """Spectral power per image above radial frequency `cutoff` (cycles/pixel).

  .. math::

    E_{hf}(x) = \\frac{1}{HWC} \\sum_{c} \\sum_{\\|k\\| > k_c}
    |\\mathcal{F}[x_c - \\bar x_c](k)|^2 / (HW)

  Args:
    images: `[N, H, W, C]` images (any range; use the same for all inputs).
    cutoff: k_c in cycles per pixel, in (0, 0.5 sqrt(2)); 0.25 keeps the upper
      half of each axis' frequency band.

  Returns:
    `[N]` high-frequency energy per image.
  """
  x = np.asarray(images, np.float64)
  _checks.check_rank(x, 4, "images [N, H, W, C]")
  if not 0 < cutoff < 0.5 * np.sqrt(2):
    raise ValueError(f"cutoff must be in (0, 0.707) cycles/pixel, got {cutoff}.")
  _, h, w, c = x.shape
  x = x - x.mean(axis=(1, 2), keepdims=True)
  power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2 / (h * w)
  fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
  mask = np.sqrt(fy**2 + fx**2) > cutoff
  return (power * mask[None, :, :, None]).sum(axis=(1, 2, 3)) / (h * w * c)


def high_frequency_ratio(recon, data, *, cutoff: float = 0.25) -> float:
  """mean E_hf(recon) / mean E_hf(data): 1 is as sharp as the data, < 1 blurrier."""
  return float(np.mean(high_frequency_energy(recon, cutoff=cutoff)) /
               np.mean(high_frequency_energy(data, cutoff=cutoff)))
