"""Tests for configs/multiscale.py: structure, process and errors (no training)."""

import importlib.util
import os

import pytest

from vdm_jax.multiscale import nonuniform as nu

_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "multiscale.py")


def _load():
  spec = importlib.util.spec_from_file_location("multiscale_config", _PATH)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


@pytest.mark.parametrize("res, levels", [(32, 1), (64, 2), (128, 3)])
def test_configs_build_processes(res, levels):
  cfg_mod = _load()
  uni = cfg_mod.get_config(f"model=uniform,res={res}")
  ms = cfg_mod.get_config(f"model=multiscale,res={res}")
  p_u, p_m = nu.process_from_config(uni.process), nu.process_from_config(ms.process)
  assert p_u.levels == 0 and p_m.levels == levels
  assert len(uni.model.stages) == 1 and len(ms.model.stages) == len(nu.stages(p_m))
  # Same steps per unit time; the coarsest stage runs at 16 px.
  assert uni.sampling.steps_per_unit == ms.sampling.steps_per_unit
  assert res // 2 ** nu.stages(p_m)[-1].first == 16
  # Each stage net's levels fit its resolution and bottom out at 8 px.
  for stage, kw in zip(nu.stages(p_m), ms.model.stages):
    side = res // 2 ** stage.first
    assert side // 2 ** (len(kw["ch_mult"]) - 1) == 8
    assert kw["ch"] % 2 == 0


def test_bad_config_args_raise():
  cfg_mod = _load()
  with pytest.raises(ValueError, match="res must be one of"):
    cfg_mod.get_config("res=48")
  with pytest.raises(ValueError, match="unknown config arg"):
    cfg_mod.get_config("resolution=32")
  with pytest.raises(ValueError, match="model must be"):
    cfg_mod.get_config("model=vanilla")
