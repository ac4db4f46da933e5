"""Tasks, metrics and the exact Gaussian super-resolution posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.conditional import gaussian
from vdm_jax.conditional import metrics
from vdm_jax.conditional import tasks
from vdm_jax.data import digits_arrays
from vdm_jax.sde import samplers
from vdm_jax.sde import sdes


@pytest.fixture(scope="module")
def digits():
  images, _ = digits_arrays("test")
  return tasks.digits_to_images(images[:16])


def test_super_resolution_operator(digits):
  for f in (2, 4):
    task = tasks.make_task(f"sr{f}")
    y = task.observe(digits, None)
    assert y.shape == digits.shape
    # A = U avgpool is an orthogonal projection: idempotent, and it keeps means.
    np.testing.assert_allclose(task.observe(y, None), y, atol=1e-6)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), digits.mean(axis=(1, 2)),
                               atol=1e-6)
    low = tasks.downsample(digits, f)
    assert low.shape == (16, 8 // f, 8 // f, 1)
    np.testing.assert_allclose(tasks.resize_condition(low, digits.shape), y)
  with pytest.raises(ValueError, match="factor must be 2, 4 or 8"):
    tasks.super_resolution(3)
  with pytest.raises(ValueError, match="not a multiple"):
    tasks.downsample(jnp.zeros((1, 6, 6, 1)), 4)
  with pytest.raises(ValueError, match="one integer up-sampling factor"):
    tasks.resize_condition(jnp.zeros((1, 3, 3, 1)), (1, 8, 8, 1))
  with pytest.raises(ValueError, match="unknown task"):
    tasks.make_task("colorize")


def test_inpainting_masks_and_observation(digits):
  rng = np.random.default_rng(0)
  task = tasks.make_task("inpaint_box")
  y, mask = task.make_pairs(digits, rng)
  assert y.shape == digits.shape[:3] + (2,) and mask.shape == digits.shape[:3] + (1,)
  np.testing.assert_array_equal((1 - mask).sum(axis=(1, 2, 3)), 16.0)  # 4x4 box
  np.testing.assert_allclose(y[..., :1], digits * mask)
  np.testing.assert_allclose(y[..., 1:], 2 * mask - 1)
  _, mask_r = tasks.make_task("inpaint_random").make_pairs(digits, rng)
  assert 0.4 < 1 - mask_r.mean() < 0.6
  with pytest.raises(ValueError, match="mask must be 'box' or 'random'"):
    tasks.inpainting("stripes")


def test_ground_truth_is_perfectly_consistent_and_metrics_have_closed_forms(digits):
  rng = np.random.default_rng(1)
  for name in ("sr2", "sr4", "inpaint_box", "inpaint_random", "edges"):
    task = tasks.make_task(name)
    y, aux = task.make_pairs(digits, rng)
    np.testing.assert_allclose(
        metrics.consistency(digits, y, task.observe, aux), 0.0, atol=1e-6)
  edges = tasks.make_task("edges").observe(digits, None)
  assert set(np.unique(edges)) <= {-1.0, 1.0} and (edges > 0).mean() > 0.1
  delta = 0.1
  np.testing.assert_allclose(metrics.psnr(digits + delta, digits),
                             10 * np.log10(4.0 / delta**2), rtol=1e-6)
  np.testing.assert_allclose(metrics.ssim(digits, digits), 1.0, rtol=1e-6)
  other = np.roll(digits, 1, axis=0)  # a different digit for every image
  assert np.mean(metrics.ssim(other, digits)) < 0.6
  samples = np.stack([digits + delta, digits - delta])
  np.testing.assert_allclose(metrics.diversity(samples), delta * np.sqrt(2),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="K >= 2"):
    metrics.diversity(samples[:1])
  with pytest.raises(ValueError, match="same shape"):
    metrics.psnr(digits[:2], digits[:3])


def _sr_gaussian_problem(side=4, factor=2, noise=0.05):
  """Smooth Gaussian images with y = avgpool_2(x) + noise; A from tasks.downsample."""
  d = side * side
  basis = jnp.eye(d).reshape(d, side, side, 1)
  a = np.asarray(tasks.downsample(basis, factor)).reshape(d, -1).T  # [Dy, Dx]
  ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
  pos = np.stack([ii.ravel(), jj.ravel()], -1)
  dist2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
  cov = 0.5 * np.exp(-dist2 / (2 * 1.5**2)) + 0.05 * np.eye(d)
  return gaussian.make_linear_gaussian(np.zeros(d), cov, a,
                                       noise**2 * np.eye(a.shape[0]))


@pytest.mark.slow
def test_exact_posterior_sr_samples_are_consistent_with_y():
  """Reverse SDE with the exact CDE score samples p(x|y): A x_hat ~ y within noise."""
  noise = 0.05
  p = _sr_gaussian_problem(noise=noise)
  x, y = gaussian.sample(p, jax.random.key(0), 1)
  sde = sdes.VESDE(sigma_min=0.01, sigma_max=20.0)
  n = 2000

  def score(x_t, t):
    a, s = sde.marginal_coeffs(t)
    return gaussian.conditional_score(p, x_t, jnp.broadcast_to(y, (n, 4)),
                                      x_scale=a, x_std=s)

  draw = jax.jit(lambda r: samplers.sample_reverse(
      r, sde.reverse(score), sde.prior_sample(jax.random.fold_in(r, 1), (n, 16)),
      n_steps=300, predictor="reverse_diffusion")[0])
  samples = np.asarray(draw(jax.random.key(2)))
  m0, c0 = gaussian.posterior(p, y)
  np.testing.assert_allclose(samples.mean(0), m0[0], atol=0.05)
  np.testing.assert_allclose(np.cov(samples.T), c0, atol=0.05)
  # Consistency with the task's own operator and metric, in image form.
  task = tasks.make_task("sr2")
  x_hat = samples.reshape(n, 4, 4, 1)
  y_img = np.asarray(tasks.resize_condition(
      jnp.broadcast_to(y.reshape(1, 2, 2, 1), (n, 2, 2, 1)), x_hat.shape))
  rms = metrics.consistency(x_hat, y_img, task.observe)
  a = np.asarray(p.a)
  expected = (np.sum((a @ np.asarray(m0[0]) - np.asarray(y[0])) ** 2)
              + np.trace(a @ np.asarray(c0) @ a.T)) / 4
  np.testing.assert_allclose(np.mean(rms**2), expected, rtol=0.15)
  assert np.sqrt(np.mean(rms**2)) < 2 * noise
  # Without the condition (prior samples) A x is far from y.
  prior = np.asarray(gaussian.sample(p, jax.random.key(3), n)[0]).reshape(n, 4, 4, 1)
  assert np.mean(metrics.consistency(prior, y_img, task.observe)) > 5 * noise


def test_digits_to_images_rejects_values_beyond_the_digits_grey_levels():
  """8-bit images used to map to values up to 30.9, far outside [-1, 1]."""
  with pytest.raises(ValueError, match=r"images_uint8 \(digits grey levels\) must lie in "
                                       r"\[0, 16\] for vocab_size=17, got min 0 and max 255"):
    tasks.digits_to_images(np.array([[[[0]], [[255]]]], np.uint8))
