"""The ScoreVAE experiment's data scaling, VDM-prior checks and comparison logic."""

import importlib.util
import os

import numpy as np
import pytest

from experiments import score_vae

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _experiment():
  return score_vae


def _config(arg=None):
  spec = importlib.util.spec_from_file_location(
      "_score_vae_config", os.path.join(_ROOT, "configs/score_vae_digits.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize("scaling", ["unit", "bins"])
def test_scaling_round_trip_to_pixels(scaling):
  exp = _experiment()
  x = np.arange(17).reshape(1, 17, 1, 1)
  to_model, to_pixels = exp.make_scaling(scaling, 17)
  np.testing.assert_allclose(to_pixels(to_model(x)), x / 16 * 2 - 1, atol=1e-6)
  if scaling == "bins":   # VDM bin centres, vdm_jax.losses.encode_discrete
    np.testing.assert_allclose(to_model(x), 2 * (x + 0.5) / 17 - 1, atol=1e-6)
  with pytest.raises(ValueError, match="data.scaling"):
    exp.make_scaling("bytes", 17)


def test_vdm_prior_rejects_unit_scaling_and_missing_checkpoint(tmp_path):
  exp = _experiment()
  cfg = _config()
  cfg.prior.vdm_config = os.path.join(_ROOT, "configs/vdm_digits.py")
  cfg.prior.vdm_workdir = str(tmp_path)
  cfg.prior.train_if_missing = False
  cfg.data.scaling = "unit"
  with pytest.raises(ValueError, match="data.scaling='bins'"):
    exp.load_vdm_prior(cfg, (8, 8, 1), 17)
  with pytest.raises(ValueError, match="grey levels"):
    exp.load_vdm_prior(cfg, (8, 8, 1), 256)
  cfg.data.scaling = "bins"
  with pytest.raises(ValueError, match="no VDM checkpoint"):
    exp.load_vdm_prior(cfg, (8, 8, 1), 17)


def test_compare_reads_sharper_at_comparable_distortion():
  exp = _experiment()
  row = lambda model, psnr, hf, fd, kl: dict(model=model, psnr_db=psnr,
                                             hf_ratio=hf, frechet=fd, kl_nats=kl)
  rows = {
      "sv": row("ScoreVAE", 14.0, 0.95, 9.0, 40.0),
      "vae_blurry_close": row("Gaussian VAE", 14.8, 0.6, 12.0, 5.0),
      "vae_far_better": row("Gaussian VAE", 20.0, 0.85, 3.0, 38.0),
      "vae_worse": row("Gaussian VAE", 12.0, 0.5, 20.0, 2.0),
  }
  (c,) = exp.compare(rows, 1.0)
  assert c["vae_within_tol"] == ["vae_blurry_close", "vae_worse"]
  assert c["sharper_than_all"] and c["lower_frechet_than_all"]
  assert c["matched_rate_vae"] == "vae_far_better"
  rows["vae_sharp_close"] = row("Gaussian VAE", 14.5, 0.97, 8.0, 6.0)
  (c,) = exp.compare(rows, 1.0)
  assert not c["sharper_than_all"] and not c["lower_frechet_than_all"]


@pytest.mark.parametrize("arg", ["cifar10", "celeb_a"])
def test_tfds_config_uses_paper_latents_and_a_dsm_prior(arg):
  # Misspelt fields are caught for every derived config in test_config_overrides.
  from configs import score_vae_tfds  # pylint: disable=g-import-not-at-top
  cfg = score_vae_tfds.get_config(arg)
  k = 384 if arg == "cifar10" else 512
  assert tuple(cfg.encoder.latent_dims) == (k,)
  assert tuple(cfg.train.scorevae_latent_dims) == (k,)
  # A tfds prior is trained here by DSM: unit scaling, not VDM bin centres.
  assert cfg.prior.source == "dsm" and cfg.data.scaling == "unit"
