"""The training system end to end on the tiny digits config."""

import json
import importlib.util
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import vdm_tiny
from vdm_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return {r["step"]: r["loss"] for r in records if "loss" in r}


def _config(**overrides):
  config = vdm_tiny.get_config()
  for key, value in overrides.items():
    section, field = key.split(".")
    config[section][field] = value
  return config


# Tests that are not about several devices train on one: its step compiles
# ~30% faster than the 4-device one, and they all share that one program
# (the persistent compilation cache loads it after the first compile).
ONE_DEVICE = {"training.num_devices": 1}
NO_END = {"eval.at_end": False, "sampling.at_end": False}


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory):
  """The workdir of vdm_tiny's default run (6 steps, a loss per step), one device."""
  workdir = str(tmp_path_factory.mktemp("six_steps"))
  train.train_and_evaluate(_config(**ONE_DEVICE, **NO_END), workdir)
  return workdir


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
  """The workdir of the same run stopped at step 3 (its last checkpoint); copy to use."""
  workdir = str(tmp_path_factory.mktemp("three_steps"))
  train.train_and_evaluate(_config(**{"training.num_train_steps": 3}, **ONE_DEVICE,
                                   **NO_END), workdir)
  return workdir


def test_train_eval_sample_end_to_end(tmp_path):
  config = _config(**{"training.num_train_steps": 20, "training.log_every": 5,
                      "training.save_every": 10}, **ONE_DEVICE)
  result = train.train_and_evaluate(config, str(tmp_path))
  losses = _losses(tmp_path)
  assert sorted(losses) == [5, 10, 15, 20]
  assert all(np.isfinite(v) for v in losses.values())
  assert losses[20] < losses[5], losses  # learning: the bound goes down.
  assert np.isfinite(result["test_bpd"]) and result["test_bpd"] > 0
  assert os.path.getsize(result["samples_png"]) > 100
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "20"]
  if importlib.util.find_spec("tensorboardX"):  # TensorBoard: the bpd and the grid.
    from tests.test_tensorboard import _events  # pylint: disable=g-import-not-at-top
    tags = {(e.step, v.tag) for e in _events(tmp_path) for v in e.summary.value}
    assert {(20, "loss"), (20, "eval_test_bpd"), (20, "samples")} <= tags, tags
  # eval and sample modes reload the checkpoint.
  np.testing.assert_allclose(train.run_eval(config, str(tmp_path)), result["test_bpd"],
                             rtol=1e-5)
  assert os.path.exists(train.run_sample(config, str(tmp_path)))
  # The sampler compiled once: the parameters after training and those restored
  # by `run_sample` have one type and placement (`training.unreplicate`,
  # `train.load_params`).
  assert train.programs(config).sample._cache_size() == 1  # pylint: disable=protected-access


def test_configs_equal_in_the_program_fields_share_one_build():
  """`train.programs`: a run's length, logging, devices and data location do not
  enter a program, so such runs reuse one trace and compile; any model or
  optimiser field gives new programs."""
  first = train.programs(_config())
  assert train.programs(_config(**{"training.num_train_steps": 3, "training.log_every": 3,
                                  "data.data_dir": "/elsewhere"},
                                **ONE_DEVICE, **NO_END)) is first
  assert train.programs(_config(**{"optimizer.learning_rate": 1e-2})) is not first
  assert train.programs(_config(**{"model.ch": 16})).vdm.network.ch == 16
  # The builders see only the keyed fields: reading another one fails loudly.
  keyed = train._program_config(_config())  # pylint: disable=protected-access
  assert keyed.model.ch == first.vdm.network.ch
  with pytest.raises(AttributeError):
    keyed.training.num_train_steps  # pylint: disable=pointless-statement


