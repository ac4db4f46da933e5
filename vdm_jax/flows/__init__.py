"""Normalizing flows on images: Glow/RealNVP layers (the building blocks of CAFLOW,
Batzolis et al. 2021, https://arxiv.org/abs/2106.02531).

`coupling` holds the affine-coupling maths (RealNVP eqs. 4-6) that these layers,
CAFLOW and the pullback-geometry flows share. Public names are re-exported one
per line.
"""

from vdm_jax.flows import coupling
from vdm_jax.flows.layers import ActNorm
from vdm_jax.flows.layers import AffineCoupling
from vdm_jax.flows.layers import FlowStep
from vdm_jax.flows.layers import InvConv1x1
from vdm_jax.flows.layers import Split
from vdm_jax.flows.layers import Squeeze
from vdm_jax.flows.layers import actnorm_init
from vdm_jax.flows.layers import squeeze
from vdm_jax.flows.layers import unsqueeze
from vdm_jax.flows.multiscale import MultiScaleFlow
from vdm_jax.flows.multiscale import bits_per_dim
from vdm_jax.flows.multiscale import check_divisible
from vdm_jax.flows.multiscale import latent_shapes
from vdm_jax.flows.multiscale import standard_normal_log_prob
from vdm_jax.flows.training import dequantize
from vdm_jax.flows.training import make_nll_fn

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "FlowStep",
    "InvConv1x1",
    "MultiScaleFlow",
    "Split",
    "Squeeze",
    "actnorm_init",
    "bits_per_dim",
    "check_divisible",
    "coupling",
    "dequantize",
    "latent_shapes",
    "make_nll_fn",
    "squeeze",
    "standard_normal_log_prob",
    "unsqueeze",
]
