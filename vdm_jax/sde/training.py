"""A minimal, jitted DSM training loop for small score models (toys, benchmarks).

This is not the project trainer (`vdm_jax.train` owns checkpoints, pmap and
evaluation); it fits a score model held in memory on an array data set, which is
what the 2-D toy, the sampler benchmark and the classifier-free-guidance recipe
need. Each step is one jitted call (the loss is logged per `chunk` steps),
minibatches are drawn with replacement from device arrays, and an exponential
moving average (EMA) of the parameters is kept:

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
import optax


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
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, learning_rate, min(warmup_steps, total // 2), total,
      end_value=learning_rate * 0.05)
  opt = optax.adam(schedule)
  opt_state = opt.init(params)

  def step(arrays, carry, key):
    params, ema, opt_state, count = carry
    k_idx, k_pre, k_loss = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (batch_size,), 0, n)
    batch = tuple(a[idx] for a in arrays)
    if preprocess is not None:
      batch = tuple(preprocess(k_pre, *batch))
    loss, grads = jax.value_and_grad(
        lambda p: jnp.mean(loss_fn(p, k_loss, *batch)))(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    # EMA warm-up: rho_k = min(rho, (1 + k) / (10 + k)), so short runs are not
    # dominated by the initial parameters.
    rho = jnp.minimum(ema_decay, (1.0 + count) / (10.0 + count))
    ema = jax.tree.map(lambda e, p: rho * e + (1 - rho) * p, ema, params)
    return (params, ema, opt_state, count + 1), loss

  # One jitted step per call, data passed as an argument: a lax.scan over
  # steps made conv-net gradients ~40x slower on the XLA CPU backend, and
  # closed-over arrays become XLA constants (slow to compile).
  one_step = jax.jit(step)

  carry = (params, params, opt_state, jnp.zeros((), jnp.float32))
  history = []
  for i in range(n_chunks):
    losses = []
    for key in jax.random.split(jax.random.fold_in(rng, i), chunk):
      carry, loss = one_step(arrays, carry, key)
      losses.append(loss)
    history.append(float(jnp.mean(jnp.stack(losses))))
    if not np.isfinite(history[-1]):
      raise RuntimeError(f"non-finite loss in steps [{i * chunk}, "
                         f"{(i + 1) * chunk}).")
  return FitResult(carry[0], carry[1], np.asarray(history))
