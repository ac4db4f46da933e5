#!/usr/bin/env bash
# GPU check: install this project, then measure the CIFAR-10 VDM train step in
# float32 and bfloat16 at batch 128 (images/s, TFLOP/s from XLA's cost analysis,
# peak device memory, ratio to the reference's 770 images/s on an H100).
# What is measured: see benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh                      # on the GPU machine
#   bash benchmarks/gpu_check.sh --out=/tmp/gpu.json  # extra flags go to gpu_check.py
#   VDM_GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh # shrunk: tiny model, CPU, no install
#
# Expects Python with a CUDA jax/jaxlib already installed. `pip install -e .`
# fetches the rest (flax, optax, ml_collections, tensorflow-datasets,
# constriction, ...) from the package registry only, under a constraints file
# that pins the installed jax, jaxlib and CUDA plugins so pip cannot swap them
# for other (CPU-only) builds. Environment:
#   PYTHON                         interpreter (default: python3)
#   VDM_GPU_CHECK_TINY=1           shrunk form; implies no install and JAX_PLATFORMS=cpu
#   VDM_GPU_CHECK_SKIP_INSTALL=1   skip the install (project already installed)
#   VDM_GPU_CHECK_TIMEOUT          seconds allowed for the measurement (default 270)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TINY="${VDM_GPU_CHECK_TINY:-0}"
for arg in "$@"; do [[ "$arg" == "--tiny" ]] && TINY=1; done
SKIP_INSTALL="${VDM_GPU_CHECK_SKIP_INSTALL:-$TINY}"
start=$(date +%s)

if [[ "$SKIP_INSTALL" != 1 ]]; then
  constraints="$(mktemp)"
  "$PY" - > "$constraints" <<'PYEOF'
from importlib import metadata
names = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt",
         "jax-cuda13-plugin", "jax-cuda13-pjrt")
for name in names:
  try:
    print(f"{name}=={metadata.version(name)}")
  except metadata.PackageNotFoundError:
    pass
PYEOF
  echo "== pinned: $(tr '\n' ' ' < "$constraints")"
  "$PY" -m pip install --quiet --disable-pip-version-check -c "$constraints" -e .
  rm -f "$constraints"
  echo "== installed in $(( $(date +%s) - start )) s"
fi

export VDM_GPU_CHECK_TINY="$TINY"
if [[ "$TINY" == 1 ]]; then export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"; fi
timeout "${VDM_GPU_CHECK_TIMEOUT:-270}" "$PY" -m benchmarks.gpu_check "$@"
echo "== gpu_check.sh total $(( $(date +%s) - start )) s"
