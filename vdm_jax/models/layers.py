"""Building blocks shared by the score networks: embeddings, ResNet block, attention."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vdm_jax.models.attention import attention


def timestep_embedding(t_in, dim: int, *, scale: float = 1000.0,
                       max_period: float = 10_000.0):
  """Sinusoidal embedding of a conditioning scalar in [0, 1] (Transformer-style).

  .. math::

    e = [\\sin(s t \\omega_k), \\cos(s t \\omega_k)]_{k < d/2}, \\quad
    \\omega_k = \\exp(-k \\ln(P) / (d/2 - 1))

  with s = `scale` (1000, as in VDM, which embeds 1000 * t_in) and P = `max_period`.

  Args:
    t_in: `[B]` conditioning values, typically in [0, 1].
    dim: even embedding width.

  Returns:
    `[B, dim]` float32 embedding.
  """
  if dim % 2 or dim < 4:
    raise ValueError(f"timestep_embedding: dim must be even and >= 4, got {dim}.")
  t_in = jnp.asarray(t_in, jnp.float32)
  if t_in.ndim != 1:
    raise ValueError(f"timestep_embedding: t_in must have shape [B], got {t_in.shape}.")
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / (half - 1))
  angles = scale * t_in[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def fourier_features(z, exponents: Sequence[int] = (7, 8)):
  """VDM Fourier features sin/cos(2^n pi z) for n in `exponents`, channel-last.

  They let a network resolve the fine structure of z near t = 0, where the
  2^8 pi frequency has period 2/256, one bin of 8-bit data scaled to [-1, 1]
  (VDM App. C). Output `[..., C * 2 * len(exponents)]`: sines first, then cosines,
  channel-major and frequency-minor.
  """
  freqs = jnp.asarray([2.0 ** n * math.pi for n in exponents], z.dtype)
  angles = z[..., :, None] * freqs  # [..., C, F]
  angles = angles.reshape(*z.shape[:-1], -1)
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def num_groups(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
  """GroupNorm groups: the largest divisor of `channels` <= max_groups whose
  groups hold >= min_group_size channels (when `channels` allows it).

  The group size matters for conditioning: `ResnetBlock` adds a per-channel
  shift cond_proj(cond) and then normalises; with one channel per group
  (GroupNorm = InstanceNorm) the spatial mean removal cancels the shift
  exactly and the block cannot see t or the label. The VDM/DDPM networks use 32
  groups on >= 128 channels (>= 4 per group); narrow CPU-sized networks get
  fewer groups so that they keep the same group size.
  """
  for g in range(min(max_groups, channels), 0, -1):
    if channels % g == 0 and channels // g >= min_group_size:
      return g
  return 1


class ResnetBlock(nn.Module):
  """GN -> swish -> conv -> +cond -> GN -> swish -> dropout -> conv(zero) -> +skip.

  The last conv and the conditioning projection start at zero, so every block is
  the identity at initialisation (as in the VDM reference network).
  """
  out_ch: int | None = None
  dropout: float = 0.1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train: bool):
    out_ch = self.out_ch or x.shape[-1]
    groups = num_groups(x.shape[-1])
    h = nn.swish(nn.GroupNorm(num_groups=groups, dtype=self.dtype)(x))
    h = nn.Conv(out_ch, (3, 3), dtype=self.dtype, name="conv1")(h)
    h = h + nn.Dense(out_ch, use_bias=False, kernel_init=nn.initializers.zeros,
                     dtype=self.dtype, name="cond_proj")(cond)[:, None, None, :]
    h = nn.swish(nn.GroupNorm(num_groups=num_groups(out_ch), dtype=self.dtype)(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = nn.Conv(out_ch, (3, 3), kernel_init=nn.initializers.zeros,
                dtype=self.dtype, name="conv2")(h)
    if x.shape[-1] != out_ch:
      x = nn.Dense(out_ch, dtype=self.dtype, name="shortcut")(x)
    return x + h


class AttnBlock(nn.Module):
  """Single-head self-attention over the spatial positions, residual, zero-init out.

  `attention_fn(q, k, v)` maps `[B, L, C]` queries, keys and values to `[B, L, C]`
  (default `vdm_jax.models.attention.attention`).
  """
  dtype: jnp.dtype = jnp.float32
  attention_fn: Callable = attention

  @nn.compact
  def __call__(self, x):
    b, hgt, wdt, c = x.shape
    h = nn.GroupNorm(num_groups=num_groups(c), dtype=self.dtype)(x)
    h = h.reshape(b, hgt * wdt, c)
    q = nn.Dense(c, dtype=self.dtype, name="q")(h)
    k = nn.Dense(c, dtype=self.dtype, name="k")(h)
    v = nn.Dense(c, dtype=self.dtype, name="v")(h)
    h = self.attention_fn(q, k, v)
    h = nn.Dense(c, kernel_init=nn.initializers.zeros, dtype=self.dtype,
                 name="proj_out")(h)
    return x + h.reshape(b, hgt, wdt, c)
