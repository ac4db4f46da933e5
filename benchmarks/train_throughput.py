"""Train-step throughput of a VDM config on whatever devices are present.

  python -m benchmarks.train_throughput --config=configs/vdm_cifar10.py \\
      --steps=50 --out=results/throughput_cifar10.json
  python -m benchmarks.train_throughput --config=configs/vdm_cifar10.py \\
      --config.model.dtype=bfloat16
  python -m benchmarks.train_throughput --config=configs/vdm_cifar10.py \\
      --shape=issue --bare --rounds=7 --steps=3

Measures compile time, the steady-state step time (back-to-back steps, one
sync at the end, as in training), images/s, peak device memory and the XLA
FLOP count of one step; writes JSON and prints a table. Data are random
integers of the config's shape, so no dataset is needed.

``--xla_options=launcher`` (the default) compiles the engine step with the
XLA:CPU options that `launch.py` applies (`vdm_jax.xla_options`: XLA's own
kernels instead of YNNPACK fusions); ``default`` with XLA's defaults.

``--bare`` also times two more programs of the same network and batch, each
loss -> ``jax.value_and_grad`` -> ``optax.adamw(b2=0.99, weight_decay=0.01)``
-> a plain EMA, jitted with the state donated, nothing else (no clipping,
warm-up, variance-minimising gradient or metrics beyond the loss):
- *bare*: our loss (`vdm_jax.variance_minimization.vlb_loss`) and network,
  compiled with the engine step's options: what the engine's extras cost;
- *reference*: the formulation of the VDM reference code, our stand-in for it
  (it is not in this repository): its reconstruction term (`reference_vlb_loss`:
  autodiff through the log-softmax of all V decoder logits), its attention
  (`reference_attention`: q / sqrt(C), two einsums, autodiff through
  `jax.nn.softmax`) and XLA's default options, as the reference is run.
The three are timed in interleaved rounds (round r runs `--steps` back-to-back
calls of each, the order rotating), and the table reports the median over
rounds of the wall time and of the process CPU time per step, and the ratios.
The machine's load drifts; interleaving and medians keep the comparison fair.

``--shape=issue`` sets a small CIFAR-shaped model: 32x32x3 images, batch 16,
a 32-channel UNet with 4 blocks, no attention, dropout 0.1, learned linear
schedule, continuous time (the other fields from `--config`).

Reference point: the VDM reference implementation (Kingma et al., Variational
Diffusion Models, https://arxiv.org/abs/2107.00630, 2021) was measured to train
the CIFAR-10 model (batch 128) at ~770 images/s on one H100, 26.1 GiB peak.
"""

import json
import os
import statistics
import time

from absl import app
from absl import flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
flags.DEFINE_integer("steps", 20, "Timed steps (per round with --bare).")
flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds (--bare).")
flags.DEFINE_bool("bare", False, "Also time a bare step of the same network and "
                  "loss and one of the reference code's formulation (see docstring).")
flags.DEFINE_enum("xla_options", "launcher", ["launcher", "default"],
                  "XLA options of the engine step: launch.py's "
                  "(vdm_jax.xla_options) or XLA's defaults.")
flags.DEFINE_enum("shape", "config", ["config", "issue"],
                  "'issue': 32x32x3, batch 16, UNet 32 ch x 4 blocks (see docstring).")
flags.DEFINE_string("out", "results/train_throughput.json", "JSON output path.")
FLAGS = flags.FLAGS


def apply_shape(config, shape: str):
  """The config with the `--shape` preset applied (a copy when it changes)."""
  if shape == "config":
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.image_shape = (32, 32, 3)
    config.data.vocab_size = 256
    config.training.batch_size = 16
    config.model.ch = 32
    config.model.n_blocks = 4
    config.model.ch_mult = (1,)
    config.model.attn_in_blocks = False
    config.model.dropout = 0.1
    config.model.fourier_exponents = (7, 8)
    config.model.schedule = "learned_linear"
    config.model.num_steps = 0
    config.model.class_conditional = False
  return config


