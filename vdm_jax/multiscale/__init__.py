"""Non-uniform (multi-scale) diffusion: Haar scales that diffuse at different speeds.

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022.
"""

from vdm_jax.multiscale.conditional import ConditionalProcess
from vdm_jax.multiscale.conditional import make_conditional_process
from vdm_jax.multiscale.haar import HaarCoefficients
from vdm_jax.multiscale.haar import haar_step
from vdm_jax.multiscale.haar import inverse_haar_step
from vdm_jax.multiscale.haar import wavedec
from vdm_jax.multiscale.haar import waverec
from vdm_jax.multiscale.losses import make_loss_fns
from vdm_jax.multiscale.losses import make_stage_loss_fn
from vdm_jax.multiscale.model import MultiScaleUNets
from vdm_jax.multiscale.model import make_multiscale_unets
from vdm_jax.multiscale.model import make_stage_eps_fn
from vdm_jax.multiscale.nonuniform import NonUniformProcess
from vdm_jax.multiscale.nonuniform import Stage
from vdm_jax.multiscale.nonuniform import make_process
from vdm_jax.multiscale.nonuniform import process_from_config
from vdm_jax.multiscale.nonuniform import stages
from vdm_jax.multiscale.nonuniform import uniform_process
from vdm_jax.multiscale.sampling import Sampler
from vdm_jax.multiscale.sampling import make_sampler
from vdm_jax.multiscale.training import StageState
from vdm_jax.multiscale.training import init_stage_state
from vdm_jax.multiscale.training import make_stage_step

__all__ = [
    "ConditionalProcess",
    "HaarCoefficients",
    "MultiScaleUNets",
    "NonUniformProcess",
    "Sampler",
    "Stage",
    "StageState",
    "haar_step",
    "init_stage_state",
    "inverse_haar_step",
    "make_conditional_process",
    "make_loss_fns",
    "make_multiscale_unets",
    "make_process",
    "make_sampler",
    "make_stage_eps_fn",
    "make_stage_loss_fn",
    "make_stage_step",
    "process_from_config",
    "stages",
    "uniform_process",
    "wavedec",
    "waverec",
]
