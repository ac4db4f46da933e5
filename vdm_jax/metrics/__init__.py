"""Distances between distributions and sample-quality features, by family.

`transport` (exact 1-D, sliced and exact Wasserstein), `gaussian` (Gaussian W2,
the jittable Frechet distance), `kernel` (MMD^2, energy distance),
`univariate` (KS), `frechet` (the host Frechet distance on feature arrays, as
in FID), `classifier` (a small digit classifier whose penultimate layer gives
features), and `discrepancy` (all of them in one table).
"""

from vdm_jax.metrics import classifier
from vdm_jax.metrics import discrepancy
from vdm_jax.metrics import frechet
from vdm_jax.metrics import gaussian
from vdm_jax.metrics import kernel
from vdm_jax.metrics import transport
from vdm_jax.metrics import univariate
from vdm_jax.metrics.discrepancy import discrepancy_scores
from vdm_jax.metrics.gaussian import frechet_distance
from vdm_jax.metrics.gaussian import gaussian_fit
from vdm_jax.metrics.gaussian import gaussian_w2
from vdm_jax.metrics.kernel import energy_distance
from vdm_jax.metrics.kernel import median_bandwidth
from vdm_jax.metrics.kernel import mmd2
from vdm_jax.metrics.transport import exact_wasserstein
from vdm_jax.metrics.transport import ot_assignment
from vdm_jax.metrics.transport import sliced_wasserstein
from vdm_jax.metrics.transport import wasserstein_1d
from vdm_jax.metrics.transport import wasserstein_1d_per_feature
from vdm_jax.metrics.univariate import ks_statistics

__all__ = [
    "classifier",
    "discrepancy",
    "discrepancy_scores",
    "energy_distance",
    "exact_wasserstein",
    "frechet",
    "frechet_distance",
    "gaussian",
    "gaussian_fit",
    "gaussian_w2",
    "kernel",
    "ks_statistics",
    "median_bandwidth",
    "mmd2",
    "ot_assignment",
    "sliced_wasserstein",
    "transport",
    "univariate",
    "wasserstein_1d",
    "wasserstein_1d_per_feature",
]
