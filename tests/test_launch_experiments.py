"""The study experiments run from their configs, as `launch.py` runs them.

Each config's quick form, shrunk further by field overrides (as
``--config.<field>=...`` would), goes through ``experiments.<name>.run(config,
workdir)``; one goes through ``launch.py``'s flags and ``main``
(tests/test_launch.py). The checks are that
the outputs exist and the summary is sane, not the figures.
"""

import importlib
import json
import os

import numpy as np
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ("toy_2d", "cfg_digits", "imputation_discrepancy", "meta_allocation",
           "wgan_vs_w1", "multiscale")

# Overrides on top of `:quick` that keep each run to seconds.
_TINY = {
    # One sampler (tests/test_sde_samplers.py runs each).
    "toy_2d": dict(steps=20, n_train=512, n_eval=100, n_nll=16, sampler_scale=0.05,
                   samplers=("ddim_eta0",)),
    "cfg_digits": dict(steps=10, chunk=5, per_class=2, sampler_steps=4,
                       guidance_weights=(0.0, 2.0)),
    "imputation_discrepancy": dict(score_steps=20, diffusion_steps=5, resample=1,
                                   max_iter=1, mechanisms=("mcar",)),
    "meta_allocation": dict(steps=5, mc_reps=20, budgets=(20, 50, 100),
                            nonlinear_budgets=(20,), allocations=(2, 5)),
    # One method: tests/test_studies_wgan.py fits every one.
    "wgan_vs_w1": dict(steps=4, log_every=2, n_eval=50, datasets=("ring",),
                       n_critic=1, methods=("wgan_gp",)),
    "multiscale": {"quality.seconds": 1.0, "quality.samples": 16,
                   "quality.classifier_steps": 20, "quality.steps_per_unit": 4},
}


def _config(name, arg="quick"):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  for key, value in _TINY[name].items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  return config


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_name_their_experiment_and_parse_args(name):
  mod = importlib.import_module(f"configs.{name}")
  config = mod.get_config()
  experiment = importlib.import_module(f"experiments.{config.experiment}")
  assert callable(experiment.run)
  quick = mod.get_config("quick")
  assert quick.experiment == config.experiment
  with pytest.raises(ValueError, match="unknown config arg"):
    mod.get_config("nonsense=1")


def test_study_experiments_define_no_flags():
  for name in CONFIGS:
    module = importlib.import_module(f"configs.{name}").get_config().experiment
    with open(os.path.join(_ROOT, "experiments", f"{module}.py")) as f:
      src = f.read()
    for banned in ("absl import flags", "argparse", "app.run", "__main__",
                   "sys.path", "apply_updates", "opt.update"):
      assert banned not in src, (module, banned)


def _outputs(workdir, *names):
  for n in names:
    path = os.path.join(workdir, n)
    assert os.path.isfile(path) and os.path.getsize(path) > 0, path


@pytest.mark.slow
def test_toy_2d(tmp_path):
  from experiments import toy_2d
  s = toy_2d.run(_config("toy_2d"), str(tmp_path))
  _outputs(tmp_path, "table.md", "results.json", "samples.png", "score_field.png")
  assert 0 <= s["ref_energy"] < 1 and np.isfinite(s["model_nll_nats"])
  assert np.isfinite(s["ddim_eta0_energy"]) and s["true_nll_nats"] > 0


def test_toy_2d_unknown_sampler_fails_before_training(tmp_path, monkeypatch):
  from experiments import toy_2d
  monkeypatch.setattr(toy_2d.training, "fit", lambda *a, **k: pytest.fail("trained"))
  config = _config("toy_2d")
  config.samplers = ("ddim_eta0", "euler")
  with pytest.raises(ValueError, match=r"config.samplers must be a non-empty subset of "
                                       r"\('euler_maruyama'.*got \('ddim_eta0', 'euler'\)"):
    toy_2d.run(config, str(tmp_path))
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_cfg_digits(tmp_path):
  from experiments import cfg_digits
  s = cfg_digits.run(_config("cfg_digits"), str(tmp_path))
  _outputs(tmp_path, "table.md", "results.json", "cfg_w0.png", "cfg_w2.png")
  assert 0 <= s["accuracy_w0"] <= 1 and 0 <= s["accuracy_w2"] <= 1
  assert s["real_accuracy"] > 0.9 and np.isfinite(s["final_loss"])


@pytest.mark.slow
def test_meta_allocation(tmp_path):
  from experiments import meta_allocation
  s = meta_allocation.run(_config("meta_allocation"), str(tmp_path))
  _outputs(tmp_path, "table.md", "results.json", "risk_vs_allocation.png",
           "optimal_n_vs_budget.png", "nonlinear_allocation.png")
  assert 11 < s["n_star"] < 20 and len(s["optimal_n"]) == 3
  with open(tmp_path / "results.json") as f:
    assert set(json.load(f)["nonlinear"]) == {"sinusoid", "digits"}


@pytest.mark.slow
def test_wgan_vs_w1(tmp_path):
  pytest.importorskip("ot")
  from experiments import wgan_vs_w1
  s = wgan_vs_w1.run(_config("wgan_vs_w1"), str(tmp_path))
  _outputs(tmp_path, "table.md", "results.json", "curves.png", "critic_vs_w1.png",
           "quality.png", "samples.png")
  w1 = [v for k, v in s.items() if k.startswith("w1_ring_")]
  assert len(w1) == 1 and all(0 < v < 10 for v in w1)
  with open(tmp_path / "results.json") as f:
    assert [r["step"] for r in json.load(f)["logs"]["ring/wgan_gp"]] == [0, 2, 4]
  bad = _config("wgan_vs_w1")
  bad.methods = ("wgan_gp", "gan")
  with pytest.raises(ValueError, match="config.methods must be a non-empty subset"):
    wgan_vs_w1.run(bad, str(tmp_path / "bad"))
  assert not (tmp_path / "bad").exists()
