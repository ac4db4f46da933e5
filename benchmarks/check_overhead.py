"""Cost of the library's input checks in a VDM training step.

  python -m benchmarks.check_overhead --config=configs/vdm_digits.py \\
      --out=results/check_overhead.json

Times one jitted step -- `variance_minimization.vlb_loss_and_grads` plus an
Adam update, the work of a training step -- in four builds, interleaved over
`--reps` rounds of `--steps` back-to-back steps (one sync per round, as in
training), and reports the median step time of each:

* ``unchecked``: the value checks compiled out (`_checks.check_values`
  replaced by a constant True, so `poison` is the identity): the baseline;
* ``jit``: the library as shipped under plain `jit` (failed checks give NaN);
* ``checkify``: the step wrapped by `vdm_jax.checkified` (checkify with the
  library's checks), its error fetched once per round (as an engine would at
  each log step);
* ``checkify_sync``: the same with `err.throw()` after every step;

plus the host-side range check of one batch (`losses.check_discrete_range`)
per step. Overheads are relative to ``unchecked`` (median and fastest round,
and XLA's flop count of each compiled step, which shared machines cannot
perturb); the design target is < 2%.
Data are random integers of the config's shape, so no dataset is needed.
"""

import functools
import json
import os
import time

from absl import app
from absl import flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
flags.DEFINE_integer("steps", 3, "Steps per timed round.")
flags.DEFINE_integer("reps", 40, "Timed rounds per build (interleaved).")
flags.DEFINE_string("out", "results/check_overhead.json", "JSON output path.")
FLAGS = flags.FLAGS


