"""A Variational Diffusion Model: a noise schedule plus a noise-prediction network.

`VDM` is an immutable description (modules and constants); parameters live in
a plain dict ``{'schedule': ..., 'network': ...}`` passed to every method, so
all methods are pure and can be used under jit, grad, vmap and pmap.

The network sees gamma, not t, normalised with the *config* constants,
t_in = (gamma - gamma_min) / (gamma_max - gamma_min) (as in the VDM code), so
the conditioning does not move when learned endpoints drift. Its output is added
to z: eps_hat = z + net(z, t_in). With the zero-initialised output layer the
model starts at eps_hat = z, the exact optimum for data concentrated at 0 as
gamma -> +inf (the VDM code's "base measure").

Reference: Kingma et al., Variational Diffusion Models,
https://arxiv.org/abs/2107.00630 (App. B).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax import losses
from vdm_jax import schedules


@dataclasses.dataclass(frozen=True)
class VDM:
  """Schedule + network + data constants of a VDM.

  Attributes:
    schedule: a schedule module from `vdm_jax.schedules` (`apply(p, t) -> gamma`).
    network: `UNet` or `ScoreMLP` (`apply(p, z, t_in, label=..., train=...)`).
    vocab_size: number of discrete data values V.
    num_steps: T for a discrete-time model, 0 for continuous time.
    antithetic: low-discrepancy sampling of t.
    gamma_min, gamma_max: constants that normalise gamma for the network.
  """
  schedule: nn.Module
  network: nn.Module
  vocab_size: int
  num_steps: int = 0
  antithetic: bool = True
  gamma_min: float = schedules.GAMMA_MIN
  gamma_max: float = schedules.GAMMA_MAX

  def __post_init__(self):
    schedules.check_endpoints(self.gamma_min, self.gamma_max, "VDM")
    _checks.check_vocab_size(self.vocab_size, "VDM: vocab_size")
    _checks.check_int(self.num_steps, "VDM: num_steps (0 = continuous)", minimum=0)

  def init(self, rng, x_int, label=None) -> dict[str, Any]:
    """Initialises {'schedule', 'network'} parameters for data shaped like `x_int`."""
    s_rng, n_rng = jax.random.split(rng)
    z = jnp.zeros(x_int.shape, jnp.float32)
    t_in = jnp.zeros(x_int.shape[:1], jnp.float32)
    kwargs = {} if label is None else {"label": label}
    return {
        "schedule": schedules.init_schedule(self.schedule, s_rng),
        "network": self.network.init(n_rng, z, t_in, **kwargs)["params"],
    }

  def gamma_fn(self, params) -> schedules.GammaFn:
    """t -> gamma(t) under `params['schedule']`."""
    return schedules.bind(self.schedule, params["schedule"])

  def eps_fn(self, params, *, train: bool = False, rng=None, label=None,
             dtype=jnp.float32) -> losses.EpsFn:
    """Returns (z, gamma) -> eps_hat = z + net(z, t_in) under `params['network']`.

    Args:
      train: enables dropout; then `rng` is required.
      label: optional `[B]` class labels (class-conditional networks).
      dtype: dtype of the network input (bfloat16 for mixed precision; the
        output and the loss stay float32).
    """
    if train and rng is None:
      raise ValueError("VDM.eps_fn: train=True needs an rng for dropout.")
    scale = self.gamma_max - self.gamma_min

    def eps_fn(z, gamma):
      t_in = (jnp.broadcast_to(gamma, z.shape[:1]) - self.gamma_min) / scale
      kwargs = {"train": train}
      if label is not None:
        kwargs["label"] = label
      out = self.network.apply({"params": params["network"]}, z.astype(dtype),
                               t_in, rngs={"dropout": rng} if train else None,
                               **kwargs)
      return z + out.astype(jnp.float32)

    return eps_fn

  def vlb_terms(self, params, rng, x_int, *, train: bool = False, label=None,
                dtype=jnp.float32) -> losses.VLBTerms:
    """Per-example -VLB terms in nats (see `vdm_jax.losses.vlb_terms`)."""
    loss_rng, drop_rng = jax.random.split(rng)
    return losses.vlb_terms(
        loss_rng, x_int, gamma_fn=self.gamma_fn(params),
        eps_fn=self.eps_fn(params, train=train, rng=drop_rng, label=label,
                           dtype=dtype),
        vocab_size=self.vocab_size, num_steps=self.num_steps,
        antithetic=self.antithetic)
