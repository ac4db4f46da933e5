"""The training engine: one pure step, one loop, for every method in vdm_jax.

A method supplies ``grad_fn(params, batch, rng, shard) -> (loss, metrics,
grads)`` (or a loss through `value_and_grad`) and its config; the engine owns
the optimiser (`make_optimizer`), the parameter average (`ema`), `pmap` over the
local devices (`make_step`, `train`), metrics windows with the non-finite check,
``metrics.jsonl`` and logging (`metrics_log`), orbax checkpoints with exact
resume (`Checkpointer`), SIGTERM handling, evaluation and early stopping.
"""

from vdm_jax.training import metrics_log
from vdm_jax.training.checkpoints import CheckpointError
from vdm_jax.training.checkpoints import Checkpointer
from vdm_jax.training.checkpoints import restore_params
from vdm_jax.training.checkpoints import save_params
from vdm_jax.training.ema import Ema
from vdm_jax.training.ema import EmaState
from vdm_jax.training.ema import ema
from vdm_jax.training.loop import AXIS
from vdm_jax.training.loop import EXIT_PREEMPTED
from vdm_jax.training.loop import EarlyStopping
from vdm_jax.training.loop import Resident
from vdm_jax.training.loop import TrainResult
from vdm_jax.training.loop import check_positive_int
from vdm_jax.training.loop import first_replica
from vdm_jax.training.loop import replicate
from vdm_jax.training.loop import train
from vdm_jax.training.loop import unreplicate
from vdm_jax.training.optimizers import learning_rate_schedule
from vdm_jax.training.optimizers import make_optimizer
from vdm_jax.training.optimizers import mask_except
from vdm_jax.training.step import SINGLE
from vdm_jax.training.step import Shard
from vdm_jax.training.step import TrainState
from vdm_jax.training.step import chunked_rng
from vdm_jax.training.step import init_state
from vdm_jax.training.step import make_step
from vdm_jax.training.step import minibatch_loss
from vdm_jax.training.step import take_shard
from vdm_jax.training.step import value_and_grad

__all__ = [
    "AXIS",
    "CheckpointError",
    "Checkpointer",
    "EXIT_PREEMPTED",
    "EarlyStopping",
    "Ema",
    "EmaState",
    "Resident",
    "SINGLE",
    "Shard",
    "TrainResult",
    "TrainState",
    "check_positive_int",
    "chunked_rng",
    "ema",
    "first_replica",
    "init_state",
    "learning_rate_schedule",
    "make_optimizer",
    "make_step",
    "mask_except",
    "metrics_log",
    "minibatch_loss",
    "replicate",
    "restore_params",
    "save_params",
    "take_shard",
    "train",
    "unreplicate",
    "value_and_grad",
]
