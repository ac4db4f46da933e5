"""Fitting the ScoreVAE experiment's models (prior, encoders, VAEs, classifier) on the engine.

``fit`` minimises ``mean(loss_fn(params, rng, batch))`` with Adam after
global-norm clipping at 1 (Kingma & Ba, 2015; Pascanu et al., 2013), batches
drawn with replacement on the device, through `vdm_jax.training`: several
steps per device call (the models are small), the non-finite check, and an
optional plain parameter average. Step ``k`` of chunk ``c`` draws from
``split(fold_in(rng, c * chunk), n_c)[k]``, the stream of the experiment's
recorded figures.
"""

from __future__ import annotations

import math
from typing import Callable

import jax.numpy as jnp
import numpy as np

from vdm_jax import training


def fit(loss_fn: Callable, params, data, *, steps: int, batch_size: int, lr: float,
        rng, ema: float | None = None, chunk: int = 200, name: str = "fit"):
  """Adam on ``mean(loss_fn(params, rng, batch))``; batches drawn on device.

  Args:
    loss_fn: ``(params, rng, x [B, ...]) -> [B]`` (or a scalar).
    params: initial parameters.
    data: ``[N, ...]`` training array.
    steps: optimiser steps.
    batch_size: examples per step.
    lr: constant Adam learning rate.
    rng: PRNG key.
    ema: decay of a plain parameter average (None: none).
    chunk: steps per random-key chunk and per logged window (the last window
      may be shorter).
    name: label of the progress bar and logs.

  Returns:
    ``(params, ema_params or None, history)``, history the mean loss of each
    window.
  """
  training.check_positive_int(steps, "steps")
  training.check_positive_int(batch_size, "batch_size")
  training.check_positive_int(chunk, "chunk")
  data = jnp.asarray(data)
  opt = training.make_optimizer(learning_rate=lr, grad_clip=1.0)
  average = training.ema(0.0 if ema is None else ema, warmup=False)

  step = training.make_step(training.value_and_grad(
      training.minibatch_loss(loss_fn, batch_size)), opt, average,
                            axis_name=training.AXIS,
                            rng_fn=training.chunked_rng(chunk, num_steps=steps,
                                                        fold_step=True))
  per_call = math.gcd(chunk, steps)
  run = training.train(step, training.init_state(params, opt, average),
                       batches=training.Resident((data,)), base_rng=rng,
                       num_steps=steps, log_every=chunk if steps % chunk == 0 else per_call,
                       steps_per_call=per_call, num_devices=1, name=name)
  history = [float(m["loss"]) for _, m in run.history]
  if not np.all(np.isfinite(history)):  # the engine raises first; kept explicit.
    raise RuntimeError(f"{name}: non-finite loss.")
  return run.state.params, (run.state.ema.params if ema is not None else None), history
