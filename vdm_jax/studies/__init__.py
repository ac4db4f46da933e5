"""Library code for the distribution-distance studies (experiments/ drive them).

``meta_allocation``: label allocation in mixed linear regression (exact risk and
Monte Carlo); ``shared_features``: a shared-feature meta-learner with per-task
heads (the non-linear counterpart); ``imputation``: missingness masks and
imputers; ``wgan``: WGAN losses and train steps for the study of whether the
critic estimates W1.
"""

from vdm_jax.studies import imputation
from vdm_jax.studies import meta_allocation
from vdm_jax.studies import shared_features
from vdm_jax.studies import wgan

__all__ = [
    "imputation",
    "meta_allocation",
    "shared_features",
    "wgan",
]
