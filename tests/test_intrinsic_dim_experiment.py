"""The intrinsic-dimension driver: one small data set end to end, config checks."""

import json
import os

import pytest

from configs import intrinsic_dim_benchmark
from experiments import intrinsic_dimension


def _experiment():
  return intrinsic_dimension


def test_unknown_dataset_field_raises():
  with pytest.raises(ValueError, match="unknown dataset fields"):
    intrinsic_dim_benchmark._dataset("sphere", 2, hiden=(8,))  # pylint: disable=protected-access


@pytest.mark.slow
def test_thin_subspace_row_uses_the_per_set_noise_level(tmp_path):
  # A 2-plane in R^6 (normal std 1e-3), a small MLP, the per-set gamma_eval:
  # the row must report that level, find k = 2 within +-1 (a briefly trained
  # model, as in tests/test_intrinsic_dim_training.py), PPCA exactly 2, and
  # write the PNG.
  exp = _experiment()
  cfg = intrinsic_dim_benchmark.get_config("quick")
  cfg.num_train = 2000
  cfg.num_baseline_points = 300
  cfg.baselines = ("ppca", "twonn")
  cfg.train.step_scale = 1.0
  d = intrinsic_dim_benchmark._dataset(  # pylint: disable=protected-access
      "subspace", 2, ambient_dim=6, num_steps=600, hidden=(64, 64),
      learning_rate=3e-3, batch_size=128, gamma_eval=-8.0)
  row = exp.run_dataset("plane2", d, cfg, str(tmp_path))
  assert row["gamma_eval"] == -8.0
  assert abs(row["score_mode"] - 2) <= 1, row
  assert row["ppca"] == 2
  assert os.path.exists(tmp_path / "spectra_plane2.png")
  json.dumps(row)   # the row goes to results.json as is


def test_only_takes_comma_separated_names_and_names_the_unknown_one(tmp_path):
  # '--config.only=a,b' arrives as the one-string tuple ('a,b',).
  cfg = intrinsic_dim_benchmark.get_config("quick")
  cfg.only = ("sphere10,torus6_R32,nope",)
  with pytest.raises(ValueError, match=r"\['nope'\]"):
    _experiment().run(cfg, str(tmp_path))

