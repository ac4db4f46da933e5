"""ScoreVAE+: a learned correction added to the Bayes-rule decoder score.

ScoreVAE's decoder score uses a Gaussian `q_phi(z | x_t, t)` for the noisy-input
posterior `p_t(z | x_t)`. When the latent is informative, `p_t(z | x_t)` at
intermediate t is far from Gaussian (it mixes the latents of every clean image
compatible with `x_t`), so the Bayes-rule score is biased. ScoreVAE+ keeps the
trained encoder and the prior frozen and trains a correction network
`h_psi(x_t, z, t)` with the same denoising score-matching loss:

.. math::

  s_+(x_t, z, t) = s_\\theta(x_t, t) + \\nabla_{x_t} \\log q_\\phi(z \\mid x_t, t)
  - h_\\psi(x_t, z, t) / \\sigma_t .

`h_psi` is in eps units (like the prior's output) and its last layer starts at
zero, so training starts exactly at ScoreVAE's score and its DSM bound on
`-log p(x_0 | z)`.

The corrected score has the signature of `make_conditional_score` with the
pair `(encoder_params, correction_params)` in the encoder slot, so every
decoder of `decoding.py` and the DSM of `losses.make_score_dsm` take it as is.

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023 (ScoreVAE+, the corrected
  variant of the paper's tables; the official code trains the correction with
  the encoder and the prior frozen).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.models.layers import timestep_embedding


class CorrectionMLP(nn.Module):
  """``apply(params, x_t [B, ...], t [B], z [B, K]) -> [B, ...]`` (eps units).

  The flattened `x_t` and the latent are concatenated; every hidden layer adds
  a projection of the time embedding. The output layer is zero-initialised.

  Attributes:
    hidden: widths of the hidden layers.
    emb_dim: width of the time embedding.
  """
  hidden: Sequence[int] = (256, 256)
  emb_dim: int = 64

  @nn.compact
  def __call__(self, x_t, t, z):
    _checks.check_min_rank(x_t, 2, "x_t [B, ...]")
    _checks.check_rank(z, 2, "latent z [B, K]")
    b = x_t.shape[0]
    if z.shape[0] != b:
      raise ValueError(f"latent z has batch {z.shape[0]} but x_t has batch {b}.")
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (b,))
    emb = timestep_embedding(t, self.emb_dim)
    h = jnp.concatenate([x_t.reshape(b, -1), z], axis=-1)
    for width in self.hidden:
      h = nn.silu(nn.Dense(width)(h) + nn.Dense(width, use_bias=False)(emb))
    out = nn.Dense(x_t[0].size, kernel_init=nn.initializers.zeros)(h)
    return out.reshape(x_t.shape)


def make_corrected_score(score: Callable[..., jax.Array],
                         correction_apply: Callable[..., Any], sde):
  """ScoreVAE+ score from a ScoreVAE score and an eps-unit correction.

  Args:
    score: `score(prior_params, encoder_params, x_t, t, z)` from
      `conditional_score.make_conditional_score`.
    correction_apply: `(correction_params, x_t, t, z) -> [B, ...]` in eps units
      (e.g. `CorrectionMLP().apply`).
    sde: the prior's SDE (`marginal` gives sigma_t).

  Returns:
    `score_plus(prior_params, (encoder_params, correction_params), x_t, t, z)
    -> [B, ...]`.
  """
  def score_plus(prior_params, params, x_t, t, z):
    encoder_params, correction_params = params
    base = score(prior_params, encoder_params, x_t, t, z)
    h = correction_apply(correction_params, x_t, t, z)
    _checks.check_same_shape(h, x_t, "correction output", "x_t")
    _, std = sde.marginal(x_t, t)
    return base - h / _checks.broadcast_to_data(std, x_t)
  return score_plus
