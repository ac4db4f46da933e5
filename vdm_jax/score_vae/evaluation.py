"""Evaluating ScoreVAE: batched encoding and decoding of a test set, and the rate.

ScoreVAE (Batzolis, Stanczuk, Schonlieb, https://arxiv.org/abs/2304.12141,
2023) decodes a latent z by sampling p(x | z) with the conditional score
s_theta(x_t, t) + gamma grad_{x_t} log q_phi(z | x_t, t): by the reverse SDE
(a draw from p(x | z), optionally ending with Tweedie's E[x_0 | x_tmin, z]) or
the probability-flow ODE. This module builds the jitted decoders of one
trained encoder (`scorevae_decoders`), runs them over a test set in batches
(`map_batches`, `decode_and_score`), draws unconditional prior samples with
the same sampler (`sample_prior`), and measures the rate
E_x KL(q(z | x) || N(0, I)) (`mean_kl`). The samplers are those of
`decoding.py`.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax.score_vae import conditional_score
from vdm_jax.score_vae import decoding
from vdm_jax.score_vae import encoder as encoder_lib
from vdm_jax.sde import samplers


def map_batches(fn: Callable, x, batch_size: int, *args) -> np.ndarray:
  """`concatenate([fn(x[i:i + batch_size], *args) ...])` on the host."""
  outs = [np.asarray(fn(jnp.asarray(x[i:i + batch_size]), *args))
          for i in range(0, len(x), batch_size)]
  return np.concatenate(outs)


def make_jit_decoder(sde, score: Callable, data_shape: Sequence[int], *,
                     n_steps: int, method: str = "sde", t_min: float,
                     tweedie: bool) -> Callable:
  """Jitted `decode(prior_params, cond_params, z, rng)` (`decoding.make_decoder`)."""
  return jax.jit(decoding.make_decoder(
      sde, score, data_shape, n_steps=n_steps, method=method, t_min=t_min,
      tweedie=tweedie))


def scorevae_decoders(sde, prior_score_apply: Callable, encoder,
                      data_shape: Sequence[int], *, include_log_var: bool,
                      sde_steps: int, ode_steps: int = 0,
                      guidance_scales: Sequence[float] = (), t_min: float,
                      tweedie: bool) -> dict:
  """`{name: decode(prior_params, enc_params, z, rng)}` of one ScoreVAE encoder.

  'ScoreVAE': the reverse SDE with `sde_steps` Euler-Maruyama steps; with
  `ode_steps > 0`, 'ScoreVAE (PF-ODE)': Heun on the probability-flow ODE; for
  each gamma of `guidance_scales`, 'ScoreVAE (guidance gamma)': the reverse
  SDE with the encoder score scaled by gamma (the paper's guidance knob; for
  gamma != 1 no longer Bayes' rule).
  """
  def decoder(method, steps, gamma=1.0):
    score = conditional_score.make_conditional_score(
        prior_score_apply, encoder.apply, include_log_var=include_log_var,
        guidance_scale=gamma)
    return make_jit_decoder(sde, score, data_shape, n_steps=steps,
                            method=method, t_min=t_min, tweedie=tweedie)
  out = {"ScoreVAE": decoder("sde", sde_steps)}
  if ode_steps:
    out["ScoreVAE (PF-ODE)"] = decoder("ode", ode_steps)
  for gamma in guidance_scales:
    out[f"ScoreVAE (guidance {gamma:g})"] = decoder("sde", sde_steps,
                                                    float(gamma))
  return out


def decode_and_score(decoders: Mapping[str, Callable], prior_params,
                     cond_params, z, rng, *, to_pixels: Callable,
                     score_fn: Callable, batch_size: int,
                     first_index: int = 0) -> dict:
  """`{name: (score_fn(pixels), pixels)}`: decodes z with each decoder.

  Decoder number d draws its noise from `fold_in(rng, first_index + d)`, the
  same key for every batch; `to_pixels` maps the decoded model-space images
  to the scale `score_fn` expects.
  """
  out = {}
  for d, (name, dec) in enumerate(decoders.items()):
    rec = to_pixels(map_batches(
        lambda zz, key, dec=dec: dec(prior_params, cond_params, zz, key), z,
        batch_size, jax.random.fold_in(rng, first_index + d)))
    out[name] = (score_fn(rec), rec)
  return out


def sample_prior(sde, prior_score_apply: Callable, prior_params, shape, rng, *,
                 n_steps: int, t_min: float, tweedie: bool):
  """Unconditional samples of the prior with the decoders' reverse-SDE sampler.

  What a decoder that ignores the latent would return (`vdm_jax.sde.samplers.pc_sample`,
  Euler-Maruyama from `t = T` down to `t_min`).
  """
  prior_fn = lambda x, t: prior_score_apply(prior_params, x, t)
  return jax.jit(lambda key: samplers.pc_sample(
      key, prior_fn, sde, shape, n_steps=n_steps, t_end=t_min, tweedie=tweedie)[0])(rng)


def mean_kl(encoder, params, x) -> float:
  """The rate: mean over x of KL(q(z | x, t=0) || N(0, I)) in nats."""
  m, lv = encoder.apply(params, jnp.asarray(x), jnp.zeros((len(x),)))
  return float(jnp.mean(encoder_lib.kl_to_standard_normal(m, lv)))