def reference_vlb_loss(vdm, params, rng, x_int, *, dtype):
  """`vdm_jax.variance_minimization.vlb_loss` with the reference decoder term.

  The same random draws, network and diffusion and prior terms; the
  reconstruction term is -log_softmax(decoder_logits)[x] over all V values,
  differentiated by autodiff through the `[B, ..., V]` logits, as in the VDM
  reference code (Kingma et al., 2021, App. A).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from vdm_jax import losses  # pylint: disable=g-import-not-at-top
  from vdm_jax import variance_minimization as vm  # pylint: disable=g-import-not-at-top
  f = losses.encode_discrete(x_int, vdm.vocab_size)
  draws = vm._draw(vdm, rng, f.shape)  # pylint: disable=protected-access
  sched_vals = vm._schedule_outputs(vdm, params["schedule"], draws.t)  # pylint: disable=protected-access
  diff = vm._per_example_diffusion(  # pylint: disable=protected-access
      vdm, params["network"], sched_vals, f, draws, train=True, label=None,
      dtype=dtype)
  gamma_fn = vdm.gamma_fn(params)
  g0 = gamma_fn(jnp.zeros((), jnp.float32))
  g1 = gamma_fn(jnp.ones((), jnp.float32))
  prior = losses.prior_kl(f, g1)
  z0_rescaled = f + jnp.exp(0.5 * g0) * draws.eps_0
  logp = jax.nn.log_softmax(losses.decoder_logits(z0_rescaled, g0, vdm.vocab_size))
  logp_x = jnp.take_along_axis(logp, x_int[..., None], -1)[..., 0]
  recon = -jnp.sum(logp_x, axis=tuple(range(1, x_int.ndim)))
  return vm._summarise(x_int, diff, prior, recon)  # pylint: disable=protected-access


def make_bare_step(config, vdm, decoder: str = "reference"):
  """``step(state, batch, rng) -> (state, loss)``: loss, grad, AdamW, EMA; jitted, donated.

  The step of the VDM reference code, built from our network and loss (the
  -VLB in bits/dim: `reference_vlb_loss` for ``decoder='reference'``,
  `vdm_jax.variance_minimization.vlb_loss` for 'ours'), with the config's
  learning rate, b1, b2, eps, weight decay and EMA rate.
  Returns (step, init) where ``init(params) -> state``.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  from vdm_jax import variance_minimization  # pylint: disable=g-import-not-at-top
  o = config.optimizer
  optimizer = optax.adamw(o.learning_rate, b1=o.b1, b2=o.b2, eps=o.eps,
                          weight_decay=o.weight_decay)
  rate = config.training.ema_rate
  dtype = train.compute_dtype(config)

  def init(params):
    return params, optimizer.init(params), jax.tree.map(lambda p: p.copy(), params)

  def step(state, batch, rng):
    params, opt_state, ema = state
    def loss_fn(p):
      if decoder == "reference":
        return reference_vlb_loss(vdm, p, rng, batch["image"], dtype=dtype)[0]
      return variance_minimization.vlb_loss(vdm, p, rng, batch["image"], train=True,
                                            dtype=dtype)[0]
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: rate * e + (1.0 - rate) * p, ema, params)
    return (params, opt_state, ema), loss

  return jax.jit(step, donate_argnums=(0,)), init


def _flops(compiled):
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0)) or None
  except Exception as e:  # cost analysis is best effort on some backends.
    print(f"(no FLOP count: {e})")
    return None


def reference_attention(q, k, v):
  """softmax(q k^T / sqrt(C)) v as the VDM reference code writes it (autodiff backward)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  logits = jnp.einsum("bqc,bkc->bqk", q / jnp.sqrt(jnp.float32(q.shape[-1])).astype(q.dtype), k)
  return jnp.einsum("bqk,bkc->bqc", jax.nn.softmax(logits, axis=-1), v)


def reference_vdm(vdm):
  """`vdm` whose network's attention blocks use `reference_attention` (same parameters)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  return dataclasses.replace(vdm, network=vdm.network.clone(attention_fn=reference_attention))


class _Steps:
  """A compiled step and the state it carries: `steps(n)` runs n steps and waits."""

  def __init__(self, step, state, batch, rng):
    self.step, self.state, self.batch, self.rng = step, state, batch, rng
    self.out = None  # the last step's second output (metrics or loss).

  def __call__(self, n: int) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    for _ in range(n):
      self.state, self.out = self.step(self.state, self.batch, self.rng)
    jax.block_until_ready(self.out)


