"""Tests for the multi-scale sampler, stage networks and losses with exact Gaussian scores."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import schedules
from vdm_jax.multiscale import losses as ms_losses
from vdm_jax.multiscale import model as ms_model
from vdm_jax.multiscale import nonuniform as nu
from vdm_jax.multiscale import sampling

SHAPE = (4, 4, 1)
D = 16


def _covariance():
  """A smooth 4x4 image covariance (squared-exponential plus a nugget)."""
  yy, xx = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
  pos = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
  d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
  return 0.8 * np.exp(-d2 / 4.0) + 0.05 * np.eye(D)


def _haar_matrix(p):
  basis = jnp.eye(D).reshape((D,) + SHAPE)
  bands = nu.decompose(p, basis)
  return np.concatenate([np.asarray(b).reshape(D, -1) for b in bands], 1).T


def _exact_eps_fns(p, cov):
  """Exact E[eps | z] for x ~ N(0, cov) under the non-uniform process, per stage."""
  w = _haar_matrix(p)
  s_haar = jnp.asarray(w @ cov @ w.T, jnp.float32)
  shapes = ms_model.band_shapes(p, SHAPE)
  sizes = [int(np.prod(s)) for s in shapes]
  offsets = np.concatenate([[0], np.cumsum(sizes)])
  fns = []
  for stage in nu.stages(p):
    lo = int(offsets[stage.first])

    def eps_fn(params, bands, t, first=stage.first, lo=lo):
      del params
      b = bands[0].shape[0]
      z = jnp.concatenate([v.reshape(b, -1) for v in bands], 1)
      g = jnp.concatenate(
          [jnp.repeat(nu.scale_gamma(p, first + j, t)[:, None], sizes[first + j], 1)
           for j in range(len(bands))], 1)
      a, s = schedules.alpha(g), schedules.sigma(g)
      saa = s_haar[lo:, lo:]
      cov_z = a[:, :, None] * saa[None] * a[:, None, :] + jax.vmap(jnp.diag)(s ** 2)
      eps = s * jnp.linalg.solve(cov_z, z[..., None])[..., 0]
      out, i = [], 0
      for j in range(len(bands)):
        n = sizes[first + j]
        out.append(eps[:, i:i + n].reshape((b,) + shapes[first + j]))
        i += n
      return tuple(out)

    fns.append(eps_fn)
  return fns


@pytest.mark.slow
def test_exact_scores_give_data_covariance():
  # The ancestral step has an O(step) variance bias even with exact scores
  # (measured: 16% relative error at 60 steps per unit, 4% at 300, for the
  # uniform and the multi-scale sampler alike), hence the fine grid.
  p = nu.make_process(2)  # 3 scales, windows [0,1/3], [0,2/3], [0,1]
  cov = _covariance()
  sampler = sampling.make_sampler(p, _exact_eps_fns(p, cov), image_shape=SHAPE,
                                  steps_per_unit=450, eta=1.0)
  assert sampler.steps_per_stage == (150, 150, 150)
  n = 4000
  x = jax.jit(sampler.sample, static_argnums=2)((None,) * 3, jax.random.key(0), n)
  x = np.asarray(x, np.float64).reshape(n, D)
  emp = np.cov(x, rowvar=False)
  # Monte Carlo standard error of an entry is ~sqrt(2/n) * 0.85 = 0.02.
  np.testing.assert_allclose(emp, cov, atol=0.1)
  np.testing.assert_allclose(x.mean(0), 0.0, atol=0.06)
  # Stronger, aggregate check: relative Frobenius error.
  assert np.linalg.norm(emp - cov) / np.linalg.norm(cov) < 0.06


def test_equal_windows_sampler_equals_uniform_sampler():
  cov = _covariance()
  p_uni = nu.make_process(0)
  p_eq = nu.uniform_process(2)
  # A pixel-space exact noise predictor, wrapped for both processes.
  cov32 = jnp.asarray(cov, jnp.float32)

  def pixel_eps(params, image, t):
    del params
    b = image.shape[0]
    g = schedules.linear_gamma(t, gamma_min=-10.0, gamma_max=10.0)[:, None]
    a, s = schedules.alpha(g), schedules.sigma(g)
    cz = a[:, :, None] ** 2 * cov32[None] + (s ** 2)[:, :, None] * jnp.eye(D)
    eps = s * jnp.linalg.solve(cz, image.reshape(b, D)[..., None])[..., 0]
    return eps.reshape(image.shape)

  s_uni = sampling.make_sampler(p_uni, [ms_model.make_stage_eps_fn(p_uni, 0, pixel_eps)],
                                image_shape=SHAPE, steps_per_unit=20, eta=0.0)
  s_eq = sampling.make_sampler(p_eq, [ms_model.make_stage_eps_fn(p_eq, 0, pixel_eps)],
                               image_shape=SHAPE, steps_per_unit=20, eta=0.0)
  z1 = jax.random.normal(jax.random.key(3), (8,) + SHAPE)
  rng = jax.random.key(4)
  out_uni = jax.jit(lambda z: s_uni.run_stages((None,), rng, [z], 0))(z1)
  out_eq = jax.jit(lambda z: s_eq.run_stages((None,), rng, nu.decompose(p_eq, z), 0))(z1)
  np.testing.assert_allclose(nu.reconstruct(out_eq), out_uni[0], atol=1e-4)


@pytest.mark.slow
def test_dropped_scales_never_reach_a_network():
  p = nu.make_process(2)
  calls = np.zeros(3, int)
  seen = {}

  def counting_eps_fn(j):
    def fn(params, bands, t):
      del params, t
      seen[j] = tuple(b.shape[1:] for b in bands)  # trace time: what it is fed

      def bump():
        calls[j] += 1
      jax.debug.callback(bump)
      return tuple(0.5 * b for b in bands)
    return fn

  sampler = sampling.make_sampler(p, [counting_eps_fn(j) for j in range(3)],
                                  image_shape=(8, 8, 1), steps_per_unit=12)
  out = jax.jit(sampler.sample, static_argnums=2)((None,) * 3, jax.random.key(0), 2)
  jax.block_until_ready(out)
  assert out.shape == (2, 8, 8, 1)
  assert sampler.steps_per_stage == (4, 4, 4)
  np.testing.assert_array_equal(calls, [4, 4, 4])
  shapes = ms_model.band_shapes(p, (8, 8, 1))
  for j, stage in enumerate(nu.stages(p)):
    assert seen[j] == shapes[stage.first:]   # only the active scales
  assert seen[2] == ((2, 2, 1),)            # the last stage sees a_2 only


def test_stage_network_wrapper_and_losses():
  p = nu.make_process(2)
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 1))
  bands = nu.decompose(p, x)
  # An identity "network" maps bands to themselves through the image.
  ident = ms_model.make_stage_eps_fn(p, 1, lambda prm, img, t: img)
  out = ident(None, bands[1:], jnp.zeros(3))
  for a, b in zip(out, bands[1:]):
    np.testing.assert_allclose(a, b, atol=1e-5)
  # Perfect noise prediction gives zero loss; a zero predictor gives the
  # closed form E[1/2 sum gamma' eps^2] * (t_hi - t_lo) = 1/2 * 20 * dims.
  zero = ms_model.make_stage_eps_fn(p, 1, lambda prm, img, t: jnp.zeros_like(img))
  loss = ms_losses.make_stage_loss_fn(p, 1, zero)
  big = jnp.tile(x, (200, 1, 1, 1))
  val = jax.jit(loss)(None, jax.random.key(1), big)
  assert val.shape == (600,)
  # Stage 1 on (1/3, 2/3]: scales 1 (d2, 12 coeffs, slope 30) and 2 (a2, 4
  # coeffs, slope 20); length 1/3.
  expect = 0.5 * (30.0 * 12 + 20.0 * 4) / 3.0
  np.testing.assert_allclose(float(val.mean()), expect, rtol=0.05)
  mse = ms_losses.make_stage_loss_fn(p, 1, zero, weighting="eps")
  np.testing.assert_allclose(float(jax.jit(mse)(None, jax.random.key(1), big).mean()),
                             1.0, rtol=0.05)


class _TinyConv(nn.Module):
  @nn.compact
  def __call__(self, z, t):
    return nn.Conv(z.shape[-1], (3, 3))(z) * t[:, None, None, None]


def test_stage_losses_have_gradients():
  p = nu.make_process(1)
  net = _TinyConv()
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  for j, stage in enumerate(nu.stages(p)):
    side = 8 // 2 ** stage.first
    params = net.init(jax.random.key(j), jnp.zeros((1, side, side, 1)), jnp.ones(1))
    fn = ms_model.make_stage_eps_fn(p, stage.first, net.apply)
    lf = ms_losses.make_stage_loss_fn(p, j, fn)
    g = jax.jit(jax.grad(lambda prm: lf(prm, jax.random.key(j), x).mean()))(params)
    norms = [float(jnp.linalg.norm(v)) for v in jax.tree.leaves(g)]
    assert all(np.isfinite(norms)) and max(norms) > 0


def test_multiscale_unets_shapes():
  p = nu.make_process(1)
  net = ms_model.make_multiscale_unets(
      p, [dict(ch=8, n_blocks=1, ch_mult=(1, 2), dropout=0.0),
          dict(ch=8, n_blocks=1, dropout=0.0)], image_shape=(8, 8, 1))
  params = jax.eval_shape(net.init, jax.random.key(0))
  assert len(params) == 2
  bands = nu.decompose(p, jnp.zeros((2, 8, 8, 1)))
  for j, (fn, stage) in enumerate(zip(net.eps_fns(), nu.stages(p))):
    out = jax.eval_shape(fn, params[j], bands[stage.first:], jnp.zeros(2))
    assert [o.shape for o in out] == [b.shape for b in bands[stage.first:]]
  with pytest.raises(ValueError, match="one entry per stage"):
    ms_model.make_multiscale_unets(p, [dict(ch=8)], image_shape=(8, 8, 1))
  with pytest.raises(ValueError, match="divisible by 2\\^levels"):
    ms_model.make_multiscale_unets(p, [dict(ch=8)] * 2, image_shape=(7, 8, 1))


def test_stage_train_step_updates_params_and_ema():
  import optax  # pylint: disable=g-import-not-at-top
  from vdm_jax.multiscale import training
  p = nu.make_process(1)
  net = _TinyConv()
  params = net.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)), jnp.ones(1))
  fn = ms_model.make_stage_eps_fn(p, 1, net.apply)
  opt = optax.adam(1e-2)
  step = jax.jit(training.make_stage_step(ms_losses.make_stage_loss_fn(p, 1, fn), opt,
                                          ema_rate=0.5))
  state = training.init_stage_state(params, opt)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
  new, loss = step(state, jax.random.key(2), x)
  again, loss2 = step(state, jax.random.key(2), x)
  assert int(new.step) == 1 and float(loss) == float(loss2)
  for a, e, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.ema.params),
                     jax.tree.leaves(new.params)):
    np.testing.assert_allclose(e, 0.5 * a + 0.5 * b, rtol=1e-5, atol=1e-7)
  assert any(float(jnp.abs(a - b).max()) > 0 for a, b in
             zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params)))
  with pytest.raises(ValueError, match="ema_rate"):
    training.make_stage_step(None, opt, ema_rate=1.0)


def test_skip_parameterisation_is_optimal_for_white_data():
  # x ~ N(0, I): E[eps | z] = sigma z in every band; a zero network with
  # skip=True gives exactly that.
  p = nu.make_process(2)
  fn = ms_model.make_stage_eps_fn(p, 0, lambda prm, img, t: jnp.zeros_like(img), skip=True)
  z = nu.decompose(p, jax.random.normal(jax.random.key(0), (2, 8, 8, 1)))
  t = jnp.array([0.1, 0.5])
  out = jax.jit(lambda z, t: fn(None, z, t))(z, t)
  for k, (o, b) in enumerate(zip(out, z)):
    sig = np.sqrt(jax.nn.sigmoid(np.asarray(nu.scale_gamma(p, k, t))))
    np.testing.assert_allclose(o, sig[:, None, None, None] * b, rtol=1e-5)
