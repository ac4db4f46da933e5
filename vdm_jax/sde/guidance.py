"""Guidance for conditional sampling: classifier guidance and classifier-free guidance.

Classifier guidance adds the scaled gradient of a noise-aware classifier to an
unconditional score; classifier-free guidance mixes the conditional and the
unconditional outputs of one network trained with label dropout:

.. math::

  \\tilde s(x, t, y) = s(x, t) + w_c \\nabla_x \\log p_t(y | x), \\qquad
  \\tilde s(x, t, y) = (1 + w)\\, s(x, t, y) - w\\, s(x, t, \\varnothing).

With w_c = 1 and the exact p_t(y|x), the classifier-guided score is exactly the
conditional score grad log p_t(x | y); with w = 0 classifier-free guidance is the
conditional model. The CFG formula is linear, so it applies unchanged to eps
predictions (eps = -s_t * score). Guidance with w_c != 1 or w != 0 no longer
samples a normalised model (no likelihood interpretation).

References:
  Dhariwal & Nichol. Diffusion Models Beat GANs on Image Synthesis.
  https://arxiv.org/abs/2105.05233, 2021 (Sec. 4, classifier guidance).
  Ho & Salimans. Classifier-Free Diffusion Guidance.
  https://arxiv.org/abs/2207.12598, 2022 (Sec. 3.2, Alg. 1-2).
  Song et al. Score-Based Generative Modeling through SDEs.
  https://arxiv.org/abs/2011.13456, 2021 (Sec. 5, App. I).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from vdm_jax import _checks


def classifier_guided_score(score_fn: Callable, log_prob_fn: Callable, *,
                            scale: float = 1.0) -> Callable:
  """Builds `guided(x, t, y) = score_fn(x, t) + scale * grad_x log p_t(y | x)`.

  Args:
    score_fn: unconditional `score_fn(x [B, ...], t [B]) -> [B, ...]`.
    log_prob_fn: `log_prob_fn(x [B, ...], t [B], y [B]) -> [B]`, the log
      probability a noise-aware classifier gives to label y at time t. Each
      example's value must depend only on its own x (so that the gradient of
      the sum is the per-example gradient).
    scale: guidance scale w_c (1 gives the exact conditional score when the
      classifier is exact).

  Returns:
    `guided(x, t, y) -> [B, ...]`; bind y (`functools.partial` or a lambda) to
    get a sampler-ready `score_fn(x, t)`.
  """
  if not callable(score_fn) or not callable(log_prob_fn):
    raise TypeError("score_fn and log_prob_fn must be callable.")

  def guided(x, t, y):
    def total(z):
      lp = log_prob_fn(z, t, y)
      if jnp.ndim(lp) != 1 or lp.shape[0] != z.shape[0]:
        raise ValueError(f"log_prob_fn must return [B] = ({z.shape[0]},) log "
                         f"probabilities, got shape {jnp.shape(lp)}.")
      return jnp.sum(lp)

    return score_fn(x, t) + scale * jax.grad(total)(x)

  return guided


def combine_cfg(cond, uncond, *, w: float):
  """(1 + w) cond - w uncond, for scores or eps predictions of equal shape."""
  _checks.check_same_shape(cond, uncond, "cond", "uncond")
  return (1.0 + w) * cond - w * uncond


def classifier_free_guided_score(cond_score_fn: Callable, *, w: float,
                                 null_label) -> Callable:
  """Builds `guided(x, t, y) = (1 + w) s(x, t, y) - w s(x, t, null)`.

  Both terms come from one network evaluated twice (the batch is doubled, so
  one guided call costs one network call on 2B examples).

  Args:
    cond_score_fn: `cond_score_fn(x [B, ...], t [B], y [B]) -> [B, ...]`; the
      label `null_label` means "no label" (e.g. `num_classes` for
      `vdm_jax.models.UNet(num_classes=...)`).
    w: guidance weight (w = 0: plain conditional model; w > 0 sharpens).
    null_label: the integer label used for the unconditional branch.

  Returns:
    `guided(x, t, y)`.
  """
  if not callable(cond_score_fn):
    raise TypeError(f"cond_score_fn must be callable, got {type(cond_score_fn)}.")

  def guided(x, t, y):
    y = jnp.asarray(y)
    _checks.check_batch(y, x, "y", "x")
    y = jnp.broadcast_to(y, (x.shape[0],))
    t = jnp.broadcast_to(jnp.asarray(t), (x.shape[0],))
    null = jnp.full_like(y, null_label)
    both = cond_score_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                         jnp.concatenate([y, null]))
    cond, uncond = jnp.split(both, 2)
    return combine_cfg(cond, uncond, w=w)

  return guided


def drop_labels(rng, labels, *, p_uncond: float, null_label):
  """Label dropout for CFG training: each label becomes `null_label` w.p. p_uncond.

  Args:
    rng: PRNG key.
    labels: `[B]` integer labels.
    p_uncond: dropout probability in [0, 1] (0.1-0.2 worked best in Ho &
      Salimans).
    null_label: the "no label" token.

  Returns:
    `[B]` labels with some replaced by `null_label`.
  """
  labels = jnp.asarray(labels)
  _checks.check_rank(labels, 1, "labels")
  if not 0.0 <= p_uncond <= 1.0:
    raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}.")
  drop = jax.random.bernoulli(rng, p_uncond, labels.shape)
  return jnp.where(drop, jnp.asarray(null_label, labels.dtype), labels)
