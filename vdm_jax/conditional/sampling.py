"""Reverse-time samplers for conditional and joint (multi-speed) diffusions.

A small predictor(-corrector) loop under `lax.scan`, driven by any reverse
process with the `vdm_jax.sde` interface (`ReverseSDE` of an x SDE with a
conditional score, or `JointReverseSDE` of a `MultiSpeedSDE`). On the grid
:math:`T = t_0 > t_1 > \\dots > t_N = \\epsilon` the predictor is the
"reverse diffusion" step of the SDE's own discretisation (SMLD's for VE, the
DDPM one for VP),

.. math::

  \\bar x = x - \\bar f_i(x, t_i), \\qquad x \\leftarrow \\bar x + \\bar G_i \\xi,

optionally preceded by Langevin corrector steps
:math:`x \\leftarrow x + \\epsilon_L s + \\sqrt{2\\epsilon_L}\\,\\xi` with
:math:`\\epsilon_L = 2 a_t (r \\|\\xi\\| / \\|s\\|)^2` (per example). The
returned sample is the noise-free mean :math:`\\bar x` of the last step
(``denoise=True``), as in the MSDiff sampler.

References:
  Song et al., Score-Based Generative Modeling through Stochastic Differential
  Equations, https://arxiv.org/abs/2011.13456, 2021 (App. E, G: predictor-
  corrector sampling).
  Batzolis et al., Conditional Image Generation with Score-Based Diffusion
  Models, https://arxiv.org/abs/2111.13606, 2021.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vdm_jax import _checks


def _leaves_like(rng, tree):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(rng, len(leaves))
  noise = [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, noise)


def sample_reverse(rng, reverse, init, *, n_steps: int, eps: float | None = None,
                   corrector_steps: int = 0, snr: float = 0.15,
                   denoise: bool = True):
  """Integrates a reverse SDE / PF ODE from T down to ``eps``.

  Args:
    rng: PRNG key.
    reverse: a reverse process with ``.T``, ``.discretize(state, t, dt)``
      (and ``.score_fn``/``.sde`` for the corrector), e.g.
      ``x_sde.reverse(score_fn)`` or ``MultiSpeedSDE(...).reverse(joint_score)``.
    init: initial state at T: `[B, ...]` array or a pytree of them (e.g. the
      pair (x, y) of a joint process), typically a prior sample.
    n_steps: number of predictor steps N.
    eps: end time (defaults to the forward SDE's ``eps``).
    corrector_steps: Langevin corrector steps before every predictor step
      (array states only).
    snr: signal-to-noise ratio r of the corrector.
    denoise: return the mean of the last step (no final noise).

  Returns:
    The sample at t = eps, with the structure of ``init``.
  """
  if n_steps < 1:
    raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
  if corrector_steps and not isinstance(init, jax.Array):
    raise ValueError("the Langevin corrector supports array states only; got "
                     f"{type(init).__name__} with corrector_steps={corrector_steps}.")
  eps = reverse.sde.eps if eps is None else eps
  batch = jax.tree.leaves(init)[0].shape[0]
  times = jnp.linspace(reverse.T, eps, n_steps + 1)

  def corrector(x, t, key):
    score = reverse.score_fn(x, t)
    noise = jax.random.normal(key, x.shape, x.dtype)
    a_t, _ = reverse.sde.marginal_coeffs(t)
    ratio = (jnp.sqrt(_checks.sum_except_batch(noise**2))
             / jnp.sqrt(_checks.sum_except_batch(score**2) + 1e-12))
    step = 2.0 * a_t * (snr * ratio) ** 2
    step = _checks.broadcast_to_data(step, x)
    return x + step * score + jnp.sqrt(2.0 * step) * noise

  def body(carry, i):
    state, _ = carry
    t = jnp.full((batch,), times[i])
    dt = times[i] - times[i + 1]
    key = jax.random.fold_in(rng, i)
    for j in range(corrector_steps):
      state = corrector(state, t, jax.random.fold_in(key, j + 1))
    rev_f, rev_g = reverse.discretize(state, t, dt)
    mean = jax.tree.map(lambda s, f: s - f, state, rev_f)
    noise = _leaves_like(jax.random.fold_in(key, 0), state)
    new = jax.tree.map(
        lambda m, g, z: m + _checks.broadcast_to_data(g, m).astype(m.dtype) * z,
        mean, rev_g, noise)
    return (new, mean), None

  (state, mean), _ = jax.lax.scan(body, (init, init), jnp.arange(n_steps))
  return mean if denoise else state
