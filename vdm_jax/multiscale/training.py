"""Per-stage training of a multi-scale model: one optimiser and EMA per stage net.

The paper updates one stage network per iteration, cycling through the stages
(iteration i trains stage ``i mod S`` on ``t ~ U(t_lo, t_hi)`` of that stage),
each net with its own Adam state. This module gives the pure pieces: a
per-stage `StageState` and a jittable ``step(state, rng, x) -> (state, loss)``
built from a stage loss (`vdm_jax.multiscale.losses.make_stage_loss_fn`).

References:
  Gbatzolis, Stanczuk, Schonlieb, Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (per-scale training loop).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax


class StageState(NamedTuple):
  """Training state of one stage network.

  Attributes:
    step: number of updates applied to this stage.
    params: current parameters.
    ema_params: exponential moving average of the parameters (for sampling).
    opt_state: optax state.
  """
  step: jax.Array
  params: object
  ema_params: object
  opt_state: object


def init_stage_state(params, optimizer: optax.GradientTransformation) -> StageState:
  """Fresh `StageState` with EMA equal to the initial parameters."""
  return StageState(jax.numpy.zeros((), jax.numpy.int32), params, params,
                    optimizer.init(params))


def make_stage_step(loss_fn, optimizer: optax.GradientTransformation, *,
                    ema_rate: float = 0.999):
  """Builds ``step(state, rng, x) -> (state, mean_loss)`` for one stage.

  Args:
    loss_fn: ``loss_fn(params, rng, x) -> [B]`` per-example stage loss.
    optimizer: optax transformation.
    ema_rate: EMA decay of `ema_params`.

  Returns:
    the pure step; the rng is folded with the stage step count, so a resumed
    run replays the same noise.
  """
  if not 0.0 <= ema_rate < 1.0:
    raise ValueError(f"ema_rate must be in [0, 1), got {ema_rate}.")

  def step(state: StageState, rng, x):
    rng = jax.random.fold_in(rng, state.step)
    loss, grads = jax.value_and_grad(
        lambda p: loss_fn(p, rng, x).mean())(state.params)
    if not hasattr(loss, "shape"):
      raise TypeError("loss_fn must return a [B] array.")
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = jax.tree.map(lambda e, p: ema_rate * e + (1.0 - ema_rate) * p,
                       state.ema_params, params)
    return StageState(state.step + 1, params, ema, opt_state), loss

  return step
