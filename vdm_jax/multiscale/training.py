"""Per-stage training of a multi-scale model: one optimiser and EMA per stage net.

The paper updates one stage network per iteration, cycling through the stages
(iteration i trains stage ``i mod S`` on ``t ~ U(t_lo, t_hi)`` of that stage),
each net with its own Adam state. This module gives the pure pieces: a
per-stage `StageState` (the engine's `TrainState`) and a jittable ``step(state, rng, x) -> (state, loss)``
built from a stage loss (`vdm_jax.multiscale.losses.make_stage_loss_fn`).

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (per-scale training loop).
"""

from __future__ import annotations

import optax

from vdm_jax import training

# One stage's state is the engine's: step, params, opt_state, ema (`EmaState`).
StageState = training.TrainState


def init_stage_state(params, optimizer: optax.GradientTransformation) -> StageState:
  """Fresh `StageState` (the engine's `TrainState`) with EMA equal to the params."""
  return training.init_state(params, optimizer, training.ema(0.0, warmup=False))


def make_stage_step(loss_fn, optimizer: optax.GradientTransformation, *,
                    ema_rate: float = 0.999):
  """Builds ``step(state, rng, x) -> (state, mean_loss)`` for one stage.

  The engine's pure step (`vdm_jax.training.make_step`) with a plain EMA
  (no warm-up), so a stage trains exactly as the engine trains any method.

  Args:
    loss_fn: ``loss_fn(params, rng, x) -> [B]`` per-example stage loss.
    optimizer: optax transformation.
    ema_rate: EMA decay of ``state.ema.params``.

  Returns:
    the pure step; the rng is folded with the stage step count, so a resumed
    run replays the same noise.
  """
  if not 0.0 <= ema_rate < 1.0:
    raise ValueError(f"ema_rate must be in [0, 1), got {ema_rate}.")
  ema = training.ema(ema_rate, warmup=False)

  def stage_loss(params, x, rng, shard):
    del shard
    loss = loss_fn(params, rng, x)
    if getattr(loss, "ndim", 0) != 1:
      raise TypeError(f"loss_fn must return a [B] array, got shape "
                      f"{getattr(loss, 'shape', None)}.")
    return loss, {}

  engine_step = training.make_step(training.value_and_grad(stage_loss), optimizer, ema)

  def step(state: StageState, rng, x):
    state, metrics = engine_step(state, x, rng)
    return state, metrics["loss"]

  return step
