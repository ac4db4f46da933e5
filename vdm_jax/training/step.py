"""The pure optimisation step every trainer shares: gradients, pmean, optimiser, EMA.

A method contributes only a gradient function

  ``grad_fn(params, batch, rng, shard) -> (loss, metrics, grads)``

(`value_and_grad` turns a plain loss into one). The engine's step is then

  ``step(state, batch, base_rng) -> (state, metrics)``

with ``rng = fold_in(base_rng, state.step)``, so a run restarted at step k
makes exactly the random draws of an uninterrupted one. Under `pmap` the
gradients and metrics are averaged over the named axis with one `pmean`.

``shard = Shard(index, count)`` tells the method which slice of the global
batch its device holds. A method that makes its random draws for the global
batch and keeps its slice (`take_shard`) computes on N devices exactly what one
device computes on the same global batch (up to the order of float sums).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vdm_jax.training import ema as ema_lib


class Shard(NamedTuple):
  """This device's position among the devices that share a global batch."""
  index: Any  # int or traced int32 scalar.
  count: int


SINGLE = Shard(0, 1)


class TrainState(NamedTuple):
  """Everything a checkpoint holds: step (int32), params, opt_state, ema (`EmaState`)."""
  step: jax.Array
  params: Any
  opt_state: Any
  ema: ema_lib.EmaState


def init_state(params, optimizer: optax.GradientTransformation,
               ema: ema_lib.Ema) -> TrainState:
  return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params),
                    ema.init(params))


def take_shard(x, shard: Shard, axis: int = 0):
  """Shard `index`'s equal slice of a global array along `axis`."""
  local = x.shape[axis] // shard.count
  return jax.lax.dynamic_slice_in_dim(x, shard.index * local, local, axis=axis)


def minibatch_loss(loss_fn: Callable, batch_size: int, *,
                   pass_shard: bool = False) -> Callable:
  """A method's loss on a minibatch drawn with replacement from resident arrays.

  Returns ``batch_loss(params, arrays, key, shard)`` for `value_and_grad`:
  ``k_idx, k_loss = split(key)``, indices ``randint(k_idx, [batch_size])``
  into ``arrays[0].shape[0]`` rows (drawn for the global batch, this shard's
  slice kept), then ``loss_fn(params, k_loss, *batch)`` (and ``shard=shard``
  with `pass_shard`), which returns per-example losses or ``(losses, metrics)``.
  """
  def batch_loss(params, arrays, key, shard):
    k_idx, k_loss = jax.random.split(key)
    idx = take_shard(jax.random.randint(k_idx, (batch_size,), 0, arrays[0].shape[0]),
                     shard)
    batch = tuple(a[idx] for a in arrays)
    kwargs = {"shard": shard} if pass_shard else {}
    out = loss_fn(params, k_loss, *batch, **kwargs)
    return out if isinstance(out, tuple) else (out, {})
  return batch_loss


def chunked_rng(chunk: int, *, num_steps: int | None = None,
                fold_step: bool = False) -> Callable:
  """An `rng_fn` for streams cut in chunks: ``split(fold_in(rng, c), n_c)[j]``.

  Step ``k = c * chunk + j`` of chunk ``c`` gets key j of the chunk's split,
  where the chunk key folds in ``c`` (or its first step ``c * chunk`` with
  `fold_step`), and ``n_c`` is `chunk`, or the size of the last, partial chunk
  when `num_steps` is not a multiple of it. This is how loops that scan or
  split a chunk of keys at a time draw, so they move onto the engine with the
  same random stream.
  """
  rem = 0 if num_steps is None else num_steps % chunk

  def rng_fn(base_rng, step):
    c, j = step // chunk, step % chunk
    key = jax.random.fold_in(base_rng, c * chunk if fold_step else c)
    full = jax.random.split(key, chunk)[j]
    if not rem:
      return full
    part = jax.random.split(key, rem)[jnp.minimum(j, rem - 1)]
    return jax.lax.cond(c == num_steps // chunk, lambda: part, lambda: full)

  return rng_fn


def value_and_grad(loss_fn: Callable) -> Callable:
  """A `grad_fn` from ``loss_fn(params, batch, rng, shard) -> (losses, metrics)``.

  `losses` is a scalar or per-example `[B]` (averaged here); `metrics` a dict of
  scalars (may be empty). The reported 'loss' is the mean.
  """
  def grad_fn(params, batch, rng, shard):
    def mean_loss(p):
      losses, metrics = loss_fn(p, batch, rng, shard)
      return jnp.mean(losses), metrics
    (loss, metrics), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
    return loss, dict(metrics), grads
  return grad_fn


def _flat_norm(tree) -> jax.Array:
  """The global L2 norm of a pytree as one reduction over its concatenated leaves.

  `optax.tree.norm` reduces each leaf apart: this is the same value up to the
  order of float sums, in one XLA kernel instead of one per leaf (a compile
  costs about its number of kernels: 11% of the tiny VDM step's HLO).
  """
  leaves = [jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  flat = jnp.concatenate(leaves)
  # A sum of squares, not a dot: XLA fuses the concatenation into the
  # reduction, so the parameters are read once and never copied.
  return jnp.sqrt(jnp.sum(jnp.square(flat)))


def make_step(grad_fn: Callable, optimizer: optax.GradientTransformation,
              ema: ema_lib.Ema, *, axis_name: str | None = None,
              rng_fn: Callable | None = None,
              metrics_fn: Callable | None = None) -> Callable:
  """``step(state, batch, base_rng) -> (state, metrics)``; pure, jit/pmap-ready.

  Args:
    grad_fn: the method, see the module docstring.
    optimizer: an optax transformation (`vdm_jax.training.make_optimizer`).
    ema: the parameter average (`vdm_jax.training.ema`).
    axis_name: the `pmap` axis to average over, or None on one device.
    rng_fn: ``(base_rng, step) -> rng`` of the step (default `fold_in`).
    metrics_fn: optional ``params -> dict`` of extra scalars of the new params.

  Returns:
    the step. Its metrics hold the method's, plus 'loss', 'grad_norm',
    'param_norm' and 'finite' (bool: loss, gradients and parameters finite).
  """
  rng_fn = rng_fn or jax.random.fold_in

  def step(state: TrainState, batch, base_rng):
    rng = rng_fn(base_rng, state.step)
    if axis_name:
      shard = Shard(jax.lax.axis_index(axis_name), jax.lax.psum(1, axis_name))
    else:
      shard = SINGLE
    loss, metrics, grads = grad_fn(state.params, batch, rng, shard)
    if axis_name:
      grads, loss, metrics = jax.lax.pmean((grads, loss, metrics), axis_name)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # The gradient norm in optax's form, which XLA shares with the same norm
    # in `clip_by_global_norm`; the parameter norm is only a metric.
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                   param_norm=_flat_norm(params))
    if metrics_fn is not None:
      metrics.update(metrics_fn(params))
    metrics["finite"] = (jnp.isfinite(loss) & jnp.isfinite(metrics["grad_norm"])
                         & jnp.isfinite(metrics["param_norm"]))
    return TrainState(state.step + 1, params, opt_state,
                      ema.update(params, state.ema)), metrics

  return step
