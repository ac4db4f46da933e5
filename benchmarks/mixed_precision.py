r"""bfloat16 mixed precision vs float32: test bits/dim of the digits VDM at equal steps.

  python -m benchmarks.mixed_precision                      # 3,000 steps each
  python -m benchmarks.mixed_precision --steps=1000 --out=results/mixed_precision.json

Trains `configs/vdm_digits.py` (the README's default job) twice through the
launcher's code path (`vdm_jax.train.train_and_evaluate`, fresh workdirs, same
seed, same data order), once with ``model.dtype=float32`` and once with
``model.dtype=bfloat16``, and reports for each the test bits/dim of the EMA
parameters on the whole test split (the VLB of Kingma et al., Variational
Diffusion Models, arXiv:2107.00630, eq. 11-17, averaged over
``eval.num_t_draws`` draws of (t, eps)), the train step time (median over the
logged windows after the first, which holds the compilation), the total wall time, and the bfloat16 - float32 difference in test bits/dim.

In the bfloat16 run only the UNet's activations and matmuls/convolutions are
bfloat16; the parameters, optimiser state, noise schedule gamma(t) and the
loss/VLB stay float32 (see README, "What runs in which precision"). The
difference contains the run-to-run spread of training (the two runs see the
same batches and (t, eps) draws, but rounding makes the trajectories diverge),
so a single pair is a check, not a precise estimate.

Writes JSON to --out and prints a table. Sampling at the end is skipped.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags

_STEPS = flags.DEFINE_integer(
    "steps", 0, "Train steps per run; 0 = the config's (3,000).")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"],
                            "model.dtype of each run; the first is the baseline.")
_OUT = flags.DEFINE_string("out", "results/mixed_precision.json", "JSON output path.")
_WORKDIR = flags.DEFINE_string(
    "workdir", "", "Parent of the runs' workdirs ('' = a temporary directory). "
    "Each run needs a fresh workdir: an existing checkpoint would be resumed.")


def median_step_ms(workdir: str):
  """Median ms/step over the logged windows after the first (which holds the compile)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    rates = [r["steps_per_sec"] for r in map(json.loads, f) if "steps_per_sec" in r]
  return float(1e3 / np.median(rates[1:])) if len(rates) > 1 else None


def run_one(dtype: str, steps: int, workdir: str) -> dict:
  """Trains the digits config in `dtype` for `steps` (0 = config's), returns the row."""
  import jax  # pylint: disable=g-import-not-at-top
  from configs import vdm_digits  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  config = vdm_digits.get_config()
  config.model.dtype = dtype
  if steps:
    config.training.num_train_steps = steps
  config.sampling.at_end = False
  t0 = time.perf_counter()
  result = train.train_and_evaluate(config, workdir)
  wall = time.perf_counter() - t0
  sps = result.get("steps_per_sec")
  median_ms = median_step_ms(workdir)
  return {
      "dtype": dtype,
      "steps": int(result["step"]),
      "test_bpd": float(result["test_bpd"]),
      "final_train_bpd": float(result["bpd"]) if "bpd" in result else None,
      "steps_per_s": float(sps) if sps else None,
      "step_ms_last_window": 1e3 / float(sps) if sps else None,
      "step_ms": median_ms,
      "wall_s": wall,
      "device": f"{jax.local_device_count()} x {jax.local_devices()[0].device_kind}",
  }


def main(_):
  parent = _WORKDIR.value or tempfile.mkdtemp(prefix="vdm_mixed_precision_")
  rows = []
  for dtype in _DTYPES.value:
    workdir = os.path.join(parent, dtype)
    if os.path.exists(workdir) and os.listdir(workdir):
      raise ValueError(f"{workdir} is not empty; a run would resume from it.")
    rows.append(run_one(dtype, _STEPS.value, workdir))
    print(f"{dtype}: {rows[-1]}", flush=True)
  base = rows[0]
  for r in rows:
    r["test_bpd_minus_baseline"] = r["test_bpd"] - base["test_bpd"]
  result = {"config": "vdm_digits.py", "baseline": base["dtype"], "rows": rows}
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(result, f, indent=2)

  cols = ["dtype", "steps", "test_bpd", "test_bpd_minus_baseline", "step_ms", "wall_s"]
  print("| " + " | ".join(cols) + " |")
  print("|" + "---|" * len(cols))
  for r in rows:
    print("| " + " | ".join(
        f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  # Trained as launch.py trains it, with the same XLA:CPU options.
  from vdm_jax import xla_options  # pylint: disable=g-import-not-at-top
  xla_options.apply_to_environment()
  app.run(main)
