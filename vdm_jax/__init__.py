"""vdm_jax: likelihood-based diffusion models and score tools in JAX/Flax.

The top level re-exports the VDM core (schedules, parameterisations, losses,
sampling). Subpackages (`vdm_jax.sde`, `vdm_jax.geometry`, ...) are imported
explicitly; importing `vdm_jax` pulls in no absl flags, tfds or orbax.
"""

from vdm_jax import parameterizations
from vdm_jax import schedules

__version__ = "0.1.0"

__all__ = [
    "parameterizations",
    "schedules",
]
