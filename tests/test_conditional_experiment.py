"""Smoke test of experiments/conditional_estimators.py and the task configs."""

import importlib.util
import json
import os

import pytest

from experiments import conditional_estimators

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path, name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(_ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _driver():
  return conditional_estimators


def test_configs_build_and_reject_bad_args():
  sr = _load("configs/conditional_sr.py", "conditional_sr")
  assert sr.get_config("factor=2").task == "sr2"
  assert sr.get_config(None).task == "sr4"
  assert _load("configs/conditional_inpainting.py",
               "conditional_inpainting").get_config("mask=random").task == (
                   "inpaint_random")
  edges = _load("configs/conditional_edges.py", "conditional_edges").get_config(
      "quick")
  assert edges.task == "edges" and edges.train.steps < 100
  with pytest.raises(ValueError, match="factor must be 2 or 4"):
    sr.get_config("factor=8")
  with pytest.raises(ValueError, match="unknown config arg"):
    sr.get_config("speed=3")


@pytest.mark.slow
def test_driver_writes_table_json_and_grid(tmp_path):
  driver = _driver()
  cfg = _load("configs/conditional_inpainting.py",
              "conditional_inpainting").get_config("quick")
  cfg.model.kind = "mlp"
  cfg.model.hidden = (32,)
  cfg.model.emb_dim = 8
  cfg.data.max_train = 64
  cfg.data.n_test = 3
  cfg.train.steps = 3
  cfg.train.log_every = 3
  cfg.sampling.n_steps = 3
  cfg.grid_conditions = 2
  res = driver.run(cfg, str(tmp_path))
  assert set(res["estimators"]) == {"cde", "cdiffe", "ms_cdiffe"}
  for m in res["estimators"].values():
    assert m["consistency"] >= 0 and m["diversity"] > 0
  table = driver.write_table(str(tmp_path))
  assert table.count("inpaint_box") == 3 and "MS-CDiffE" in table
  assert os.path.exists(tmp_path / "inpaint_box_grid.png")
  with open(tmp_path / "inpaint_box.json") as f:
    assert json.load(f)["task"] == "inpaint_box"
  # A y SDE faster than x's is refused when the config forbids it.
  cfg.sde.y_sigma_max = 2 * cfg.sde.x_sigma_max
  with pytest.raises(ValueError, match="faster"):
    driver.run(cfg, str(tmp_path / "bad"))


def test_gaussian_bias_table_falls_with_y_speed(tmp_path):
  driver = _driver()
  text = driver.gaussian_bias_table(str(tmp_path), n=64)
  rows = [line.split("|") for line in text.splitlines()
          if line.startswith("| CDiffE") or line.startswith("| MS-")
          or line.startswith("| CDE")]
  means = [float(r[3]) for r in rows]
  assert rows[0][1].strip() == "CDiffE" and rows[-1][1].strip() == "CDE"
  assert all(a > b for a, b in zip(means, means[1:]))
  assert means[-1] == 0.0 and means[0] > 0.05
