"""The XLA:CPU options of the entry points: applied once, never over the user's."""

import jax
import jax.numpy as jnp

from vdm_jax import xla_options

FIELD = "xla_cpu_experimental_ynn_fusion_type"


def test_apply_to_environment_appends_once_and_keeps_the_users_setting():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  flags = xla_options.apply_to_environment(env, jaxlib_version=(0, 10))
  assert flags == env["XLA_FLAGS"] == (
      f"--xla_force_host_platform_device_count=2 --{FIELD}=")
  assert xla_options.apply_to_environment(env, jaxlib_version=(0, 10)) == flags
  mine = {"XLA_FLAGS": f"--{FIELD}=individual_dot"}
  assert xla_options.apply_to_environment(mine, jaxlib_version=(0, 10)) == (
      f"--{FIELD}=individual_dot")
  empty = {}
  assert xla_options.apply_to_environment(empty, jaxlib_version=(0, 10)) == f"--{FIELD}="


def test_unmeasured_jaxlib_gets_nothing():
  # An unknown flag makes XLA abort, so other versions get no flags at all.
  env = {}
  assert xla_options.apply_to_environment(env, jaxlib_version=(0, 9)) == ""
  assert env == {}
  assert xla_options.cpu_compiler_options((0, 11)) == {}


def test_compiler_options_compile_without_ynnpack_fusions():
  # A matmul with an elementwise consumer is a YNNPACK fusion under XLA's defaults
  # on jaxlib 0.10; the options turn those fusions off, and the value stays.
  options = xla_options.cpu_compiler_options()
  f = jax.jit(lambda a, b: jnp.tanh(a @ b))
  a = jnp.full((64, 64), 0.01)
  default = f.lower(a, a).compile()
  tuned = f.lower(a, a).compile(options)
  if options:
    assert "__ynn_fusion" in default.as_text()
    assert "__ynn_fusion" not in tuned.as_text()
  assert abs(float(tuned(a, a)[3, 5]) - float(jnp.tanh(64 * 1e-4))) < 1e-6
