"""The VDM training objective and its variance-minimising schedule gradient.

With the endpoints gamma_0, gamma_1 fixed, the expected continuous-time loss
E[L] does not depend on the shape of the schedule (VDM Sec. 5.1), so the shape
parameters eta are free to minimise the *variance* of the Monte-Carlo estimate:

.. math::

  \\nabla_\\eta E[L_{MC}^2] = \\nabla_\\eta \\mathrm{Var}[L_{MC}]
  = E[2 L_{MC} \\, \\tfrac{\\partial L_{MC}}{\\partial \\gamma}
      \\tfrac{\\partial \\gamma}{\\partial \\eta}].

The network parameters and the endpoint parameters receive the gradient of
E[L] (the VLB); only the shape parameters (a schedule's ``shape`` sub-tree, see
`vdm_jax.schedules.MonotoneNetSchedule`) receive the gradient of E[L^2]. Both
come from **one** backward pass through the network: the per-example cotangents
of the schedule outputs (gamma_t and gamma'_t, or gamma_t and gamma_s in discrete
time) are pulled back through the small schedule network twice, once as they are
and once multiplied by 2 L_i (VDM App. I.2, eq. 59-62). The official VDM code
(github.com/google-research/vdm) does not implement this rule: its schedule
receives the gradient of E[L] like every other parameter.

References:
  Kingma, Salimans, Poole, Ho. Variational Diffusion Models.
  https://arxiv.org/abs/2107.00630, 2021.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vdm_jax import losses
from vdm_jax import schedules
from vdm_jax.model import VDM


class _Draws(NamedTuple):
  t: jax.Array
  eps: jax.Array
  eps_0: jax.Array
  dropout: jax.Array


def _draw(vdm: VDM, rng, shape, shard=(0, 1)) -> _Draws:
  """Draws for the global batch of `count` shards, sliced to shard `index`.

  Drawing globally and slicing (instead of drawing per device) makes N devices
  compute exactly what one device computes on the same global batch,
  antithetic t grid included. Only dropout differs: it is folded per shard.
  """
  index, count = shard
  local = shape[0]
  global_shape = (local * count, *shape[1:])
  t_rng, eps_rng, eps0_rng, drop_rng = jax.random.split(rng, 4)
  t = losses.sample_times(t_rng, global_shape[0], antithetic=vdm.antithetic,
                          num_steps=vdm.num_steps)
  eps = jax.random.normal(eps_rng, global_shape, jnp.float32)
  eps_0 = jax.random.normal(eps0_rng, global_shape, jnp.float32)
  take = lambda v: jax.lax.dynamic_slice_in_dim(v, index * local, local)
  return _Draws(take(t), take(eps), take(eps_0), jax.random.fold_in(drop_rng, index))


def _schedule_outputs(vdm: VDM, schedule_params, t):
  """Per-example schedule values the diffusion loss depends on."""
  return losses.schedule_values(schedules.bind(vdm.schedule, schedule_params), t,
                                vdm.num_steps)


def _per_example_diffusion(vdm, network_params, sched_vals, f, draws, *, train,
                           label, dtype):
  eps_fn = vdm.eps_fn({"network": network_params}, train=train,
                      rng=draws.dropout, label=label, dtype=dtype)
  return losses.diffusion_loss_at(f, draws.eps, sched_vals, eps_fn=eps_fn,
                                  num_steps=vdm.num_steps)


def _endpoint_terms(vdm, schedule_params, x_int, eps_0):
  return losses.endpoint_terms(
      x_int, eps_0, gamma_fn=schedules.bind(vdm.schedule, schedule_params),
      vocab_size=vdm.vocab_size)


def has_shape_params(schedule_params) -> bool:
  """True when the schedule has shape parameters (`schedules.is_shape_param`)."""
  paths = jax.tree_util.tree_flatten_with_path(schedule_params)[0]
  return any(schedules.is_shape_param(path) for path, _ in paths)


def _bpd_scale(x_int):
  return 1.0 / (math.prod(x_int.shape[1:]) * math.log(2.0))


def vlb_loss(vdm: VDM, params, rng, x_int, *, train: bool = True, label=None,
             dtype=jnp.float32, shard=(0, 1)):
  """Mean -VLB in bits/dim over the batch, and per-term metrics.

  The plain objective (differentiate it with `jax.grad` for the VLB gradient of
  every parameter). It uses exactly the same random draws as
  `vlb_loss_and_grads` for the same `rng`.

  Returns:
    (scalar bpd, dict of scalar metrics: bpd, diffusion_bpd, prior_bpd,
    recon_bpd, diffusion_bpd_var).
  """
  f = losses.encode_discrete(x_int, vdm.vocab_size)
  draws = _draw(vdm, rng, f.shape, shard)
  sched_vals = _schedule_outputs(vdm, params["schedule"], draws.t)
  diff = _per_example_diffusion(vdm, params["network"], sched_vals, f, draws,
                                train=train, label=label, dtype=dtype)
  prior, recon = _endpoint_terms(vdm, params["schedule"], x_int, draws.eps_0)
  return _summarise(x_int, diff, prior, recon)


def _summarise(x_int, diff, prior, recon):
  scale = _bpd_scale(x_int)
  metrics = {
      "diffusion_bpd": jnp.mean(diff) * scale,
      "prior_bpd": jnp.mean(prior) * scale,
      "recon_bpd": jnp.mean(recon) * scale,
      "diffusion_bpd_var": jnp.var(diff * scale),
  }
  metrics["bpd"] = metrics["diffusion_bpd"] + metrics["prior_bpd"] + metrics["recon_bpd"]
  return metrics["bpd"], metrics


def vlb_loss_and_grads(vdm: VDM, params, rng, x_int, *, train: bool = True,
                       label=None, dtype=jnp.float32,
                       variance_minimization: bool = True, shard=(0, 1)):
  """Mean -VLB (bpd), metrics and gradients, with the variance-minimising rule.

  Gradients: network and endpoint parameters get d E[L] (identical to
  `jax.grad` of `vlb_loss`); if `variance_minimization`, the schedule's shape
  parameters get d E[L_diff^2] (the squared per-example diffusion loss in bpd),
  otherwise d E[L] as well. The prior and reconstruction terms depend only on
  gamma(0) and gamma(1), i.e. on the endpoints.

  Args:
    vdm: the model description.
    params: {'schedule', 'network'}.
    rng: PRNG key (t, eps, eps_0 and dropout are drawn from it).
    x_int: `[B, ...]` integer data.
    train: dropout on.
    label: optional `[B]` class labels.
    dtype: network input/compute dtype (bfloat16 for mixed precision).
    variance_minimization: apply the VDM App. I.2 rule to shape parameters.
    shard: (index, count) of this device's slice of the global batch (under
      pmap: (axis_index, axis_size)); the random draws are made for the global
      batch and sliced, so the result does not depend on the device count.

  Returns:
    (loss, metrics, grads) with `grads` shaped like `params`.
  """
  f = losses.encode_discrete(x_int, vdm.vocab_size)
  draws = _draw(vdm, rng, f.shape, shard)
  scale = _bpd_scale(x_int)
  batch = f.shape[0]

  sched_vals, sched_vjp = jax.vjp(
      lambda sp: _schedule_outputs(vdm, sp, draws.t), params["schedule"])
  diff, diff_vjp = jax.vjp(
      lambda np_, sv: _per_example_diffusion(vdm, np_, sv, f, draws, train=train,
                                             label=label, dtype=dtype),
      params["network"], sched_vals)
  # Cotangent scale/B per example: the gradient of the batch-mean diffusion bpd.
  g_network, g_vals = diff_vjp(jnp.full((batch,), scale / batch, jnp.float32))
  (g_sched,) = sched_vjp(g_vals)
  # Schedules without shape parameters (fixed, learned linear) have nothing
  # to minimise the variance over: skip the second pull-back.
  if variance_minimization and has_shape_params(params["schedule"]):
    # d mean(L_bpd^2)/d v_i = 2 L_bpd_i * (scale / B) dL_i/d v_i = 2 L_bpd_i g_vals_i.
    l_bpd = diff * scale
    (g_sq,) = sched_vjp(jax.tree.map(lambda g: 2.0 * l_bpd * g, g_vals))
    g_sched = jax.tree.map_with_path(
        lambda path, g_mean, g_var: g_var if schedules.is_shape_param(path) else g_mean,
        g_sched, g_sq)

  def endpoint_bpd(sp):
    prior, recon = _endpoint_terms(vdm, sp, x_int, draws.eps_0)
    return jnp.mean(prior + recon) * scale, (prior, recon)

  (_, (prior, recon)), g_ends = jax.value_and_grad(
      endpoint_bpd, has_aux=True)(params["schedule"])
  g_sched = jax.tree.map(jnp.add, g_sched, g_ends)
  loss, metrics = _summarise(x_int, diff, prior, recon)
  return loss, metrics, {"schedule": g_sched, "network": g_network}
