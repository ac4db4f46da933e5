r"""GPU check: train throughput of the CIFAR-10 VDM in float32 and bfloat16 vs the reference.

  bash benchmarks/gpu_check.sh                  # installs the project, then runs this
  python -m benchmarks.gpu_check                # project already installed
  python -m benchmarks.gpu_check --tiny         # shrunk: tiny UNet, batch 4, CPU ok

Builds the train step of `configs/vdm_cifar10.py` (the VDM paper's CIFAR-10
model, Kingma et al., Variational Diffusion Models, arXiv:2107.00630, App. B:
32 ResNet blocks of 128 channels at 32x32, 30.6M parameters) exactly as the
trainer does (`vdm_jax.train.train_step`: variance-minimised VLB gradient,
AdamW, EMA), jitted on one device, for each `model.dtype` in --dtypes at
--batch (128, the paper's and the reference's batch). Per dtype it measures:

* compile_s: lowering + XLA compilation of the step (both dtypes are compiled
  concurrently in threads from abstract shapes, so each figure is the wall time
  of its compilation while the other one ran too);
* step_ms, images_per_s: steady state after --warmup untimed steps, --steps
  back-to-back steps with one device sync at the end (as in training);
* tflop_per_step, achieved_tflops: the FLOP count of XLA's cost analysis of
  the compiled step (`compiled.cost_analysis()['flops']`) and that count
  divided by the step time;
* peak_memory_GiB: the device's `memory_stats()['peak_bytes_in_use']` after
  the dtype's timed steps. It is a process-wide maximum, so the dtypes run in
  the order bfloat16, float32 (float32 needs more) and each state is freed
  before the next is built; `executable_GiB` is XLA's own static estimate for
  the executable (arguments + outputs + temporaries - aliased);
* vs_reference_images_per_s: images/s divided by the google-research/vdm
  reference's 770 images/s (same model, batch 128, one H100, which measured
  119 TFLOP/s and 26.1 GiB peak; those are printed alongside).

Data are random integers of the config's shape (no dataset needed). Writes
JSON to --out and prints a table. --tiny (or VDM_GPU_CHECK_TINY=1) shrinks
the model to 8 channels and 1 block, the images to 8x8x3, the batch to 4 and
the steps to 2, so that the same code path runs on a CPU (the test does that).
"""

import concurrent.futures
import gc
import json
import os
import time

from absl import app
from absl import flags

_TINY = flags.DEFINE_bool(
    "tiny", os.environ.get("VDM_GPU_CHECK_TINY", "0") == "1",
    "Shrunk form: tiny UNet, batch 4, 2 timed steps (CPU ok). Default from "
    "VDM_GPU_CHECK_TINY=1.")
_DTYPES = flags.DEFINE_list("dtypes", ["bfloat16", "float32"],
                            "model.dtype values, measured in this order.")
_BATCH = flags.DEFINE_integer("batch", 0, "Global batch; 0 = 128 (4 with --tiny).")
_STEPS = flags.DEFINE_integer("steps", 0, "Timed steps; 0 = 10 (2 with --tiny).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_OUT = flags.DEFINE_string("out", "results/gpu_check.json", "JSON output path.")

# google-research/vdm, CIFAR-10 config, batch 128, one H100.
REFERENCE = {"images_per_s": 770.0, "tflops": 119.0, "peak_memory_GiB": 26.1}


def make_config(dtype: str, *, tiny: bool, batch: int):
  from configs import vdm_cifar10  # pylint: disable=g-import-not-at-top
  config = vdm_cifar10.get_config()
  config.model.dtype = dtype
  config.training.batch_size = batch
  if tiny:
    config.model.ch = 8
    config.model.n_blocks = 1
    config.data.image_shape = (8, 8, 3)
    config.model.dropout = 0.0  # its random bits: ~15% of the tiny compile on CPU.
  return config


def compile_step(config):
  """(vdm, optimizer, compiled step, compile seconds, FLOPs, executable GiB)."""
  import jax  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  vdm = train.build_vdm(config)
  optimizer = train.build_optimizer(config)

  def step(state, batch, rng):
    return train.train_step(state, batch, rng, vdm=vdm, optimizer=optimizer,
                            config=config)

  t0 = time.perf_counter()
  state = jax.eval_shape(
      lambda k: train.create_train_state(config, vdm, optimizer, k), jax.random.key(0))
  compiled = jax.jit(step, donate_argnums=(0,)).lower(
      state, _batch_shapes(config), jax.eval_shape(lambda: jax.random.key(1))).compile()
  compile_s = time.perf_counter() - t0
  flops = exe_gib = None
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) or None
  except Exception as e:  # pylint: disable=broad-except  (best effort on some backends)
    print(f"(no FLOP count: {e})")
  try:
    m = compiled.memory_analysis()
    exe_gib = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes) / 2 ** 30
  except Exception:  # pylint: disable=broad-except
    pass
  return vdm, optimizer, compiled, compile_s, flops, exe_gib