def main(_):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  from vdm_jax import xla_options  # pylint: disable=g-import-not-at-top
  config = apply_shape(FLAGS.config, FLAGS.shape)
  devices = jax.local_device_count()
  vdm = train.build_vdm(config)
  optimizer = train.build_optimizer(config)
  state = train.create_train_state(config, vdm, optimizer, jax.random.key(0))
  n_params = sum(x.size for x in jax.tree.leaves(state.params["network"]))
  batch_size = config.training.batch_size
  rng = np.random.default_rng(0)
  images = rng.integers(0, config.data.vocab_size,
                        (batch_size, *config.data.image_shape), dtype=np.int32)
  batch = {
      "image": images.reshape(devices, batch_size // devices, *images.shape[1:]),
      "label": np.zeros((devices, batch_size // devices), np.int32)}
  step_fn = train.make_train_step(vdm=vdm, optimizer=optimizer, config=config,
                                  axis_name=train.AXIS)
  p_step = jax.pmap(step_fn, axis_name=train.AXIS, in_axes=(0, 0, None),
                    donate_argnums=(0,))
  params0 = state.params
  state = train.replicate(state)
  batch = jax.device_put(batch)
  base_rng = jax.random.key(1)

  # One compilation, timed, whose executable also gives the FLOP count.
  compiler_options = (xla_options.cpu_compiler_options()
                      if FLAGS.xla_options == "launcher" and jax.default_backend() == "cpu"
                      else None)
  t0 = time.perf_counter()
  compiled = p_step.lower(state, batch, base_rng).compile(compiler_options)
  compile_s = time.perf_counter() - t0
  flops = _flops(compiled)
  runners = {"ours": _Steps(compiled, state, batch, base_rng)}
  runners["ours"](FLAGS.warmup)

  extra = {}
  if FLAGS.bare:
    bare_images = jax.device_put(images)
    for name, net, decoder, options in (
        ("bare", vdm, "ours", compiler_options),
        ("reference", reference_vdm(vdm), "reference", None)):
      step_b, init_b = make_bare_step(config, net, decoder)
      state_b = init_b(params0)
      t0 = time.perf_counter()
      compiled_b = step_b.lower(state_b, {"image": bare_images}, base_rng).compile(options)
      extra[name] = {"compile_s": time.perf_counter() - t0, "flops": _flops(compiled_b)}
      runners[name] = _Steps(compiled_b, state_b, {"image": bare_images}, base_rng)
      runners[name](FLAGS.warmup)

  rounds = FLAGS.rounds if FLAGS.bare else 1
  wall = {k: [] for k in runners}
  cpu = {k: [] for k in runners}
  for r in range(rounds):
    names = list(runners)[r % len(runners):] + list(runners)[:r % len(runners)]
    for name in names:
      w0, c0 = time.perf_counter(), time.process_time()
      runners[name](FLAGS.steps)
      wall[name].append((time.perf_counter() - w0) / FLAGS.steps)
      cpu[name].append((time.process_time() - c0) / FLAGS.steps)
  step_s = statistics.median(wall["ours"])

  peak = None
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    peak = stats["peak_bytes_in_use"] / 2 ** 30
  result = {
      "config": os.path.basename(FLAGS["config"].config_filename),
      "shape": FLAGS.shape,
      "xla_options": FLAGS.xla_options,
      "device": f"{devices} x {jax.local_devices()[0].device_kind}",
      "dtype": config.model.dtype,
      "batch_size": batch_size,
      "network_params_M": n_params / 1e6,
      "compile_s": compile_s,
      "step_ms": step_s * 1e3,
      "step_cpu_ms": statistics.median(cpu["ours"]) * 1e3,
      "images_per_s": batch_size / step_s,
      "peak_memory_GiB": peak,
      "tflop_per_step": flops / 1e12 if flops else None,
      "achieved_tflops": flops / step_s / 1e12 if flops else None,
      "final_bpd": float(runners["ours"].out["bpd"][0]),
  }
  if FLAGS.bare:
    result.update({"rounds": rounds, "steps_per_round": FLAGS.steps})
    for name, info in extra.items():
      other_s = statistics.median(wall[name])
      result.update({
          f"{name}_compile_s": info["compile_s"],
          f"{name}_step_ms": other_s * 1e3,
          f"{name}_step_cpu_ms": statistics.median(cpu[name]) * 1e3,
          f"{name}_tflop_per_step": info["flops"] / 1e12 if info["flops"] else None,
          f"speedup_vs_{name}": other_s / step_s,
      })
    for name in runners:
      result[f"{name}_step_ms_rounds"] = [w * 1e3 for w in wall[name]]
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, "w") as f:
    json.dump(result, f, indent=2)
  width = max(map(len, result))
  for k, v in result.items():
    if isinstance(v, list):
      v = "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
