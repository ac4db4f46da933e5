"""Conditional score estimation: CDE, CDiffE, MS-CDiffE and multi-speed SDEs.

Modules: `multispeed` (joint SDE of (x, y) with separate speeds), `estimators`
(losses and sampling-time scores), `gaussian` (closed forms for jointly Gaussian
(x, y)), `tasks` (super-resolution, inpainting, edges) and `metrics` (PSNR,
SSIM, consistency, diversity). Sampling uses `vdm_jax.sde.samplers.sample_reverse`,
which takes the joint reverse process of a `MultiSpeedSDE` (pytree state).
"""

from vdm_jax.conditional import gaussian
from vdm_jax.conditional import metrics
from vdm_jax.conditional import tasks
from vdm_jax.conditional import training
from vdm_jax.conditional.estimators import ESTIMATORS
from vdm_jax.conditional.estimators import Estimator
from vdm_jax.conditional.estimators import cde_score
from vdm_jax.conditional.estimators import check_condition
from vdm_jax.conditional.estimators import diffusive_score
from vdm_jax.conditional.estimators import joint_score
from vdm_jax.conditional.estimators import make_cde_loss
from vdm_jax.conditional.estimators import make_diffusive_loss
from vdm_jax.conditional.estimators import make_estimator
from vdm_jax.conditional.multispeed import JointReverseSDE
from vdm_jax.conditional.multispeed import MultiSpeedSDE
from vdm_jax.conditional.multispeed import noise_to_signal

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "JointReverseSDE",
    "MultiSpeedSDE",
    "cde_score",
    "check_condition",
    "diffusive_score",
    "gaussian",
    "joint_score",
    "make_cde_loss",
    "make_diffusive_loss",
    "make_estimator",
    "metrics",
    "noise_to_signal",
    "tasks",
    "training",
]
