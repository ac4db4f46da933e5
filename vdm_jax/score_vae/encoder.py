"""Time-dependent Gaussian encoder e_phi(z | x_t, t) of ScoreVAE and its densities.

The encoder maps a (possibly noisy) input `x_t` and a time `t` in [0, 1] to the
mean and log-variance of a diagonal Gaussian over the latent `z`:

.. math::

  q_\\phi(z \\mid x_t, t) = \\mathcal{N}\\big(z;\\ \\mu_\\phi(x_t, t),\\
  \\mathrm{diag}(e^{\\ell_\\phi(x_t, t)})\\big).

At `t = 0` it is the usual VAE encoder `q_phi(z | x_0)` used to draw latents;
for `t > 0` it models the noisy-input posterior `p_t(z | x_t)` whose `x_t`-score
is added to the prior score (see `conditional_score.py`).

Encoders are Flax modules called as ``apply(params, x [B, ...], t [B] or scalar)
-> (mean [B, K], log_var [B, K])``. Any module with that signature can be used.

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
  Kingma, Welling, Auto-Encoding Variational Bayes,
  https://arxiv.org/abs/1312.6114, 2013.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.models.layers import timestep_embedding


def _check_gaussian_args(z, mean, log_var):
  _checks.check_rank(z, 2, "latent z [B, K]")
  _checks.check_floating(z, "latent z")
  _checks.check_same_shape(mean, log_var, "encoder mean", "encoder log_var")
  if z.shape != mean.shape:
    raise ValueError(
        f"latent z has shape {z.shape} but the encoder outputs latents of shape "
        f"{mean.shape} ([B, latent_dim]); the latent size of z must match the "
        "encoder's latent_dim.")


def gaussian_log_prob(z, mean, log_var, *, include_log_var: bool = True):
  """Log-density of a diagonal Gaussian, summed over latent dimensions.

  .. math::

    \\log q(z) = -\\tfrac12 \\sum_i \\big[(z_i - \\mu_i)^2 e^{-\\ell_i}
    + \\ell_i + \\log 2\\pi\\big]

  With ``include_log_var=False`` the `ell_i + log 2 pi` terms are dropped, which
  is what both official ScoreVAE codes differentiate (their `x_t`-score omits
  `-1/2 grad ell`). It equals the exact density up to a constant only when the
  log-variance does not depend on `x_t`.

  Args:
    z: `[B, K]` latents.
    mean: `[B, K]` means mu.
    log_var: `[B, K]` log-variances ell.
    include_log_var: keep the normaliser terms (the exact density).

  Returns:
    `[B]` log-density in nats.
  """
  _check_gaussian_args(z, mean, log_var)
  quad = jnp.square(z - mean) * jnp.exp(-log_var)
  if include_log_var:
    return -0.5 * jnp.sum(quad + log_var + math.log(2 * math.pi), axis=-1)
  return -0.5 * jnp.sum(quad, axis=-1)


def kl_to_standard_normal(mean, log_var):
  """KL divergence from N(mean, diag(exp(log_var))) to N(0, I), per example.

  .. math::

    \\mathrm{KL}(q \\,\\|\\, \\mathcal{N}(0, I)) =
    -\\tfrac12 \\sum_i \\big(1 + \\ell_i - \\mu_i^2 - e^{\\ell_i}\\big)

  Args:
    mean: `[B, K]` means.
    log_var: `[B, K]` log-variances.

  Returns:
    `[B]` KL in nats.
  """
  _checks.check_rank(mean, 2, "encoder mean [B, K]")
  _checks.check_same_shape(mean, log_var, "encoder mean", "encoder log_var")
  return -0.5 * jnp.sum(1.0 + log_var - jnp.square(mean) - jnp.exp(log_var),
                        axis=-1)


def sample_latent(mean, log_var, noise):
  """Reparameterised draw `z = mean + exp(log_var / 2) * noise`, all `[B, K]`."""
  _checks.check_same_shape(mean, noise, "encoder mean", "latent noise")
  return mean + jnp.exp(0.5 * log_var) * noise


def _time_input(t, batch: int):
  t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch,))
  return t


class MLPEncoder(nn.Module):
  """Time-dependent MLP encoder ``apply(params, x [B, ...], t) -> (mean, log_var)``.

  The input is flattened and concatenated with a sinusoidal embedding of `t`
  (scaled by 1000, as for the score networks); every hidden layer also receives
  a learned projection of that embedding, so the map can change with t.

  Attributes:
    latent_dim: K, the latent size.
    hidden: widths of the hidden layers.
    emb_dim: width of the time embedding.
  """
  latent_dim: int
  hidden: Sequence[int] = (256, 256)
  emb_dim: int = 64

  @nn.compact
  def __call__(self, x, t):
    _checks.check_min_rank(x, 2, "encoder input x [B, ...]")
    _checks.check_floating(x, "encoder input x")
    b = x.shape[0]
    t = _time_input(t, b)
    _checks.check_batch(t, x)
    emb = timestep_embedding(t, self.emb_dim)
    h = x.reshape(b, -1)
    for width in self.hidden:
      h = nn.Dense(width)(h) + nn.Dense(width, use_bias=False)(emb)
      h = nn.silu(h)
    out = nn.Dense(2 * self.latent_dim)(h)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


class ConvEncoder(nn.Module):
  """Time-dependent conv encoder for images ``apply(params, x [B,H,W,C], t)``.

  Stages of (conv 3x3, +time projection, GroupNorm, swish), halving the
  resolution between stages with a stride-2 conv, then a dense head giving
  `(mean, log_var)`. No batch statistics are used, so examples stay independent
  (needed for the per-example `x_t`-gradients of the conditional score).

  Attributes:
    latent_dim: K, the latent size.
    ch: channels of the first stage.
    ch_mult: channel multiplier per stage; stage i > 0 halves the resolution.
    dense: width of the dense layer before the head.
    emb_dim: width of the time embedding.
  """
  latent_dim: int
  ch: int = 32
  ch_mult: Sequence[int] = (1, 2)
  dense: int = 256
  emb_dim: int = 64

  @nn.compact
  def __call__(self, x, t):
    _checks.check_rank(x, 4, "ConvEncoder input x [B, H, W, C]")
    _checks.check_floating(x, "encoder input x")
    b, hgt, wdt, _ = x.shape
    factor = 2 ** (len(self.ch_mult) - 1)
    if hgt % factor or wdt % factor:
      raise ValueError(
          f"ConvEncoder: image size {hgt}x{wdt} must be divisible by {factor} "
          f"for ch_mult={tuple(self.ch_mult)}.")
    t = _time_input(t, b)
    emb = nn.silu(nn.Dense(self.emb_dim)(timestep_embedding(t, self.emb_dim)))
    h = x
    for i, mult in enumerate(self.ch_mult):
      width = self.ch * mult
      strides = (1, 1) if i == 0 else (2, 2)
      h = nn.Conv(width, (3, 3), strides=strides)(h)
      h = h + nn.Dense(width)(emb)[:, None, None, :]
      h = nn.swish(nn.GroupNorm(num_groups=min(8, width))(h))
      h = nn.Conv(width, (3, 3))(h)
      h = nn.swish(h)
    h = h.reshape(b, -1)
    h = nn.silu(nn.Dense(self.dense)(h) + nn.Dense(self.dense, use_bias=False)(emb))
    out = nn.Dense(2 * self.latent_dim)(h)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


def make_encoder(kind: str, latent_dim: int, *, hidden: Sequence[int] = (256, 256),
                 ch: int = 32, ch_mult: Sequence[int] = (1, 2),
                 emb_dim: int = 64) -> nn.Module:
  """The time-dependent encoder q_phi(z | x_t, t) of ScoreVAE, by name.

  The same network serves the ScoreVAE encoder and (at t = 0) a Gaussian VAE
  baseline, so one call fixes the architecture of both.

  Args:
    kind: 'mlp' (`MLPEncoder`) or 'conv' (`ConvEncoder`).
    latent_dim: K, the latent size.
    hidden: MLP hidden widths; for 'conv', `hidden[0]` is the dense width.
    ch, ch_mult: 'conv' only: channels of the first stage, multipliers.
    emb_dim: width of the time embedding.
  """
  if kind == "mlp":
    return MLPEncoder(latent_dim, hidden=tuple(hidden), emb_dim=emb_dim)
  if kind == "conv":
    return ConvEncoder(latent_dim, ch=ch, ch_mult=tuple(ch_mult),
                       dense=hidden[0], emb_dim=emb_dim)
  raise ValueError(f"encoder kind must be 'mlp' or 'conv', got {kind!r}.")