def main(_):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from vdm_jax import _checks  # pylint: disable=g-import-not-at-top
  from vdm_jax import losses  # pylint: disable=g-import-not-at-top
  from vdm_jax import variance_minimization  # pylint: disable=g-import-not-at-top

  config = FLAGS.config
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  vdm = train.build_vdm(config)
  batch_size = config.training.batch_size
  x = np.random.default_rng(0).integers(
      0, config.data.vocab_size, (batch_size, *config.data.image_shape), dtype=np.int32)
  params = vdm.init(jax.random.key(0), jnp.asarray(x))
  optimizer = optax.adam(config.optimizer.learning_rate)
  opt_state = optimizer.init(params)

  def step(params, opt_state, x, rng):
    loss, _, grads = variance_minimization.vlb_loss_and_grads(
        vdm, params, rng, x, train=True,
        variance_minimization=config.training.variance_minimization)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  # A fresh wrapper per build: jit caches traces per function object.
  def compile_step(fn):
    wrapped = lambda *args: fn(*args)  # noqa: E731
    return jax.jit(wrapped).lower(params, opt_state, x, jax.random.key(0)).compile()

  real_check_values = _checks.check_values
  _checks.check_values = lambda ok, message, **values: jnp.asarray(True)
  compiled = {"unchecked": compile_step(step)}
  _checks.check_values = real_check_values
  compiled["jit"] = compile_step(step)
  compiled["checkify"] = compile_step(_checks.checkified(step))
  compiled["checkify_sync"] = compiled["checkify"]

  # The builds differ as intended: a pixel of -1 (which wraps around to the
  # top bin) is a plausible loss unchecked, NaN under plain jit, and an error
  # under checkify.
  bad = x.copy()
  bad[0, 0, 0, 0] = -1
  key = jax.random.key(0)
  sanity = {
      "unchecked_loss_finite": bool(np.isfinite(compiled["unchecked"](params, opt_state, bad, key)[2])),
      "jit_loss_nan": bool(np.isnan(compiled["jit"](params, opt_state, bad, key)[2])),
      "checkify_error": compiled["checkify"](params, opt_state, bad, key)[0].get(),
  }
  assert sanity["jit_loss_nan"] and sanity["checkify_error"], sanity

  def run_round(name, n):
    p, o = params, opt_state
    errs = []
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
      out = compiled[name](p, o, x, jax.random.key(i))
      if name.startswith("checkify"):
        err, (p, o, loss) = out
        if name == "checkify_sync":
          err.throw()
        else:
          errs.append(err)
      else:
        p, o, loss = out
    jax.block_until_ready(loss)
    for err in errs:
      err.throw()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n

  for name in compiled:  # warm-up round, untimed
    run_round(name, 2)
  # Short rounds in a fresh random order each time, so that load from other
  # processes hits every build alike; overheads are medians of per-round
  # ratios. CPU time of this process (all XLA threads) is recorded too: on a
  # shared machine it is far less perturbed by other processes than wall time.
  times = {name: [] for name in compiled}
  cpu_times = {name: [] for name in compiled}
  order_rng = np.random.default_rng(1)
  for _ in range(FLAGS.reps):
    for name in order_rng.permutation(list(compiled)):
      wall, cpu = run_round(name, FLAGS.steps)
      times[name].append(wall)
      cpu_times[name].append(cpu)
  # The checks' own work in isolation, as the step does it: three range checks
  # of the batch (encode_discrete is called three times), the sign of gamma'
  # or of gamma_t - gamma_s per example, gamma(0) < gamma(1), and the `where`
  # on each checked [B] output.
  def check_ops(x, dgamma, g01, outs):
    oks = [_checks.int_range_ok(x, config.data.vocab_size, "x_int") for _ in range(3)]
    oks.append(_checks.check_values(jnp.all(dgamma >= 0), "{lo}", lo=jnp.min(dgamma)))
    oks.append(_checks.check_values(g01[0] < g01[1], "{a}", a=g01[0]))
    ok = functools.reduce(jnp.logical_and, oks)
    return _checks.poison(ok, *outs)

  ops = jax.jit(check_ops)
  vec = jnp.ones((batch_size,), jnp.float32)
  op_args = (jnp.asarray(x), vec, jnp.array([-10.0, 5.0]), (vec, vec, vec))
  jax.block_until_ready(ops(*op_args))
  op_times = []
  for _ in range(20):
    t0 = time.perf_counter()
    for _ in range(50):
      out = ops(*op_args)
    jax.block_until_ready(out)
    op_times.append((time.perf_counter() - t0) / 50)
  op_time = float(np.min(op_times))  # includes a dispatch the fused step does not pay

  host = []
  for i in range(200):
    t0 = time.perf_counter()
    losses.check_discrete_range(x, config.data.vocab_size, step=i)
    host.append(time.perf_counter() - t0)

  median = {name: float(np.median(v)) for name, v in times.items()}
  fastest = {name: float(np.min(v)) for name, v in times.items()}
  def paired_overhead(rounds):
    base_rounds = np.asarray(rounds["unchecked"])
    out = {}
    for name in compiled:
      if name != "unchecked":
        ratios = 100.0 * (np.asarray(rounds[name]) / base_rounds - 1.0)
        out[name] = {"median": float(np.median(ratios)),
                     "q25": float(np.percentile(ratios, 25)),
                     "q75": float(np.percentile(ratios, 75))}
    return out

  paired = paired_overhead(times)
  paired_cpu = paired_overhead(cpu_times)
  base = median["unchecked"]
  # XLA's own count of the compiled work: deterministic, unlike shared-CPU timings.
  cost = {}
  for name in ("unchecked", "jit", "checkify"):
    analysis = compiled[name].cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    cost[name] = {k: float(analysis.get(k, float("nan")))
                  for k in ("flops", "bytes accessed")}
  result = {
      "device": str(jax.devices()[0].device_kind),
      "num_devices": jax.local_device_count(),
      "batch_shape": list(x.shape),
      "steps_per_round": FLAGS.steps,
      "rounds": FLAGS.reps,
      "step_ms_median": {k: 1e3 * v for k, v in median.items()},
      "step_ms_min": {k: 1e3 * v for k, v in fastest.items()},
      "step_ms_all_rounds": {k: [1e3 * t for t in v] for k, v in times.items()},
      "overhead_pct": {k: 100.0 * (v / base - 1.0) for k, v in median.items()
                       if k != "unchecked"},
      "paired_overhead_pct": paired,
      "cpu_ms_median": {k: 1e3 * float(np.median(v)) for k, v in cpu_times.items()},
      "paired_cpu_overhead_pct": paired_cpu,
      "overhead_pct_of_min": {k: 100.0 * (v / fastest["unchecked"] - 1.0)
                              for k, v in fastest.items() if k != "unchecked"},
      "xla_cost": cost,
      "xla_flops_overhead_pct": {
          k: 100.0 * (cost[k]["flops"] / cost["unchecked"]["flops"] - 1.0)
          for k in ("jit", "checkify")},
      "check_ops_alone_ms": 1e3 * op_time,
      "check_ops_alone_pct": 100.0 * op_time / fastest["unchecked"],
      "host_batch_check_ms_median": 1e3 * float(np.median(host)),
      "host_batch_check_pct": 100.0 * float(np.median(host)) / base,
      "sanity": {k: (v if isinstance(v, bool) else str(v)) for k, v in sanity.items()},
  }
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, "w") as f:
    json.dump(result, f, indent=2)
  print(f"{'build':<16}{'median ms':>10}{'overhead':>10}{'min ms':>10}{'overhead':>10}")
  for name, v in median.items():
    pct = "" if name == "unchecked" else f"{result['overhead_pct'][name]:+.2f}%"
    pct_min = "" if name == "unchecked" else f"{result['overhead_pct_of_min'][name]:+.2f}%"
    print(f"{name:<16}{1e3 * v:>10.2f}{pct:>10}{1e3 * fastest[name]:>10.2f}{pct_min:>10}")
  print("paired per-round overhead, median [q25, q75]: " + ", ".join(
      f"{k} {v['median']:+.2f}% [{v['q25']:+.2f}, {v['q75']:+.2f}]"
      for k, v in paired.items()))
  print("paired per-round CPU-time overhead, median [q25, q75]: " + ", ".join(
      f"{k} {v['median']:+.2f}% [{v['q25']:+.2f}, {v['q75']:+.2f}]"
      for k, v in paired_cpu.items()))
  print("XLA flops overhead: " + ", ".join(
      f"{k} {v:+.3f}%" for k, v in result["xla_flops_overhead_pct"].items()))
  print(f"the checks' ops alone, jitted: {1e3 * op_time:.4f} ms "
        f"({result['check_ops_alone_pct']:.3f}% of the fastest unchecked step)")
  print(f"host batch check: {result['host_batch_check_ms_median']:.4f} ms "
        f"({result['host_batch_check_pct']:.3f}% of a step)")
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
