"""Configs built on a base config may only override its fields, not add new ones.

A misspelt field (say `encoder.latent_dim` for `encoder.latent_dims`) is
added silently by ml_collections and then ignored by the experiment; comparing
key sets catches it.
"""

import importlib

import pytest


def _keys(cfg, prefix=""):
  out = set()
  for name, value in cfg.items():
    out.add(prefix + name)
    if hasattr(value, "items"):
      out |= _keys(value, prefix + name + ".")
  return out


def _base(name):
  module = importlib.import_module(f"configs.{name}")
  if hasattr(module, "get_default_config"):
    return module.get_default_config()
  return module.get_config()


@pytest.mark.parametrize("derived,arg,base", [
    ("vdm_cifar10", None, "default"),
    ("vdm_digits", None, "default"),
    ("vdm_imagenet32", None, "default"),
    ("vdm_tiny", None, "default"),
    ("conditional_edges", None, "conditional_default"),
    ("conditional_inpainting", None, "conditional_default"),
    ("conditional_sr", None, "conditional_default"),
    ("score_vae_tfds", "cifar10", "score_vae_digits"),
    ("score_vae_tfds", "celeb_a", "score_vae_digits"),
])
def test_derived_config_adds_no_field(derived, arg, base):
  module = importlib.import_module(f"configs.{derived}")
  cfg = module.get_config(arg) if arg else module.get_config()
  extra = _keys(cfg) - _keys(_base(base))
  assert not extra, f"configs/{derived}.py adds fields its base lacks: {sorted(extra)}"
