"""benchmarks/gpu_check.sh in its shrunk form (tiny model, batch 4, CPU, no install)."""

import json
import os
import subprocess
import sys

import pytest

from tests.xla_flags import COMPILE_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_check_tiny_runs_both_dtypes_and_writes_json(tmp_path):
  out = tmp_path / "gpu_check.json"
  env = dict(os.environ, PYTHON=sys.executable, VDM_GPU_CHECK_TINY="1",
             JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)  # the cache: tests/conftest.py
  # One CPU device, as on the GPU machine's one GPU; the suite's compile flags
  # (tests/xla_flags.py): the check's compile is most of its time.
  env["XLA_FLAGS"] = COMPILE_FLAGS
  proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"),
                         f"--out={out}"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "images_per_s" in proc.stdout and "reference (H100)" in proc.stdout
  result = json.loads(out.read_text())
  assert "tiny" in result["config"]
  rows = {r["dtype"]: r for r in result["rows"]}
  assert set(rows) == {"float32", "bfloat16"}
  for r in rows.values():
    assert r["batch_size"] == 4 and r["images_per_s"] > 0
    assert r["vs_reference_images_per_s"] == pytest.approx(r["images_per_s"] / 770.0)
    assert r["loss_bpd"] > 0
    if r["tflop_per_step"] is not None:  # XLA's CPU cost analysis counts FLOPs too.
      assert r["achieved_tflops"] > 0
