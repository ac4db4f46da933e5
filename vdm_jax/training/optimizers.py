"""The optimiser factory every trainer uses: Adam(W), warm-up, decay, clipping, masks.

.. math::

  \\eta_k = \\eta \\cdot \\begin{cases} k / K_w & k < K_w \\\\
  1 \\text{ (constant) or } c + (1 - c)\\tfrac12\\left(1 + \\cos\\pi
  \\tfrac{k - K_w}{K - K_w}\\right) \\text{ (cosine)} & k \\ge K_w \\end{cases}

with ``learning_rate`` = η, ``warmup_steps`` = K_w, ``total_steps`` = K and
``end_fraction`` = c; the update is AdamW (Loshchilov & Hutter, 2019) with
decoupled weight decay on the leaves `decay_mask` selects, after optional
global-norm clipping (Pascanu et al., 2013).

References:
  Kingma & Ba. Adam: A Method for Stochastic Optimization.
  https://arxiv.org/abs/1412.6980, 2015.
  Loshchilov & Hutter. Decoupled Weight Decay Regularization.
  https://arxiv.org/abs/1711.05101, 2019.
  Loshchilov & Hutter. SGDR: Stochastic Gradient Descent with Warm Restarts
  (cosine schedule). https://arxiv.org/abs/1608.03983, 2017.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import optax

DECAYS = ("constant", "cosine")


def learning_rate_schedule(*, learning_rate: float, warmup_steps: int = 0,
                           decay: str = "constant", total_steps: int | None = None,
                           end_fraction: float = 0.0) -> optax.Schedule:
  """η_k above: linear warm-up from 0, then constant or cosine decay to c·η.

  With ``decay='constant'``, ``warmup_steps=0`` is the constant η from step 0.
  """
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
  if warmup_steps < 0:
    raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
  if decay not in DECAYS:
    raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}.")
  if decay == "constant":
    if warmup_steps == 0:
      return optax.constant_schedule(learning_rate)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1)),
         optax.constant_schedule(learning_rate)], [max(warmup_steps, 1)])
  if total_steps is None or total_steps < 1:
    raise ValueError(f"decay='cosine' needs total_steps >= 1, got {total_steps}.")
  if warmup_steps >= total_steps:
    raise ValueError(f"decay='cosine' needs warmup_steps < total_steps, got "
                     f"warmup_steps={warmup_steps} and total_steps={total_steps}.")
  return optax.warmup_cosine_decay_schedule(
      0.0, learning_rate, warmup_steps, total_steps,
      end_value=learning_rate * end_fraction)


def make_optimizer(*, learning_rate: float, warmup_steps: int = 0,
                   decay: str = "constant", total_steps: int | None = None,
                   end_fraction: float = 0.0, b1: float = 0.9, b2: float = 0.999,
                   eps: float = 1e-8, weight_decay: float = 0.0,
                   decay_mask: Callable | None = None,
                   grad_clip: float = 0.0) -> optax.GradientTransformation:
  """Adam (AdamW when `weight_decay` > 0) on the schedule of `learning_rate_schedule`.

  Args:
    learning_rate, warmup_steps, decay, total_steps, end_fraction: the schedule.
    b1, b2, eps: Adam's moment decays and denominator constant.
    weight_decay: decoupled weight decay; 0 gives plain Adam.
    decay_mask: ``params -> pytree of bools``, which leaves are decayed
      (default: all); see `mask_except`.
    grad_clip: global-norm clip before the update; 0 disables it.

  Returns:
    an `optax.GradientTransformation`.
  """
  if grad_clip < 0:
    raise ValueError(f"grad_clip must be >= 0 (0 disables it), got {grad_clip}.")
  if weight_decay < 0:
    raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
  lr = learning_rate_schedule(learning_rate=learning_rate, warmup_steps=warmup_steps,
                              decay=decay, total_steps=total_steps,
                              end_fraction=end_fraction)
  if weight_decay:
    adam = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                       mask=decay_mask)
  else:
    adam = optax.adam(lr, b1=b1, b2=b2, eps=eps)
  return optax.chain(optax.clip_by_global_norm(grad_clip), adam) if grad_clip else adam


def mask_except(*, top_level: Sequence[str] = (), leaf_names: Sequence[str] = ("bias",)):
  """A decay mask that skips leaves named in `leaf_names` and subtrees in `top_level`.

  E.g. ``mask_except(top_level=("schedule",))`` decays every kernel except
  those of the noise schedule, and no bias.
  """
  top_level, leaf_names = tuple(top_level), tuple(leaf_names)

  def mask(params):
    def keep(path, _):
      names = [getattr(k, "key", getattr(k, "name", "")) for k in path]
      if names and names[0] in top_level:
        return False
      return not names or names[-1] not in leaf_names
    return jax.tree.map_with_path(keep, params)

  return mask
