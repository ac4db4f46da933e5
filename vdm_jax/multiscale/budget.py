"""Round-robin training of a multi-scale model's stage nets for a fixed time budget.

The same-training-time comparison of uniform and multi-scale diffusion
(Gbatzolis et al., 2022) trains each model for the same number of seconds, not
steps. Iteration i updates stage ``i mod S`` with the engine's pure step
(`vdm_jax.multiscale.training.make_stage_step`: Adam, plain EMA) on a minibatch
drawn with replacement, until the clock reaches the budget; every stage step is
compiled before the clock starts, so compilation is excluded.

References:
  Gbatzolis, Stanczuk, Schonlieb & Etmann. Non-Uniform Diffusion Models.
  https://arxiv.org/abs/2207.09786, 2022 (same-training-time comparison).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import numpy as np

from vdm_jax import training
from vdm_jax.multiscale import losses as ms_losses
from vdm_jax.multiscale import training as ms_training

CLOCKS = ("wall", "cpu")


class TimedResult(NamedTuple):
  """`ema_params` (one per stage), iterations run, `seconds` on the chosen clock,
  the loss every 50 iterations, and the wall seconds of the loop."""
  ema_params: tuple
  iterations: int
  seconds: float
  losses: list
  wall_seconds: float


def train_for_time(process, nets, x_train, *, seconds: float, batch_size: int,
                   learning_rate: float, ema_rate: float, seed: int,
                   clock: str = "wall", weighting: str = "eps") -> TimedResult:
  """Trains every stage net of `nets` round robin for `seconds` of `clock` time.

  Args:
    process: the `NonUniformProcess` (`make_process(0)` for the uniform model).
    nets: its `MultiScaleUNets`.
    x_train: `[N, H, W, C]` training images in [-1, 1].
    seconds: the budget (compilation excluded).
    batch_size: images per stage update.
    learning_rate: constant Adam step size of every stage.
    ema_rate: plain EMA decay of every stage's parameters.
    seed: init key, minibatch stream and noise.
    clock: 'wall' (`time.perf_counter`, for a dedicated machine) or 'cpu'
      (this process's CPU seconds, all threads: the fair budget when other jobs
      share the cores).
    weighting: the stage loss weighting (`vdm_jax.multiscale.losses`).

  Returns:
    a `TimedResult`.
  """
  if clock not in CLOCKS:
    raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}.")
  if not seconds > 0:
    raise ValueError(f"seconds must be > 0, got {seconds}.")
  now = time.perf_counter if clock == "wall" else time.process_time
  opt = training.make_optimizer(learning_rate=learning_rate)
  states = [ms_training.init_stage_state(p, opt)
            for p in nets.init(jax.random.key(seed))]
  loss_fns = ms_losses.make_loss_fns(process, nets.eps_fns(), weighting=weighting)
  steps = [jax.jit(ms_training.make_stage_step(f, opt, ema_rate=ema_rate))
           for f in loss_fns]
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  # Compile every stage step first (excluded from the time budget).
  for j, st in enumerate(steps):
    jax.block_until_ready(st(states[j], key, x_train[:batch_size]))
  t0, i, losses = now(), 0, []
  wall0 = time.perf_counter()
  while now() - t0 < seconds:
    j = i % len(steps)
    xb = x_train[rng.integers(0, len(x_train), batch_size)]
    states[j], val = steps[j](states[j], jax.random.fold_in(key, j), xb)
    if i % 50 == 0:
      losses.append(float(val))
    i += 1
  jax.block_until_ready([s.params for s in states])
  return TimedResult(tuple(s.ema.params for s in states), i, now() - t0, losses,
                     time.perf_counter() - wall0)
