"""The VDM trainer: the VDM objective, evaluation in bits/dim and sampling, on the engine.

`train_and_evaluate(config, workdir)` builds the data source (first, so an
unprepared dataset fails before any model is built), the VDM and its
optimiser, and hands a pure step to `vdm_jax.training.train`, which owns the
loop: pmap over the local devices, EMA, metrics windows, orbax checkpoints,
exact resume and SIGTERM handling. Everything that makes a run reproducible
is a function of (config.seed, step): the batch
(`vdm_jax.data.batch_indices`), the step's random draws (`fold_in(seed, step)`)
and the EMA, so a run killed and restarted replays the same loss sequence.

The random draws of a step (t, eps) are made for the *global* batch and sliced
per device, so N devices compute the same loss and gradients as one device
with the same global batch (up to the order of float sums). Only dropout masks
are drawn per device.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Callable, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vdm_jax import data as data_lib
from vdm_jax import images as images_lib
from vdm_jax import losses
from vdm_jax import sampling
from vdm_jax import schedules
from vdm_jax import training
from vdm_jax import variance_minimization
from vdm_jax.model import VDM
from vdm_jax.models import UNet

AXIS = training.AXIS


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


def build_optimizer(config) -> optax.GradientTransformation:
  """AdamW with linear warm-up and global-norm clipping; biases (and, unless
  `optimizer.decay_schedule_params`, the schedule) are not decayed."""
  o = config.optimizer
  return training.make_optimizer(
      learning_rate=o.learning_rate, warmup_steps=o.warmup_steps, b1=o.b1, b2=o.b2,
      eps=o.eps, weight_decay=o.weight_decay, grad_clip=o.grad_clip,
      decay_mask=training.mask_except(
          top_level=() if o.decay_schedule_params else ("schedule",)))


def build_ema(config) -> training.Ema:
  return training.ema(config.training.ema_rate, warmup=config.training.ema_warmup)


def _example_batch(config, batch_size):
  shape = (batch_size, *config.data.image_shape)
  label = (jnp.zeros((batch_size,), jnp.int32)
           if config.model.class_conditional else None)
  return jnp.zeros(shape, jnp.int32), label


def _state_initializer(config, vdm: VDM, optimizer):
  x, label = _example_batch(config, 1)
  # Under jit: run eagerly, Flax's init dispatches every op of the UNet one at
  # a time (vdm_tiny on 2 CPU cores: 8.4 s eager vs 2.8 s compiled at XLA's
  # backend optimisation level 0, 20 s vs 16 s at the default level); the
  # parameters are the same bits.
  return jax.jit(lambda key: training.init_state(vdm.init(key, x, label), optimizer,
                                                 build_ema(config)))


def create_train_state(config, vdm: VDM, optimizer, rng) -> training.TrainState:
  """The initial `TrainState` (params from `vdm.init`, optimiser state, EMA)."""
  return _state_initializer(config, vdm, optimizer)(rng)


def replicate(tree):
  """Stacks one copy per local device (pmap splits the leading axis)."""
  return training.replicate(tree, jax.local_device_count())


# ----------------------------------------------------------------------------
# Steps.
# ----------------------------------------------------------------------------
def make_train_step(*, vdm: VDM, optimizer, config, axis_name: str | None = None):
  """The engine's step with the VDM objective (variance-minimising schedule gradient).

  Returns ``step(state, batch, base_rng) -> (state, metrics)``; under pmap pass
  `axis_name`. The step's draws (t, eps) are made for the global batch and
  sliced per device (`variance_minimization.vlb_loss_and_grads`), so N devices
  compute what one device computes on the same global batch.
  """
  dtype = compute_dtype(config)

  def grad_fn(params, batch, rng, shard):
    label = batch["label"] if config.model.class_conditional else None
    loss, metrics, grads = variance_minimization.vlb_loss_and_grads(
        vdm, params, rng, batch["image"], train=True, label=label, dtype=dtype,
        variance_minimization=config.training.variance_minimization,
        shard=tuple(shard))
    return loss, metrics, grads

  def schedule_ends(params):
    gamma_fn = vdm.gamma_fn(params)
    return {"gamma_0": gamma_fn(jnp.zeros((), jnp.float32)),
            "gamma_1": gamma_fn(jnp.ones((), jnp.float32))}

  return training.make_step(grad_fn, optimizer, build_ema(config),
                            axis_name=axis_name, metrics_fn=schedule_ends)


def train_step(state: training.TrainState, batch, base_rng, *, vdm: VDM, optimizer,
               config, axis_name: str | None = None):
  """One optimisation step, `make_train_step(...)(state, batch, base_rng)`; pure."""
  return make_train_step(vdm=vdm, optimizer=optimizer, config=config,
                         axis_name=axis_name)(state, batch, base_rng)


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


def evaluate(config, vdm: VDM, params_replicated, p_eval_step, rng, *,
             source=None) -> float:
  """Test bits/dim with `params_replicated` over the whole split (or max_batches)."""
  source = source if source is not None else data_lib.make_source(config, "test")
  batches = data_lib.eval_batches(
      source, global_batch=config.eval.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count(),
      local_devices=jax.local_device_count())
  total, count = 0.0, 0.0
  for i, batch in enumerate(batches):
    if config.eval.max_batches and i >= config.eval.max_batches:
      break
    rngs = jax.random.split(jax.random.fold_in(rng, i), jax.local_device_count())
    s, c = training.first_replica(p_eval_step(params_replicated, batch, rngs))
    total += float(s)
    count += float(c)
  return total / count


def _sampler(config, vdm: VDM, n: int):
  """Jitted ``(params, rng) -> n`` ancestral samples (labels cycle through the classes)."""
  label = (jnp.arange(n, dtype=jnp.int32) % config.data.num_classes
           if config.model.class_conditional else None)

  @jax.jit
  def run(params, rng):
    return sampling.generate(
        rng, (n, *config.data.image_shape), gamma_fn=vdm.gamma_fn(params),
        eps_fn=vdm.eps_fn(params, label=label), vocab_size=vdm.vocab_size,
        num_steps=config.sampling.num_steps,
        sample_softmax=config.sampling.sample_softmax)

  return run


def generate_samples(config, vdm: VDM, params, rng, num_samples=None):
  """Ancestral samples as uint8-valued int arrays [N, H, W, C] (jitted, one device)."""
  n = num_samples or config.sampling.num_samples
  progs = programs(config)
  # The config's own model and sample count: its compiled-once sampler.
  sample = (progs.sample if n == config.sampling.num_samples and vdm is progs.vdm
            else _sampler(config, vdm, n))
  return np.asarray(sample(params, rng))


# ----------------------------------------------------------------------------
# The compiled-once programs of a config.
# ----------------------------------------------------------------------------
# Every field the programs below read. Runs whose configs agree on these share
# one build (the length of a run, its logging and checkpointing, the devices
# and the data location do not enter a program).
_PROGRAM_FIELDS = ("model", "optimizer", "data.image_shape", "data.vocab_size",
                   "data.num_classes", "training.ema_rate",
                   "training.ema_warmup", "training.variance_minimization",
                   "eval.num_t_draws", "sampling.num_samples", "sampling.num_steps",
                   "sampling.sample_softmax")


class Programs(NamedTuple):
  """A config's VDM and optimiser, and its functions built once per process."""
  vdm: VDM
  optimizer: optax.GradientTransformation
  init: Callable        # jitted: key -> TrainState (one copy)
  step: Callable        # the engine step, `make_train_step(..., axis_name=AXIS)`
  p_eval_step: Callable  # `eval_step` pmapped over the local devices
  sample: Callable      # jitted: (params, key) -> config.sampling.num_samples samples


