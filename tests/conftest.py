"""Test-wide JAX set-up: 4 fake CPU devices for the pmap tests, a persistent cache.

The XLA flags must be set before JAX initialises its backends, which is why they
live here (pytest imports conftest.py first) and not in the tests.
"""

import os

# The tests run tiny shapes for a few steps, so XLA:CPU spends far more time
# compiling than running; LLVM's optimisation passes are most of the compile
# time (level 0 cut one VDM training test's CPU time by 30%) and change no
# semantics. The timeout turns a collective that hangs on fake devices into a
# failure.
_FLAGS = ("--xla_force_host_platform_device_count=4 "
          "--xla_cpu_collective_call_terminate_timeout_seconds=60 "
          "--xla_backend_optimization_level=0")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAGS).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (must come after the flags)

_CACHE = os.environ.get(
    "VDM_JAX_TEST_CACHE",
    os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
