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

# The longest test files (seconds of one cold run, 2026-12-07), run first: with
# `-n 2 --dist loadfile` a worker takes a whole file at a time, and a long
# file taken last keeps one worker busy alone at the end (xdist's default
# order, by number of tests, put the 2-process file near the end). The
# 2-process file comes third: its in-process reference run then loads
# test_train.py's programs from the persistent cache instead of compiling the
# same ones at the same time on the other worker.
_LONGEST_FIRST = ("test_train.py", "test_launch_experiments.py", "test_multiprocess.py",
                  "test_caflow_training.py", "test_score_vae_losses.py",
                  "test_variance_minimization.py", "test_intrinsic_dim.py",
                  "test_training_engine.py", "test_mixed_precision.py")


def pytest_configure(config):
  if hasattr(config.option, "loadscopereorder"):  # pytest-xdist
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
  del config
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable
