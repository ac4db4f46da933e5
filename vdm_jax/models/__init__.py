"""Score networks: a UNet for images and an MLP for vectors (Flax linen)."""

from vdm_jax.models.attention import attention
from vdm_jax.models.layers import fourier_features
from vdm_jax.models.layers import timestep_embedding
from vdm_jax.models.mlp import ScoreMLP
from vdm_jax.models.unet import UNet

__all__ = [
    "ScoreMLP",
    "UNet",
    "attention",
    "fourier_features",
    "timestep_embedding",
]
