"""Launches any vdm_jax experiment: the config names it, this file only dispatches.

  python launch.py --config=configs/vdm_digits.py --workdir=runs/digits
  python launch.py --config=configs/vdm_digits.py --workdir=runs/digits --mode=sample
  python launch.py --config=configs/score_vae_digits.py:quick --workdir=/tmp/svae
  python launch.py --config=configs/vdm_cifar10.py --workdir=... \\
      --config.optimizer.learning_rate=1e-4 --config.model.dtype=bfloat16

A config's ``experiment`` field picks what runs: 'vdm' (the default) trains,
evaluates, samples, compresses or decompresses a VDM (`vdm_jax.train`,
`vdm_jax.compression`, chosen by --mode); any other name runs
``experiments/<name>.py``'s ``run(config, workdir)``, which writes its tables
and figures to the workdir. Config overrides are parsed and type-checked by
ml_collections before any computation starts; an unknown field or a value of
the wrong type is an error.

On CPU the launcher compiles with XLA's own kernels instead of its YNNPACK
fusions (`vdm_jax.xla_options`: the VDM train step ~1.5x faster); a setting
of the same field in ``XLA_FLAGS`` wins.

Exit status: 0 when the run finished, 75 (EX_TEMPFAIL) when SIGTERM/SIGINT
stopped it after a checkpoint (rerun the same command to resume), 1 on an
error.
"""

import difflib
import importlib
import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py[:arg]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample", "compress", "decompress"],
                  "VDM configs: what to run. Other experiments only 'train' (run).")
flags.DEFINE_string("input", None, "compress: PNG file(s) (comma-separated, or a "
                    "directory) or a .npy of uint8 images; decompress: the file.")
flags.DEFINE_string("output", None, "compress: the output file; decompress: a .npy "
                    "path (PNG files are also written next to it).")
flags.DEFINE_bool("jax_distributed", False,
                  "Call jax.distributed.initialize() with the cluster's own settings "
                  "(TPU pods, SLURM, ...); see --coordinator_address for explicit ones.")
flags.DEFINE_string("coordinator_address", None,
                    "Several processes: host:port of process 0's coordinator. "
                    "Needs --num_processes and --process_id.")
flags.DEFINE_integer("num_processes", None, "Several processes: how many in all.")
flags.DEFINE_integer("process_id", None, "Several processes: this one's index, 0..N-1.")
flags.mark_flags_as_required(["config", "workdir"])


def _unknown_override(argv):
  """The first `--config.a.b=v` of argv that names no field, as a message (or None)."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    return None
  from vdm_jax.train import config_from_file  # pylint: disable=g-import-not-at-top
  path = spec.partition(":")[0]
  config = config_from_file(spec)
  for a in argv:
    if not a.startswith("--config."):
      continue
    node, where = config, "config"
    for key in a[len("--config."):].split("=")[0].split("."):
      if not hasattr(node, "keys") or key not in node:
        known = sorted(node.keys()) if hasattr(node, "keys") else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f' Did you mean "{close[0]}"?' if close else ""
        return (f"{a}: {where} of {os.path.relpath(path)} has no field {key!r}.{hint} "
                f"Its fields: {', '.join(known)}.")
      node, where = node[key], f"{where}.{key}"
  return None


def _parse_flags(argv):
  """absl's parsing, with a named error for an override of a field that does not exist."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ml_collections' raw errors.
    message = _unknown_override(argv[1:]) or f"bad config override: {e}"
    sys.stderr.write(f"FATAL config error: {message}\n")
    sys.exit(2)
  except flags.Error as e:  # a value of the wrong type, a missing file.
    sys.stderr.write(f"FATAL Flags parsing error: {e}\n")
    sys.exit(2)


def _init_distributed(jax):
  """Joins a multi-process run (every process runs the same command, its own id).

  On CPU the processes' collectives go through gloo (TCP), so N processes on
  one machine or on N machines behave as one process with all their devices.
  """
  explicit = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit):
      raise app.UsageError("--coordinator_address, --num_processes and --process_id "
                           "go together.")
    if not 0 <= FLAGS.process_id < FLAGS.num_processes:
      raise app.UsageError(f"--process_id={FLAGS.process_id} must be in "
                           f"[0, --num_processes={FLAGS.num_processes}).")
  elif not FLAGS.jax_distributed:
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes,
      process_id=FLAGS.process_id,
      # A process that dies makes the others fail within this, rather than hang.
      heartbeat_timeout_seconds=int(os.environ.get("VDM_JAX_HEARTBEAT_TIMEOUT", 100)))


def run_vdm(config, workdir, mode):
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  if mode == "train":
    return train.train_and_evaluate(config, workdir)
  if mode == "eval":
    return {"test_bpd": train.run_eval(config, workdir)}
  if mode == "sample":
    return {"samples_png": train.run_sample(config, workdir)}
  from vdm_jax.compression import cli  # pylint: disable=g-import-not-at-top
  if not FLAGS.input or not FLAGS.output:
    raise app.UsageError(f"--mode={mode} needs --input and --output.")
  return cli.run(mode, config, workdir, FLAGS.input, FLAGS.output)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # Orbax logs every checkpoint step at INFO; keep its warnings, drop the chatter.
  std_logging.getLogger("absl").addFilter(
      lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)
  import jax  # pylint: disable=g-import-not-at-top
  _init_distributed(jax)
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  config = FLAGS.config
  experiment = config.get("experiment", "vdm")
  if experiment == "vdm":
    result = run_vdm(config, FLAGS.workdir, FLAGS.mode)
  else:
    if FLAGS.mode != "train":
      raise app.UsageError(f"--mode={FLAGS.mode} is for VDM configs; experiment "
                           f"{experiment!r} only runs (--mode=train).")
    result = importlib.import_module(f"experiments.{experiment}").run(config, FLAGS.workdir)
  if jax.process_index() == 0:
    print("\n".join(f"{k}: {v}" for k, v in (result or {}).items()
                    if isinstance(v, (bool, int, float, str))), flush=True)
  if (result or {}).get("preempted"):
    from vdm_jax import training  # pylint: disable=g-import-not-at-top
    sys.exit(training.EXIT_PREEMPTED)


if __name__ == "__main__":
  # Before JAX creates a backend: XLA reads XLA_FLAGS once (vdm_jax.xla_options).
  from vdm_jax import xla_options  # pylint: disable=g-import-not-at-top
  xla_options.apply_to_environment()
  app.run(main, flags_parser=_parse_flags)