def programs(config) -> Programs:
  """The VDM, optimiser, init, step, eval and sampling functions of `config`.

  Built once per process for configs equal in the fields the programs read
  (`_PROGRAM_FIELDS`): a run resumed in the same process, ``--mode=eval``
  after training, or a second run of the same model reuses the first one's
  traces and compiled programs (jit caches by function identity; new closures
  would trace, lower and compile everything again). The builders are given a
  frozen copy of those fields alone, so a program cannot read a field the
  cache key leaves out (reading one raises an AttributeError instead of reusing
  a stale program).
  """
  return _programs(_program_config(config))


def _program_config(config) -> ml_collections.FrozenConfigDict:
  sub = ml_collections.ConfigDict()
  for name in _PROGRAM_FIELDS:
    section, _, field = name.partition(".")
    if not field:
      sub[section] = config[section]
      continue
    if section not in sub:
      sub[section] = ml_collections.ConfigDict()
    sub[section][field] = config[section][field]
  return ml_collections.FrozenConfigDict(sub)


@functools.lru_cache(maxsize=4)
def _programs(config: ml_collections.FrozenConfigDict) -> Programs:
  vdm = build_vdm(config)
  optimizer = build_optimizer(config)
  return Programs(
      vdm=vdm, optimizer=optimizer,
      init=_state_initializer(config, vdm, optimizer),
      step=make_train_step(vdm=vdm, optimizer=optimizer, config=config, axis_name=AXIS),
      p_eval_step=jax.pmap(functools.partial(eval_step, vdm=vdm, config=config),
                           axis_name=AXIS),
      sample=_sampler(config, vdm, config.sampling.num_samples))


