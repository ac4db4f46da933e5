"""Anisotropic normalizing flows with isometry regularisation: loss and train loop.

The flow phi_theta maps data to a latent with a learned diagonal Gaussian base
N(0, diag(a)), a = exp(log_a) (the "anisotropic base"), and is pushed towards
a local isometry so that the deformed-Gaussian geometry of
`vdm_jax.geometry.pullback` is meaningful:

.. math::

  \\mathcal L(\\theta, a) = \\mathbb E_x\\Big[
      -\\log \\mathcal N(\\varphi_\\theta(x); 0, \\mathrm{diag}(a))
      - \\log|\\det D\\varphi_\\theta(x)|
      + \\lambda_{iso} \\|D\\varphi_\\theta(x)^\\top D\\varphi_\\theta(x) - I\\|_F^2
      + \\lambda_{vol} |\\log|\\det D\\varphi_\\theta(x)||\\Big].

The isometry term has three estimators: ``'exact'`` (the full Jacobian by
`jax.jacfwd`, for small D), ``'length'`` (the paper code's default, the mean of
(||J v|| - 1)^2 over random unit probes v; JVPs only) and ``'hutchinson'``, an
unbiased estimate of the Frobenius term from Jacobian-vector products, for
large D:

.. math::

  \\|M\\|_F^2 = \\mathbb E_{v \\sim N(0, I)} \\|M v\\|^2, \\quad
  M v = J^\\top (J v) - v,

with J v a JVP and J^T(J v) a VJP. Deviation from the paper's code: its
JVP-only estimator projects on M orthonormal probes and is biased (it measures
||(JV)^T JV - I_M||, a compression of M); the Hutchinson form is unbiased for
the exact term the paper writes down.

Baselines are the same loss with switches: ``learn_a=False`` fixes A = I
("NF" when lambda_iso = 0, "isometric NF" when lambda_iso > 0), and
``learn_a=True, lambda_iso=0`` is the "anisotropic NF".

References:
  Diepeveen, Batzolis, Shumaylov, Schoenlieb. Score-based pullback Riemannian
  geometry. https://arxiv.org/abs/2410.01950, 2024 (Sec. 6, training).
  Hutchinson. A stochastic estimator of the trace of the influence matrix for
  Laplacian smoothing splines. Commun. Stat. Simul. Comput., 1989.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from vdm_jax import _checks
from vdm_jax import training
from vdm_jax.geometry import flows

_LOG_2PI = math.log(2.0 * math.pi)
_ISO_ESTIMATORS = ("exact", "hutchinson", "length")


# ----------------------------------------------------------------------------
# Loss terms (per example).
# ----------------------------------------------------------------------------
def anisotropic_nll(z, log_det, log_a):
  """Negative log-likelihood of a flow with base N(0, diag(exp(log_a))), nats.

  .. math::

    -\\log p(x) = \\tfrac12 \\sum_i \\Big(\\frac{z_i^2}{a_i} + \\log a_i
                  + \\log 2\\pi\\Big) - \\log|\\det D\\varphi(x)|, \\quad z = \\varphi(x).

  Args:
    z: latent codes phi(x), ``[B, D]``.
    log_det: log|det Dphi(x)|, ``[B]``.
    log_a: log-variances of the base, ``[D]``.

  Returns:
    ``[B]`` negative log-likelihoods in nats.
  """
  _checks.check_rank(z, 2, "z")
  _checks.check_rank(log_det, 1, "log_det")
  _checks.check_rank(log_a, 1, "log_a")
  if log_a.shape[0] != z.shape[-1] or log_det.shape[0] != z.shape[0]:
    raise ValueError(
        f"expected z [B, D], log_det [B], log_a [D]; got {z.shape}, "
        f"{log_det.shape}, {log_a.shape}.")
  quad = jnp.sum(z**2 * jnp.exp(-log_a) + log_a + _LOG_2PI, axis=-1)
  return 0.5 * quad - log_det


def isometry_penalty_exact(phi: Callable, x):
  """||Dphi(x)^T Dphi(x) - I||_F^2 per example, from the full Jacobian.

  Args:
    phi: one point ``[D] -> [D]``.
    x: ``[B, D]`` points.

  Returns:
    ``[B]`` penalties.
  """
  _checks.check_rank(x, 2, "x")

  def one(p):
    jac = jax.jacfwd(phi)(p)
    return jnp.sum((jac.T @ jac - jnp.eye(p.shape[0], dtype=p.dtype)) ** 2)

  return jax.vmap(one)(x)


def _gaussian_probes(x, rng, num_probes: int):
  """Checks ``x [B, D]`` and draws ``[B, M, D]`` standard normal probes."""
  _checks.check_rank(x, 2, "x")
  if num_probes < 1:
    raise ValueError(f"num_probes must be >= 1, got {num_probes}.")
  return jax.random.normal(rng, (x.shape[0], num_probes, x.shape[1]), x.dtype)


def isometry_penalty_hutchinson(phi: Callable, x, rng, *, num_probes: int = 4):
  """Unbiased JVP/VJP estimate of ||Dphi^T Dphi - I||_F^2 per example.

  .. math::

    \\widehat{R}(x) = \\frac1M \\sum_{m=1}^M \\|J^\\top J v_m - v_m\\|^2,
    \\quad v_m \\sim N(0, I_D), \\quad \\mathbb E \\widehat R = \\|J^\\top J - I\\|_F^2.

  Args:
    phi: one point ``[D] -> [D]``.
    x: ``[B, D]`` points.
    rng: a `jax.random.key`.
    num_probes: M, probes per example (static).

  Returns:
    ``[B]`` estimates.
  """
  probes = _gaussian_probes(x, rng, num_probes)

  def one(p, vs):
    _, vjp = jax.vjp(phi, p)

    def resid(v):
      jv = jax.jvp(phi, (p,), (v,))[1]
      return jnp.sum((vjp(jv)[0] - v) ** 2)

    return jnp.mean(jax.vmap(resid)(vs))

  return jax.vmap(one)(x, probes)


def isometry_penalty_length(phi: Callable, x, rng, *, num_probes: int = 4):
  """The paper's 'length' estimator: (||Dphi(x) v|| - 1)^2 for unit probes v.

  .. math::

    \\widehat{R}_{len}(x) = \\frac1M \\sum_{m=1}^M (\\|J v_m\\| - 1)^2, \\quad
    v_m \\sim \\mathrm{Unif}(S^{D-1}).

  It is zero iff J preserves the length of every probe (so zero in
  expectation iff J is orthogonal), but it is NOT an estimate of the
  Frobenius term: it penalises lengths only, through JVPs only (one per
  probe), which makes it the cheapest of the three. This is the paper code's
  default isometry regulariser (``reg_iso_type='length'``; Diepeveen et al. 2024).

  Args:
    phi: one point ``[D] -> [D]``.
    x: ``[B, D]`` points.
    rng: a `jax.random.key`.
    num_probes: M, unit probes per example (static).

  Returns:
    ``[B]`` estimates.
  """
  probes = _gaussian_probes(x, rng, num_probes)
  probes = probes / jnp.linalg.norm(probes, axis=-1, keepdims=True)

  def one(p, vs):
    jv = jax.vmap(lambda v: jax.jvp(phi, (p,), (v,))[1])(vs)
    return jnp.mean((jnp.linalg.norm(jv, axis=-1) - 1.0) ** 2)

  return jax.vmap(one)(x, probes)


def init_params(model: flows.RealNVP, rng) -> dict[str, Any]:
  """Parameters {'flow': flow params (identity map), 'log_a': zeros [D]}."""
  return {"flow": flows.init_flow(model, rng),
          "log_a": jnp.zeros((model.dim,), jnp.float32)}


def diag_a_of(params, *, learn_a: bool = True):
  """The base variances a = exp(log_a) (ones when A is fixed to I)."""
  log_a = params["log_a"]
  return jnp.exp(log_a) if learn_a else jnp.ones_like(log_a)


def make_loss_fn(model: flows.RealNVP, *, lambda_iso: float = 0.0,
                 lambda_vol: float = 0.0, learn_a: bool = True,
                 iso_estimator: str = "exact", num_probes: int = 4):
  """Builds the per-example anisotropic-flow loss.

  Args:
    model: the `RealNVP` flow phi.
    lambda_iso: weight of the isometry regulariser.
    lambda_vol: weight of the volume regulariser |log|det Dphi||.
    learn_a: learn the base variances; if False, A = I.
    iso_estimator: 'exact' (full Jacobian), 'hutchinson' (JVP/VJP probes,
      unbiased for the Frobenius term) or 'length' (the paper code's default,
      (||J v|| - 1)^2 on unit probes; see `isometry_penalty_length`).
    num_probes: probes for 'hutchinson' and 'length'.

  Returns:
    ``loss_fn(params, x [B, D], rng) -> (loss [B], aux)`` with aux a dict of
    per-example 'nll' (nats), 'iso' and 'vol' terms.
  """
  if iso_estimator not in _ISO_ESTIMATORS:
    raise ValueError(
        f"iso_estimator must be one of {_ISO_ESTIMATORS}, got "
        f"{iso_estimator!r}.")
  if lambda_iso < 0 or lambda_vol < 0:
    raise ValueError(
        f"lambda_iso and lambda_vol must be >= 0, got {lambda_iso}, "
        f"{lambda_vol}.")

  def loss_fn(params, x, rng):
    _checks.check_floating(x, "x")
    _checks.check_rank(x, 2, "x")
    if x.shape[-1] != model.dim:
      raise ValueError(
          f"x must have last dimension D = {model.dim}, got shape {x.shape}.")
    log_a = params["log_a"] if learn_a else jnp.zeros_like(params["log_a"])
    z, log_det = model.apply(params["flow"], x)
    nll = anisotropic_nll(z, log_det, log_a)
    iso = jnp.zeros_like(nll)
    if lambda_iso > 0:
      phi = lambda p: model.apply(params["flow"], p)[0]
      if iso_estimator == "exact":
        iso = isometry_penalty_exact(phi, x)
      elif iso_estimator == "length":
        iso = isometry_penalty_length(phi, x, rng, num_probes=num_probes)
      else:
        iso = isometry_penalty_hutchinson(phi, x, rng, num_probes=num_probes)
    vol = jnp.abs(log_det)
    loss = nll + lambda_iso * iso + lambda_vol * vol
    return loss, {"nll": nll, "iso": iso, "vol": vol}

  return loss_fn


# ----------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------
_LOOP_KEYS = ("steps_per_call", "batch_size", "ema_rate")


def make_optimizer(*, lr: float, num_steps: int, warmup_steps: int,
                   weight_decay: float, grad_clip: float, log_a_lr_mult: float = 1.0):
  """AdamW (b2 0.99) with linear warm-up, cosine decay and grad-norm clipping.

  ``log_a`` gets ``log_a_lr_mult`` times the flow's learning rate: the latent
  log-variances must travel O(log(1e-3)) while Adam moves each parameter by
  about lr per step, so with one shared rate A lags the flow.
  """

  def adam(mult):
    return training.make_optimizer(
        learning_rate=lr * mult, warmup_steps=min(warmup_steps, num_steps - 1),
        decay="cosine", total_steps=num_steps, b2=0.99, weight_decay=weight_decay)

  labels = lambda params: {k: ("log_a" if k == "log_a" else "flow")
                           for k in params}
  return optax.chain(
      optax.clip_by_global_norm(grad_clip),
      optax.multi_transform({"flow": adam(1.0), "log_a": adam(log_a_lr_mult)}, labels))


def make_model(dim: int, *, n_steps: int, hidden: int, n_blocks: int,
               log_scale_bound: float, scale_type: str = "tanh",
               mask_type: str = "alternating") -> flows.RealNVP:
  """The `RealNVP` on R^dim with these settings (see `vdm_jax.geometry.flows`)."""
  return flows.RealNVP(dim=dim, n_steps=n_steps, hidden=hidden, n_blocks=n_blocks,
                       log_scale_bound=log_scale_bound, scale_type=scale_type,
                       mask_type=mask_type)


def make_train_step(model, *, loss: Mapping, optim: Mapping):
  """Builds ``(init, step)`` for the engine (`vdm_jax.training`).

  Args:
    model: the `RealNVP`.
    loss: keyword arguments of `make_loss_fn` (lambda_iso, lambda_vol,
      learn_a, iso_estimator, num_probes).
    optim: `make_optimizer`'s keyword arguments plus ``batch_size`` and
      ``ema_rate``.

  ``init(rng, data=None) -> TrainState``; ``step(state, data, base_rng) ->
  (state, metrics)``: step k draws its batch and probes from
  ``fold_in(base_rng, k)``, so a run is reproducible step by step.
  """
  loss_fn = make_loss_fn(model, **loss)
  opt = make_optimizer(**{k: v for k, v in optim.items() if k not in _LOOP_KEYS})
  ema = training.ema(optim["ema_rate"], warmup=False)
  batch_size = optim["batch_size"]

  def batch_loss(params, probe_rng, x):
    value, aux = loss_fn(params, x, probe_rng)
    return value, jax.tree.map(jnp.mean, aux)

  step = training.make_step(training.value_and_grad(
      training.minibatch_loss(batch_loss, batch_size)), opt, ema,
                            axis_name=training.AXIS)

  def init(rng, data=None):
    params = init_params(model, rng)
    if data is not None and loss.get("learn_a", True):
      # The flow starts as the identity, so the maximum-likelihood A for it is
      # the per-coordinate data variance; starting there (instead of A = I)
      # saves the optimiser from walking log_a by ~log(var) at a small lr.
      params["log_a"] = jnp.log(jnp.var(data, axis=0) + 1e-6)
    return training.init_state(params, opt, ema)

  return init, step


def train_flow(data, *, seed: int, flow: Mapping, loss: Mapping, optim: Mapping,
               workdir: str | None = None):
  """Trains an anisotropic flow on ``data`` ``[N, D]`` with the engine.

  Args:
    data: ``[N, D]`` float training points.
    seed: PRNG seed of the initialisation and of the step stream.
    flow: `make_model`'s keyword arguments.
    loss: `make_loss_fn`'s keyword arguments.
    optim: `make_optimizer`'s plus ``num_steps``, ``steps_per_call`` (steps
      per device call, a `lax.scan`: the flow is a small dense net, for which
      the host round trip between steps dominates), ``batch_size`` and
      ``ema_rate``. Plain mappings: an ``ml_collections`` section works via
      ``.to_dict()``.
    workdir: optional folder for checkpoints and metrics (resumable).

  ``log_a`` starts at the log of the per-coordinate data variance when A is
  learned (the maximum-likelihood A for the identity flow at initialisation).

  Returns:
    ``(model, state, history)``: the flow module, the final
    `vdm_jax.training.TrainState` (evaluate with ``state.ema.params``) and a
    list of per-window metrics (window = ``steps_per_call`` steps).

  Raises:
    RuntimeError: if the loss becomes non-finite (names the step window).
  """
  data = jnp.asarray(data, jnp.float32)
  _checks.check_rank(data, 2, "data")
  num_steps, k = optim["num_steps"], optim["steps_per_call"]
  if num_steps % k:
    raise ValueError(f"optim num_steps ({num_steps}) must be a multiple of "
                     f"steps_per_call ({k}).")
  model = make_model(data.shape[1], **flow)
  init, step = make_train_step(model, loss=loss, optim=optim)
  init_rng, base_rng = jax.random.split(jax.random.key(seed))
  run = training.train(step, init(init_rng, data), batches=training.Resident((data,)),
                       base_rng=base_rng, num_steps=num_steps, log_every=k,
                       steps_per_call=k, workdir=workdir, num_devices=1, name="flow")
  history = [dict(m, step=s) for s, m in run.history]
  return model, run.state, history
