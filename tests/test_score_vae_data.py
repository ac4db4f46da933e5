"""ScoreVAE data: the bundled digits as integer pixels and the model-space scalings."""

import numpy as np
import pytest

from vdm_jax import score_vae


@pytest.mark.parametrize("scaling", ["unit", "bins"])
def test_scaling_round_trip_to_pixels(scaling):
  x = np.arange(17).reshape(1, 17, 1, 1)
  to_model, to_pixels = score_vae.make_scaling(scaling, 17)
  np.testing.assert_allclose(to_pixels(to_model(x)), x / 16 * 2 - 1, atol=1e-6)
  if scaling == "bins":   # VDM bin centres, vdm_jax.losses.encode_discrete
    np.testing.assert_allclose(to_model(x), 2 * (x + 0.5) / 17 - 1, atol=1e-6)
  with pytest.raises(ValueError, match="scaling"):
    score_vae.make_scaling("bytes", 17)


def test_load_images_digits_integer_pixels_and_limits():
  full = score_vae.load_images(source="digits")
  assert full.levels == 17
  assert full.x_train.shape[1:] == full.x_test.shape[1:] == (8, 8, 1)
  for x in (full.x_train, full.x_test):
    assert np.issubdtype(x.dtype, np.integer) and 0 <= x.min() and x.max() <= 16
  assert len(full.y_train) == len(full.x_train)
  cut = score_vae.load_images(source="digits", max_train=10, max_test=5)
  np.testing.assert_array_equal(cut.x_train, full.x_train[:10])
  np.testing.assert_array_equal(cut.y_test, full.y_test[:5])
  with pytest.raises(ValueError, match="source"):
    score_vae.load_images(source="mnist")
