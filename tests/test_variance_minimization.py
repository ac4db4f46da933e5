import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules
from vdm_jax import variance_minimization as vm
from vdm_jax.model import VDM
from vdm_jax.models import ScoreMLP


def _setup(schedule, num_steps=0):
  vdm = VDM(schedule=schedule, network=ScoreMLP(hidden=(16,), emb_dim=8,
                                                 zero_init_output=False),
            vocab_size=5, num_steps=num_steps)
  x = jax.random.randint(jax.random.key(0), (8, 3), 0, 5)
  params = jax.jit(vdm.init)(jax.random.key(1), x)
  return vdm, params, x


def _assert_trees_close(a, b, rtol=1e-4):
  """Elementwise closeness, with float32 round-off judged against each leaf's scale."""
  def check(u, v):
    atol = 1e-4 * float(np.max(np.abs(v))) + 1e-7
    np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)
  jax.tree.map(check, a, b)


@pytest.mark.parametrize("num_steps", [0, 10])
def test_variance_rule_matches_direct_gradients(num_steps):
  """Shape params get d mean(L^2); network and endpoints get d mean(L)."""
  vdm, params, x = _setup(schedules.MonotoneNetSchedule(n_features=8), num_steps)
  rng = jax.random.key(2)
  loss, metrics, grads = jax.jit(
      lambda p: vm.vlb_loss_and_grads(vdm, p, rng, x, variance_minimization=True))(params)
  ref_loss, ref_grads = jax.jit(jax.value_and_grad(
      lambda p: vm.vlb_loss(vdm, p, rng, x)[0]))(params)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  _assert_trees_close(grads["network"], ref_grads["network"])
  for name in ("gamma_0", "width"):
    # float32 round-off of sums with large expm1 weights (T = 10).
    np.testing.assert_allclose(grads["schedule"][name], ref_grads["schedule"][name],
                               rtol=1e-3)

  # Direct E[L^2] of the per-example diffusion bpd, by autodiff on the same draws.
  def mean_sq(schedule_params):
    f = vm.losses.encode_discrete(x, vdm.vocab_size)
    draws = vm._draw(vdm, rng, f.shape)
    vals = vm._schedule_outputs(vdm, schedule_params, draws.t)
    diff = vm._per_example_diffusion(vdm, params["network"], vals, f, draws,
                                     train=True, label=None, dtype=jnp.float32)
    return jnp.mean((diff * vm._bpd_scale(x)) ** 2)

  sq_grads = jax.jit(jax.grad(mean_sq))(params["schedule"])
  _assert_trees_close(grads["schedule"]["shape"], sq_grads["shape"])
  # And it really is a different gradient from the plain VLB one.
  diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                       grads["schedule"]["shape"], ref_grads["schedule"]["shape"])
  assert max(jax.tree.leaves(diffs)) > 1e-6
  assert np.isfinite(float(metrics["diffusion_bpd_var"]))


def test_without_rule_all_gradients_are_the_vlb_gradient():
  vdm, params, x = _setup(schedules.MonotoneNetSchedule(n_features=8))
  rng = jax.random.key(3)
  _, _, grads = jax.jit(lambda p: vm.vlb_loss_and_grads(
      vdm, p, rng, x, variance_minimization=False))(params)
  ref = jax.jit(jax.grad(lambda p: vm.vlb_loss(vdm, p, rng, x)[0]))(params)
  _assert_trees_close(grads, ref)


@pytest.mark.parametrize("schedule", [schedules.FixedLinearSchedule(),
                                      schedules.LearnedLinearSchedule()])
def test_schedules_without_shape_params(schedule):
  vdm, params, x = _setup(schedule)
  rng = jax.random.key(4)
  _, _, grads = jax.jit(lambda p: vm.vlb_loss_and_grads(vdm, p, rng, x))(params)
  ref = jax.jit(jax.grad(lambda p: vm.vlb_loss(vdm, p, rng, x)[0]))(params)
  _assert_trees_close(grads, ref)


def test_metrics_add_up():
  vdm, params, x = _setup(schedules.FixedLinearSchedule())
  loss, m = jax.jit(lambda p: vm.vlb_loss(vdm, p, jax.random.key(5), x))(params)
  np.testing.assert_allclose(loss, m["diffusion_bpd"] + m["prior_bpd"] + m["recon_bpd"], rtol=1e-6)
  # Bins 0.4 apart at gamma_0 = -13.3: reconstruction is essentially free.
  assert m["recon_bpd"] >= 0 and m["prior_bpd"] > 0


def test_bfloat16_network_under_jit_grad_and_vmap():
  """Mixed precision: bf16 network compute, float32 params and loss, finite grads."""
  from vdm_jax.models import UNet
  vdm32 = VDM(schedule=schedules.LearnedLinearSchedule(),
              network=UNet(ch=8, n_blocks=1, dropout=0.0, fourier_exponents=(3,)),
              vocab_size=17)
  vdm16 = VDM(schedule=vdm32.schedule,
              network=UNet(ch=8, n_blocks=1, dropout=0.0, fourier_exponents=(3,),
                           dtype=jnp.bfloat16), vocab_size=17)
  x = jax.random.randint(jax.random.key(0), (4, 4, 4, 1), 0, 17)
  # Leave the identity init.
  params = jax.jit(lambda k: jax.tree.map(lambda p: p + 0.01, vdm32.init(k, x)))(
      jax.random.key(1))
  rng = jax.random.key(2)
  loss32, _ = jax.jit(lambda p: vm.vlb_loss(vdm32, p, rng, x))(params)
  loss16, grads = jax.jit(jax.value_and_grad(
      lambda p: vm.vlb_loss(vdm16, p, rng, x, dtype=jnp.bfloat16)[0]))(params)
  assert loss16.dtype == jnp.float32
  np.testing.assert_allclose(loss16, loss32, rtol=0.05)
  assert all(g.dtype == jnp.float32 and np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  # Per-example terms vmap over independent keys.
  keys = jax.random.split(rng, 3)
  per_key = jax.jit(jax.vmap(lambda k: vdm32.vlb_terms(params, k, x).total))(keys)
  assert per_key.shape == (3, 4) and np.all(np.isfinite(per_key))


def test_out_of_range_pixel_fails_inside_a_checkified_jitted_step():
  """What a training engine gets by compiling `vdm_jax.checkified(step)`."""
  import vdm_jax
  vdm, params, x = _setup(schedules.MonotoneNetSchedule(n_features=8))
  step = jax.jit(vdm_jax.checkified(
      lambda p, x: vm.vlb_loss_and_grads(vdm, p, jax.random.key(6), x)[0]))
  err, loss = step(params, x)
  assert err.get() is None and np.isfinite(loss)
  err, loss = step(params, x.at[3, 1].set(-1))
  assert np.isnan(loss)  # never the finite loss a wrapped-around bin would give
  with pytest.raises(ValueError, match=r"x_int must lie in \[0, 4\] for vocab_size=5, got min -1 and max 4"):
    err.throw()
