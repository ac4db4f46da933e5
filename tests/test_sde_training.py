"""The small DSM fit loop and the two-sample distances used by the experiments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax.sde import metrics
from vdm_jax.sde import training


def test_fit_minimises_and_tracks_ema():
  data = 3.0 + jax.random.normal(jax.random.key(0), (512, 2))
  loss_fn = lambda p, rng, x: jnp.sum(jnp.square(x - p["m"]), -1)
  res = training.fit(jax.random.key(1), loss_fn, {"m": jnp.zeros((2,))},
                     (data,), n_steps=400, batch_size=64, learning_rate=0.1,
                     ema_decay=0.99, chunk=100)
  np.testing.assert_allclose(res.params["m"], data.mean(0), atol=0.25)
  np.testing.assert_allclose(res.ema_params["m"], data.mean(0), atol=0.25)
  assert res.losses.shape == (4,) and res.losses[-1] < res.losses[0]


def test_fit_bad_inputs():
  loss_fn = lambda p, rng, x, y: jnp.zeros(x.shape[0])
  with pytest.raises(ValueError, match="leading size"):
    training.fit(jax.random.key(0), loss_fn, {}, (jnp.zeros((4, 2)),
                                                  jnp.zeros((3,))),
                 n_steps=1, batch_size=2)
  with pytest.raises(ValueError, match="ema_decay"):
    training.fit(jax.random.key(0), loss_fn, {}, (jnp.zeros((4, 2)),),
                 n_steps=1, batch_size=2, ema_decay=1.0)


def test_two_sample_distances():
  x = jax.random.normal(jax.random.key(0), (400, 3))
  y = jax.random.normal(jax.random.key(1), (400, 3))
  assert abs(float(metrics.energy_distance(x, x))) < 1e-4
  same = float(metrics.energy_distance(x, y))
  shifted = float(metrics.energy_distance(x, y + 1.0))
  assert 0 <= same < 0.05 < shifted
  assert float(metrics.rbf_mmd2(x, y)) < float(metrics.rbf_mmd2(x, y + 1.0))
  with pytest.raises(ValueError, match="event size"):
    metrics.energy_distance(x, y[:, :2])
