"""Tests for vdm_jax/compression/bitsback.py: exact round trips and rates against the -ELBO."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules
from vdm_jax.compression import bitsback
from vdm_jax.compression import chain as chain_lib
from vdm_jax.compression import elbo
from vdm_jax.compression import toy_model
from vdm_jax.data import digits_arrays


def _round_trip(images, eps_fn, gamma_fn, vocab_size, num_steps, precision):
  ch = chain_lib.make_chain(gamma_fn, num_steps=num_steps, latent_precision=precision)
  payload, prefix = bitsback.encode_stream(images, eps_fn=eps_fn, chain=ch, vocab_size=vocab_size)
  out = bitsback.decode_stream(payload, prefix, num_images=images.shape[0],
                               image_shape=images.shape[1:], eps_fn=eps_fn, chain=ch,
                               vocab_size=vocab_size)
  np.testing.assert_array_equal(out, images)
  return payload, prefix


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_random_models(seed):
  rng = np.random.default_rng(seed)
  vocab = int(rng.integers(3, 40))
  images = rng.integers(0, vocab, (12, 3, 2, 2))
  model = toy_model.init_toy_vdm((3, 2, 2), vocab_size=vocab, hidden=(16,), seed=seed,
                                 random_output=True)
  _round_trip(images, model.eps_fn, model.gamma_fn, vocab, num_steps=int(rng.integers(1, 6)),
              precision=int(rng.integers(0, 6)))


def test_round_trip_with_escapes():
  # A wildly wrong model (eps_hat = 40): latents land far outside p's window and go
  # through the escape code; decoding must still be exact.
  images = np.random.default_rng(0).integers(0, 4, (5, 3))
  eps_fn = lambda z, g: jnp.full_like(z, 40.0)
  ch = chain_lib.make_chain(schedules.linear_gamma, num_steps=3, latent_precision=2)
  _round_trip(images, eps_fn, schedules.linear_gamma, 4, num_steps=3, precision=2)
  assert ch.num_steps == 3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_trained_tiny_model(seed):
  x_train, _ = digits_arrays("train")
  x_test, _ = digits_arrays("test")
  model = toy_model.train_toy_vdm(x_train, vocab_size=17, num_steps=6, train_steps=40,
                                  hidden=(32,), seed=seed)
  x = x_test[seed * 30:(seed + 1) * 30]
  _round_trip(x, model.eps_fn, model.gamma_fn, 17, num_steps=6, precision=3)


def _oracle(pi):
  """The exact eps_hat for iid pixels with categorical law `pi` (Bayes denoiser)."""
  vocab = pi.shape[0]
  centres = (2.0 * jnp.arange(vocab) + 1.0) / vocab - 1.0

  def eps_fn(z, gamma):
    g = gamma.reshape((-1,) + (1,) * (z.ndim - 1))[..., None]
    a, s = jnp.sqrt(jax.nn.sigmoid(-g)), jnp.sqrt(jax.nn.sigmoid(g))
    logw = jnp.log(pi) - 0.5 * (z[..., None] / a - centres) ** 2 * jnp.exp(-g)
    x_hat = (jax.nn.softmax(logw, -1) * centres).sum(-1)
    return (z - a[..., 0] * x_hat) / s[..., 0]

  return eps_fn


_PI = jnp.array([0.6, 0.25, 0.1, 0.05])
_GAMMA = lambda t: schedules.linear_gamma(t, gamma_min=-7.0, gamma_max=6.0)


def _oracle_nelbo_bits(num_steps, dim):
  x = jnp.asarray(np.random.default_rng(1).choice(4, (4000, dim), p=np.asarray(_PI)))
  terms = jax.jit(lambda k: elbo.discrete_time_nelbo(
      k, x, eps_fn=_oracle(_PI), gamma_fn=_GAMMA, vocab_size=4, num_steps=num_steps))(
          jax.random.key(0))
  return float(terms.total.mean()) / np.log(2)


@pytest.mark.slow
def test_rate_of_known_distribution_matches_entropy_bound():
  # Samples from a known categorical law, coded with its exact Bayes denoiser: the
  # measured rate must match the model's -ELBO (which upper-bounds the entropy and
  # tends to it as T grows) and sit above the entropy.
  dim, n, steps = 8, 300, 24
  entropy = float(-(_PI * jnp.log2(_PI)).sum()) * dim
  x = np.random.default_rng(0).choice(4, (n, dim), p=np.asarray(_PI))
  payload, prefix = _round_trip(x, _oracle(_PI), _GAMMA, 4, num_steps=steps, precision=2)
  stock_used = bitsback.num_initial_words(dim) - prefix
  rate = (payload.size - stock_used) * 32 / n
  bound = _oracle_nelbo_bits(steps, dim)
  np.testing.assert_allclose(rate, bound, rtol=0.05)
  assert rate > entropy
  # The bound itself closes in on the entropy as T grows (E L_T decreases to L_inf).
  finer = _oracle_nelbo_bits(8 * steps, dim)
  assert entropy < finer < bound
  assert finer - entropy < 0.5 * (bound - entropy)


@pytest.mark.slow
def test_overhead_per_image_shrinks_with_stream_length():
  # The one-off cost (funding images, initial stock) is amortised: the net rate
  # per image of a long stream converges to the -ELBO.
  dim, steps = 8, 16
  bound = _oracle_nelbo_bits(steps, dim)
  x = np.random.default_rng(3).choice(4, (320, dim), p=np.asarray(_PI))
  gaps = []
  for n in (20, 320):
    payload, prefix = _round_trip(x[:n], _oracle(_PI), _GAMMA, 4, num_steps=steps, precision=2)
    gaps.append(payload.size * 32 / n - bound)
  assert gaps[1] < gaps[0]
  assert abs(gaps[1]) < 0.06 * bound


def test_encode_rejects_bad_images():
  ch = chain_lib.make_chain(schedules.linear_gamma, num_steps=2, latent_precision=2)
  eps_fn = lambda z, g: z
  with pytest.raises(ValueError, match=r"\[0, 3\]"):
    bitsback.encode_stream(np.full((2, 3), 4), eps_fn=eps_fn, chain=ch, vocab_size=4)
  with pytest.raises(TypeError, match="integers"):
    bitsback.encode_stream(np.zeros((2, 3)), eps_fn=eps_fn, chain=ch, vocab_size=4)
  with pytest.raises(ValueError, match="non-finite"):
    bitsback.encode_stream(np.zeros((40, 3), int), eps_fn=lambda z, g: z * jnp.nan, chain=ch,
                           vocab_size=4)


def test_streams_reject_a_single_value_vocabulary():
  """vocab_size = 1 used to fail deep inside with a bare ZeroDivisionError."""
  ch = chain_lib.make_chain(schedules.linear_gamma, num_steps=2, latent_precision=2)
  with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 2, got 1\."):
    bitsback.encode_stream(np.zeros((2, 3), int), eps_fn=lambda z, g: z, chain=ch,
                           vocab_size=1)
  with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 2, got 1\."):
    bitsback.decode_stream(np.zeros(4, np.uint32), 0, num_images=1, image_shape=(3,),
                           eps_fn=lambda z, g: z, chain=ch, vocab_size=1)
