"""Score-SDE toolkit: forward SDEs, samplers, PF-ODE likelihoods and guidance.

Import the pieces explicitly, e.g. ``from vdm_jax.sde import sdes``; the
public names are re-exported here one per line.
"""

from vdm_jax.sde.sdes import check_time
from vdm_jax.sde.sdes import ReverseSDE
from vdm_jax.sde.sdes import ScheduleVPSDE
from vdm_jax.sde.sdes import SDE
from vdm_jax.sde.sdes import SubVPSDE
from vdm_jax.sde.sdes import VESDE
from vdm_jax.sde.sdes import VPSDE

__all__ = [
    "check_time",
    "ReverseSDE",
    "ScheduleVPSDE",
    "SDE",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
]
