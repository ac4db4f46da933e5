import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import gaussian_oracle as oracle
from vdm_jax import losses
from vdm_jax import sampling
from vdm_jax import schedules

GAMMA = lambda t: schedules.linear_gamma(t, gamma_min=-13.3, gamma_max=5.0)


def test_ancestral_sampling_with_optimal_denoiser_recovers_gaussian():
  # gamma_1 = 5 leaves alpha_1 = 0.08: z_1 ~ N(0, 1) is a (tiny) prior mismatch.
  z0 = jax.jit(lambda r: sampling.ancestral_sample(
      r, (20000, 1), gamma_fn=GAMMA, eps_fn=oracle.optimal_eps, num_steps=200))(
          jax.random.key(0))
  x = np.asarray(z0 / schedules.alpha(-13.3))
  assert abs(x.mean() - oracle.MU) < 0.02
  assert abs(x.std() - oracle.S) < 0.02


def test_sampling_is_deterministic_under_rng_and_any_T():
  f = lambda r, T: sampling.ancestral_sample(r, (4, 3), gamma_fn=GAMMA,
                                             eps_fn=oracle.optimal_eps, num_steps=T)
  a, b = f(jax.random.key(1), 7), f(jax.random.key(1), 7)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, f(jax.random.key(2), 7))
  assert f(jax.random.key(1), 1).shape == (4, 3)


def test_generate_point_mass_model_returns_its_value():
  vocab, k = 17, 11
  c_k = float(losses.bin_centres(vocab)[k])

  def eps_fn(z, gamma):
    g = gamma[:, None, None, None]
    return (z - schedules.alpha(g) * c_k) / schedules.sigma(g)

  x = sampling.generate(jax.random.key(0), (3, 4, 4, 1), gamma_fn=GAMMA, eps_fn=eps_fn,
                        vocab_size=vocab, num_steps=50)
  assert x.dtype == jnp.int32
  np.testing.assert_array_equal(x, k)


def test_reverse_step_with_eta1_matches_posterior_variance():
  """p(z_s|z_t) has variance sigma_s^2 c, c = -expm1(gamma_s - gamma_t)."""
  z = jnp.zeros((50000, 1))
  out = sampling.reverse_step(jax.random.key(3), z, 0.0, -1.0, jnp.zeros_like(z))
  c = -np.expm1(-1.0)
  np.testing.assert_allclose(np.var(out), float(schedules.sigma2(-1.0)) * c, rtol=0.03)


def test_bad_num_steps():
  with pytest.raises(ValueError, match="num_steps"):
    sampling.ancestral_sample(jax.random.key(0), (1, 1), gamma_fn=GAMMA,
                              eps_fn=oracle.optimal_eps, num_steps=0)


_DECREASING = lambda t: 5.0 - 18.3 * t  # noqa: E731  (a reversed schedule)


def test_decreasing_schedule_is_an_error_not_a_black_image():
  """It used to give NaN latents that `decode` mapped to pixel 0 everywhere."""
  import vdm_jax
  gen = lambda rng: sampling.generate(rng, (2, 3), gamma_fn=_DECREASING,  # noqa: E731
                                      eps_fn=oracle.optimal_eps, vocab_size=4, num_steps=5)
  with pytest.raises(ValueError, match=r"gamma_fn must be increasing in t"):
    gen(jax.random.key(0))
  pixels = jax.jit(gen)(jax.random.key(0))
  assert np.all(np.asarray(pixels) == -1), "plain jit must not return a valid-looking image"
  with pytest.raises(ValueError, match=r"gamma_fn must be increasing in t"):
    vdm_jax.checked(gen)(jax.random.key(0))


def test_reverse_step_rejects_gamma_s_above_gamma_t():
  z = jnp.zeros((2, 3))
  with pytest.raises(ValueError, match=r"gamma_t must be >= gamma_s .*got min\(gamma_t - gamma_s\) = -1.0"):
    sampling.reverse_step(jax.random.key(0), z, -1.0, 0.0, jnp.zeros_like(z))


def test_decode_rejects_nan_latents_and_degenerate_vocab():
  z = jnp.zeros((2, 3)).at[0, 1].set(jnp.nan)
  with pytest.raises(ValueError, match=r"z_0 must be finite, got 1 non-finite values"):
    sampling.decode(jax.random.key(0), z, -13.3, 4)
  with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 2, got 1\."):
    sampling.decode(jax.random.key(0), jnp.zeros((2, 3)), -13.3, 1)
