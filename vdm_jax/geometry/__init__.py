"""Score-based pullback Riemannian geometry, the Riemannian autoencoder, anisotropic flows.

For densities p(x) ∝ exp(-psi(phi(x))) with a diffeomorphism phi and a strongly
convex quadratic psi, geodesics, distances and exp/log maps of the pullback
metric have closed forms through phi (Diepeveen, Batzolis, Shumaylov,
Schonlieb, 2024). `pullback` holds them, `flows` the RealNVP diffeomorphisms,
`isometry` their training with isometry regularisation, `rae` the Riemannian
autoencoder and `toy_densities` the deformed Gaussians with known phi.
"""

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

__all__ = [
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