def _batch_shapes(config):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  b = config.training.batch_size
  return {"image": jax.ShapeDtypeStruct((b, *config.data.image_shape), jnp.int32),
          "label": jax.ShapeDtypeStruct((b,), jnp.int32)}


def time_step(config, vdm, optimizer, compiled, *, steps: int, warmup: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  b = config.training.batch_size
  rng = np.random.default_rng(0)
  batch = jax.device_put({
      "image": rng.integers(0, config.data.vocab_size, (b, *config.data.image_shape),
                            dtype=np.int32),
      "label": np.zeros((b,), np.int32)})
  state = train.create_train_state(config, vdm, optimizer, jax.random.key(0))
  n_params = sum(x.size for x in jax.tree.leaves(state.params["network"]))
  key = jax.random.key(1)
  for _ in range(warmup):
    state, metrics = compiled(state, batch, key)
  jax.block_until_ready((state, metrics))
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch, key)
  jax.block_until_ready((state, metrics))
  step_s = (time.perf_counter() - t0) / steps
  loss = float(metrics["loss"])
  stats = jax.local_devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  del state, metrics
  gc.collect()
  return {"network_params_M": n_params / 1e6, "step_s": step_s, "loss_bpd": loss,
          "peak_memory_GiB": peak / 2 ** 30 if peak is not None else None}


def main(_):
  t_start = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top
  tiny = _TINY.value
  batch = _BATCH.value or (4 if tiny else 128)
  steps = _STEPS.value or (2 if tiny else 10)
  warmup = min(_WARMUP.value, 1) if tiny else _WARMUP.value
  device = jax.local_devices()[0]
  print("== jax", jax.__version__, jax.devices(), flush=True)
  configs = {d: make_config(d, tiny=tiny, batch=batch) for d in _DTYPES.value}
  with concurrent.futures.ThreadPoolExecutor(len(configs)) as pool:
    futures = {d: pool.submit(compile_step, c) for d, c in configs.items()}
    built = {d: f.result() for d, f in futures.items()}

  rows = []
  for dtype, config in configs.items():
    vdm, optimizer, compiled, compile_s, flops, exe_gib = built.pop(dtype)
    r = time_step(config, vdm, optimizer, compiled, steps=steps, warmup=warmup)
    del compiled
    step_s = r.pop("step_s")
    rows.append({
        "dtype": dtype,
        "batch_size": batch,
        "network_params_M": r["network_params_M"],
        "compile_s": compile_s,
        "step_ms": step_s * 1e3,
        "images_per_s": batch / step_s,
        "tflop_per_step": flops / 1e12 if flops else None,
        "achieved_tflops": flops / step_s / 1e12 if flops else None,
        "peak_memory_GiB": r["peak_memory_GiB"],
        "executable_GiB": exe_gib,
        "vs_reference_images_per_s": batch / step_s / REFERENCE["images_per_s"],
        "loss_bpd": r["loss_bpd"],
    })
  result = {
      "config": "vdm_cifar10.py" + (" (tiny: ch=8, n_blocks=1, 8x8x3, no dropout)" if tiny else ""),
      "device": f"{device.platform}: {device.device_kind}",
      "jax": jax.__version__,
      "timed_steps": steps, "warmup_steps": warmup,
      "reference_h100_batch128": REFERENCE,
      "rows": rows,
      "total_s": time.perf_counter() - t_start,
  }
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(result, f, indent=2)

  print(f"device {result['device']}, jax {result['jax']}, {result['config']}, "
        f"batch {batch}, {steps} timed steps")
  cols = ["dtype", "images_per_s", "vs_reference_images_per_s", "achieved_tflops",
          "peak_memory_GiB", "executable_GiB", "step_ms", "compile_s", "loss_bpd"]
  print("| " + " | ".join(cols) + " |")
  print("|" + "---|" * len(cols))
  for r in rows:
    print("| " + " | ".join(
        f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
  print(f"| reference (H100) | {REFERENCE['images_per_s']:g} | 1 | {REFERENCE['tflops']:g} "
        f"| {REFERENCE['peak_memory_GiB']:g} | | | | |")
  print(f"total {result['total_s']:.1f} s; wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
