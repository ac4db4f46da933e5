"""`model.dtype=bfloat16`: what runs in bfloat16 and what stays float32.

Mixed precision as the trainer builds it (`vdm_jax.train`): the UNet's
activations, convolutions and matmuls in bfloat16; the parameters, gradients,
optimiser state, EMA, the noise schedule gamma(t) and the VLB (Kingma et al.,
Variational Diffusion Models, arXiv:2107.00630) in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np

from configs import vdm_tiny
from vdm_jax import train
from vdm_jax import variance_minimization as vm


def _setup(dtype, *, concrete=True):
  """(config, vdm, optimizer, state, batch) of vdm_tiny computing in `dtype`.

  `concrete=False` gives the state and batch as shapes and dtypes
  (jax.eval_shape: traced, not compiled nor run), for tests that read dtypes.
  """
  config = vdm_tiny.get_config()
  config.model.dtype = dtype
  vdm = train.build_vdm(config)
  optimizer = train.build_optimizer(config)
  init = lambda key: train.create_train_state(config, vdm, optimizer, key)
  shape = (8, *config.data.image_shape)
  if not concrete:
    state = jax.eval_shape(init, jax.random.key(0))
    batch = {"image": jax.ShapeDtypeStruct(shape, jnp.int32),
             "label": jax.ShapeDtypeStruct((8,), jnp.int32)}
    return config, vdm, optimizer, state, batch
  state = init(jax.random.key(0))
  # Leave the identity initialisation (zero output convs), or the network
  # output is exactly 0 in any precision. On the host: a jitted draw per leaf
  # compiled for seconds.
  rng = np.random.default_rng(1)
  state = state._replace(params=jax.tree.map(
      lambda p: np.asarray(p) + 0.05 * rng.standard_normal(p.shape).astype(p.dtype),
      state.params))
  x = np.random.default_rng(2).integers(0, config.data.vocab_size, shape, np.int32)
  batch = {"image": x, "label": np.zeros((8,), np.int32)}
  return config, vdm, optimizer, state, batch


def _eqns(jaxpr):
  """All equations of a jaxpr, recursing into sub-jaxprs (jit, custom_vjp, scan...)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for v in (value if isinstance(value, (tuple, list)) else (value,)):
        sub = getattr(v, "jaxpr", v)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, "eqns"):
          yield from _eqns(sub)


def _floating_dtypes(tree):
  return {x.dtype for x in jax.tree.leaves(tree)
          if jnp.issubdtype(x.dtype, jnp.floating)}


def test_train_step_bfloat16_compute_float32_state_schedule_and_loss():
  config, vdm, optimizer, state, batch = _setup("bfloat16", concrete=False)
  step = jax.jit(lambda s, b, r: train.train_step(s, b, r, vdm=vdm, optimizer=optimizer,
                                                  config=config))
  rng = jax.random.key(3)

  # The compiled step: every convolution (forward and backward; only the UNet
  # has any) runs on bfloat16 operands. The same trace gives what the step
  # returns, traced, not run (compiling a bfloat16 step is ~20 s of XLA:CPU):
  # the dtypes are those of the compiled step. A finite bfloat16 loss is
  # checked below, a run bfloat16 step by tests/test_gpu_check.py.
  closed, (new_state, metrics) = jax.make_jaxpr(step, return_shape=True)(state, batch, rng)
  convs = [e for e in _eqns(closed.jaxpr) if e.primitive.name == "conv_general_dilated"]
  assert convs
  assert {v.aval.dtype for e in convs for v in e.invars} == {jnp.dtype(jnp.bfloat16)}

  # Parameters, optimiser moments and EMA stay float32 after an update.
  assert _floating_dtypes(new_state.params) == {jnp.dtype(jnp.float32)}
  assert _floating_dtypes(new_state.opt_state) == {jnp.dtype(jnp.float32)}
  assert _floating_dtypes(new_state.ema) == {jnp.dtype(jnp.float32)}
  # The loss (the VLB in bits/dim) and the schedule's gamma are float32.
  for key in ("loss", "bpd", "gamma_0", "gamma_1"):
    assert metrics[key].dtype == jnp.float32, key
  t = np.linspace(0.0, 1.0, 5, dtype=np.float32)
  assert jax.eval_shape(lambda p: vdm.gamma_fn(p)(t), new_state.params).dtype == jnp.float32


def test_unet_activations_are_bfloat16_output_float32():
  config, vdm, _, state, batch = _setup("bfloat16", concrete=False)
  # Only dtypes are read: traced, not compiled nor run.
  z = jax.ShapeDtypeStruct(batch["image"].shape, jnp.float32)
  out, inter = jax.eval_shape(lambda p, z: vdm.network.apply(
      {"params": p}, z.astype(jnp.bfloat16), jnp.full((8,), 0.5),
      capture_intermediates=True, mutable=["intermediates"]), state.params["network"], z)
  assert out.dtype == jnp.float32  # cast back before z + net(z) and the loss.
  # Every module's output inside the network (convs, norms, blocks, attention)
  # except the float32 time-embedding MLP (cond_dense*, before its cast).
  dtypes = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(inter["intermediates"])[0]:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    if "__call__" in name and not name.startswith("__call__"):  # not the UNet's own output
      dtypes[name] = leaf.dtype
  assert any("Conv" in n or "conv" in n for n in dtypes)
  assert any("GroupNorm" in n for n in dtypes)
  wrong = {n: d for n, d in dtypes.items()
           if d != jnp.bfloat16 and "cond_dense" not in n}
  assert not wrong, wrong


def test_bfloat16_loss_close_to_float32_on_the_same_batch():
  _, vdm32, _, state, batch = _setup("float32")
  # The parameters are float32 in both: only the bfloat16 model is needed.
  _, vdm16, _, _, _ = _setup("bfloat16", concrete=False)
  rng = jax.random.key(5)
  loss32, _ = jax.jit(lambda p: vm.vlb_loss(vdm32, p, rng, batch["image"]))(state.params)
  loss16, _ = jax.jit(lambda p: vm.vlb_loss(vdm16, p, rng, batch["image"],
                                            dtype=jnp.bfloat16))(state.params)
  assert loss16.dtype == jnp.float32 and np.isfinite(loss16)
  np.testing.assert_allclose(loss16, loss32, rtol=0.02)
