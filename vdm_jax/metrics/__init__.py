"""Distances between distributions from samples (Wasserstein, MMD, energy, FD, KS).

``from vdm_jax.metrics import discrepancy`` or the re-exported names below.
"""

from vdm_jax.metrics import discrepancy
from vdm_jax.metrics.discrepancy import discrepancy_scores
from vdm_jax.metrics.discrepancy import energy_distance
from vdm_jax.metrics.discrepancy import exact_wasserstein
from vdm_jax.metrics.discrepancy import frechet_distance
from vdm_jax.metrics.discrepancy import gaussian_fit
from vdm_jax.metrics.discrepancy import gaussian_w2
from vdm_jax.metrics.discrepancy import ks_statistics
from vdm_jax.metrics.discrepancy import median_bandwidth
from vdm_jax.metrics.discrepancy import mmd2
from vdm_jax.metrics.discrepancy import ot_assignment
from vdm_jax.metrics.discrepancy import sliced_wasserstein
from vdm_jax.metrics.discrepancy import wasserstein_1d
from vdm_jax.metrics.discrepancy import wasserstein_1d_per_feature

__all__ = [
    "discrepancy",
    "discrepancy_scores",
    "energy_distance",
    "exact_wasserstein",
    "frechet_distance",
    "gaussian_fit",
    "gaussian_w2",
    "ks_statistics",
    "median_bandwidth",
    "mmd2",
    "ot_assignment",
    "sliced_wasserstein",
    "wasserstein_1d",
    "wasserstein_1d_per_feature",
]