def test_resume_reproduces_the_loss_sequence(tmp_path, six_steps, three_steps):
  part = str(tmp_path / "part")
  shutil.copytree(three_steps, part)  # a 3-step run of the 6-step config's program.
  assert sorted(_losses(part)) == [1, 2, 3]
  train.train_and_evaluate(_config(**ONE_DEVICE, **NO_END), part)  # restarts at step 3.
  a, b = _losses(six_steps), _losses(part)
  assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
  assert [a[k] for k in sorted(a)] == [b[k] for k in sorted(b)]


def test_four_devices_equal_one_device(tmp_path, three_steps):
  """The engine splits the batch 4 ways and pmeans the gradients: the 1-device run."""
  assert jax.local_device_count() == 4, "tests/conftest.py sets 4 CPU devices"
  config = _config(**{"training.num_train_steps": 3, "training.num_devices": 4}, **NO_END)
  train.train_and_evaluate(config, str(tmp_path))
  four, one = _losses(tmp_path), _losses(three_steps)
  assert sorted(four) == sorted(one) == [1, 2, 3]
  # The noise is drawn for the global batch: only the order of the sums differs.
  np.testing.assert_allclose([four[k] for k in (1, 2, 3)], [one[k] for k in (1, 2, 3)],
                             rtol=1e-5)
  _, four_params, four_step = train.load_params(config, str(tmp_path), ema=False)
  _, one_params, one_step = train.load_params(config, three_steps, ema=False)
  assert four_step == one_step == 3
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               four_params, one_params)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, three_steps):
  shutil.copytree(three_steps, tmp_path, dirs_exist_ok=True)  # a good checkpoint: step 3.
  bad = _config(**{"training.num_train_steps": 6, "training.save_every": 1,
                   "optimizer.learning_rate": float("inf")}, **ONE_DEVICE, **NO_END)
  with pytest.raises(RuntimeError, match=r"Non-finite .* step 4 .*last good checkpoint is step 3"):
    train.train_and_evaluate(bad, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]
  _, params, step = train.load_params(_config(), str(tmp_path))
  assert step == 3
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


def test_wrong_data_shape_is_a_clear_error(tmp_path):
  config = _config(**{"data.image_shape": (16, 16, 1)})
  with pytest.raises(ValueError, match=r"shape \(8, 8, 1\) per example but config.data.image_shape is \(16, 16, 1\)"):
    train.train_and_evaluate(config, str(tmp_path))


def test_indivisible_batch_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="batch_size=6 must be divisible by the number of devices"):
    train.train_and_evaluate(_config(**{"training.batch_size": 6}), str(tmp_path))
  # On 3 of the 4 devices, the batch must split 3 ways.
  with pytest.raises(ValueError, match=r"batch_size=8 must be divisible by the number of devices \(3\)"):
    train.train_and_evaluate(_config(**{"training.num_devices": 3}), str(tmp_path))


@pytest.mark.parametrize("override,message", [
    ("--config.optimizer.learning_ratee=1e-3", "has no field 'learning_ratee'"),
    ("--config.training.batch_size=many", "batch_size=many: invalid literal"),
])
def test_bad_override_fails_before_compute(tmp_path, capsys, monkeypatch, override,
                                           message):
  """launch.py's flag parsing, in this process (the unknown-field test below runs
  the same parse as a command)."""
  import launch  # pylint: disable=g-import-not-at-top
  argv = ["launch.py", f"--config={os.path.join(ROOT, 'configs/vdm_tiny.py')}",
          f"--workdir={tmp_path}", override]
  monkeypatch.setattr(sys, "argv", argv)  # ml_collections reads overrides from sys.argv.
  with pytest.raises(SystemExit) as exit_:
    launch._parse_flags(argv)
  assert exit_.value.code == 2
  assert message in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "checkpoints")


