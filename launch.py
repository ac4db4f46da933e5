"""Launches a vdm_jax experiment: train, evaluate, sample, compress or decompress.

  python launch.py --config=configs/vdm_digits.py --workdir=/tmp/vdm_digits
  python launch.py --config=configs/vdm_digits.py --workdir=/tmp/vdm_digits --mode=sample
  python launch.py --config=configs/vdm_cifar10.py --workdir=... \\
      --config.optimizer.learning_rate=1e-4 --config.model.dtype=bfloat16

Intentionally short: the logic lives in `vdm_jax.train` (and
`vdm_jax.compression`), which are importable and tested. Config overrides are
parsed and type-checked by ml_collections before any computation starts; an
unknown field or a value of the wrong type is an error.
"""

import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `configs`.

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample", "compress", "decompress"],
                  "What to run.")
flags.DEFINE_string("input", None, "compress: PNG file(s) (comma-separated, or a "
                    "directory) or a .npy of uint8 images; decompress: the file.")
flags.DEFINE_string("output", None, "compress: the output file; decompress: a .npy "
                    "path (PNG files are also written next to it).")
flags.DEFINE_bool("jax_distributed", False,
                  "Call jax.distributed.initialize() (multi-host TPU/GPU).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # Orbax logs every checkpoint step at INFO; keep its warnings, drop the chatter.
  std_logging.getLogger("absl").addFilter(
      lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.jax_distributed:
    jax.distributed.initialize()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  config = FLAGS.config
  if FLAGS.mode == "train":
    result = train.train_and_evaluate(config, FLAGS.workdir)
  elif FLAGS.mode == "eval":
    result = {"test_bpd": train.run_eval(config, FLAGS.workdir)}
  elif FLAGS.mode == "sample":
    result = {"samples_png": train.run_sample(config, FLAGS.workdir)}
  else:
    from vdm_jax.compression import cli  # pylint: disable=g-import-not-at-top
    if not FLAGS.input or not FLAGS.output:
      raise app.UsageError(f"--mode={FLAGS.mode} needs --input and --output.")
    result = cli.run(FLAGS.mode, config, FLAGS.workdir, FLAGS.input, FLAGS.output)
  if jax.process_index() == 0:
    print("\n".join(f"{k}: {v}" for k, v in result.items()), flush=True)
  if result.get("preempted"):
    # Checkpointed and stopped by SIGTERM/SIGINT: not finished, rerun to resume.
    from vdm_jax import training  # pylint: disable=g-import-not-at-top
    sys.exit(training.EXIT_PREEMPTED)


if __name__ == "__main__":
  app.run(main)
