"""vdm_jax: likelihood-based diffusion models and score tools in JAX/Flax.

The top level re-exports the VDM core (schedules, parameterisations, losses,
sampling, the VDM model and its variance-minimising objective). Subpackages
(`vdm_jax.sde`, `vdm_jax.conditional`, `vdm_jax.multiscale`,
`vdm_jax.score_vae`, `vdm_jax.intrinsic_dim`, `vdm_jax.geometry`,
`vdm_jax.compression`, `vdm_jax.training`,
`vdm_jax.flows`, `vdm_jax.caflow`, `vdm_jax.metrics`, `vdm_jax.studies`) are
imported explicitly. Importing `vdm_jax` pulls in no absl flags, tfds or orbax.

`checked(fn)` compiles `fn` with the library's value checks raising, and
`checkified(fn)` gives the `(err, out)` form for a jitted or pmapped training
step: out-of-range data and decreasing schedules are errors under `jit` too.
"""

from vdm_jax import losses
from vdm_jax._checks import checked
from vdm_jax._checks import checkified
from vdm_jax import parameterizations
from vdm_jax import sampling
from vdm_jax import schedules
from vdm_jax import variance_minimization
from vdm_jax.model import VDM

__version__ = "0.1.0"

__all__ = [
    "VDM",
    "checked",
    "checkified",
    "losses",
    "parameterizations",
    "sampling",
    "schedules",
    "variance_minimization",
]
