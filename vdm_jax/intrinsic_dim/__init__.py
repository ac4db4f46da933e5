"""Intrinsic dimension of data from a diffusion model's score.

Near the data manifold the score of the noised density points along the normal
bundle, so the singular-value gap of a matrix of scores (or the spectrum of the
score's Jacobian) at an anchor gives the normal dimension D - k (Stanczuk,
Batzolis, Deveney, Schonlieb, 2022). `estimator` holds the spectra and the gap
rules, `score_training` the small denoising-score trainer, `manifolds`
synthetic data of known dimension with exact scores, `baselines` the classical
estimators (PPCA, MLE, TwoNN, local PCA).
"""

from vdm_jax.intrinsic_dim import baselines
from vdm_jax.intrinsic_dim import manifolds
from vdm_jax.intrinsic_dim import score_training
from vdm_jax.intrinsic_dim.estimator import IntrinsicDimEstimate
from vdm_jax.intrinsic_dim.estimator import estimate_intrinsic_dim
from vdm_jax.intrinsic_dim.estimator import jacobian_spectra
from vdm_jax.intrinsic_dim.estimator import normal_dim_from_spectrum
from vdm_jax.intrinsic_dim.estimator import score_spectra
from vdm_jax.intrinsic_dim.estimator import singular_spectrum
from vdm_jax.intrinsic_dim.estimator import summarise_spectra
from vdm_jax.intrinsic_dim.estimator import vp_kernel

__all__ = [
    "IntrinsicDimEstimate",
    "baselines",
    "estimate_intrinsic_dim",
    "jacobian_spectra",
    "manifolds",
    "normal_dim_from_spectrum",
    "score_spectra",
    "score_training",
    "singular_spectrum",
    "summarise_spectra",
    "vp_kernel",
]
