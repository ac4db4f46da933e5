"""launch.py: every documented command names a config that builds and an experiment that runs."""

import glob
import importlib
import os
import re
import shlex
import subprocess
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
    text = open(path).read()
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


def test_an_experiment_runs_through_the_launcher(tmp_path):
  """The dispatch end to end: a tiny conditional-estimator run via launch.py."""
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"),
       "--config=" + os.path.join(ROOT, "configs/conditional_inpainting.py:quick"),
       f"--workdir={tmp_path}", "--config.model.kind=mlp", "--config.model.hidden=(16,)",
       "--config.model.emb_dim=8", "--config.data.max_train=32",
       "--config.data.n_test=2", "--config.data.n_samples=2", "--config.train.steps=2",
       "--config.train.log_every=2", "--config.sampling.n_steps=2",
       "--config.grid_conditions=2"],
      capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (tmp_path / "inpaint_box.json").exists() and (tmp_path / "table.md").exists()
  assert "task: inpaint_box" in proc.stdout


def test_vdm_modes_are_refused_for_other_experiments(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"),
       "--config=" + os.path.join(ROOT, "configs/conditional_sr.py:quick"),
       f"--workdir={tmp_path}", "--mode=sample"],
      capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert proc.returncode != 0
  assert "--mode=sample is for VDM configs" in proc.stderr
