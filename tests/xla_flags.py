"""The XLA flags of the test suite, shared by tests/conftest.py and the subprocess tests.

The tests run tiny shapes for a few steps, so XLA:CPU spends far more time
compiling than running. Two flags cut the compile without changing results
(vdm_tiny's train step gives the same loss bits with and without them):
- `--xla_backend_optimization_level=0`: LLVM's optimisation passes were most
  of a compile (one VDM training test's CPU time -30%);
- `--xla_cpu_use_fusion_emitters=false`: XLA:CPU's MLIR fusion emitters
  compile slower than the elemental IR emitter they replace (vdm_tiny's train
  step and 300 small eager programs: 14.8 s -> 9.3 s of backend compile, jax
  and jaxlib 0.10.2). Older jaxlibs do not know the flag and XLA aborts on an
  unknown flag, so it is only passed to the versions it was measured on.
"""

import importlib.metadata


def _jaxlib_version() -> tuple[int, ...]:
  try:
    return tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2])
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return (0, 0)


_KNOWS_FUSION_EMITTERS_FLAG = _jaxlib_version() >= (0, 10)

COMPILE_FLAGS = "--xla_backend_optimization_level=0" + (
    " --xla_cpu_use_fusion_emitters=false" if _KNOWS_FUSION_EMITTERS_FLAG else "")

# For the few tests whose time is running a jitted step hundreds of times, not
# compiling it: `jax.jit(f, compiler_options=RUN_OPTIONS)` compiles that one
# program with XLA's default optimisations (a 4x4 flow's Adam step: 21 ms at
# level 0 vs 2.6 ms, for 1 s more compile).
RUN_OPTIONS = {"xla_backend_optimization_level": 2}
if _KNOWS_FUSION_EMITTERS_FLAG:
  RUN_OPTIONS["xla_cpu_use_fusion_emitters"] = True
