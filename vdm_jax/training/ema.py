"""Exponential moving average of parameters, as an optax-style ``init``/``update`` pair.

.. math::

  \\bar\\theta_{n+1} = \\rho_n \\bar\\theta_n + (1 - \\rho_n) \\theta_{n+1},
  \\qquad \\rho_n = \\min\\!\\left(\\rho, \\frac{1 + n}{10 + n}\\right)

with ``decay`` = ρ and ``n`` the number of updates so far. The warm-up
(ρ_n < ρ for the first updates, as in TensorFlow's ``ExponentialMovingAverage``
with ``num_updates``) keeps a short run's average from being dominated by the
random initialisation: a plain ρ = 0.999 average of a 1,500-step run still
holds 0.999^1500 = 22% of it. ``warmup=False`` gives the plain average
ρ_n = ρ.

References:
  Polyak & Juditsky. Acceleration of stochastic approximation by averaging.
  SIAM J. Control Optim. 30(4), 1992.
  Song & Ermon. Improved Techniques for Training Score-Based Generative Models.
  https://arxiv.org/abs/2006.09011, 2020 (EMA for score models).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class EmaState(NamedTuple):
  """`count`: updates so far (int32 scalar); `params`: the average."""
  count: jax.Array
  params: Any


class Ema(NamedTuple):
  """``init(params) -> EmaState``; ``update(params, state) -> EmaState``."""
  init: Callable[[Any], EmaState]
  update: Callable[[Any, EmaState], EmaState]


def decay_at(count, decay: float, *, warmup: bool = True):
  """ρ_n: the decay applied at update number `count` (a traced scalar is fine)."""
  if not warmup:
    return jnp.asarray(decay, jnp.float32)
  count = jnp.asarray(count, jnp.float32)
  return jnp.minimum(decay, (1.0 + count) / (10.0 + count))


def ema(decay: float, *, warmup: bool = True) -> Ema:
  """The parameter average with rate `decay` in [0, 1) (0: the last iterate).

  Args:
    decay: ρ, the asymptotic decay.
    warmup: use ρ_n = min(ρ, (1 + n) / (10 + n)) instead of ρ.

  Returns:
    an `Ema` pair of pure functions; the state is a pytree (checkpointable).
  """
  if not 0.0 <= decay < 1.0:
    raise ValueError(f"EMA decay must lie in [0, 1), got {decay}.")

  def init(params) -> EmaState:
    return EmaState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.copy, params))

  def update(params, state: EmaState) -> EmaState:
    rho = decay_at(state.count, decay, warmup=warmup)
    avg = jax.tree.map(lambda e, p: (rho * e + (1.0 - rho) * p).astype(e.dtype),
                       state.params, params)
    return EmaState(state.count + 1, avg)

  return Ema(init, update)
