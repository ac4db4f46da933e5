"""Reconstruction metrics for ScoreVAE: sharpness, Frechet distance, one table row.

* `high_frequency_energy`: mean spectral power of each image above a radial
  frequency cutoff, a sharpness measure; the ratio of reconstructions to data is
  1 for data-like sharpness and < 1 for blur.
* `frechet_distance`: the Frechet (2-Wasserstein) distance between Gaussians
  fitted to two feature sets, as in FID:

.. math::

  \\mathrm{FD} = \\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{Tr}\\big(C_1 + C_2
  - 2 (C_1 C_2)^{1/2}\\big).

PSNR and SSIM live in `vdm_jax.conditional.metrics`; `reconstruction_metrics`
gathers them with the two above (and the accuracy of a classifier on the
reconstructions) into one row of the ScoreVAE distortion-perception table.
These are host-side evaluation functions on numpy arrays, not training code.

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
  Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a
  Local Nash Equilibrium, https://arxiv.org/abs/1706.08500, 2017 (FID).
"""

from __future__ import annotations

import warnings

import numpy as np

from vdm_jax import _checks
from vdm_jax.conditional import metrics as cond_metrics
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


def reconstruction_metrics(recon, target, *, features, reference_features,
                           cutoff: float = 0.25, labels=None,
                           classify=None) -> dict:
  """Metrics of reconstructions `recon` of `target` ([N, H, W, C] in [-1, 1]).

  `recon` is clipped to [-1, 1] (non-finite pixels set to 0 first, and their
  fraction reported as `nonfinite_frac`). On the [0, 1] scale: mean PSNR and
  SSIM (`data_range=1`), mean L2 distance per image and `high_frequency_ratio`
  to the target; `frechet_distance` between `features(recon)` and
  `reference_features`; with `classify` and `labels`, the fraction of
  reconstructions classified as their image's label.

  Args:
    recon: `[N, H, W, C]` reconstructions on the [-1, 1] pixel scale.
    target: `[N, H, W, C]` the images reconstructed, same scale.
    features: `x -> [N, F]` feature map (e.g. `features.make_feature_space`).
    reference_features: `[M, F]` features of the reference images.
    cutoff: high-frequency cutoff in cycles per pixel.
    labels: `[N]` labels of the target, or None.
    classify: `x -> [N]` predicted labels, or None.

  Returns:
    `{'psnr_db', 'ssim', 'l2', 'hf_ratio', 'frechet'}` plus `'class_acc'` and
    `'nonfinite_frac'` where they apply, as floats.
  """
  recon = np.asarray(recon)
  nonfinite = float(np.mean(~np.isfinite(recon)))
  recon = np.clip(np.nan_to_num(recon, nan=0.0), -1.0, 1.0)
  to01 = lambda v: (np.asarray(v) + 1.0) / 2.0
  r, x = to01(recon), to01(target)
  row = {
      "psnr_db": float(np.mean(cond_metrics.psnr(r, x, data_range=1.0))),
      "ssim": float(np.mean(cond_metrics.ssim(r, x, data_range=1.0))),
      "l2": float(np.mean(np.sqrt(np.sum((r - x) ** 2, axis=(1, 2, 3))))),
      "hf_ratio": high_frequency_ratio(r, x, cutoff=cutoff),
      "frechet": frechet_distance(features(recon), reference_features),
  }
  if classify is not None and labels is not None:
    row["class_acc"] = float(np.mean(classify(recon) == labels))
  if nonfinite:
    warnings.warn(f"{nonfinite:.1%} of reconstructed pixels non-finite (set to "
                  "0); use more sampler steps.")
    row["nonfinite_frac"] = nonfinite
  return row
