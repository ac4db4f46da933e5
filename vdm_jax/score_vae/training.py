"""Fitting ScoreVAE's models (prior, encoders, VAEs, correction, classifier) on the engine.

``fit`` minimises ``mean(loss_fn(params, rng, batch))`` with Adam after
global-norm clipping at 1 (Kingma & Ba, 2015; Pascanu et al., 2013), batches
drawn with replacement on the device, through `vdm_jax.training`: several
steps per device call (the models are small), the non-finite check, and an
optional plain parameter average. Step ``k`` of chunk ``c`` draws from
``split(fold_in(rng, c * chunk), n_c)[k]``, the stream of the experiment's
recorded figures.

On top of ``fit``: `train_dsm_prior` (an eps-model by denoising score
matching on the VP SDE), `train_scorevae` (the encoder of ScoreVAE with the
prior frozen), `train_vae` (the Gaussian-decoder VAE baseline with the same
encoder) and `train_scorevae_plus` (the ScoreVAE+ correction, encoder frozen);
each returns a `TrainedModel`.

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import training
from vdm_jax.score_vae import correction as correction_lib
from vdm_jax.score_vae import conditional_score
from vdm_jax.score_vae import gaussian_vae
from vdm_jax.score_vae import losses


def fit(loss_fn: Callable, params, data, *, steps: int, batch_size: int, lr: float,
        rng, ema: float | None = None, chunk: int = 200, name: str = "fit"):
  """Adam on ``mean(loss_fn(params, rng, batch))``; batches drawn on device.

  Args:
    loss_fn: ``(params, rng, x [B, ...]) -> [B]`` (or a scalar).
    params: initial parameters.
    data: ``[N, ...]`` training array.
    steps: optimiser steps.
    batch_size: examples per step.
    lr: constant Adam learning rate.
    rng: PRNG key.
    ema: decay of a plain parameter average (None: none).
    chunk: steps per random-key chunk and per logged window (the last window
      may be shorter).
    name: label of the progress bar and logs.

  Returns:
    ``(params, ema_params or None, history)``, history the mean loss of each
    window.
  """
  training.check_positive_int(steps, "steps")
  training.check_positive_int(batch_size, "batch_size")
  training.check_positive_int(chunk, "chunk")
  data = jnp.asarray(data)
  opt = training.make_optimizer(learning_rate=lr, grad_clip=1.0)
  average = training.ema(0.0 if ema is None else ema, warmup=False)

  step = training.make_step(training.value_and_grad(
      training.minibatch_loss(loss_fn, batch_size)), opt, average,
                            axis_name=training.AXIS,
                            rng_fn=training.chunked_rng(chunk, num_steps=steps,
                                                        fold_step=True))
  per_call = math.gcd(chunk, steps)
  run = training.train(step, training.init_state(params, opt, average),
                       batches=training.Resident((data,)), base_rng=rng,
                       num_steps=steps, log_every=chunk if steps % chunk == 0 else per_call,
                       steps_per_call=per_call, num_devices=1, name=name)
  history = [float(m["loss"]) for _, m in run.history]
  if not np.all(np.isfinite(history)):  # the engine raises first; kept explicit.
    raise RuntimeError(f"{name}: non-finite loss.")
  return run.state.params, (run.state.ema.params if ema is not None else None), history


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """A trained model of this module: its parameters and how the fit went.

  Attributes:
    params: the parameters (`train_scorevae_plus`: `(encoder, correction)`).
    final_loss: mean loss of the last logged window.
    train_seconds: wall time of the fit, compilation included.
    encoder: the encoder module (`train_scorevae`, `train_vae`).
    decoder: the Gaussian decoder module (`train_vae`).
    score: the conditional score `(prior_params, params, x, t, z)`
      (`train_scorevae_plus`).
  """
  params: Any
  final_loss: float
  train_seconds: float
  encoder: Any = None
  decoder: Any = None
  score: Callable | None = None


def train_dsm_prior(eps_init: Callable, eps_apply: Callable, sde, x_train, *,
                    t_min: float, steps: int, batch_size: int, lr: float,
                    ema: float, rng) -> TrainedModel:
  """An eps-prediction prior trained by denoising score matching on `sde`.

  .. math::

    \\mathcal{L}(\\theta) = \\mathbb{E}_{t \\sim U(t_{min}, T),\\, x_0,\\,
    \\epsilon}\\ \\tfrac12 \\|\\epsilon_\\theta(\\alpha_t x_0 + \\sigma_t
    \\epsilon, t) - \\epsilon\\|^2

  (DSM with sigma_t^2 weighting), the unconditional prior s_theta = -eps_theta
  / sigma_t that ScoreVAE freezes.

  Args:
    eps_init: `rng -> params` (e.g. from `prior.make_eps_network`).
    eps_apply: `(params, x [B, ...], t [B]) -> eps [B, ...]`.
    sde: a `vdm_jax.sde` VP SDE (`marginal`, `T`).
    x_train: `[N, ...]` training data in model space.
    t_min: smallest time drawn.
    steps, batch_size, lr: Adam steps, batch and step size (`fit`).
    ema: decay of the parameter average returned as `params`.
    rng: PRNG key (init from `rng`, batches from `fold_in(rng, 1)`).

  Returns:
    a `TrainedModel` whose `params` are the averaged parameters.
  """
  params = eps_init(rng)

  def dsm(params, key, x0):
    k_t, k_n = jax.random.split(key)
    t = jax.random.uniform(k_t, (x0.shape[0],), minval=t_min, maxval=sde.T)
    noise = jax.random.normal(k_n, x0.shape)
    mean, std = sde.marginal(x0, t)
    x_t = mean + std.reshape((-1,) + (1,) * (x0.ndim - 1)) * noise
    err = jnp.square(eps_apply(params, x_t, t) - noise)
    return 0.5 * jnp.sum(err.reshape(x0.shape[0], -1), -1)

  t0 = time.time()
  _, ema_params, hist = fit(dsm, params, x_train, steps=steps,
                            batch_size=batch_size, lr=lr,
                            rng=jax.random.fold_in(rng, 1), ema=ema,
                            name="prior")
  return TrainedModel(ema_params, hist[-1], time.time() - t0)


def train_scorevae(encoder, sde, prior_score_apply: Callable, prior_params,
                   x_train, *, latent_dim: int, beta: float, weighting: str,
                   include_log_var: bool, t_min: float, steps: int,
                   batch_size: int, lr: float, rng) -> TrainedModel:
  """Trains a ScoreVAE encoder with the prior frozen (`losses.make_scorevae_loss`).

  Minimises DSM of the composed score s_theta(x_t, t) + grad_{x_t} log
  q_phi(z | x_t, t) plus beta KL(q_phi(z | x_0) || N(0, I)) over the encoder
  parameters phi only.

  Args:
    encoder: the encoder module (e.g. `encoder.make_encoder`).
    sde, prior_score_apply, prior_params: the frozen prior.
    x_train: `[N, ...]` training data in model space.
    latent_dim: K.
    beta: KL weight.
    weighting, include_log_var, t_min: as in `losses.make_scorevae_loss`.
    steps, batch_size, lr: as in `fit`.
    rng: PRNG key for the init and for `fit`.

  Returns:
    a `TrainedModel` with `encoder` and its `params`.
  """
  loss = losses.make_scorevae_loss(
      sde, prior_score_apply, encoder.apply, latent_dim=latent_dim, beta=beta,
      weighting=weighting, include_log_var=include_log_var, t_min=t_min)
  t0 = time.time()
  params, _, hist = fit(
      lambda p, key, x: loss(p, prior_params, key, x)[0],
      encoder.init(rng, jnp.asarray(x_train[:1]), jnp.zeros((1,))), x_train,
      steps=steps, batch_size=batch_size, lr=lr, rng=rng,
      name=f"scorevae K={latent_dim} beta={beta:g}")
  return TrainedModel(params, hist[-1], time.time() - t0, encoder=encoder)


def train_vae(encoder, x_train, *, latent_dim: int, beta: float,
              decoder_hidden: Sequence[int], steps: int, batch_size: int,
              lr: float, rng) -> TrainedModel:
  """Trains the Gaussian-decoder VAE baseline (`gaussian_vae.make_vae_loss`).

  The negative ELBO with a learned-variance Gaussian decoder and KL weight
  beta, with the encoder evaluated at t = 0: the same encoder architecture,
  latent size, steps, batch and learning rate as the ScoreVAE it is compared
  with.

  Args:
    encoder: the encoder module (e.g. `encoder.make_encoder`).
    x_train: `[N, ...]` training data in model space.
    latent_dim: K.
    beta: KL weight.
    decoder_hidden: hidden widths of the `GaussianDecoder`.
    steps, batch_size, lr: as in `fit`.
    rng: PRNG key for the init and for `fit`.

  Returns:
    a `TrainedModel` with `encoder`, `decoder` and `params = {'encoder',
    'decoder'}`.
  """
  decoder = gaussian_vae.GaussianDecoder(x_train.shape[1:],
                                         hidden=tuple(decoder_hidden))
  params0 = {"encoder": encoder.init(rng, jnp.asarray(x_train[:1]),
                                     jnp.zeros((1,))),
             "decoder": decoder.init(rng, jnp.zeros((1, latent_dim)))}
  loss = gaussian_vae.make_vae_loss(encoder.apply, decoder.apply,
                                    latent_dim=latent_dim, beta=beta)
  t0 = time.time()
  params, _, hist = fit(lambda p, key, x: loss(p, key, x)[0], params0, x_train,
                        steps=steps, batch_size=batch_size, lr=lr, rng=rng,
                        name=f"vae K={latent_dim} beta={beta:g}")
  return TrainedModel(params, hist[-1], time.time() - t0, encoder=encoder,
                      decoder=decoder)


def train_scorevae_plus(scorevae: TrainedModel, sde,
                        prior_score_apply: Callable, prior_params, x_train, *,
                        latent_dim: int, hidden: Sequence[int], emb_dim: int,
                        weighting: str, include_log_var: bool, t_min: float,
                        steps: int, batch_size: int, lr: float,
                        rng) -> TrainedModel:
  """Trains the ScoreVAE+ correction of a trained ScoreVAE (encoder frozen).

  The conditional score becomes s_theta + grad log q_phi + c_psi(x_t, t, z)
  (`correction.make_corrected_score`), and only psi is fitted by DSM
  (`losses.make_scorevae_plus_loss`).

  Args:
    scorevae: the `train_scorevae` result (its encoder and parameters).
    sde, prior_score_apply, prior_params: the frozen prior.
    x_train: `[N, ...]` training data in model space.
    latent_dim: K.
    hidden, emb_dim: the `CorrectionMLP`.
    weighting, include_log_var, t_min: as in `train_scorevae`.
    steps, batch_size, lr: as in `fit`.
    rng: PRNG key for the init and for `fit`.

  Returns:
    a `TrainedModel` with the corrected `score` and `params = (encoder params,
    correction params)`.
  """
  corr = correction_lib.CorrectionMLP(hidden=tuple(hidden), emb_dim=emb_dim)
  base = conditional_score.make_conditional_score(
      prior_score_apply, scorevae.encoder.apply,
      include_log_var=include_log_var)
  plus = correction_lib.make_corrected_score(base, corr.apply, sde)
  loss = losses.make_scorevae_plus_loss(
      sde, plus, scorevae.encoder.apply, latent_dim=latent_dim,
      weighting=weighting, t_min=t_min)
  x1 = jnp.asarray(x_train[:1])
  params0 = corr.init(rng, x1, jnp.zeros((1,)), jnp.zeros((1, latent_dim)))
  t0 = time.time()
  params, _, hist = fit(
      lambda p, key, x: loss(p, scorevae.params, prior_params, key, x), params0,
      x_train, steps=steps, batch_size=batch_size, lr=lr, rng=rng,
      name=f"scorevae+ K={latent_dim}")
  return TrainedModel((scorevae.params, params), hist[-1], time.time() - t0,
                      encoder=scorevae.encoder, score=plus)
