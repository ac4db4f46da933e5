"""A small non-linear meta-learner: a shared feature network with per-task heads.

Meta-training jointly fits the features :math:`\\phi_\\theta` and one linear head
per training task,

.. math::

  \\min_{\\theta, (h_t)} \\frac{1}{T n} \\sum_{t=1}^T \\sum_{i=1}^n
  \\|h_t^\\top \\phi_\\theta(x_{ti}) - y_{ti}\\|^2 + \\lambda \\sum_t \\|h_t\\|^2,

(full-batch Adam on the engine, `vdm_jax.training`, all steps in one device
call), and a new task is solved by ridge regression of its m support labels on the
frozen features (closed form, :math:`h = (\\Phi^\\top\\Phi + \\lambda I)^{-1}
\\Phi^\\top y`); classification uses one-hot targets and the arg-max.

References:
  Raghu, Raghu, Bengio & Vinyals. Rapid learning or feature reuse? (ANIL).
  https://arxiv.org/abs/1909.09157, 2020.
  Bertinetto, Henriques, Torr & Vedaldi. Meta-learning with differentiable
  closed-form solvers (R2-D2). https://arxiv.org/abs/1805.08136, 2019.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdm_jax import training


class Features(nn.Module):
  """MLP feature map `[..., D_in] -> [..., k]` (tanh hidden, linear output)."""
  hidden: Sequence[int] = (64, 64)
  k: int = 32

  @nn.compact
  def __call__(self, x):
    for w in self.hidden:
      x = jnp.tanh(nn.Dense(w)(x))
    return jnp.concatenate([nn.Dense(self.k)(x), jnp.ones(x.shape[:-1] + (1,))], -1)


def ridge_head(phi, y, lam: float):
  """Ridge solution `[m, k], [m, o] -> [k, o]`."""
  k = phi.shape[-1]
  return jnp.linalg.solve(phi.T @ phi + lam * jnp.eye(k), phi.T @ y)


def meta_train(rng, x, y, *, hidden=(64, 64), k: int = 32, steps: int = 1000,
               learning_rate: float = 3e-3, lam: float = 1e-3):
  """Fits shared features and per-task heads on `x [T, n, D_in]`, `y [T, n, o]`.

  Returns:
    `(apply_features, params)`; `apply_features(params, x) -> [..., k + 1]`.
  """
  if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
    raise ValueError(f"x must be [T, n, D_in] and y [T, n, o] with matching "
                     f"T, n; got {x.shape} and {y.shape}.")
  net = Features(hidden=tuple(hidden), k=k)
  k1, k2 = jax.random.split(rng)
  theta = net.init(k1, x[0])
  heads = 0.1 * jax.random.normal(k2, (x.shape[0], k + 1, y.shape[-1]))
  params = {"theta": theta, "heads": heads}
  opt = training.make_optimizer(learning_rate=learning_rate)
  ema = training.ema(0.0, warmup=False)  # unused: the last iterate is kept.

  def loss(p, batch, rng, shard):
    del rng, shard  # full batch, deterministic.
    xb, yb = batch
    phi = net.apply(p["theta"], xb)
    pred = jnp.einsum("tnk,tko->tno", phi, p["heads"])
    return (jnp.mean(jnp.square(pred - yb))
            + lam * jnp.mean(jnp.square(p["heads"]))), {}

  step = training.make_step(training.value_and_grad(loss), opt, ema,
                            axis_name=training.AXIS)
  # One device call scans all `steps` (a small dense net: the scan pays).
  run = training.train(step, training.init_state(params, opt, ema),
                       batches=training.Resident((x, y)),
                       base_rng=jax.random.key(0), num_steps=steps,
                       log_every=steps, steps_per_call=steps, num_devices=1,
                       progress=False, name="meta_train")
  params = run.state.params
  return net.apply, params["theta"]


def evaluate(apply_features, theta, xs, ys, xq, yq, *, lam: float = 1e-2,
             classify: bool = False):
  """Mean query error of ridge heads fitted on support sets, over tasks.

  Args:
    xs, ys: `[T, m, D_in]`, `[T, m, o]` support sets.
    xq, yq: `[T, q, D_in]`, `[T, q, o]` query sets.
    classify: report error rate of the arg-max (one-hot targets) instead of MSE.

  Returns:
    Scalar mean query MSE (or error rate).
  """
  def one(a, b, c, d):
    h = ridge_head(apply_features(theta, a), b, lam)
    pred = apply_features(theta, c) @ h
    if classify:
      return jnp.mean(jnp.argmax(pred, -1) != jnp.argmax(d, -1))
    return jnp.mean(jnp.square(pred - d))
  return jnp.mean(jax.jit(jax.vmap(one))(xs, ys, xq, yq))
