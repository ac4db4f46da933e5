"""Train-step throughput of a VDM config on whatever devices are present.

  python -m benchmarks.train_throughput --config=configs/vdm_cifar10.py \\
      --steps=50 --out=results/throughput_cifar10.json
  python -m benchmarks.train_throughput --config=configs/vdm_cifar10.py \\
      --config.model.dtype=bfloat16

Measures compile time, the steady-state step time (back-to-back steps, one
sync at the end, as in training), images/s, peak device memory and the XLA
FLOP count of one step; writes JSON and prints a table. Data are random
integers of the config's shape, so no dataset is needed.
Reference point: the VDM reference implementation (Kingma et al., Variational
Diffusion Models, https://arxiv.org/abs/2107.00630, 2021) was measured to train
the CIFAR-10 model (batch 128) at ~770 images/s on one H100, 26.1 GiB peak.
"""

import functools
import json
import os
import time

from absl import app
from absl import flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
flags.DEFINE_integer("steps", 20, "Timed steps.")
flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
flags.DEFINE_string("out", "results/train_throughput.json", "JSON output path.")
FLAGS = flags.FLAGS


def main(_):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  config = FLAGS.config
  devices = jax.local_device_count()
  vdm = train.build_vdm(config)
  optimizer = train.build_optimizer(config)
  state = train.create_train_state(config, vdm, optimizer, jax.random.key(0))
  n_params = sum(x.size for x in jax.tree.leaves(state.params["network"]))
  batch_size = config.training.batch_size
  rng = np.random.default_rng(0)
  batch = {
      "image": rng.integers(0, config.data.vocab_size,
                            (devices, batch_size // devices, *config.data.image_shape),
                            dtype=np.int32),
      "label": np.zeros((devices, batch_size // devices), np.int32)}
  step_fn = functools.partial(train.train_step, vdm=vdm, optimizer=optimizer,
                              config=config, axis_name=train.AXIS)
  p_step = jax.pmap(step_fn, axis_name=train.AXIS, in_axes=(0, 0, None),
                    donate_argnums=(0,))
  state = train.replicate(state)
  batch = jax.device_put(batch)
  base_rng = jax.random.key(1)

  # One compilation, timed, whose executable also gives the FLOP count.
  t0 = time.perf_counter()
  compiled = p_step.lower(state, batch, base_rng).compile()
  compile_s = time.perf_counter() - t0
  flops = None
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) or None
  except Exception as e:  # cost analysis is best effort on some backends.
    print(f"(no FLOP count: {e})")
  p_step = compiled
  for _ in range(FLAGS.warmup):
    state, metrics = p_step(state, batch, base_rng)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(FLAGS.steps):
    state, metrics = p_step(state, batch, base_rng)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - t0) / FLAGS.steps

  peak = None
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    peak = stats["peak_bytes_in_use"] / 2 ** 30
  result = {
      "config": os.path.basename(FLAGS["config"].config_filename),
      "device": f"{devices} x {jax.local_devices()[0].device_kind}",
      "dtype": config.model.dtype,
      "batch_size": batch_size,
      "network_params_M": n_params / 1e6,
      "compile_s": compile_s,
      "step_ms": step_s * 1e3,
      "images_per_s": batch_size / step_s,
      "peak_memory_GiB": peak,
      "tflop_per_step": flops / 1e12 if flops else None,
      "achieved_tflops": flops / step_s / 1e12 if flops else None,
      "final_bpd": float(metrics["bpd"][0]),
  }
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, "w") as f:
    json.dump(result, f, indent=2)
  width = max(map(len, result))
  for k, v in result.items():
    print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
