"""Small denoising-score trainer for intrinsic-dimension experiments (MLP / UNet).

Trains a network on data x with the continuous-time VDM diffusion loss under a
linear log-SNR schedule gamma(t) = gamma_min + (gamma_max - gamma_min) t:

.. math::

  z_t = \\alpha_t x + \\sigma_t \\epsilon, \\quad
  \\mathcal{L}(x) = \\tfrac{1}{2} \\gamma'(t)\\, \\|\\epsilon - \\hat\\epsilon(z_t, t)\\|^2,
  \\quad t \\sim U[0, 1],

with alpha_t^2 = sigmoid(-gamma_t), sigma_t^2 = sigmoid(gamma_t) (VP), and
returns the score s(z, t) = -eps_hat(z, t) / sigma_t for
`vdm_jax.intrinsic_dim.estimate_intrinsic_dim`.

The estimator only queries the score at one small noise level, so the schedule
range defaults to a band of low noise (gamma in [-10, -3]: sigma/alpha from
0.007 to 0.22) rather than the full VDM range [-13.3, 5]; this is a deliberate
deviation from the paper (which trains a VE-SDE over sigma in [0.01, 4] or [0.01,
50]) to make CPU training short.

On curved manifolds that low band is the wrong one: the loss is uniform in
gamma and its low-noise end penalises any coarse curvature feature (a radial
correction with angular error e costs (r e / sigma)^2), so the net stays at
the best linear denoiser, whose score reads the linear span instead of k. A
higher band (gamma in [-4, -1]) with the 'x0' output, read at gamma -3.5
(sigma / r = 0.17), learns the curvature normals of tori, products of
spheres and a 10-sphere; it is too coarse for spheres of large dimension k,
whose exact tangent eigenvalues of -sigma^2 grad s are ~ (k / 2)(sigma / r)^2.

The network output `out` is turned into eps_hat in one of three ways:

* 'eps': eps_hat = out;
* 'x0': x_hat = out, eps_hat = (z - alpha x_hat) / sigma;
* 'residual': x_hat = z / alpha + out, i.e. eps_hat = -(alpha / sigma) out =
  -e^{-gamma/2} out. The net then learns the displacement back to M,
  x - z / alpha, which near M is about -(normal offset) and does not depend on
  the noise level, whereas an eps net must learn a 1/sigma_t slope in the
  normal directions (a product of t and z an MLP learns slowly). This is the
  score-scaled-by-1/sigma output of the authors' networks; on a 10-sphere in
  R^100 it reaches k_hat = 11 in 1000 steps where 'eps' gives 27-30.

Training runs on the engine, `vdm_jax.training` (EMA with warm-up, checkpoints
and exact resume when given a workdir, pmap over `num_devices`).

References:
  Kingma et al., Variational Diffusion Models, https://arxiv.org/abs/2107.00630
  (continuous-time loss, eq. 17).
  Stanczuk et al., Your diffusion model secretly knows the dimension of the data
  manifold, https://arxiv.org/abs/2212.12611, 2022.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks
from vdm_jax import parameterizations
from vdm_jax import schedules
from vdm_jax import training

PARAMETERIZATIONS = ("eps", "x0", "residual")


class ScoreTrainState(NamedTuple):
  """Trainer state: parameters, optimiser state, EMA parameters, step (int32)."""
  params: Any
  opt_state: Any
  ema_params: Any
  step: jax.Array


def _gamma(t, gamma_min, gamma_max):
  return schedules.linear_gamma(t, gamma_min=gamma_min, gamma_max=gamma_max)


def time_for_gamma(gamma, *, gamma_min: float, gamma_max: float) -> float:
  """t with gamma(t) = `gamma` under the linear schedule (raises outside [0, 1])."""
  t = (gamma - gamma_min) / (gamma_max - gamma_min)
  if not 0.0 <= t <= 1.0:
    raise ValueError(f"gamma = {gamma} is outside the trained range "
                     f"[{gamma_min}, {gamma_max}].")
  return float(t)


def predict_eps(model: nn.Module, params, z, t, *, gamma_min: float,
                gamma_max: float, parameterization: str = "eps"):
  """eps_hat(z, t) from the network output in the chosen parameterisation.

  Args:
    model: a `ScoreMLP` (z `[B, D]`) or `UNet` (z `[B, H, W, C]`).
    params: its parameters.
    z: `[B, ...]` noisy inputs.
    t: scalar or `[B]` times in [0, 1] (also the network's t_in).
    gamma_min, gamma_max: the linear schedule's endpoints.
    parameterization: 'eps', 'x0' or 'residual'.

  Returns:
    `[B, ...]` eps prediction.
  """
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, "
                     f"got {parameterization!r}.")
  t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), z.shape[:1])
  out = model.apply({"params": params}, z, t)
  if parameterization == "eps":
    return out
  gamma = _gamma(t, gamma_min, gamma_max)
  if parameterization == "x0":
    return parameterizations.x0_to_eps(out, z, gamma)
  # residual: x_hat = z / alpha + out, so eps_hat = -(alpha / sigma) out.
  ratio = _checks.broadcast_to_data(jnp.exp(-0.5 * gamma), z)
  return -ratio * out


def make_loss_fn(model: nn.Module, *, gamma_min: float, gamma_max: float,
                 parameterization: str = "eps"):
  """Returns ``loss_fn(params, rng, x, shard=SINGLE) -> [B]`` VDM diffusion loss in nats.

  `shard` (a `vdm_jax.training.Shard`) is this device's slice of the global
  batch when the step runs on several devices.

  .. math::

    \\mathcal{L}(x) = \\tfrac{1}{2} (\\gamma_{max} - \\gamma_{min})
    \\|\\epsilon - \\hat\\epsilon(\\alpha_t x + \\sigma_t \\epsilon, t)\\|^2.
  """
  schedules.check_endpoints(gamma_min, gamma_max)

  def loss_fn(params, rng, x, shard: training.Shard = training.SINGLE):
    _checks.check_floating(x, "x")
    kt, ke = jax.random.split(rng)
    # Draws for the global batch, this shard's slice kept: N devices then
    # compute what one device computes on the same global batch.
    b = x.shape[0] * shard.count
    # Low-discrepancy times (VDM): one uniform offset, evenly spaced.
    t = training.take_shard(jnp.mod(jax.random.uniform(kt) + jnp.arange(b) / b, 1.0),
                            shard)
    eps = training.take_shard(
        jax.random.normal(ke, (b, *x.shape[1:]), x.dtype), shard)
    g = _gamma(t, gamma_min, gamma_max)
    a = _checks.broadcast_to_data(schedules.alpha(g), x)
    s = _checks.broadcast_to_data(schedules.sigma(g), x)
    z = a * x + s * eps
    eps_hat = predict_eps(model, params, z, t, gamma_min=gamma_min,
                          gamma_max=gamma_max, parameterization=parameterization)
    return 0.5 * (gamma_max - gamma_min) * _checks.sum_except_batch(
        jnp.square(eps - eps_hat))

  return loss_fn


def make_score_fn(model: nn.Module, params, *, gamma_min: float,
                  gamma_max: float, parameterization: str = "eps"
                  ) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The learned score ``score_fn(z, t) = -eps_hat(z, t) / sigma_t``."""
  def score_fn(z, t):
    eps = predict_eps(model, params, z, t, gamma_min=gamma_min,
                      gamma_max=gamma_max, parameterization=parameterization)
    g = _gamma(jnp.asarray(t, jnp.float32), gamma_min, gamma_max)
    return -eps / _checks.broadcast_to_data(schedules.sigma(g), z)
  return score_fn


def train_score_model(model: nn.Module, x_train, rng, *, num_steps: int,
                      batch_size: int = 256, learning_rate: float = 1e-3,
                      warmup_steps: int = 100, ema_decay: float = 0.999,
                      gamma_min: float = -10.0, gamma_max: float = -3.0,
                      parameterization: str = "eps", steps_per_call: int = 100,
                      grad_clip: float = 1.0, workdir: str | None = None,
                      save_every: int = 0, num_devices: int = 1):
  """Trains `model` on the rows of `x_train` with `vdm_jax.training`; returns (state, losses).

  Args:
    model: a `ScoreMLP` for `[N, D]` data or a `UNet` for `[N, H, W, C]`.
    x_train: `[N, ...]` float training set (minibatches drawn with replacement,
      from ``fold_in(rng, step)``, on the device).
    rng: a `jax.random.key`.
    num_steps: optimiser steps (rounded up to a multiple of `steps_per_call`).
    batch_size: examples per step (global, over `num_devices`).
    learning_rate: Adam peak rate (linear warm-up, then cosine decay to 0).
    warmup_steps: warm-up length.
    ema_decay: EMA rate of the returned `ema_params` (with the engine's warm-up).
    gamma_min, gamma_max: the trained log-SNR band.
    parameterization: 'eps', 'x0' or 'residual'.
    steps_per_call: steps per logged loss and non-finite check.
    grad_clip: global-norm gradient clipping.
    workdir: if given, checkpoints and metrics.jsonl go there and a rerun
      resumes from the latest checkpoint, replaying the same losses.
    save_every: steps between checkpoints (with `workdir`; 0: only at the end).
    num_devices: local devices to split each batch over (pmap).

  Returns:
    (`ScoreTrainState`, `[num_windows]` mean loss per window of
    `steps_per_call` steps, in nats; after a resume, the windows of this call).

  Raises:
    RuntimeError: when the loss becomes non-finite (names the step window).
  """
  x_train = jnp.asarray(x_train)
  _checks.check_floating(x_train, "x_train")
  _checks.check_min_rank(x_train, 2, "x_train [N, ...]")
  if num_steps < 1 or batch_size < 1 or steps_per_call < 1:
    raise ValueError(f"num_steps, batch_size and steps_per_call must be >= 1, got "
                     f"{num_steps}, {batch_size}, {steps_per_call}.")
  if batch_size % num_devices:
    raise ValueError(f"batch_size={batch_size} must be divisible by "
                     f"num_devices={num_devices}.")
  total = -(-num_steps // steps_per_call) * steps_per_call
  init_rng, rng = jax.random.split(rng)
  params = model.init(init_rng, x_train[:1], jnp.zeros((1,)))["params"]
  opt = training.make_optimizer(
      learning_rate=learning_rate, warmup_steps=min(warmup_steps, total - 1),
      decay="cosine", total_steps=total, grad_clip=grad_clip)
  ema = training.ema(ema_decay)
  loss_fn = make_loss_fn(model, gamma_min=gamma_min, gamma_max=gamma_max,
                         parameterization=parameterization)

  step = training.make_step(
      training.value_and_grad(training.minibatch_loss(loss_fn, batch_size, pass_shard=True)),
      opt, ema, axis_name=training.AXIS)
  run = training.train(
      step, training.init_state(params, opt, ema), batches=training.Resident((x_train,)),
      base_rng=rng, num_steps=total, log_every=steps_per_call, workdir=workdir,
      save_every=save_every, num_devices=num_devices, name="score")
  s = run.state
  losses = np.asarray([m["loss"] for _, m in run.history])
  return ScoreTrainState(s.params, s.opt_state, s.ema.params, s.step), losses
