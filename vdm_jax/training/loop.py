"""The one training loop: devices, data, windows of metrics, checkpoints, resume, stops.

`train` runs a pure step (`vdm_jax.training.make_step`) under `pmap` over the
local devices and owns everything around it, once, for every method:

* **data as arguments**: either a stream (``batches(start_step)`` yields this
  host's part of each global batch, shaped ``[devices, per_device, ...]``, as
  a function of the step so a resumed run reads the same batches), or
  `Resident` arrays passed whole to every step (the step draws its own
  minibatch from ``fold_in(rng, step)``). Never closed over: a captured array
  becomes an XLA constant and stalls compilation.
* **one jitted step per call**: on XLA:CPU a conv-net gradient inside a
  ``lax.scan`` over steps ran ~40x slower than the same step called alone.
* **windows**: every `log_every` steps the window's metrics are averaged on the
  host, checked for non-finite values (training stops naming the first bad
  step and the last good checkpoint) and written to absl logging, a tqdm bar
  and ``WORKDIR/metrics.jsonl`` (`vdm_jax.training.metrics_log`).
* **checkpoints** (orbax, `vdm_jax.training.checkpoints`) every `save_every`
  steps, at the end and on SIGTERM/SIGINT; a rerun resumes from the latest and
  replays exactly the uninterrupted run, since the step's batch and random
  draws depend only on (seed, step).
* optional periodic **evaluation** and **early stopping** on an eval metric.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax.training import checkpoints as ckpt_lib
from vdm_jax.training import metrics_log
from vdm_jax.training import multihost

AXIS = "batch"
# Exit status of a run stopped by SIGTERM/SIGINT after checkpointing (BSD
# EX_TEMPFAIL: "try again"), so a scheduler can tell it from a finished run (0).
EXIT_PREEMPTED = 75


class Resident(NamedTuple):
  """In-memory arrays passed whole (same on every device) to each step."""
  arrays: Sequence[Any]


class EarlyStopping(NamedTuple):
  """Stop when eval metric `metric` has not improved for `patience` evaluations.

  `mode` 'min' or 'max'; the best state is kept (`TrainResult.best_state`).
  ``patience=None`` never stops and only keeps the best state.
  """
  metric: str
  patience: int | None
  mode: str = "min"


class TrainResult(NamedTuple):
  """What `train` returns.

  state: the final `TrainState` (one copy, on the default device).
  step: the last step run.
  metrics: mean metrics of the last window (plus eval metrics if any).
  history: [(step, window mean metrics)] of this call's windows.
  preempted: stopped by SIGTERM/SIGINT (checkpointed; rerun to resume).
  best_state, best_step: with early stopping, the state of the best evaluation.
  early_stopped: stopped by early stopping.
  """
  state: Any
  step: int
  metrics: dict
  history: list
  preempted: bool = False
  best_state: Any = None
  best_step: int | None = None
  early_stopped: bool = False


def check_positive_int(value, name: str) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")


def replicate(tree, n: int):
  """Stacks one copy per device (pmap splits the leading axis).

  Goes through host memory, so it accepts arrays of any sharding (e.g. an
  `unreplicate`d pmap output).
  """
  return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), tree)


def _local_shard(x):
  # x[0] of a multi-process pmap output is replica 0 of the *run*, which lives
  # on process 0: indexing it elsewhere starts a cross-process gather. Every
  # replica is the same after the step's pmean, so take this process's first
  # shard ([1, ...] on its first device; no computation).
  if isinstance(x, jax.Array):
    shard = x.addressable_shards[0].data
    return shard, shard.ndim == x.ndim
  return x, True


@functools.partial(jax.jit, static_argnums=1)
def _drop_replica_axis(leaves, drop):
  # One program per pytree structure: eager `x[0]` compiled a slice and a
  # squeeze for every distinct leaf shape (vdm_tiny's first run in a process:
  # 25 -> 11 compiles).
  return [x[0] if d else x for x, d in zip(leaves, drop)]


def _identity(tree):
  return tree


def first_replica(tree):
  """This process's first replica of a pmapped pytree (no cross-process traffic)."""
  leaves, treedef = jax.tree.flatten(tree)
  if not leaves:
    return tree
  shards, drop = zip(*map(_local_shard, leaves))
  return jax.tree.unflatten(treedef, _drop_replica_axis(list(shards), tuple(drop)))


