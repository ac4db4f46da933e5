"""Sharpness and Frechet-distance metrics of ScoreVAE reconstructions."""

import numpy as np
import pytest
import scipy.ndimage

from vdm_jax.score_vae import metrics


def test_high_frequency_energy_blur_and_parseval():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(6, 8, 8, 1))
  blurred = scipy.ndimage.uniform_filter(x, size=(1, 3, 3, 1), mode="wrap")
  assert metrics.high_frequency_ratio(blurred, x) < 0.3
  np.testing.assert_allclose(metrics.high_frequency_ratio(x, x), 1.0)
  # Parseval: with the tiniest cutoff all but the DC (removed) term is kept.
  e = metrics.high_frequency_energy(x, cutoff=1e-6)
  xc = x - x.mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(e, np.mean(xc**2, axis=(1, 2, 3)), rtol=1e-10)
  # Constant images have no high-frequency energy.
  np.testing.assert_allclose(metrics.high_frequency_energy(np.ones((2, 8, 8, 1))), 0.0)


def test_frechet_distance_closed_form():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(20000, 2))
  b = 2.0 * rng.normal(size=(20000, 2)) + np.array([1.0, 0.0])
  # Gaussians N(0, I) and N((1, 0), 4 I): 1 + 2 * (1 + 4 - 2 * 2) = 3.
  assert metrics.frechet_distance(a, b) == pytest.approx(3.0, abs=0.1)
  assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
  # Fewer samples than features (singular covariances) stays finite and >= 0.
  small = rng.normal(size=(5, 8))
  assert 0.0 <= metrics.frechet_distance(small, small + 0.1) < 1.0
  with pytest.raises(ValueError, match="feature sizes"):
    metrics.frechet_distance(a, b[:, :1])


def test_reconstruction_metrics_of_the_images_themselves():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, size=(40, 8, 8, 1))
  feats = lambda v: np.asarray(v).reshape(len(v), -1)[:, :6]
  labels = np.arange(40) % 3
  classify = lambda v: labels[:len(v)]
  row = metrics.reconstruction_metrics(
      x, x, features=feats, reference_features=feats(x), labels=labels,
      classify=classify)
  assert row["ssim"] == pytest.approx(1.0) and row["l2"] == 0.0
  assert row["hf_ratio"] == pytest.approx(1.0)
  assert row["frechet"] == pytest.approx(0.0, abs=1e-6)
  assert row["class_acc"] == 1.0 and "nonfinite_frac" not in row
  bad = x.copy()
  bad[0, 0, 0, 0] = np.nan
  bad[1] = 3.0                       # clipped to 1
  with pytest.warns(UserWarning, match="non-finite"):
    row = metrics.reconstruction_metrics(bad, x, features=feats,
                                         reference_features=feats(x))
  assert row["nonfinite_frac"] == pytest.approx(1 / x.size)
  assert "class_acc" not in row
