"""Score-SDE toolkit: forward SDEs, DSM losses, samplers, PF-ODE likelihoods, guidance.

One concept per module; import what you need, e.g.
``from vdm_jax.sde import sdes, samplers``. The main names are re-exported
here, one per line.
"""

from vdm_jax.sde import guidance
from vdm_jax.sde import likelihood
from vdm_jax.sde import losses
from vdm_jax.sde import metrics
from vdm_jax.sde import samplers
from vdm_jax.sde import score_fns
from vdm_jax.sde import sdes
from vdm_jax.sde import training
from vdm_jax.sde.guidance import classifier_free_guided_score
from vdm_jax.sde.guidance import classifier_guided_score
from vdm_jax.sde.guidance import drop_labels
from vdm_jax.sde.likelihood import forward_dequantized_ode_bpd
from vdm_jax.sde.likelihood import ode_bpd
from vdm_jax.sde.likelihood import ode_logp
from vdm_jax.sde.losses import dsm_loss
from vdm_jax.sde.losses import make_dsm_loss_fn
from vdm_jax.sde.samplers import ddim_sample
from vdm_jax.sde.samplers import ode_sample
from vdm_jax.sde.samplers import euler_maruyama_step
from vdm_jax.sde.samplers import pc_sample
from vdm_jax.sde.samplers import sample_reverse
from vdm_jax.sde.score_fns import make_score_fn
from vdm_jax.sde.score_fns import tweedie_denoise
from vdm_jax.sde.sdes import check_time
from vdm_jax.sde.sdes import ReverseSDE
from vdm_jax.sde.sdes import ScheduleVPSDE
from vdm_jax.sde.sdes import SDE
from vdm_jax.sde.sdes import SubVPSDE
from vdm_jax.sde.sdes import VESDE
from vdm_jax.sde.sdes import VPSDE

__all__ = [
    "check_time",
    "classifier_free_guided_score",
    "classifier_guided_score",
    "ddim_sample",
    "drop_labels",
    "dsm_loss",
    "guidance",
    "likelihood",
    "losses",
    "make_dsm_loss_fn",
    "make_score_fn",
    "metrics",
    "forward_dequantized_ode_bpd",
    "ode_bpd",
    "ode_logp",
    "ode_sample",
    "euler_maruyama_step",
    "pc_sample",
    "ReverseSDE",
    "sample_reverse",
    "samplers",
    "ScheduleVPSDE",
    "score_fns",
    "SDE",
    "sdes",
    "SubVPSDE",
    "training",
    "tweedie_denoise",
    "VESDE",
    "VPSDE",
]
