"""Test-wide JAX set-up: 4 fake CPU devices for the pmap tests, a persistent cache.

The XLA flags must be set before JAX initialises its backends, which is why they
live here (pytest imports conftest.py first) and not in the tests.
"""

import os

from tests.xla_flags import COMPILE_FLAGS

# The timeout turns a collective that hangs on fake devices into a failure;
# COMPILE_FLAGS cut XLA:CPU's compile, which is most of the suite's time.
_FLAGS = ("--xla_force_host_platform_device_count=4 "
          "--xla_cpu_collective_call_terminate_timeout_seconds=60 " + COMPILE_FLAGS)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAGS).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The persistent compilation cache, through the environment so that the
# subprocesses some tests start (launch.py, kill -9, several JAX processes)
# share it: within one run they compile the programs the in-process tests
# already compiled, and their reruns compile nothing.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.environ.get("VDM_JAX_TEST_CACHE",
                   os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache")))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402  (must come after the flags)

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