def test_sigterm_saves_a_checkpoint_and_exits(tmp_path):
  """Preemption: SIGTERM mid-run checkpoints the current step; a rerun resumes there."""
  import signal
  import threading
  import time

  config = _config(**{"training.num_train_steps": 100_000, "training.save_every": 1000},
                   **ONE_DEVICE, **NO_END)
  metrics = tmp_path / "metrics.jsonl"

  def preempt():
    deadline = time.time() + 300
    while time.time() < deadline:
      if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
        os.kill(os.getpid(), signal.SIGTERM)
        return
      time.sleep(0.05)

  watcher = threading.Thread(target=preempt, daemon=True)
  watcher.start()
  result = train.train_and_evaluate(config, str(tmp_path))
  watcher.join()
  step = result["step"]
  assert 2 <= step < 100_000
  assert result["preempted"] is True  # launch.py turns this into exit status 75.
  assert sorted(os.listdir(tmp_path / "checkpoints")) == [str(step)]
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handler restored


@pytest.mark.parametrize("override,message", [
    ({"training.keep_checkpoints": 0}, "config.training.keep_checkpoints must be an integer >= 1, got 0"),
    ({"training.batch_size": -8}, "config.training.batch_size must be an integer >= 1, got -8"),
    ({"training.save_every": 0}, "config.training.save_every must be an integer >= 1, got 0"),
    ({"training.log_every": 0}, "config.training.log_every must be an integer >= 1, got 0"),
    ({"training.num_train_steps": -5}, "config.training.num_train_steps must be an integer >= 1, got -5"),
    ({"optimizer.learning_rate": -1.0}, "config.optimizer.learning_rate must be > 0, got -1.0"),
    ({"training.num_devices": 5}, r"num_devices must be an integer in \[0, 4\].*got 5"),
])
def test_bad_values_are_rejected_before_the_model_is_built(tmp_path, monkeypatch, override,
                                                           message):
  def no_model(config):
    raise AssertionError("the model was built before the config was checked")
  # `train.programs` builds (or reuses) the model: spied there, a cached build
  # cannot hide a wrong order.
  monkeypatch.setattr(train, "programs", no_model)
  monkeypatch.setattr(train, "build_vdm", no_model)
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(_config(**override), str(workdir))
  assert not workdir.exists()


def test_unprepared_tfds_dataset_fails_before_the_model_is_built(tmp_path, monkeypatch):
  def no_model(config):
    raise AssertionError("the model was built before the data was found")
  monkeypatch.setattr(train, "programs", no_model)
  monkeypatch.setattr(train, "build_vdm", no_model)
  config = _config(**{"data.name": "tfds", "data.tfds_name": "mnist",
                      "data.data_dir": str(tmp_path / "tfds")})
  with pytest.raises(FileNotFoundError, match="'mnist' is not prepared"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_unknown_config_field_is_named_with_the_config_and_a_suggestion(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"),
       f"--config={os.path.join(ROOT, 'configs/vdm_tiny.py')}", f"--workdir={tmp_path}",
       "--config.training.batchsize=4"],
      capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert proc.returncode == 2
  assert "config.training of configs/vdm_tiny.py has no field 'batchsize'" in proc.stderr
  assert 'Did you mean "batch_size"?' in proc.stderr
  assert "Traceback" not in proc.stderr


def test_steps_per_call_replays_the_single_call_losses(tmp_path, six_steps):
  two = str(tmp_path / "two")
  train.train_and_evaluate(_config(**{"training.steps_per_call": 2, "training.log_every": 2,
                                      "training.save_every": 6}, **ONE_DEVICE, **NO_END), two)
  a, b = _losses(six_steps), _losses(two)
  assert sorted(a) == [1, 2, 3, 4, 5, 6] and sorted(b) == [2, 4, 6]
  # The single-call run logged every step: its windows of 2 are pair means.
  np.testing.assert_allclose([b[k] for k in sorted(b)],
                             [np.mean([a[k - 1], a[k]]) for k in sorted(b)], rtol=1e-5)
  with pytest.raises(ValueError, match="log_every=3 must be a multiple of config.training.steps_per_call=2"):
    train.train_and_evaluate(_config(**{"training.steps_per_call": 2, "training.log_every": 3}),
                             str(tmp_path / "bad"))
