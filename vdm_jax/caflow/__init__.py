"""CAFLOW: conditional auto-regressive multi-scale flows.

Batzolis, Carioni, Etmann, Afyouni, Kourtzi, Schonlieb. CAFLOW: Conditional
Autoregressive Flows. https://arxiv.org/abs/2106.02531, 2021.

Public names are re-exported one per line.
"""

from vdm_jax.caflow.model import CAFlow
from vdm_jax.caflow.model import ConditionalAffine
from vdm_jax.caflow.model import ScaleConditionalFlow
from vdm_jax.caflow.model import check_pair
from vdm_jax.caflow.model import check_temperature
from vdm_jax.caflow.model import condition_image
from vdm_jax.caflow.model import upsample_to
from vdm_jax.caflow.sampling import make_sampler
from vdm_jax.caflow.sampling import sample_many
from vdm_jax.caflow.training import conditional_bits_per_dim
from vdm_jax.caflow.training import fit
from vdm_jax.caflow.training import flow_to_images
from vdm_jax.caflow.training import images_to_levels
from vdm_jax.caflow.training import init_params
from vdm_jax.caflow.training import make_loss_fn

__all__ = [
    "CAFlow",
    "ConditionalAffine",
    "ScaleConditionalFlow",
    "check_pair",
    "check_temperature",
    "condition_image",
    "conditional_bits_per_dim",
    "fit",
    "flow_to_images",
    "images_to_levels",
    "init_params",
    "make_loss_fn",
    "make_sampler",
    "sample_many",
    "upsample_to",
]