def unreplicate(tree):
  """Replica 0 of a pmapped pytree, as plain arrays on the first local device."""
  device = jax.local_devices()[0]
  sharding = jax.sharding.SingleDeviceSharding(device)

  def plain(x):
    x = jax.device_put(x, device)
    # The same buffer, as an array whose type no longer carries the pmap's
    # mesh axis: a jitted function given these parameters and then the same
    # parameters restored from a checkpoint traces and compiles once, not twice.
    return jax.make_array_from_single_device_arrays(x.shape, sharding, [x])
  return jax.tree.map(plain, first_replica(tree))


class _StopRequest:
  """Turns SIGTERM/SIGINT (preemption, Ctrl-C) into a checkpoint-and-exit at the next step."""

  def __init__(self):
    self.requested, self.signum = False, None
    self._previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone.
        pass

  def _handle(self, signum, frame):
    del frame
    self.requested, self.signum = True, signum

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def agreed(self, at_window_end: bool) -> bool:
    """Whether to stop now; with several processes, all of them stop at one step.

    A preemption signal reaches the hosts of a pod at different steps; a
    process that stopped alone to save would leave the others waiting in the
    next step's collective. So with several processes the flags are gathered
    (`multihost.any_process`, one key-value round trip, no device sync), and
    any one of them stops every process, at window ends only.
    """
    if jax.process_count() == 1:
      return self.requested
    return at_window_end and multihost.any_process(self.requested)


def _progress(total, initial, desc, enabled):
  if not enabled or jax.process_index() != 0:
    return None
  try:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return tqdm(total=total, initial=initial, desc=desc, unit="step",
              dynamic_ncols=True, leave=False)


