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
  state = wgan.init_gan_state(gp, cp, go, co)
  step = jax.jit(wgan.make_wgan_step(gen, critic, mode=mode, z_dim=2,
                                     batch_size=8, n_critic=2, g_opt=go,
                                     c_opt=co))
  data = jax.random.normal(k, (50, 2)) + 3.0
  state, metrics = step(state, (data,), k)
  assert np.isfinite(metrics["critic_gap"]) and bool(metrics["finite"])
  assert int(state.step) == 1 and int(state.gen.step) == 1
  assert int(state.critic.step) == 2  # n_critic critic updates per generator step
  if mode == "clip":
    leaves = jax.tree.leaves(state.critic.params)
    assert max(float(jnp.max(jnp.abs(l))) for l in leaves) <= 0.01 + 1e-7
  with pytest.raises(ValueError, match="mode"):
    wgan.make_wgan_step(gen, critic, mode="sn", z_dim=2, batch_size=8,
                        g_opt=go, c_opt=co)


def test_critic_only_step_leaves_generator_unchanged():
  gen, critic = wgan.MLP((8,), out=2), wgan.MLP((8,), out=1)
  k = jax.random.key(1)
  go, co = wgan.optimizers("wgan_gp")
  state = wgan.init_gan_state(gen.init(k, jnp.zeros((1, 2))),
                              critic.init(k, jnp.zeros((1, 2))), go, co)
  step = jax.jit(wgan.make_wgan_step(gen, critic, mode="gp", z_dim=2,
                                     batch_size=8, n_critic=1, g_opt=go,
                                     c_opt=co, update_generator=False))
  new, _ = step(state, (jnp.ones((20, 2)),), k)
  for a, b in zip(jax.tree.leaves(new.gen.params), jax.tree.leaves(state.gen.params)):
    np.testing.assert_array_equal(a, b)
  assert int(new.critic.step) == 1


@pytest.mark.parametrize("method", wgan.METHODS)
def test_fit_runs_every_method_and_evaluates(method):
  if method == "minibatch_ot":
    pytest.importorskip("ot")
  data = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32) + 2.0
  seen = []
  _, _, state = wgan.fit(method, data, steps=4, batch_size=16, seed=0, n_critic=1,
                         eval_fn=lambda s, k: seen.append(k) or {"k": float(k)},
                         eval_every=2)
  assert seen == [0, 2, 4]
  assert int(state.step) == 4
  with pytest.raises(ValueError, match="method"):
    wgan.fit("wgan_sn", data, steps=1, batch_size=4, seed=0)
