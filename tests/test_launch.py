"""launch.py: every documented command names a config that builds and an experiment that runs."""

import glob
import importlib
import os
import re
import shlex
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COMMAND = re.compile(r"python launch\.py ((?:[^\n\\]|\\\n)+)")


def _documented_commands():
  """(file, argv) of every `python launch.py ...` in the README, configs, experiments."""
  files = ([os.path.join(ROOT, "README.md"), os.path.join(ROOT, "launch.py")]
           + sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
           + sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py"))))
  out = []
  for path in files:
    with open(path) as f:
      text = f.read()
    for match in _COMMAND.finditer(text):
      line = match.group(1).replace("\\\n", " ").split("#")[0].split("`")[0]
      if "<" in line or "{" in line:
        continue  # a template (configs/<name>.py) or code building a command.
      argv = [a for a in shlex.split(line.replace("\\\\", "")) if a.startswith("--")]
      out.append((os.path.relpath(path, ROOT), argv))
  return out


COMMANDS = _documented_commands()


def _flag(argv, name):
  for a in argv:
    if a.startswith(f"--{name}="):
      return a.split("=", 1)[1]
  return None


def test_commands_were_found():
  files = {f for f, _ in COMMANDS}
  assert "README.md" in files and len(COMMANDS) >= 15, COMMANDS


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[f"{f}:{' '.join(a)[:60]}"
                                                      for f, a in COMMANDS])
def test_documented_command_builds_its_config_and_experiment(where, argv):
  spec = _flag(argv, "config")
  assert spec and _flag(argv, "workdir"), f"{where}: {argv} lacks --config or --workdir"
  path, _, arg = spec.partition(":")
  assert path.startswith("configs/") and os.path.exists(os.path.join(ROOT, path)), where
  module = importlib.import_module("configs." + os.path.basename(path)[:-3])
  config = module.get_config(arg) if arg else module.get_config()
  for a in argv:  # --config.a.b=v overrides name existing fields.
    if a.startswith("--config."):
      field = a[len("--config."):].split("=")[0]
      node = config
      for key in field.split("."):
        assert key in node, f"{where}: {a} names no field of {path}"
        node = node[key]
  experiment = config.get("experiment", "vdm")
  if experiment != "vdm":
    assert callable(importlib.import_module(f"experiments.{experiment}").run)
  else:
    assert (_flag(argv, "mode") or "train") in ("train", "eval", "sample", "compress",
                                                 "decompress")


def test_every_config_names_its_experiment():
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    name = os.path.basename(path)[:-3]
    module = importlib.import_module(f"configs.{name}")
    if not hasattr(module, "get_config"):
      continue  # a shared base (default.py, conditional_default.py).
    config = module.get_config()
    experiment = config.get("experiment", None)
    assert experiment is not None, f"configs/{name}.py sets no 'experiment'"
    # Built on the one root, `default.base_config` (directly or through another
    # config), never on a ConfigDict of its own.
    assert isinstance(config.seed, int), name
    with open(path) as f:
      roots = re.findall(r"^  (?:c|config) = ml_collections\.ConfigDict\(\)$", f.read(), re.M)
    assert name == "default" or not roots, (name, roots)
    assert experiment == "vdm" or os.path.exists(
        os.path.join(ROOT, "experiments", f"{experiment}.py")), name


@pytest.mark.filterwarnings(  # max_iter=1 on purpose (tests/test_studies_imputation.py).
    "ignore:\\[IterativeImputer\\] Early stopping criterion not reached")
def test_an_experiment_runs_through_the_launcher(tmp_path, monkeypatch, capsys):
  """The dispatch end to end: launch.py's flag parsing and `main` run a tiny
  imputation-discrepancy study, in this process.

  (The other study experiments run in test_launch_experiments.py through their
  `run(config, workdir)`; launch.py as a command runs in test_train.py's
  unknown-field test and in the 2-process test of test_multiprocess.py. A
  subprocess here cost ~7 s of imports alone.)"""
  import launch  # pylint: disable=g-import-not-at-top
  argv = ["launch.py",
          "--config=" + os.path.join(ROOT, "configs/imputation_discrepancy.py:quick"),
          f"--workdir={tmp_path}", "--config.score_steps=20", "--config.diffusion_steps=5",
          "--config.resample=1", "--config.max_iter=1", "--config.mechanisms=('mcar',)"]
  monkeypatch.setattr(sys, "argv", argv)  # ml_collections reads overrides from sys.argv.
  launch._parse_flags(argv)  # pylint: disable=protected-access
  launch.main(["launch.py"])
  for name in ("table.md", "results.json", "rmse_vs_w1.png", "rank_disagreement.png",
               "marginals.png"):
    assert os.path.getsize(tmp_path / name) > 0, name
  out = capsys.readouterr().out
  summary = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
  assert summary["settings"] == "1" and summary["rows"] == "5"  # one setting, five imputers
  rmse = float(summary["mean_rmse_diffusion"])
  assert 0 < rmse < float("inf")


def test_vdm_modes_are_refused_for_other_experiments(tmp_path):
  import launch  # pylint: disable=g-import-not-at-top
  from absl import app  # pylint: disable=g-import-not-at-top
  launch.FLAGS(["launch.py", "--config=" + os.path.join(ROOT, "configs/conditional_sr.py:quick"),
                f"--workdir={tmp_path}", "--mode=sample"])
  try:
    with pytest.raises(app.UsageError, match="--mode=sample is for VDM configs"):
      launch.main(["launch.py"])
  finally:
    launch.FLAGS.mode = "train"  # absl flags are process-wide.


def test_exit_status_tells_preempted_from_finished(tmp_path, monkeypatch):
  """launch.main: 75 (EX_TEMPFAIL) after a preempted run, a normal return after a
  finished one. (That SIGTERM mid-run checkpoints and reports 'preempted' is
  tests/test_train.py's test_sigterm_saves_a_checkpoint_and_exits.)"""
  import launch  # pylint: disable=g-import-not-at-top
  from vdm_jax import training  # pylint: disable=g-import-not-at-top
  launch.FLAGS(["launch.py", "--config=" + os.path.join(ROOT, "configs/vdm_tiny.py"),
                f"--workdir={tmp_path}"])
  monkeypatch.setattr(launch, "run_vdm",
                      lambda config, workdir, mode: {"step": 3, "preempted": True})
  with pytest.raises(SystemExit) as exit_:
    launch.main(["launch.py"])
  assert exit_.value.code == training.EXIT_PREEMPTED == 75
  monkeypatch.setattr(launch, "run_vdm", lambda config, workdir, mode: {"step": 6})
  launch.main(["launch.py"])  # returns: exit status 0.