def train(step_fn: Callable, init_state, *, batches: Callable[[int], Iterator] | Resident,
          base_rng, num_steps: int, log_every: int, workdir: str | None = None,
          save_every: int = 0, keep_checkpoints: int = 1,
          num_devices: int | None = None, eval_fn: Callable | None = None,
          eval_every: int = 0, early_stopping: EarlyStopping | None = None,
          progress: bool = True, name: str = "train",
          postfix: str | None = "loss", steps_per_call: int = 1) -> TrainResult:
  """Runs `step_fn` from the latest checkpoint in `workdir` (or `init_state`) to `num_steps`.

  Args:
    step_fn: ``(state, batch, base_rng) -> (state, metrics)`` from `make_step`
      with ``axis_name=AXIS``; its metrics must hold a bool 'finite'.
    init_state: the `TrainState` to start from when there is no checkpoint
      (one copy; the template of a restore).
    batches: a stream ``start_step -> iterator of batches`` or `Resident`.
    base_rng: the key the step folds the step number into.
    num_steps: the step to train to.
    log_every: steps per metrics window (log, non-finite check, postfix).
    workdir: folder for checkpoints and metrics.jsonl; None keeps nothing on
      disk (in-memory training, no resume).
    save_every: steps between checkpoints (0: only at the end / on a stop).
    keep_checkpoints: how many recent checkpoints orbax keeps (>= 1).
    num_devices: local devices to pmap over (default all).
    eval_fn: ``(state, step) -> dict of floats``, given one copy of the state.
    eval_every: steps between evaluations (0: none during training).
    early_stopping: stop on an eval metric (needs `eval_fn` and `eval_every`).
    progress: show a tqdm bar (process 0).
    name: label of the bar and the logs.
    postfix: metric shown on the bar.
    steps_per_call: optimisation steps per device call, as a `lax.scan` over
      the step (a stream's batches are stacked on the host). The same losses as
      single calls; it saves the host round trip between steps, which pays for
      small networks. On XLA:CPU a conv-net gradient inside a scan body was
      measured ~40x slower than the same step called alone, so the default is
      1. `num_steps`, `log_every`, `save_every` and `eval_every` must be
      multiples of it.

  Returns:
    a `TrainResult`.

  Raises:
    ValueError: on a bad interval or count, before anything is computed.
    RuntimeError: on a non-finite loss, gradient or parameter.
    vdm_jax.training.CheckpointError: when a checkpoint cannot be written.
  """
  check_positive_int(num_steps, "num_train_steps")
  check_positive_int(log_every, "log_every")
  check_positive_int(steps_per_call, "steps_per_call")
  if save_every:
    check_positive_int(save_every, "save_every")
  if eval_every:
    check_positive_int(eval_every, "eval_every")
  for value, what in ((num_steps, "num_train_steps"), (log_every, "log_every"),
                      (save_every, "save_every"), (eval_every, "eval_every")):
    if value % steps_per_call:
      raise ValueError(f"{what}={value} must be a multiple of steps_per_call="
                       f"{steps_per_call}.")
  if early_stopping is not None:
    if early_stopping.patience is not None:
      check_positive_int(early_stopping.patience, "early_stopping.patience")
    if eval_fn is None or not eval_every:
      raise ValueError("early_stopping needs eval_fn and eval_every >= 1.")
    if early_stopping.mode not in ("min", "max"):
      raise ValueError(f"early_stopping.mode must be 'min' or 'max', got "
                       f"{early_stopping.mode!r}.")
  devices = jax.local_devices()[:num_devices] if num_devices else jax.local_devices()
  if num_devices and len(devices) != num_devices:
    raise ValueError(f"num_devices={num_devices} but only {len(devices)} local "
                     f"devices exist.")
  n = len(devices)
  # Several processes: each maps its own devices, and pmap must be given every
  # process's (its default) so that the step's pmean spans the whole run.
  pmap_devices = devices if jax.process_count() == 1 else None
  if pmap_devices is None and n != jax.local_device_count():
    raise ValueError(f"num_devices={num_devices}: a multi-process run trains on every "
                     f"local device ({jax.local_device_count()} here).")

  manager = None
  state = init_state
  if workdir is not None:
    os.makedirs(workdir, exist_ok=True)
    manager = ckpt_lib.Checkpointer(workdir, keep=keep_checkpoints)
    restored = manager.restore(init_state)
    if restored is not None:
      state = restored
      logging.info("%s: resumed from the checkpoint of step %d.", name, int(state.step))
  start = int(state.step)
  writer = metrics_log.MetricsWriter(workdir, active=jax.process_index() == 0) \
      if workdir is not None else None
  if writer is not None:
    writer.resume(start)

  resident = isinstance(batches, Resident)
  k = steps_per_call

  def scanned(state, batch, base_rng):
    # k steps in one call; a stream's batch carries a leading [k] axis.
    def body(state, b):
      return step_fn(state, batch if resident else b, base_rng)
    return jax.lax.scan(body, state, None if resident else batch,
                        length=k if resident else None)

  p_step = jax.pmap(step_fn if k == 1 else scanned, axis_name=AXIS,
                    in_axes=(0, None if resident else 0, None),
                    devices=pmap_devices, donate_argnums=(0,))
  if resident:
    data = tuple(jax.device_put(jnp.asarray(a), devices[0]) for a in batches.arrays)
    stream = None
  else:
    stream = batches(start)

  def next_batch():
    if resident:
      return data
    if k == 1:
      return next(stream)
    # [devices, per_device, ...] x k -> [devices, k, per_device, ...].
    return jax.tree.map(lambda *b: np.stack(b, axis=1), *[next(stream) for _ in range(k)])

  def per_step(metrics):
    """Host metrics of one call as a list of per-step dicts."""
    m = jax.device_get(first_replica(metrics))
    if k == 1:
      return [m]
    return [{key: v[i] for key, v in m.items()} for i in range(k)]
  # Place the replicas as pmap outputs are placed: a host array here would
  # make the second call (fed the first call's output) compile the step again;
  # the sharding names the pmap axis, so the identity uses the same name. A
  # module-level function, so that later runs in the process reuse its program.
  state = jax.pmap(_identity, axis_name=AXIS, devices=pmap_devices)(replicate(state, n))

  def log(step, metrics, prefix=""):
    if writer is not None:
      writer.write(step, metrics, prefix)
    else:
      logging.info("%s step %d: %s", name, step, ", ".join(
          f"{prefix}{k}={v:.5g}" for k, v in metrics.items()))

  def save(step):
    if manager is not None:
      manager.save(unreplicate(state), step)

  bar = _progress(num_steps, start, name, progress)
  window, first, t0 = [], start + 1, time.time()
  history, last_metrics = [], {}
  best = (None, None, None)  # (value, step, state)
  since_best = 0
  step, preempted, early_stopped = start, False, False
  try:
    with _StopRequest() as stop:
      while step < num_steps:
        state, metrics = p_step(state, next_batch(), base_rng)
        window.append(metrics)
        step += k
        if bar is not None:
          bar.update(k)
        # Read once: a signal may land mid-iteration.
        preempted = stop.agreed(step % log_every == 0 or step == num_steps)
        last = step == num_steps or preempted
        save_now = manager is not None and (
            last or (save_every and step % save_every == 0))
        if step % log_every == 0 or last or save_now:
          host = [m for call in window for m in per_step(call)]
          bad = [first + i for i, m in enumerate(host) if not m["finite"]]
          if bad:
            good = manager.latest_step() if manager is not None else None
            raise RuntimeError(
                f"Non-finite loss, gradient or parameters at step {bad[0]} "
                f"({name}, window steps {first}-{step}); training stopped. The last good "
                f"checkpoint is step {good}"
                f"{f' in {workdir}' if workdir else ''}. Lower the learning rate "
                f"or enable gradient clipping.")
          mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]
                  if k != "finite"}
          mean["steps_per_sec"] = len(host) / max(time.time() - t0, 1e-9)
          log(step, mean)
          history.append((step, mean))
          last_metrics = mean
          if bar is not None and postfix in mean:
            bar.set_postfix({postfix: f"{mean[postfix]:.4g}"})
          window, first, t0 = [], step + 1, time.time()
        if save_now:
          save(step)
        if eval_fn is not None and eval_every and step % eval_every == 0:
          result = {k: float(v) for k, v in eval_fn(unreplicate(state), step).items()}
          log(step, result, prefix="eval_")
          last_metrics = dict(last_metrics, **{f"eval_{k}": v for k, v in result.items()})
          if early_stopping is not None:
            value = result[early_stopping.metric]
            sign = 1.0 if early_stopping.mode == "min" else -1.0
            if best[0] is None or sign * value < sign * best[0]:
              best = (value, step, jax.device_get(unreplicate(state)))
              since_best = 0
            else:
              since_best += 1
              if (early_stopping.patience is not None
                  and since_best >= early_stopping.patience):
                logging.info("%s: early stop at step %d; best %s = %.5g at step %d.",
                             name, step, early_stopping.metric, best[0], best[1])
                early_stopped = True
                if manager is not None and manager.latest_step() != step:
                  save(step)
                break
        if preempted:
          logging.warning(
              "%s: stop requested (signal %s) at step %d: checkpoint saved, "
              "exiting; rerun the same command to resume.", name, stop.signum, step)
          break
  finally:
    if bar is not None:
      bar.close()
    if manager is not None:
      manager.close()
    if writer is not None:
      writer.close()
  return TrainResult(unreplicate(state), step, last_metrics, history, preempted,
                     best[2], best[1], early_stopped)
