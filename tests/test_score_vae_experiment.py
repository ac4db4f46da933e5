"""The ScoreVAE experiment's comparison logic and its tfds configs.

The library parts it calls are tested in test_score_vae_data.py,
test_score_vae_prior.py, test_score_vae_training.py and
test_score_vae_evaluation.py."""

import pytest

from experiments import score_vae


def _experiment():
  return score_vae


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
