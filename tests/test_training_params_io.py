"""`vdm_jax.training.save_params` / `restore_params` and `train.config_from_file`."""

import os

import jax
import numpy as np
import pytest

from vdm_jax import train
from vdm_jax import training

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_save_restore_params_round_trip(tmp_path):
  params = {"dense": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
                      "bias": np.ones(3, np.float32)},
            "scale": np.float32(2.5)}
  path = training.save_params(str(tmp_path / "ckpt"), params)
  assert os.path.isdir(path)
  restored = training.restore_params(path)
  assert jax.tree.structure(restored) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, restored, params)
  training.save_params(path, {"w": np.zeros(2)})      # overwrites
  np.testing.assert_array_equal(training.restore_params(path)["w"], np.zeros(2))
  with pytest.raises(training.CheckpointError, match="No parameter checkpoint"):
    training.restore_params(str(tmp_path / "missing"))


def test_config_from_file_with_and_without_arg():
  path = os.path.join(_ROOT, "configs/score_vae_digits.py")
  full = train.config_from_file(path)
  quick = train.config_from_file(path + ":quick")
  assert full.experiment == quick.experiment == "score_vae"
  assert quick.train.steps < full.train.steps
  assert train.config_from_file(path, "quick").to_dict() == quick.to_dict()
  with pytest.raises(ValueError, match="does not exist"):
    train.config_from_file(os.path.join(_ROOT, "configs/nope.py"))
