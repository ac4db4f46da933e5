"""WGAN study pieces: gradient penalty, clipping, mini-batch OT cost, one step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vdm_jax.metrics import discrepancy
from vdm_jax.studies import wgan


def test_gradient_penalty_zero_for_unit_lipschitz_linear_critic():
  w = jnp.array([0.6, 0.8])
  f = lambda x: (x @ w)[:, None]
  r = jax.random.normal(jax.random.key(0), (16, 2))
  gp = jax.jit(lambda a, b, u: wgan.gradient_penalty(f, a, b, u))(
      r, r + 1.0, jnp.linspace(0, 1, 16))
  np.testing.assert_allclose(gp, 0.0, atol=1e-6)
  f2 = lambda x: (x @ (2 * w))[:, None]  # Lipschitz 2: penalty (2 - 1)^2 = 1.
  np.testing.assert_allclose(wgan.gradient_penalty(f2, r, r, jnp.ones(16)), 1.0,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="same shape"):
    wgan.gradient_penalty(f, r, r[:3], jnp.ones(16))


def test_clip_and_matched_cost_equals_exact_w1():
  pytest.importorskip("ot")
  p = {"a": jnp.array([-1.0, 0.005, 2.0])}
  np.testing.assert_allclose(wgan.clip_weights(p, 0.01)["a"], [-0.01, 0.005, 0.01])
  r = np.random.default_rng(0)
  x, y = r.normal(size=(40, 3)).astype(np.float32), r.normal(size=(40, 3)).astype(np.float32)
  perm = discrepancy.ot_assignment(x, y)
  np.testing.assert_allclose(wgan.matched_cost(jnp.asarray(x), jnp.asarray(y[perm])),
                             discrepancy.exact_wasserstein(x, y), rtol=1e-4)


@pytest.mark.parametrize("mode", wgan.MODES)
def test_wgan_step_runs_and_clips(mode):
  gen, critic = wgan.MLP((16,), out=2), wgan.MLP((16,), out=1)
  k = jax.random.key(0)
  gp = gen.init(k, jnp.zeros((1, 2)))
  cp = critic.init(k, jnp.zeros((1, 2)))
  go, co = optax.adam(1e-3), optax.adam(1e-3)
  state = wgan.GANState(gp, cp, go.init(gp), co.init(cp))
  step = jax.jit(wgan.make_wgan_step(gen, critic, mode=mode, z_dim=2,
                                     batch_size=8, n_critic=2, g_opt=go,
                                     c_opt=co))
  data = jax.random.normal(k, (50, 2)) + 3.0
  state, gap = step(state, k, data)
  assert np.isfinite(gap)
  if mode == "clip":
    leaves = jax.tree.leaves(state.c_params)
    assert max(float(jnp.max(jnp.abs(l))) for l in leaves) <= 0.01 + 1e-7
  with pytest.raises(ValueError, match="mode"):
    wgan.make_wgan_step(gen, critic, mode="sn", z_dim=2, batch_size=8,
                        g_opt=go, c_opt=co)
