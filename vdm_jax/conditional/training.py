"""Fitting a conditional model on (x, y) pairs held in memory, on the engine.

``fit`` minimises the mean of a per-example loss ``loss_fn(params, rng, x, y)``
over minibatches of pairs drawn with replacement, with Adam (Kingma & Ba,
2015) after global-norm clipping, a linear learning-rate warm-up and a plain
parameter average, through `vdm_jax.training` (windows, non-finite check,
optional checkpoints). It serves the conditional score estimators (CDE,
CDiffE, MS-CDiffE) and CAFLOW, whose experiments compare them on the same
budget and the same random stream: step k draws from ``fold_in(rng, k)``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from vdm_jax import training


def fit(loss_fn: Callable, params, x, y, *, steps: int, batch_size: int, lr: float,
        rng, warmup: int = 100, grad_clip: float = 1.0, ema: float = 0.0,
        log_every: int = 100, eval_fn: Callable | None = None,
        workdir: str | None = None, name: str = "fit"):
  """Returns ``(params, losses)``: the averaged (or best) parameters, window losses.

  Args:
    loss_fn: ``(params, rng, x [B, ...], y [B, ...]) -> [B]``.
    params: initial parameters.
    x, y: ``[N, ...]`` targets and conditions (same N).
    steps, batch_size, lr, warmup, grad_clip: optimiser settings.
    rng: PRNG key.
    ema: decay of the plain parameter average that is returned (0: the last
      iterate).
    log_every: steps per window of the recorded mean losses (and evaluations).
    eval_fn: ``params -> float``, lower is better, called every `log_every`
      steps on the returned kind of parameters; the best are returned.
    workdir: optional folder for checkpoints and metrics (resumable).
    name: label of the progress bar and logs.

  Raises:
    ValueError: on a bad size or count; RuntimeError on a non-finite loss.
  """
  if steps < 1 or batch_size < 1:
    raise ValueError(
        f"steps and batch_size must be >= 1, got {steps} and {batch_size}.")
  if x.shape[0] != y.shape[0]:
    raise ValueError(
        f"x and y must hold the same number of pairs, got {x.shape[0]} and "
        f"{y.shape[0]}.")
  opt = training.make_optimizer(learning_rate=lr, warmup_steps=max(warmup, 1),
                                grad_clip=grad_clip)
  average = training.ema(ema, warmup=False)
  step = training.make_step(training.value_and_grad(
      training.minibatch_loss(loss_fn, batch_size)), opt, average,
                            axis_name=training.AXIS)
  returned = lambda state: state.ema.params
  run = training.train(
      step, training.init_state(params, opt, average),
      batches=training.Resident((jnp.asarray(x), jnp.asarray(y))), base_rng=rng,
      num_steps=steps, log_every=log_every, workdir=workdir, num_devices=1,
      eval_fn=(lambda state, _: {"score": eval_fn(returned(state))}) if eval_fn else None,
      eval_every=log_every if eval_fn else 0,
      early_stopping=training.EarlyStopping("score", patience=None) if eval_fn else None,
      name=name)
  losses = [m["loss"] for _, m in run.history]
  if run.best_state is not None:
    return jax.tree.map(jnp.asarray, returned(run.best_state)), losses
  return returned(run.state), losses
