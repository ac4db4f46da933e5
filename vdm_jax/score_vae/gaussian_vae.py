"""Gaussian-decoder VAE baseline for ScoreVAE (same encoder, same latent size).

The classic VAE with an isotropic Gaussian likelihood:

.. math::

  \\mathcal{L}(\\phi, \\psi) = \\mathbb{E}_{x_0}\\Big[
  -\\mathbb{E}_{z \\sim q_\\phi(z|x_0, 0)} \\log \\mathcal{N}\\big(x_0;\\,
  \\mu_\\psi(z),\\, e^{2 \\lambda} I\\big)
  + \\beta\\, \\mathrm{KL}\\big(q_\\phi(z|x_0, 0) \\,\\|\\, \\mathcal{N}(0, I)\\big)\\Big]

with a learned global log-scale `lambda`. The encoder is the ScoreVAE encoder
evaluated at t = 0, so the two models differ only in the decoder. This
Gaussian assumption on p(x | z) is what makes VAE reconstructions blurry: the
optimal decoder mean is the posterior average E[x_0 | z].

References:
  Kingma, Welling, Auto-Encoding Variational Bayes,
  https://arxiv.org/abs/1312.6114, 2013.
  Higgins et al., beta-VAE, ICLR 2017 (https://openreview.net/forum?id=Sy2fzU9gl).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.score_vae import encoder as encoder_lib


class GaussianDecoder(nn.Module):
  """MLP decoder ``apply(params, z [B, K]) -> (mean [B, *data_shape], log_scale [])``.

  Attributes:
    data_shape: shape of one example, e.g. (8, 8, 1).
    hidden: widths of the hidden layers.
    init_log_scale: initial value of the learned global log std.
  """
  data_shape: Sequence[int]
  hidden: Sequence[int] = (256, 256)
  init_log_scale: float = 0.0

  @nn.compact
  def __call__(self, z):
    _checks.check_rank(z, 2, "decoder input z [B, K]")
    _checks.check_floating(z, "decoder input z")
    h = z
    for width in self.hidden:
      h = nn.silu(nn.Dense(width)(h))
    d = math.prod(self.data_shape)
    mean = nn.Dense(d)(h).reshape((z.shape[0],) + tuple(self.data_shape))
    log_scale = self.param("log_scale", nn.initializers.constant(
        self.init_log_scale), ())
    return mean, log_scale


def gaussian_nll(x, mean, log_scale):
  """`-log N(x; mean, exp(2 log_scale) I)` summed over all but the batch -> [B] nats."""
  _checks.check_same_shape(x, mean, "x0", "decoder mean")
  quad = jnp.square(x - mean) * jnp.exp(-2.0 * log_scale)
  return _checks.sum_except_batch(
      0.5 * quad + log_scale + 0.5 * math.log(2 * math.pi))


def make_vae_loss(encoder_apply: Callable, decoder_apply: Callable, *,
                  latent_dim: int, beta: float):
  """Builds the per-example beta-VAE loss.

  Args:
    encoder_apply: `(enc_params, x, t) -> (mean, log_var)`; called at t = 0.
    decoder_apply: `(dec_params, z) -> (mean [B, ...], log_scale [])`.
    latent_dim: K.
    beta: KL weight (>= 0).

  Returns:
    `loss_fn(params, rng, x0 [B, ...]) -> (loss [B], terms)` with
    `params = {'encoder': ..., 'decoder': ...}` and terms 'nll', 'kl', 'loss'
    (nats per example).
  """
  if beta < 0:
    raise ValueError(f"beta must be >= 0, got {beta}.")

  def loss_fn(params, rng, x0):
    _checks.check_min_rank(x0, 2, "x0 [B, ...]")
    _checks.check_floating(x0, "x0")
    b = x0.shape[0]
    mean, log_var = encoder_apply(params["encoder"], x0, jnp.zeros((b,)))
    if mean.shape != (b, latent_dim):
      raise ValueError(
          f"encoder outputs latents of shape {mean.shape}, expected "
          f"[B, latent_dim] = {(b, latent_dim)}; latent_dim mismatch.")
    z = encoder_lib.sample_latent(mean, log_var,
                                  jax.random.normal(rng, mean.shape, mean.dtype))
    x_mean, log_scale = decoder_apply(params["decoder"], z)
    nll = gaussian_nll(x0, x_mean, log_scale)
    kl = encoder_lib.kl_to_standard_normal(mean, log_var)
    loss = nll + beta * kl
    return loss, {"nll": nll, "kl": kl, "loss": loss}

  return loss_fn


def reconstruct(encoder_apply: Callable, decoder_apply: Callable, params, x0):
  """Decoder mean at the encoder mean: the usual (blurry) VAE reconstruction."""
  mean, _ = encoder_apply(params["encoder"], x0, jnp.zeros((x0.shape[0],)))
  return decoder_apply(params["decoder"], mean)[0]
