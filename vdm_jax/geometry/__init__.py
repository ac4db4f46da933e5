"""Geometry from scores: intrinsic dimension (issue 10), pullback geometry (issue 11).

Public names are re-exported one per line; each engineer edits only their block.
"""

# --- Intrinsic dimension from score spectra (issue 10) -----------------------
from vdm_jax.geometry import baselines
from vdm_jax.geometry import manifolds
from vdm_jax.geometry import score_training
from vdm_jax.geometry.intrinsic_dim import IntrinsicDimEstimate
from vdm_jax.geometry.intrinsic_dim import estimate_intrinsic_dim
from vdm_jax.geometry.intrinsic_dim import jacobian_spectra
from vdm_jax.geometry.intrinsic_dim import normal_dim_from_spectrum
from vdm_jax.geometry.intrinsic_dim import score_spectra
from vdm_jax.geometry.intrinsic_dim import singular_spectrum
from vdm_jax.geometry.intrinsic_dim import summarise_spectra
from vdm_jax.geometry.intrinsic_dim import vp_kernel
# --- end issue 10 --------------------------------------------------------------

# --- Score-based pullback geometry (issue 11) ---------------------------------
from vdm_jax.geometry import flows
from vdm_jax.geometry import isometry
from vdm_jax.geometry import pullback
from vdm_jax.geometry import rae
from vdm_jax.geometry import toy_densities
from vdm_jax.geometry.flows import Diffeomorphism
from vdm_jax.geometry.flows import RealNVP
from vdm_jax.geometry.rae import RiemannianAutoencoder
from vdm_jax.geometry.rae import choose_dimension_by_gap
from vdm_jax.geometry.rae import make_rae
# --- end issue 11 --------------------------------------------------------------

__all__ = [
    # issue 10
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
    # issue 11
    "Diffeomorphism",
    "RealNVP",
    "RiemannianAutoencoder",
    "choose_dimension_by_gap",
    "flows",
    "isometry",
    "make_rae",
    "pullback",
    "rae",
    "toy_densities",
]
