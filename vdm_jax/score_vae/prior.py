"""The frozen diffusion prior of ScoreVAE: score adapters and shape validation.

ScoreVAE trains no decoder; it reuses an unconditional score model
`s_theta(x_t, t)`. These helpers turn an eps-prediction network into the score
interface `prior_score_apply(params, x [B, ...], t [B]) -> [B, ...]` and check,
before any training, that a prior (e.g. loaded from a checkpoint) fits the data.

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from vdm_jax import _checks


def score_from_eps(eps_apply: Callable[..., jax.Array], sde):
  """Wraps an eps-prediction model as a score model.

  .. math::

    s_\\theta(x_t, t) = -\\epsilon_\\theta(x_t, t) / \\sigma_t

  where `sigma_t` is the std of the SDE's perturbation kernel
  `p_0t(x_t | x_0)` (`sde.marginal`).

  Args:
    eps_apply: `(params, x [B, ...], t [B]) -> eps [B, ...]`.
    sde: a `vdm_jax.sde` SDE (only `marginal` is used).

  Returns:
    `prior_score_apply(params, x, t) -> [B, ...]`.
  """
  def prior_score_apply(params, x, t):
    eps = eps_apply(params, x, t)
    _, std = sde.marginal(x, t)
    return -eps / _checks.broadcast_to_data(std, x)
  return prior_score_apply


def check_prior_matches_data(prior_score_apply: Callable[..., Any], prior_params,
                             data_shape: Sequence[int], *,
                             metadata: Mapping[str, Any] | None = None) -> None:
  """Raises ValueError if a prior cannot score data of shape `data_shape`.

  Two checks, neither of which runs the network (it is traced with
  `jax.eval_shape`): the `data_shape` recorded in `metadata` (as written next to
  a prior checkpoint) must equal `data_shape`, and the prior must accept a
  `[1, *data_shape]` input and return a score of the same shape.

  Args:
    prior_score_apply: `(params, x [B, ...], t [B]) -> score [B, ...]`.
    prior_params: the (loaded) prior parameters.
    data_shape: shape of one example, e.g. `(8, 8, 1)`.
    metadata: optional checkpoint metadata with a `'data_shape'` entry.
  """
  data_shape = tuple(int(d) for d in data_shape)
  if metadata is not None and "data_shape" in metadata:
    saved = tuple(int(d) for d in metadata["data_shape"])
    if saved != data_shape:
      raise ValueError(
          f"prior checkpoint was trained on data of shape {saved}, but the data "
          f"have shape {data_shape}; train or load a prior for this data set.")
  x = jax.ShapeDtypeStruct((1,) + data_shape, jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.float32)
  try:
    out = jax.eval_shape(prior_score_apply, prior_params, x, t)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f"prior parameters do not fit data of shape {data_shape}: applying the "
        f"prior to a [1, *{data_shape}] input failed with {type(e).__name__}: "
        f"{e}") from e
  if getattr(out, "shape", None) != (1,) + data_shape:
    raise ValueError(
        f"prior returns scores of shape {getattr(out, 'shape', out)} for inputs "
        f"of shape {(1,) + data_shape}; a score must have the data's shape.")


def score_from_vdm(vdm):
  """Score model of a trained `vdm_jax.model.VDM` (e.g. a `vdm_jax.train` checkpoint).

  A VDM predicts the noise of `z_t = alpha_t x + sigma_t eps` at
  `gamma_t = gamma(t)`; its score is

  .. math::

    s_\\theta(z_t, t) = -\\hat\\epsilon_\\theta(z_t, \\gamma(t)) / \\sigma_t,
    \\qquad \\sigma_t^2 = \\mathrm{sigmoid}(\\gamma(t)),

  the score of the VP SDE `vdm_jax.sde.ScheduleVPSDE(gamma_fn=vdm.gamma_fn(
  params))` (Kingma et al. App. D), on data in the VDM's scaling
  (`vdm_jax.losses.encode_discrete`: bin centres in [-1, 1]). The learned
  schedule and the network both come from `params`.

  Args:
    vdm: the `VDM` (schedule, network, constants), e.g. from
      `vdm_jax.train.load_params`.

  Returns:
    `prior_score_apply(params, x [B, ...], t [B]) -> [B, ...]` with `params`
    the VDM's `{'schedule', 'network'}` parameters.

  References:
    Kingma, Salimans, Poole, Ho, Variational Diffusion Models,
    https://arxiv.org/abs/2107.00630, 2021.
  """
  from vdm_jax import schedules  # pylint: disable=g-import-not-at-top

  def prior_score_apply(params, x, t):
    _checks.check_min_rank(x, 2, "x [B, ...]")
    _checks.check_rank(t, 1, "t [B]")
    _checks.check_batch(t, x, "t", "x")
    gamma = vdm.gamma_fn(params)(t)
    eps = vdm.eps_fn(params)(x, gamma)
    return -eps / _checks.broadcast_to_data(schedules.sigma(gamma), x)

  return prior_score_apply


def check_vdm_matches_data(*, image_shape: Sequence[int], vocab_size: int,
                           data_shape: Sequence[int], data_levels: int,
                           scaling: str) -> None:
  """Raises ValueError unless a VDM prior was trained on data like ours.

  A VDM models integer pixels in {0..V-1} mapped to bin centres
  `2 (x + 1/2) / V - 1` (`vdm_jax.losses.encode_discrete`), so the ScoreVAE data
  must have the same shape, the same number of grey levels and that scaling
  (not `x / (V - 1) * 2 - 1`, which differs by a factor V / (V - 1) and a shift).

  Args:
    image_shape: `config.data.image_shape` of the VDM checkpoint.
    vocab_size: `config.data.vocab_size` of the VDM checkpoint.
    data_shape: shape of one ScoreVAE example.
    data_levels: number of grey levels of the ScoreVAE data.
    scaling: the ScoreVAE data scaling; must be 'bins'.
  """
  image_shape = tuple(int(d) for d in image_shape)
  data_shape = tuple(int(d) for d in data_shape)
  if image_shape != data_shape:
    raise ValueError(
        f"the VDM prior was trained on images of shape {image_shape}, but the "
        f"data have shape {data_shape}.")
  if int(vocab_size) != int(data_levels):
    raise ValueError(
        f"the VDM prior was trained on {vocab_size} grey levels (vocab_size), "
        f"but the data have {data_levels}.")
  if scaling != "bins":
    raise ValueError(
        f"a VDM prior needs data scaled to bin centres 2 (x + 1/2) / V - 1 "
        f"(data.scaling='bins'), got data.scaling={scaling!r}.")
