"""Samplers for score SDEs: predictor-corrector, DDIM and the probability-flow ODE.

`sample_reverse` is the one reverse-SDE integrator: it takes a reverse process
(`SDE.reverse(score_fn)`, or the joint reverse process of a multi-speed SDE
with a pytree state) and a start at T. `pc_sample` is it from a prior draw.

All samplers are pure functions ``sampler(rng, score_fn, sde, shape, **hyper)
-> (samples [B, ...], n_score_evals)``: they draw x_T from the prior with `rng`,
integrate backwards in time from T to `t_end`, and count score evaluations
(an int32 scalar, the number of *batched* calls of `score_fn`). They are
jittable with `score_fn`, `sde`, `shape` and the keyword hyperparameters static,
e.g. ``jax.jit(functools.partial(pc_sample, score_fn=f, sde=sde, shape=(B, D)))``
or ``jax.jit(lambda p, k: pc_sample(k, lambda x, t: net(p, x, t), sde, shape))``.

Time grid (fixed-step samplers): t_i = T - i (T - t_end) / N, i = 0..N. Each
iteration applies the corrector at t_i, then the predictor from t_i to
t_{i+1} (score_sde's order). With ``denoise=True`` the last step returns its
noise-free mean (score_sde's `denoise`), so no noise of size G_N is left.

Every sampler first checks that the SDE's SNR a_t^2 / s_t^2 decreases in t on
its time grid (a decreasing VDM schedule has no reverse process): ValueError
when the SDE is concrete; under `jit` a `checkify` check with NaN samples,
raised by `vdm_jax.checked`.

.. math::

  \\text{EM:}\\; x \\leftarrow x - [f - g^2 s]\\Delta t + g\\sqrt{\\Delta t}\\,\\xi;
  \\quad \\text{RD:}\\; x \\leftarrow x - [f_i - G_i^2 s] + G_i \\xi;
  \\quad \\text{Langevin:}\\; x \\leftarrow x + \\varepsilon s + \\sqrt{2\\varepsilon}\\,\\xi,
  \\; \\varepsilon = 2 \\alpha_i (r \\|\\xi\\| / \\|s\\|)^2.

In the Langevin step the two norms are per-sample L2 norms averaged over the
batch (as the score_sde code of Song et al. 2021 does), so the step size depends on the
batch; alpha_i = a_{t_i | t_{i+1}}^2 (= 1 - beta_i for VP, 1 for VE).

References:
  Song et al. Score-Based Generative Modeling through SDEs.
  https://arxiv.org/abs/2011.13456, 2021 (Sec. 4.2-4.3, App. E-G).
  Song, Meng, Ermon. Denoising Diffusion Implicit Models.
  https://arxiv.org/abs/2010.02502, 2021 (eq. 12).
  Karras, Aittala, Aila, Laine. Elucidating the Design Space of
  Diffusion-Based Generative Models. https://arxiv.org/abs/2206.00364, 2022
  (Alg. 1: Heun's method on the probability-flow ODE).
  Efron. Tweedie's Formula and Selection Bias. JASA 106 (496), 2011.
  Kidger. On Neural Differential Equations (diffrax).
  https://arxiv.org/abs/2202.02435, 2022.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import diffrax
import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.sde import score_fns
from vdm_jax.sde import sdes

PREDICTORS = ("euler_maruyama", "reverse_diffusion", "none")
CORRECTORS = ("langevin", "none")
ODE_SOLVERS = ("tsit5", "dopri5", "heun", "euler")
# Score evaluations per attempted step of each diffrax solver (FSAL methods
# reuse the last stage), plus the evaluations made once at the start.
_ODE_EVALS = {"tsit5": (6, 1), "dopri5": (6, 1), "heun": (2, 0), "euler": (1, 0)}


def _check_common(score_fn, sde, shape, t_end, n_steps=None):
  if not callable(score_fn):
    raise TypeError(f"score_fn must be callable (x, t) -> score, got "
                    f"{type(score_fn)}.")
  if not isinstance(sde, sdes.SDE):
    raise TypeError(f"sde must be a vdm_jax.sde.SDE, got {type(sde)}.")
  shape = tuple(int(s) for s in shape)
  if len(shape) < 1 or any(s < 1 for s in shape):
    raise ValueError(f"shape must be [B, ...] with positive sizes, got {shape}.")
  t_end = sde.eps if t_end is None else float(t_end)
  if not 0 <= t_end < sde.T:
    raise ValueError(f"t_end must satisfy 0 <= t_end < T = {sde.T}, got "
                     f"{t_end}.")
  if n_steps is not None and (int(n_steps) != n_steps or n_steps < 1):
    raise ValueError(f"n_steps must be a positive integer, got {n_steps}.")
  return shape, t_end


def _check_snr_decreasing(sde, t_end, n_steps):
  """Value check that SNR(t) = a_t^2 / s_t^2 does not rise with t on the time grid.

  A schedule whose noise level falls somewhere (e.g. a `ScheduleVPSDE` whose
  gamma decreases) has no valid reverse process: stochastic samplers would get
  NaN standard deviations and DDIM silently clips them to 0. Raises ValueError
  when the SDE's coefficients are concrete; under `jit` a `checkify` check.
  """
  t = jnp.linspace(t_end, sde.T, n_steps + 1, dtype=jnp.float32)
  a, s = sde.marginal_coeffs(t)
  # SNR(t_i) >= SNR(t_{i+1})  <=>  a_i s_{i+1} >= a_{i+1} s_i  (a, s > 0).
  rise = a[1:] * s[:-1] - a[:-1] * s[1:]
  return _checks.check_values(
      jnp.all(rise <= 0),
      f"sde ({type(sde).__name__}) must have an SNR a_t^2/s_t^2 that decreases "
      "in t (e.g. an increasing gamma_fn), got a rise after t = {t}.",
      t=t[jnp.argmax(rise)])


def _bcast(v, x):
  return _checks.broadcast_to_data(v, x).astype(x.dtype)


def _initial(rng, sde, shape, x_init):
  if x_init is None:
    return sde.prior_sample(rng, shape)
  x_init = sdes.check_x(x_init, "x_init")
  if x_init.shape != shape:
    raise ValueError(f"x_init must have shape {shape}, got {x_init.shape}.")
  return x_init


def _is_array_state(state):
  return jax.tree_util.treedef_is_leaf(jax.tree.structure(state))


def _normal_like(key, state):
  """Standard normal draws shaped like `state` (an array or a pytree of arrays).

  An array state draws from `key` itself, which keeps `pc_sample`'s outputs
  fixed for a given key; a pytree splits `key` over its leaves.
  """
  if _is_array_state(state):
    return jax.random.normal(key, state.shape, state.dtype)
  leaves, treedef = jax.tree.flatten(state)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(
      treedef, [jax.random.normal(k, v.shape, v.dtype) for k, v in zip(keys, leaves)])


def _add_noise(mean, scale, noise):
  return jax.tree.map(lambda m, g, z: m + _bcast(g, m) * z, mean, scale, noise)


def euler_maruyama_step(reverse, x, t, dt, noise):
  """One Euler--Maruyama step of a reverse-time SDE, from t down to t - dt.

  .. math::

    \\bar x = x - \\bar f(x, t)\\,\\Delta t, \\qquad
    x_{t - \\Delta t} = \\bar x + g(t) \\sqrt{\\Delta t}\\, \\xi

  (Song et al. 2021, arXiv 2011.13456, eq. 6 discretised as in App. E).

  Args:
    reverse: the reverse process (`SDE.reverse(score_fn)`, or the joint reverse
      process of a multi-speed SDE), with
      ``drift_diffusion(x, t) -> (f, g)``, f shaped like x and g `[B]` per leaf.
    x: `[B, ...]` state at t, or a pytree of such arrays.
    t: `[B]` times.
    dt: step size (> 0, a scalar).
    noise: standard normal draws ξ with the structure of `x`.

  Returns:
    ``(x_next, mean)``: the new state and its noise-free mean x̄.
  """
  f, g = reverse.drift_diffusion(x, t)
  mean = jax.tree.map(lambda v, fv: v - fv * dt, x, f)
  # A Python step size keeps its double-precision root.
  root = math.sqrt(dt) if isinstance(dt, (int, float)) else jnp.sqrt(dt)
  return _add_noise(mean, jax.tree.map(lambda gv: gv * root, g), noise), mean


def sample_reverse(rng, reverse, x_init, *, n_steps: int,
                   t_end: Optional[float] = None,
                   predictor: str = "euler_maruyama", corrector: str = "none",
                   snr: float = 0.16, n_corrector_steps: int = 1,
                   denoise: bool = True, tweedie: bool = False):
  """Predictor-corrector integration of a reverse-time SDE from T down to t_end.

  The reverse process of Song et al. 2021 (arXiv 2011.13456, eq. 6 and App.
  E-G),

  .. math::

    dx = [f(x, t) - g(t)^2 \\nabla_x \\log p_t(x)]\\,dt + g(t)\\,d\\bar w,

  (or its probability-flow ODE, when `reverse` is one) on the grid
  t_i = T - i (T - t_end) / N. Step i runs `n_corrector_steps` Langevin
  corrector steps at t_i, then one predictor step from t_i to t_{i+1}:

  .. math::

    \\text{EM:}\\; x \\leftarrow x - \\bar f\\,\\Delta t + g\\sqrt{\\Delta t}\\,\\xi;
    \\quad \\text{RD:}\\; x \\leftarrow x - \\bar f_i + \\bar G_i \\xi;
    \\quad \\text{Langevin:}\\; x \\leftarrow x + \\varepsilon s
    + \\sqrt{2\\varepsilon}\\,\\xi, \\;
    \\varepsilon = 2 \\alpha_i (r \\|\\xi\\| / \\|s\\|)^2,

  with the Langevin norms per-sample L2 norms averaged over the batch and
  alpha_i = a_{t_i | t_{i+1}}^2. The whole loop is one `lax.scan`.

  The state may be a `[B, ...]` array or a pytree of them (e.g. the pair
  (x, y) of a multi-speed SDE); the predictors act leaf by leaf, while the
  Langevin corrector and Tweedie's formula need an array state and a
  `vdm_jax.sde.SDE`.

  Args:
    rng: PRNG key for the noise of the loop (x_init is given).
    reverse: a reverse process with ``T``, ``sde`` (with ``eps``),
      ``score_fn``, ``drift_diffusion`` and ``discretize``: `SDE.reverse(...)`
      or `MultiSpeedSDE.reverse(...)`.
    x_init: the state at t = T (a prior draw, usually).
    n_steps: N, the number of time steps.
    t_end: last time; None means ``reverse.sde.eps``.
    predictor: 'euler_maruyama', 'reverse_diffusion' (the SDE's exact
      `discretize`: DDPM's step for VP, SMLD's for VE) or 'none'.
    corrector: 'langevin' or 'none'.
    snr: r, the Langevin signal-to-noise ratio (0.16 in score_sde).
    n_corrector_steps: Langevin steps per time step.
    denoise: return the noise-free mean of the last step, so no noise of size
      G_N is left.
    tweedie: instead, return `score_fns.tweedie_denoise` of the last state at
      t_end, E[x_0 | x_{t_end}] (one more score evaluation).

  Returns:
    `(x, n_evals)`: the sample (structure of `x_init`) and an int32 count of
    batched score calls.
  """
  if predictor not in PREDICTORS:
    raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}.")
  if corrector not in CORRECTORS:
    raise ValueError(f"corrector must be one of {CORRECTORS}, got {corrector!r}.")
  if predictor == "none" and corrector == "none":
    raise ValueError("predictor and corrector cannot both be 'none'.")
  if not snr > 0:
    raise ValueError(f"snr must be > 0, got {snr}.")
  if int(n_steps) != n_steps or n_steps < 1:
    raise ValueError(f"n_steps must be a positive integer, got {n_steps}.")
  n_steps = int(n_steps)
  sde = reverse.sde
  t_end = sde.eps if t_end is None else float(t_end)
  if not 0 <= t_end < reverse.T:
    raise ValueError(f"t_end must satisfy 0 <= t_end < T = {reverse.T}, got "
                     f"{t_end}.")
  n_corr = int(n_corrector_steps) if corrector == "langevin" else 0
  array_state = _is_array_state(x_init)
  if (n_corr or tweedie) and not (array_state and isinstance(sde, sdes.SDE)):
    raise ValueError(
        "the Langevin corrector and tweedie need an array state and a "
        f"vdm_jax.sde.SDE; got a {type(x_init).__name__} state of a "
        f"{type(sde).__name__}.")
  # Multi-speed SDEs have per-block coefficients; each block's own SDE is
  # checked where it is built.
  ok = (_check_snr_decreasing(sde, t_end, n_steps)
        if isinstance(sde, sdes.SDE) else True)
  score_fn = reverse.score_fn
  b = jax.tree.leaves(x_init)[0].shape[0]
  dt = (reverse.T - t_end) / n_steps

  def corrector_step(x, t, key):
    alpha = jnp.square(sde.transition_coeffs(jnp.maximum(t - dt, 0.), t)[0])
    s = score_fn(x, t)
    xi = jax.random.normal(key, x.shape, x.dtype)
    s_norm = jnp.mean(jnp.sqrt(_checks.sum_except_batch(jnp.square(s))))
    xi_norm = jnp.mean(jnp.sqrt(_checks.sum_except_batch(jnp.square(xi))))
    step = 2.0 * alpha * jnp.square(snr * xi_norm / s_norm)
    mean = x + _bcast(step, x) * s
    return mean + _bcast(jnp.sqrt(2.0 * step), x) * xi, mean

  def predictor_step(x, t, key):
    xi = _normal_like(key, x)
    if predictor == "euler_maruyama":
      return euler_maruyama_step(reverse, x, t, dt, xi)
    rev_f, rev_g = reverse.discretize(x, t, dt)
    mean = jax.tree.map(lambda v, f: v - f, x, rev_f)
    return _add_noise(mean, rev_g, xi), mean

  def body(carry, _):
    i, (x, _) = carry
    t = jnp.full((b,), reverse.T - i * dt, jnp.float32)
    # Keys by step index (not a split chain), so a step's noise does not
    # depend on how many steps come before it.
    key = jax.random.fold_in(rng, i)
    mean = x
    for j in range(n_corr):
      x, mean = corrector_step(x, t, jax.random.fold_in(key, j + 1))
    if predictor != "none":
      x, mean = predictor_step(x, t, jax.random.fold_in(key, 0))
    return (i + 1, (x, mean)), None

  # The step index rides in the carry (not in xs): XLA then compiles the loop
  # as it compiles a static-trip `fori_loop`, so float results match those of
  # the earlier fori_loop sampler to the bit.
  (_, (x, mean)), _ = jax.lax.scan(
      body, (jnp.asarray(0, jnp.int32), (x_init, x_init)), None, length=n_steps)
  n_pred = 0 if predictor == "none" else 1
  n_evals = n_steps * (n_pred + n_corr)
  if tweedie:
    out = score_fns.tweedie_denoise(sde, score_fn, x, jnp.full((b,), t_end))
    n_evals += 1
  else:
    out = mean if denoise else x
  return _checks.poison(ok, out), jnp.asarray(n_evals, jnp.int32)


def pc_sample(rng, score_fn: Callable, sde: sdes.SDE, shape, *,
              predictor: str = "euler_maruyama", corrector: str = "none",
              n_steps: int = 500, snr: float = 0.16,
              n_corrector_steps: int = 1, t_end: Optional[float] = 1e-3,
              denoise: bool = True, tweedie: bool = False, x_init=None):
  """Predictor-corrector sampling of the reverse-time SDE from a prior draw.

  `sample_reverse` on ``sde.reverse(score_fn)`` (Song et al. 2021, arXiv
  2011.13456, Sec. 4.2) started from x_T ~ p_T (or `x_init`).

  Args:
    rng: PRNG key.
    score_fn: `score_fn(x [B, ...], t [B]) -> [B, ...]`.
    sde: the forward `SDE`.
    shape: `[B, ...]` shape of the samples.
    predictor: 'euler_maruyama', 'reverse_diffusion' (the SDE's `discretize`,
      the DDPM step for VP and the SMLD step for VE) or 'none'.
    corrector: 'langevin' or 'none'.
    n_steps: N, the number of time steps.
    snr: r, the Langevin signal-to-noise ratio (0.16 in score_sde).
    n_corrector_steps: Langevin steps per time step.
    t_end: last time (score_sde samples to 1e-3); None means `sde.eps`.
    denoise: return the noise-free mean of the last step.
    tweedie: instead, end with `score_fns.tweedie_denoise` at t_end.
    x_init: optional `[B, ...]` start at t = T instead of a prior draw.

  Returns:
    `(x, n_evals)`: `[B, ...]` samples and an int32 count of score calls.
  """
  shape, t_end = _check_common(score_fn, sde, shape, t_end, n_steps)
  init_rng, loop_rng = jax.random.split(rng)
  x = _initial(init_rng, sde, shape, x_init)
  return sample_reverse(
      loop_rng, sde.reverse(score_fn), x, n_steps=n_steps, t_end=t_end,
      predictor=predictor, corrector=corrector, snr=snr,
      n_corrector_steps=n_corrector_steps, denoise=denoise, tweedie=tweedie)


def ddim_sample(rng, score_fn: Callable, sde: sdes.SDE, shape, *,
                n_steps: int = 50, eta: float = 0.0,
                t_end: Optional[float] = 1e-3, denoise: bool = True,
                x_init=None):
  """DDIM sampling in (a_t, s_t) form, deterministic at eta = 0.

  From t to s < t, with eps_hat = -s_t * score and x_hat = (x_t - s_t eps_hat)/a_t:

  .. math::

    x_s = a_s \\hat x + \\sqrt{s_s^2 - \\eta^2 \\sigma_Q^2}\\,\\hat\\epsilon
          + \\eta \\sigma_Q \\xi, \\qquad
    \\sigma_Q^2 = v_{t|s}\\, s_s^2 / s_t^2,

  where v_{t|s} is the forward transition variance (`SDE.transition_coeffs`).
  eta = 1 is the ancestral sampler p(x_s | x_t) = q(x_s | x_t, x_hat) (Song,
  Meng, Ermon, DDIM, 2021, eq. 12 with eta = 1). Works for VP, sub-VP and VE alike.

  Args:
    rng: PRNG key.
    score_fn: `score_fn(x [B, ...], t [B]) -> [B, ...]`.
    sde: the forward `SDE`.
    shape: `[B, ...]`.
    n_steps: number of steps N.
    eta: stochasticity in [0, 1] (0: deterministic DDIM).
    t_end: final time (None: `sde.eps`).
    denoise: drop the fresh noise on the last step.
    x_init: optional start at T.

  Returns:
    `(x, n_evals)` with `n_evals = n_steps`.
  """
  shape, t_end = _check_common(score_fn, sde, shape, t_end, n_steps)
  if not 0.0 <= eta <= 1.0:
    raise ValueError(f"eta must lie in [0, 1], got {eta}.")
  ok = _check_snr_decreasing(sde, t_end, n_steps)
  init_rng, loop_rng = jax.random.split(rng)
  x = _initial(init_rng, sde, shape, x_init)
  b = shape[0]
  dt = (sde.T - t_end) / n_steps

  def body(i, x):
    t = jnp.full((b,), sde.T - i * dt, jnp.float32)
    s_time = jnp.maximum(t - dt, t_end)
    a_t, s_t = sde.marginal_coeffs(t)
    a_s, s_s = sde.marginal_coeffs(s_time)
    _, v_ts = sde.transition_coeffs(s_time, t)
    eps_hat = -_bcast(s_t, x) * score_fn(x, t)
    x_hat = (x - _bcast(s_t, x) * eps_hat) / _bcast(a_t, x)
    var_q = v_ts * jnp.square(s_s / s_t)
    noise_scale = eta * jnp.sqrt(var_q)
    if denoise:
      noise_scale = jnp.where(i == n_steps - 1, 0.0, noise_scale)
    dir_scale = jnp.sqrt(jnp.maximum(jnp.square(s_s) - eta**2 * var_q, 0.0))
    xi = jax.random.normal(jax.random.fold_in(loop_rng, i), x.shape, x.dtype)
    return (_bcast(a_s, x) * x_hat + _bcast(dir_scale, x) * eps_hat +
            _bcast(noise_scale, x) * xi)

  x = jax.lax.fori_loop(0, n_steps, body, x)
  return _checks.poison(ok, x), jnp.asarray(n_steps, jnp.int32)


def ode_sample(rng, score_fn: Callable, sde: sdes.SDE, shape, *,
               solver: str = "tsit5", rtol: float = 1e-5, atol: float = 1e-5,
               n_steps: int = 100, max_steps: int = 4096,
               t_end: Optional[float] = 1e-3, tweedie: bool = False,
               x_init=None):
  """Samples by integrating the probability-flow ODE from T to t_end with diffrax.

  .. math::  \\frac{dx}{dt} = f(x, t) - \\tfrac12 g(t)^2 s(x, t)

  (Song et al. 2021, arXiv 2011.13456, eq. 13). Adaptive solvers ('tsit5',
  'dopri5') use a PID step-size controller with (`rtol`, `atol`) and an
  initial step (T - t_end) / `n_steps`; the fixed-step solvers ('heun',
  'euler') take exactly `n_steps` steps. 'heun' is the second-order
  (trapezoidal) method that Karras et al. 2022 (arXiv 2206.00364, Alg. 1)
  recommend for this ODE: with the map x_T -> x_{t_end} a bijection, it is a
  deterministic decoder at two score calls per step.

  Args:
    rng: PRNG key (for the prior draw).
    score_fn: `score_fn(x [B, ...], t [B]) -> [B, ...]`.
    sde: the forward `SDE`.
    shape: `[B, ...]`.
    solver: one of 'tsit5', 'dopri5', 'heun', 'euler'.
    rtol, atol: tolerances of the adaptive solvers.
    n_steps: fixed number of steps, or the initial step count of adaptive ones.
    max_steps: cap on the adaptive solver's steps.
    t_end: final time (None: `sde.eps`).
    tweedie: end with `score_fns.tweedie_denoise` at t_end (one more score
      call), E[x_0 | x_{t_end}] instead of x_{t_end}.
    x_init: optional start at T.

  Returns:
    `(x, n_evals)`; n_evals counts the solver's vector-field evaluations
    (per attempted step: 6 for tsit5/dopri5 with FSAL, 2 heun, 1 euler), plus
    one for `tweedie`.
  """
  shape, t_end = _check_common(score_fn, sde, shape, t_end, n_steps)
  ok = _check_snr_decreasing(sde, t_end, n_steps)
  x = _initial(rng, sde, shape, x_init)
  rev = sde.reverse(score_fn, probability_flow=True)
  b = shape[0]

  def vector_field(t, y, args):
    del args
    return rev.drift_diffusion(y, jnp.full((b,), t, y.dtype))[0]

  y, n_evals = _solve(vector_field, x, sde.T, t_end, solver=solver, rtol=rtol,
                      atol=atol, n_steps=n_steps, max_steps=max_steps)
  if tweedie:
    y = score_fns.tweedie_denoise(sde, score_fn, y, jnp.full((b,), t_end))
    n_evals = n_evals + 1
  return _checks.poison(ok, y), n_evals


def _solve(vector_field, y0, t0, t1, *, solver, rtol, atol, n_steps,
           max_steps):
  """diffrax solve of dy/dt = vector_field(t, y) from t0 to t1; returns (y1, nfe)."""
  if solver not in ODE_SOLVERS:
    raise ValueError(f"solver must be one of {ODE_SOLVERS}, got {solver!r}.")
  solvers = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5,
             "heun": diffrax.Heun, "euler": diffrax.Euler}
  dt0 = (t1 - t0) / n_steps
  if solver in ("tsit5", "dopri5"):
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
  else:
    controller = diffrax.ConstantStepSize()
    max_steps = max(max_steps, n_steps + 1)
  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field), solvers[solver](), t0=t0, t1=t1, dt0=dt0,
      y0=y0, stepsize_controller=controller,
      saveat=diffrax.SaveAt(t1=True), max_steps=max_steps)
  per_step, start = _ODE_EVALS[solver]
  n_evals = (start + per_step * sol.stats["num_steps"]).astype(jnp.int32)
  y1 = jax.tree.map(lambda v: v[-1], sol.ys)
  return y1, n_evals


def count_score_evals(score_fn: Callable):
  """Wraps `score_fn` with a host-side counter (for checking `n_evals`; not for speed).

  Returns:
    `(wrapped_fn, counter)` where `counter["n"]` is the number of batched
    calls executed so far (incremented through `jax.debug.callback`).
  """
  counter = {"n": 0}

  def bump():
    counter["n"] += 1

  def wrapped(x, t):
    jax.debug.callback(bump, ordered=False)
    return score_fn(x, t)

  return wrapped, counter

