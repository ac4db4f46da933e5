"""XLA:CPU settings the project's entry points use by default, in one place.

jaxlib 0.10 lowers most convolutions, matrix products and reductions on CPU
to YNNPACK fusions. For the VDM UNet's training step those are slower than
XLA's own (Eigen) kernels: the weight gradients of the 3x3 convolutions most
of all (~2x per convolution at `[16, 32, 32, 32]`). Switching the YNNPACK
fusions off made the digits config's step 1.6-1.7x faster in float32 and
~1.5x in bfloat16, and the 32x32 CIFAR-shaped step ~1.5x (2-core CPU,
`benchmarks/train_throughput.py`; numbers in the README). The setting only
concerns XLA:CPU; GPU and TPU compilation ignore it.

`launch.py` and `benchmarks/mixed_precision.py` call `apply_to_environment()`
before their first computation, so every program they compile gets it;
`benchmarks/train_throughput.py` passes `cpu_compiler_options()` to the
programs it times as ours and compiles its reference stand-in without them. A
library user opts in either way.
A flag an unknown jaxlib does not have makes XLA abort, so the settings are
only applied on the jaxlib versions they were measured on (`MEASURED_ON`).
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import MutableMapping

# DebugOptions field -> value. An empty YNN fusion type list means "no YNNPACK fusions".
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
MEASURED_ON = ((0, 10),)  # jaxlib (major, minor) versions


def _jaxlib_version() -> tuple[int, int]:
  try:
    major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
    return int(major), int(minor)
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return (0, 0)


def cpu_compiler_options(jaxlib_version: tuple[int, int] | None = None) -> dict[str, str]:
  """`CPU_OPTIONS` for ``Lowered.compile(...)``, or {} on a jaxlib they were not measured on."""
  version = _jaxlib_version() if jaxlib_version is None else tuple(jaxlib_version[:2])
  return dict(CPU_OPTIONS) if version in MEASURED_ON else {}


def apply_to_environment(environ: MutableMapping[str, str] | None = None,
                         jaxlib_version: tuple[int, int] | None = None) -> str:
  """Appends `CPU_OPTIONS` to ``XLA_FLAGS`` unless it names them already.

  XLA reads ``XLA_FLAGS`` once, when JAX creates its first backend, so call
  this before the first computation; a field the user already set in
  ``XLA_FLAGS`` is left as they set it. Returns the resulting ``XLA_FLAGS``.
  """
  environ = os.environ if environ is None else environ
  flags = environ.get("XLA_FLAGS", "")
  for name, value in cpu_compiler_options(jaxlib_version).items():
    if f"--{name}=" not in flags:
      flags = f"{flags} --{name}={value}".strip()
  if flags:
    environ["XLA_FLAGS"] = flags
  return flags