# ----------------------------------------------------------------------------
# Config checks, checkpoints.
# ----------------------------------------------------------------------------
def config_from_file(path: str, arg: str | None = None):
  """`get_config(arg)` (or `get_config()`) of the config file at `path`.

  `path` may also be written `file.py:arg`, as on the launch.py command line.
  Config files import `configs.<base>`, so the repository root must be on the
  import path (as it is for launch.py and the tests).
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  if arg is None and ":" in os.path.basename(path):
    path, _, arg = path.rpartition(":")
  path = os.path.abspath(path)
  if not os.path.exists(path):
    raise ValueError(f"config file {path} does not exist.")
  name = "_config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def validate_config(config) -> None:
  """Rejects values that cannot train, before any data is read or model built."""
  tr = config.training
  for name in ("batch_size", "num_train_steps", "log_every", "save_every",
               "keep_checkpoints", "steps_per_call"):
    training.check_positive_int(tr[name], f"config.training.{name}")
  for name in ("num_train_steps", "log_every", "save_every"):
    if tr[name] % tr.steps_per_call:
      raise ValueError(f"config.training.{name}={tr[name]} must be a multiple of "
                       f"config.training.steps_per_call={tr.steps_per_call}.")
  if config.eval.every_steps % tr.steps_per_call:
    raise ValueError(f"config.eval.every_steps={config.eval.every_steps} must be a "
                     f"multiple of config.training.steps_per_call={tr.steps_per_call}.")
  training.check_positive_int(config.eval.batch_size, "config.eval.batch_size")
  training.check_positive_int(config.eval.num_t_draws, "config.eval.num_t_draws")
  training.check_positive_int(config.sampling.num_samples, "config.sampling.num_samples")
  training.check_positive_int(config.sampling.num_steps, "config.sampling.num_steps")
  num_devices = tr.get("num_devices", 0)
  if (not isinstance(num_devices, int) or isinstance(num_devices, bool)
      or not 0 <= num_devices <= jax.local_device_count()):
    raise ValueError(
        f"config.training.num_devices must be an integer in [0, "
        f"{jax.local_device_count()}] (0: every local device), got {num_devices!r}.")
  if num_devices and jax.process_count() > 1 and num_devices != jax.local_device_count():
    raise ValueError(
        f"config.training.num_devices={num_devices}: a multi-process run trains on "
        f"every local device ({jax.local_device_count()}); set it to 0.")
  if config.eval.every_steps < 0:
    raise ValueError(f"config.eval.every_steps must be >= 0 (0: only at the end), "
                     f"got {config.eval.every_steps}.")
  if not config.optimizer.learning_rate > 0:
    raise ValueError(f"config.optimizer.learning_rate must be > 0, got "
                     f"{config.optimizer.learning_rate}.")
  if not 0.0 <= tr.ema_rate < 1.0:
    raise ValueError(f"config.training.ema_rate must lie in [0, 1), got {tr.ema_rate}.")
  compute_dtype(config)


def load_params(config, workdir, *, ema: bool = True):
  """EMA (or raw) parameters of the latest checkpoint in `workdir`, for other tools."""
  progs = programs(config)
  # Restoring needs only the state's shapes and dtypes: traced, not run.
  shapes = jax.eval_shape(progs.init, jax.random.key(0))
  template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  manager = training.Checkpointer(workdir, keep=config.training.keep_checkpoints)
  try:
    state = manager.restore(template)
  finally:
    manager.close()
  if state is None:
    raise FileNotFoundError(
        f"No checkpoint in {os.path.join(workdir, 'checkpoints')}; train first "
        f"(--mode=train).")
  # Committed to the first local device, as the engine's final state is: a
  # jitted function given both (the sampler after training and in
  # `run_sample`) compiles once.
  state = jax.device_put(state, jax.local_devices()[0])
  return progs.vdm, (state.ema.params if ema else state.params), int(state.step)


# ----------------------------------------------------------------------------
# The run.
# ----------------------------------------------------------------------------
def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (resuming from `workdir` if possible), evaluates and samples.

  Returns:
    dict with the final step, train metrics of the last window, 'preempted'
    when a signal stopped the run, and 'test_bpd' / 'samples_png' when
    evaluation / sampling ran.
  """
  validate_config(config)
  # The data first: an unprepared dataset fails before the model is built.
  source = data_lib.make_source(config, "train")
  test_source = (data_lib.make_source(config, "test")
                 if config.eval.at_end or config.eval.every_steps else None)
  data_lib.check_images(source.get(np.arange(1))[0], config.data.image_shape,
                        config.data.vocab_size, "train data")
  devices = config.training.get("num_devices", 0) or jax.local_device_count()
  data_lib.check_divisible(config.training.batch_size, devices * jax.process_count())
  data_lib.check_divisible(config.eval.batch_size, jax.device_count(), "eval.batch_size")

  progs = programs(config)
  base_rng = jax.random.key(config.seed)
  init_rng, train_rng, eval_rng, sample_rng = jax.random.split(base_rng, 4)
  state = progs.init(init_rng)
  n_params = sum(x.size for x in jax.tree.leaves(state.params["network"]))
  logging.info("VDM: %d network parameters, %d local devices, global batch %d.",
               n_params, devices, config.training.batch_size)

  def test_bpd(state, step):
    del step
    return {"test_bpd": evaluate(config, progs.vdm, replicate(state.ema.params),
                                 progs.p_eval_step, eval_rng, source=test_source)}

  def batches(start_step):
    return data_lib.train_batches(
        source, global_batch=config.training.batch_size, start_step=start_step,
        seed=config.seed, process_index=jax.process_index(),
        process_count=jax.process_count(), local_devices=devices)

  run = training.train(
      progs.step, state, batches=batches, base_rng=train_rng,
      num_steps=config.training.num_train_steps, log_every=config.training.log_every,
      workdir=workdir, save_every=config.training.save_every,
      keep_checkpoints=config.training.keep_checkpoints, num_devices=devices,
      eval_fn=test_bpd if config.eval.every_steps else None,
      eval_every=config.eval.every_steps, name="vdm", postfix="bpd",
      steps_per_call=config.training.steps_per_call)
  result = {"step": run.step, **run.metrics}
  if run.preempted:
    result["preempted"] = True
    return result
  writer = training.metrics_log.MetricsWriter(workdir, active=jax.process_index() == 0)
  if config.eval.at_end:
    result["test_bpd"] = test_bpd(run.state, run.step)["test_bpd"]
    writer.write(run.step, {"test_bpd": result["test_bpd"]}, prefix="eval_")
  if config.sampling.at_end and jax.process_index() == 0:
    samples = generate_samples(config, progs.vdm, run.state.ema.params, sample_rng)
    result["samples_png"] = images_lib.save_grid(
        samples, os.path.join(workdir, f"samples_step{run.step}.png"),
        vocab_size=config.data.vocab_size)
    writer.write_image(run.step, "samples", images_lib.grid_image(
        samples, vocab_size=config.data.vocab_size))
  writer.close()
  return result


def run_eval(config, workdir: str) -> float:
  """Test bpd of the latest checkpoint's EMA parameters."""
  vdm, params, step = load_params(config, workdir)
  bpd = evaluate(config, vdm, replicate(params), programs(config).p_eval_step,
                 jax.random.split(jax.random.key(config.seed), 4)[2])
  writer = training.metrics_log.MetricsWriter(workdir, active=jax.process_index() == 0)
  writer.write(step, {"test_bpd": bpd}, prefix="eval_")
  writer.close()
  return bpd


def run_sample(config, workdir: str) -> str:
  """Writes a PNG grid of samples from the latest checkpoint; returns its path.

  Several processes: process 0 alone samples (on one device) and writes the
  grid; the others return the path it writes.
  """
  vdm, params, step = load_params(config, workdir)
  path = os.path.join(workdir, f"samples_step{step}.png")
  if jax.process_index() != 0:
    return path
  samples = generate_samples(config, vdm, params,
                             jax.random.split(jax.random.key(config.seed), 4)[3])
  return images_lib.save_grid(samples, path, vocab_size=config.data.vocab_size)
