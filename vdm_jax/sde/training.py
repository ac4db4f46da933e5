"""A minimal, jitted DSM training loop for small score models (toys, benchmarks).

It fits a score model held in memory on an array data set, which is what the
2-D toy, the sampler benchmark and the classifier-free-guidance recipe need, on
the engine (`vdm_jax.training`): minibatches are drawn with replacement from
device arrays, the loss is logged per `chunk` steps, and an exponential moving
average (EMA) of the parameters is kept:

.. math::

  \\theta \\leftarrow \\mathrm{Adam}(\\theta, \\nabla_\\theta
  \\tfrac1B \\textstyle\\sum_b \\ell_b), \\qquad
  \\bar\\theta \\leftarrow \\rho_k \\bar\\theta + (1 - \\rho_k)\\theta,
  \\quad \\rho_k = \\min(\\rho, \\tfrac{1 + k}{10 + k}).

References:
  Kingma & Ba. Adam. https://arxiv.org/abs/1412.6980, 2015.
  Song & Ermon. Improved Techniques for Training Score-Based Generative
  Models (EMA). https://arxiv.org/abs/2006.09011, 2020.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import training


class FitResult(NamedTuple):
  """Output of `fit`: final and EMA parameters and the mean loss of each chunk."""
  params: object
  ema_params: object
  losses: np.ndarray


def fit(rng, loss_fn: Callable, params, arrays: Sequence, *, n_steps: int,
        batch_size: int, learning_rate: float = 2e-3, ema_decay: float = 0.999,
        preprocess: Optional[Callable] = None, chunk: int = 100,
        warmup_steps: int = 100) -> FitResult:
  """Minimises mean(loss_fn(params, rng, *batch)) with Adam and a cosine schedule.

  Args:
    rng: PRNG key.
    loss_fn: `loss_fn(params, rng, *batch) -> [B]` per-example losses, e.g.
      from `vdm_jax.sde.losses.make_dsm_loss_fn`.
    params: initial parameters (a pytree).
    arrays: sequence of arrays with a common leading size N (data, labels...).
    n_steps: number of optimiser steps (rounded up to a multiple of `chunk`).
    batch_size: examples per step (drawn with replacement).
    learning_rate: peak learning rate.
    ema_decay: EMA rate rho in [0, 1).
    preprocess: optional `(rng, *batch) -> batch` (e.g. label dropout).
    chunk: steps per logged loss and non-finite check.
    warmup_steps: linear warm-up length.

  Returns:
    `FitResult(params, ema_params, losses [n_chunks])`.
  """
  arrays = tuple(jnp.asarray(a) for a in arrays)
  if not arrays:
    raise ValueError("arrays must hold at least the data array.")
  n = arrays[0].shape[0]
  for i, a in enumerate(arrays):
    if a.shape[0] != n:
      raise ValueError(f"arrays[{i}] has leading size {a.shape[0]}, expected "
                       f"{n} (that of arrays[0]).")
  if n_steps < 1 or batch_size < 1 or chunk < 1:
    raise ValueError(f"n_steps, batch_size and chunk must be positive, got "
                     f"{n_steps}, {batch_size}, {chunk}.")
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}.")
  n_chunks = -(-n_steps // chunk)
  total = n_chunks * chunk
  opt = training.make_optimizer(
      learning_rate=learning_rate, warmup_steps=min(warmup_steps, total // 2),
      decay="cosine", total_steps=total, end_fraction=0.05)
  ema = training.ema(ema_decay)

  def batch_loss(params, arrays, key, shard):
    del shard  # one device: the step draws its own minibatch.
    k_idx, k_pre, k_loss = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (batch_size,), 0, n)
    batch = tuple(a[idx] for a in arrays)
    if preprocess is not None:
      batch = tuple(preprocess(k_pre, *batch))
    return loss_fn(params, k_loss, *batch), {}

  step = training.make_step(training.value_and_grad(batch_loss), opt, ema,
                            axis_name=training.AXIS,
                            # The stream of the earlier hand-written loop, so its
                            # recorded figures are reproduced.
                            rng_fn=training.chunked_rng(chunk))
  run = training.train(step, training.init_state(params, opt, ema),
                       batches=training.Resident(arrays), base_rng=rng,
                       num_steps=total, log_every=chunk, num_devices=1, name="fit")
  return FitResult(run.state.params, run.state.ema.params,
                   np.asarray([m["loss"] for _, m in run.history]))
