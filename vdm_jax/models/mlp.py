"""An MLP score network for vector data (toy problems, manifolds, 2-D densities)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.models.layers import timestep_embedding


class ScoreMLP(nn.Module):
  """MLP mapping (x, t_in[, y]) to a vector of x's size (eps, x0, v or score).

  Call: ``apply(params, x [B, D], t_in [B] or scalar, y=None [B, Dy])``; `t_in`
  is a conditioning scalar, typically in [0, 1] (t itself, or gamma normalised).
  `y`, when given, is concatenated to the input (conditional models).

  Attributes:
    hidden: widths of the hidden layers.
    emb_dim: width of the sinusoidal embedding of `t_in`.
    out_dim: output size; defaults to D.
    zero_init_output: start as the zero map (so an eps model starts at 0).
  """
  hidden: Sequence[int] = (256, 256, 256)
  emb_dim: int = 64
  out_dim: int | None = None
  zero_init_output: bool = True

  @nn.compact
  def __call__(self, x, t_in, y=None, train: bool = False):
    del train  # No dropout; accepted so the MLP is a drop-in for the UNet.
    _checks.check_rank(x, 2, "ScoreMLP input x [B, D]")
    _checks.check_floating(x, "x")
    t_in = jnp.broadcast_to(jnp.asarray(t_in, jnp.float32), x.shape[:1])
    h = [x, timestep_embedding(t_in, self.emb_dim)]
    if y is not None:
      _checks.check_rank(y, 2, "ScoreMLP condition y [B, Dy]")
      if y.shape[0] != x.shape[0]:
        raise ValueError(f"ScoreMLP: y batch {y.shape[0]} != x batch {x.shape[0]}.")
      h.append(y.astype(x.dtype))
    h = jnp.concatenate(h, axis=-1)
    for width in self.hidden:
      h = nn.silu(nn.Dense(width)(h))
    init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
    return nn.Dense(self.out_dim or x.shape[-1], kernel_init=init)(h)
