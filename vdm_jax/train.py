"""Training, evaluation and sampling of a VDM: pmap-parallel steps, EMA, orbax checkpoints.

Reads as a script (big_vision / flax examples): `train_and_evaluate(config,
workdir)` builds the model and optimiser, restores the latest checkpoint if
there is one, and runs a plain loop of a pmapped `train_step`. Everything that
makes a run reproducible is a function of (config.seed, step): the batch
(`vdm_jax.data.batch_indices`), the step's random draws (`fold_in(seed, step)`)
and the EMA. A run killed and restarted therefore replays the same loss
sequence as an uninterrupted one.

Parallelism: `pmap` over the local devices with one `pmean` of the gradients
on the axis 'batch'. The random draws of a step (t, eps) are made for the
*global* batch and sliced per device, so N devices compute the same loss and
gradients as one device with the same global batch (up to the order of float
sums). Only dropout masks are drawn per device.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import time
from typing import Any, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vdm_jax import data as data_lib
from vdm_jax import images as images_lib
from vdm_jax import losses
from vdm_jax import sampling
from vdm_jax import schedules
from vdm_jax import variance_minimization
from vdm_jax.model import VDM
from vdm_jax.models import UNet

AXIS = "batch"


class TrainState(NamedTuple):
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any


# ----------------------------------------------------------------------------
# Construction.
# ----------------------------------------------------------------------------
def compute_dtype(config):
  names = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
  if config.model.dtype not in names:
    raise ValueError(f"config.model.dtype must be one of {sorted(names)}, got "
                     f"{config.model.dtype!r}.")
  return names[config.model.dtype]


def build_vdm(config) -> VDM:
  """The VDM described by `config.model` and `config.data`."""
  m = config.model
  extra = {"n_features": m.schedule_features} if m.schedule == "learned_net" else {}
  schedule = schedules.make_schedule(m.schedule, gamma_min=m.gamma_min,
                                     gamma_max=m.gamma_max, **extra)
  network = UNet(ch=m.ch, n_blocks=m.n_blocks, ch_mult=tuple(m.ch_mult),
                 attn_in_blocks=m.attn_in_blocks, dropout=m.dropout,
                 fourier_exponents=tuple(m.fourier_exponents),
                 num_classes=config.data.num_classes if m.class_conditional else 0,
                 dtype=compute_dtype(config))
  return VDM(schedule=schedule, network=network, vocab_size=config.data.vocab_size,
             num_steps=m.num_steps, antithetic=m.antithetic,
             gamma_min=m.gamma_min, gamma_max=m.gamma_max)


def _decay_mask(params, decay_schedule: bool):
  def keep(path, _):
    names = [getattr(k, "key", "") for k in path]
    if names and names[0] == "schedule" and not decay_schedule:
      return False
    return names[-1] != "bias"
  return jax.tree.map_with_path(keep, params)


def build_optimizer(config) -> optax.GradientTransformation:
  """AdamW with linear warm-up, global-norm clipping; biases not decayed."""
  o = config.optimizer
  lr = optax.join_schedules(
      [optax.linear_schedule(0.0, o.learning_rate, max(o.warmup_steps, 1)),
       optax.constant_schedule(o.learning_rate)], [max(o.warmup_steps, 1)])
  chain = []
  if o.grad_clip:
    chain.append(optax.clip_by_global_norm(o.grad_clip))
  chain.append(optax.adamw(
      lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
      mask=functools.partial(_decay_mask, decay_schedule=o.decay_schedule_params)))
  return optax.chain(*chain)


def _example_batch(config, batch_size):
  shape = (batch_size, *config.data.image_shape)
  label = (jnp.zeros((batch_size,), jnp.int32)
           if config.model.class_conditional else None)
  return jnp.zeros(shape, jnp.int32), label


def create_train_state(config, vdm: VDM, optimizer, rng) -> TrainState:
  x, label = _example_batch(config, 1)
  params = vdm.init(rng, x, label)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params),
                    ema_params=jax.tree.map(jnp.copy, params))


def replicate(tree):
  """Stacks one copy per local device (pmap splits the leading axis)."""
  n = jax.local_device_count()
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), tree)


# ----------------------------------------------------------------------------
# Steps.
# ----------------------------------------------------------------------------
def train_step(state: TrainState, batch, base_rng, *, vdm: VDM, optimizer,
               config, axis_name: str | None = None):
  """One optimisation step; pure. Under pmap, pass `axis_name` to average grads.

  Returns:
    (new state, metrics dict of scalars averaged over devices).
  """
  rng = jax.random.fold_in(base_rng, state.step)
  shard = (jax.lax.axis_index(axis_name), jax.lax.psum(1, axis_name)) if axis_name else (0, 1)
  label = batch["label"] if config.model.class_conditional else None
  loss, metrics, grads = variance_minimization.vlb_loss_and_grads(
      vdm, state.params, rng, batch["image"], train=True, label=label,
      dtype=compute_dtype(config),
      variance_minimization=config.training.variance_minimization,
      shard=shard)
  if axis_name:
    grads = jax.lax.pmean(grads, axis_name)
    metrics = jax.lax.pmean(metrics, axis_name)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  rate = config.training.ema_rate
  ema = jax.tree.map(lambda e, p: e + (1.0 - rate) * (p - e), state.ema_params, params)
  gamma_fn = vdm.gamma_fn(params)
  metrics.update(
      loss=loss if not axis_name else jax.lax.pmean(loss, axis_name),
      grad_norm=optax.tree.norm(grads),
      param_norm=optax.tree.norm(params),
      gamma_0=gamma_fn(jnp.zeros((), jnp.float32)),
      gamma_1=gamma_fn(jnp.ones((), jnp.float32)))
  metrics["finite"] = (jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
                       & jnp.isfinite(metrics["param_norm"]))
  return TrainState(state.step + 1, params, opt_state, ema), metrics


def eval_step(params, batch, rng, *, vdm: VDM, config, axis_name=AXIS):
  """Sum of per-example test bpd (masked) and the count, over devices."""
  label = batch["label"] if config.model.class_conditional else None
  x = batch["image"]
  num_dims = math.prod(x.shape[1:])
  total = 0.0
  for d in range(config.eval.num_t_draws):
    terms = vdm.vlb_terms(params, jax.random.fold_in(rng, d), x, label=label)
    total = total + losses.nats_to_bpd(terms.total, num_dims)
  bpd = total / config.eval.num_t_draws
  mask = batch["mask"].astype(jnp.float32)
  return (jax.lax.psum(jnp.sum(bpd * mask), axis_name),
          jax.lax.psum(jnp.sum(mask), axis_name))


def evaluate(config, vdm: VDM, params_replicated, p_eval_step, rng) -> float:
  """Test bits/dim with `params_replicated` over the whole split (or max_batches)."""
  source = data_lib.make_source(config, "test")
  batches = data_lib.eval_batches(
      source, global_batch=config.eval.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count(),
      local_devices=jax.local_device_count())
  total, count = 0.0, 0.0
  for i, batch in enumerate(batches):
    if config.eval.max_batches and i >= config.eval.max_batches:
      break
    rngs = jax.random.split(jax.random.fold_in(rng, i), jax.local_device_count())
    s, c = p_eval_step(params_replicated, batch, rngs)
    total += float(s[0])
    count += float(c[0])
  return total / count


def generate_samples(config, vdm: VDM, params, rng, num_samples=None):
  """Ancestral samples as uint8-valued int arrays [N, H, W, C] (jitted, one device)."""
  n = num_samples or config.sampling.num_samples
  label = (jnp.arange(n, dtype=jnp.int32) % config.data.num_classes
           if config.model.class_conditional else None)

  @jax.jit
  def run(params, rng):
    return sampling.generate(
        rng, (n, *config.data.image_shape), gamma_fn=vdm.gamma_fn(params),
        eps_fn=vdm.eps_fn(params, label=label), vocab_size=vdm.vocab_size,
        num_steps=config.sampling.num_steps,
        sample_softmax=config.sampling.sample_softmax)

  return np.asarray(run(params, rng))


# ----------------------------------------------------------------------------
# Checkpoints (orbax).
# ----------------------------------------------------------------------------
def checkpoint_manager(workdir, config):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.training.keep_checkpoints, create=True)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=options)


def save_checkpoint(manager, state_replicated):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  # Orbax cannot save host-local pmap arrays: take replica 0 as host numpy.
  state = jax.device_get(jax.tree.map(lambda x: x[0], state_replicated))
  manager.save(int(state.step), args=ocp.args.StandardSave(state), force=True)
  manager.wait_until_finished()


def restore_checkpoint(manager, template: TrainState, step=None) -> TrainState | None:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  target = jax.tree.map(np.asarray, template)
  restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  return jax.tree.map(jnp.asarray, TrainState(*restored))


def load_params(config, workdir, *, ema: bool = True):
  """EMA (or raw) parameters of the latest checkpoint in `workdir`, for other tools."""
  vdm = build_vdm(config)
  template = create_train_state(config, vdm, build_optimizer(config), jax.random.key(0))
  state = restore_checkpoint(checkpoint_manager(workdir, config), template)
  if state is None:
    raise FileNotFoundError(
        f"No checkpoint in {os.path.join(workdir, 'checkpoints')}; train first "
        f"(--mode=train).")
  return vdm, (state.ema_params if ema else state.params), int(state.step)


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------
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


class _MetricsWriter:
  """absl logging + a JSONL file in the workdir (process 0 only)."""

  def __init__(self, workdir):
    self._path = os.path.join(workdir, "metrics.jsonl")
    self._active = jax.process_index() == 0

  def write(self, step, metrics, prefix=""):
    record = {"step": int(step), **{prefix + k: float(v) for k, v in metrics.items()}}
    logging.info("step %d: %s", step, ", ".join(
        f"{k}={v:.5g}" for k, v in record.items() if k != "step"))
    if self._active:
      with open(self._path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _progress(total, initial):
  if jax.process_index() != 0:
    return None
  try:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return tqdm(total=total, initial=initial, desc="train", unit="step",
              dynamic_ncols=True, leave=False)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (resuming from `workdir` if possible), evaluates and samples.

  Returns:
    dict with the final step, train metrics of the last window, and
    'test_bpd' / 'samples_png' when evaluation / sampling ran.
  """
  os.makedirs(workdir, exist_ok=True)
  devices = jax.local_device_count()
  data_lib.check_divisible(config.training.batch_size, jax.device_count())
  data_lib.check_divisible(config.eval.batch_size, jax.device_count(), "eval.batch_size")
  vdm = build_vdm(config)
  optimizer = build_optimizer(config)
  base_rng = jax.random.key(config.seed)
  init_rng, train_rng, eval_rng, sample_rng = jax.random.split(base_rng, 4)

  state = create_train_state(config, vdm, optimizer, init_rng)
  manager = checkpoint_manager(workdir, config)
  restored = restore_checkpoint(manager, state)
  if restored is not None:
    state = restored
    logging.info("Resumed from checkpoint at step %d.", int(state.step))
  start_step = int(state.step)
  n_params = sum(x.size for x in jax.tree.leaves(state.params["network"]))
  logging.info("VDM: %d network parameters, %d local devices, global batch %d.",
               n_params, devices, config.training.batch_size)

  p_train_step = jax.pmap(
      functools.partial(train_step, vdm=vdm, optimizer=optimizer, config=config,
                        axis_name=AXIS),
      axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=(0,))
  p_eval_step = jax.pmap(
      functools.partial(eval_step, vdm=vdm, config=config), axis_name=AXIS)
  state = replicate(state)

  source = data_lib.make_source(config, "train")
  first = source.get(np.arange(1))[0]
  data_lib.check_images(first, config.data.image_shape, config.data.vocab_size,
                        "train data")
  batches = data_lib.train_batches(
      source, global_batch=config.training.batch_size, start_step=start_step,
      seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), local_devices=devices)

  writer = _MetricsWriter(workdir)
  progress = _progress(config.training.num_train_steps, start_step)
  window, last_checked, t0 = [], start_step, time.time()
  result = {"step": start_step}
  step, stopping = start_step, False
  with _StopRequest() as stop:
    while step < config.training.num_train_steps:
      batch = next(batches)
      state, metrics = p_train_step(state, batch, train_rng)
      window.append(metrics)
      step += 1
      if progress is not None:
        progress.update(1)
      stopping = stop.requested  # read once: a signal may land mid-iteration.
      last = step == config.training.num_train_steps or stopping
      log_now = step % config.training.log_every == 0 or last
      save_now = step % config.training.save_every == 0 or last
      if log_now or save_now:
        host = jax.device_get([jax.tree.map(lambda x: x[0], m) for m in window])
        bad = [last_checked + i + 1 for i, m in enumerate(host) if not m["finite"]]
        if bad:
          raise RuntimeError(
              f"Non-finite loss, gradient or parameters at step {bad[0]} (window "
              f"steps {last_checked + 1}-{step}); training stopped. The last good "
              f"checkpoint is step {manager.latest_step()} in {workdir}. Lower "
              f"config.optimizer.learning_rate or enable grad_clip.")
        mean = {k: float(np.mean([m[k] for m in host])) for k in host[0] if k != "finite"}
        mean["steps_per_sec"] = len(host) / (time.time() - t0)
        writer.write(step, mean)
        if progress is not None:
          progress.set_postfix(bpd=f"{mean['bpd']:.3f}")
        result = {"step": step, **mean}
        window, last_checked, t0 = [], step, time.time()
        if save_now:
          save_checkpoint(manager, state)
      if config.eval.every_steps and step % config.eval.every_steps == 0:
        bpd = evaluate(config, vdm, state.ema_params, p_eval_step, eval_rng)
        writer.write(step, {"test_bpd": bpd}, prefix="eval_")
      if stopping:
        logging.warning("Stop requested (signal %s) at step %d: checkpoint saved, "
                        "exiting; rerun the same command to resume.", stop.signum, step)
        break
  if progress is not None:
    progress.close()
  if stopping:
    manager.close()
    return result

  if config.eval.at_end:
    result["test_bpd"] = evaluate(config, vdm, state.ema_params, p_eval_step, eval_rng)
    writer.write(step, {"test_bpd": result["test_bpd"]}, prefix="eval_")
  if config.sampling.at_end and jax.process_index() == 0:
    ema = jax.tree.map(lambda x: x[0], state.ema_params)
    samples = generate_samples(config, vdm, ema, sample_rng)
    result["samples_png"] = images_lib.save_grid(
        samples, os.path.join(workdir, f"samples_step{step}.png"),
        vocab_size=config.data.vocab_size)
  manager.close()
  return result


def run_eval(config, workdir: str) -> float:
  """Test bpd of the latest checkpoint's EMA parameters."""
  vdm, params, step = load_params(config, workdir)
  p_eval_step = jax.pmap(functools.partial(eval_step, vdm=vdm, config=config),
                         axis_name=AXIS)
  params = replicate(params)
  bpd = evaluate(config, vdm, params, p_eval_step,
                 jax.random.split(jax.random.key(config.seed), 4)[2])
  _MetricsWriter(workdir).write(step, {"test_bpd": bpd}, prefix="eval_")
  return bpd


def run_sample(config, workdir: str) -> str:
  """Writes a PNG grid of samples from the latest checkpoint; returns its path."""
  vdm, params, step = load_params(config, workdir)
  samples = generate_samples(config, vdm, params,
                             jax.random.split(jax.random.key(config.seed), 4)[3])
  return images_lib.save_grid(samples, os.path.join(workdir, f"samples_step{step}.png"),
                              vocab_size=config.data.vocab_size)
