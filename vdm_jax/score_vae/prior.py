"""The frozen diffusion prior of ScoreVAE: score adapters, validation and loaders.

ScoreVAE trains no decoder; it reuses an unconditional score model
`s_theta(x_t, t)`. These helpers turn an eps-prediction network into the score
interface `prior_score_apply(params, x [B, ...], t [B]) -> [B, ...]`, check,
before any training, that a prior (e.g. loaded from a checkpoint) fits the data,
and obtain one: `load_vdm_prior` (a `vdm_jax.train` checkpoint on the VP SDE of
its learned schedule, trained first if asked) or `train_or_load_dsm_prior` (an
eps-network from `make_eps_network`, trained by DSM on a VP SDE or restored).

References:
  Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational Autoencoder
  (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
"""

from __future__ import annotations

import json
import os
import time
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


def make_eps_network(model: str, data_shape: Sequence[int], *,
                     hidden: Sequence[int] = (512, 512, 512), emb_dim: int = 128,
                     ch: int = 64, n_blocks: int = 2,
                     ch_mult: Sequence[int] = (1, 2)):
  """An eps-prediction network for a DSM prior: `(init(rng), eps_apply)`.

  Args:
    model: 'mlp' (`vdm_jax.models.ScoreMLP` on flattened inputs) or 'unet'
      (`vdm_jax.models.UNet`, no dropout, no Fourier features).
    data_shape: shape of one example.
    hidden, emb_dim: 'mlp' widths and time-embedding width.
    ch, n_blocks, ch_mult: 'unet' channels, blocks per stage, multipliers.

  Returns:
    `(init(rng) -> params, eps_apply(params, x [B, ...], t [B]) -> [B, ...])`.
  """
  from vdm_jax.models import ScoreMLP  # pylint: disable=g-import-not-at-top
  from vdm_jax.models import UNet  # pylint: disable=g-import-not-at-top
  x_init = jnp.zeros((1,) + tuple(data_shape))
  t_init = jnp.zeros((1,))
  if model == "mlp":
    net = ScoreMLP(hidden=tuple(hidden), emb_dim=emb_dim)
    def eps_apply(params, x, t):
      return net.apply(params, x.reshape(x.shape[0], -1), t).reshape(x.shape)
    # Jitted: eagerly, Flax compiles each op alone (the same bits for this MLP).
    return jax.jit(lambda rng: net.init(rng, x_init.reshape(1, -1), t_init)), eps_apply
  if model == "unet":
    net = UNet(ch=ch, n_blocks=n_blocks, ch_mult=tuple(ch_mult), dropout=0.0,
               fourier_exponents=())
    return ((lambda rng: net.init(rng, x_init, t_init)),
            lambda params, x, t: net.apply(params, x, t))
  raise ValueError(f"prior model must be 'mlp' or 'unet', got {model!r}.")


def eps_network_metadata(model: str, data_shape: Sequence[int], *,
                         hidden: Sequence[int], emb_dim: int, ch: int,
                         n_blocks: int, ch_mult: Sequence[int]) -> dict:
  """The JSON written next to a DSM prior checkpoint (read back by the loader)."""
  return {"data_shape": list(data_shape), "model": model,
          "hidden": list(hidden), "emb_dim": emb_dim, "ch": ch,
          "n_blocks": n_blocks, "ch_mult": list(ch_mult),
          "parameterization": "eps", "sde": "vp"}


def train_or_load_dsm_prior(sde, x_train, *, checkpoint: str = "",
                            workdir: str | None = None, model: str = "mlp",
                            hidden: Sequence[int] = (512, 512, 512),
                            emb_dim: int = 128, ch: int = 64, n_blocks: int = 2,
                            ch_mult: Sequence[int] = (1, 2), t_min: float,
                            steps: int, batch_size: int, lr: float, ema: float,
                            rng):
  """An eps-network prior on a VP SDE: restored from `checkpoint`, or trained.

  With `checkpoint`, restores the parameters (`vdm_jax.training.restore_params`)
  and checks them against the data shape (and `<checkpoint>.json`, if present);
  otherwise trains by DSM (`training.train_dsm_prior`) and writes the averaged
  parameters to `workdir/prior_checkpoint` with that JSON beside it.

  Args:
    sde: the VP SDE of the prior.
    x_train: `[N, ...]` training data in model space.
    checkpoint: an orbax folder written here ('' trains).
    workdir: where a trained prior is saved.
    model, hidden, emb_dim, ch, n_blocks, ch_mult: `make_eps_network`.
    t_min, steps, batch_size, lr, ema, rng: `training.train_dsm_prior`.

  Returns:
    `(prior_score_apply, params, info)`.
  """
  from vdm_jax import training as engine  # pylint: disable=g-import-not-at-top
  from vdm_jax.score_vae import training  # pylint: disable=g-import-not-at-top
  data_shape = x_train.shape[1:]
  arch = dict(hidden=hidden, emb_dim=emb_dim, ch=ch, n_blocks=n_blocks,
              ch_mult=ch_mult)
  eps_init, eps_apply = make_eps_network(model, data_shape, **arch)
  prior_score_apply = score_from_eps(eps_apply, sde)
  if checkpoint:
    path = os.path.abspath(checkpoint)
    meta_path = os.path.join(path, "..", os.path.basename(path) + ".json")
    if not os.path.exists(path):
      raise ValueError(f"prior checkpoint {path} does not exist.")
    metadata = None
    if os.path.exists(meta_path):
      with open(meta_path) as f:
        metadata = json.load(f)
    params = engine.restore_params(path)
    check_prior_matches_data(prior_score_apply, params, data_shape,
                             metadata=metadata)
    print(f"loaded prior from {path}")
    return prior_score_apply, params, {"loaded_from": path}
  if workdir is None:
    raise ValueError("workdir is needed to save a trained prior.")
  fitted = training.train_dsm_prior(
      eps_init, eps_apply, sde, x_train, t_min=t_min, steps=steps,
      batch_size=batch_size, lr=lr, ema=ema, rng=rng)
  path = engine.save_params(os.path.join(workdir, "prior_checkpoint"),
                            fitted.params)
  with open(path + ".json", "w") as f:
    json.dump(eps_network_metadata(model, data_shape, **arch), f)
  return prior_score_apply, fitted.params, {
      "train_seconds": fitted.train_seconds, "final_loss": fitted.final_loss,
      "saved_to": path}


def load_vdm_prior(*, vdm_config, vdm_workdir: str, data_shape: Sequence[int],
                   levels: int, scaling: str, t_min: float,
                   train_if_missing: bool = False):
  """A `vdm_jax.train` checkpoint as the frozen prior (trained first if asked).

  The checkpoint's data shape and grey levels, and the ScoreVAE data scaling,
  must match (`check_vdm_matches_data`). If `vdm_workdir` has no checkpoint at
  `training.num_train_steps` and `train_if_missing`, runs (or resumes)
  `vdm_jax.train.train_and_evaluate` there first. The prior is the VP SDE of
  the learned schedule, `ScheduleVPSDE(gamma_fn)`, with the score
  `-eps_hat / sigma_t` (`score_from_vdm`).

  Args:
    vdm_config: the VDM's config, or the path of its config file
      (`vdm_jax.train.config_from_file`).
    vdm_workdir: the VDM's run folder.
    data_shape: shape of one ScoreVAE example.
    levels: grey levels of the ScoreVAE data.
    scaling: the ScoreVAE data scaling (must be 'bins').
    t_min: the SDE's smallest time.
    train_if_missing: train the VDM when its checkpoint is missing.

  Returns:
    `(sde, prior_score_apply, params, info)` with the EMA parameters.
  """
  from vdm_jax import train as vdm_train  # pylint: disable=g-import-not-at-top
  from vdm_jax.sde import ScheduleVPSDE  # pylint: disable=g-import-not-at-top
  vc = (vdm_train.config_from_file(vdm_config) if isinstance(vdm_config, str)
        else vdm_config)
  check_vdm_matches_data(
      image_shape=vc.data.image_shape, vocab_size=vc.data.vocab_size,
      data_shape=data_shape, data_levels=levels, scaling=scaling)
  info = {"vdm_config": vdm_config if isinstance(vdm_config, str) else None,
          "vdm_workdir": vdm_workdir}
  want = int(vc.training.num_train_steps)
  step = -1
  if os.path.isdir(os.path.join(vdm_workdir, "checkpoints")):
    try:
      vdm, params, step = vdm_train.load_params(vc, vdm_workdir)
    except FileNotFoundError:
      pass
  if step < want:
    if not train_if_missing:
      raise ValueError(
          f"no VDM checkpoint at step {want} in {vdm_workdir} (latest: "
          f"{step}); train it with python launch.py --config={vdm_config} "
          f"--workdir={vdm_workdir}, or pass train_if_missing=True.")
    print(f"training the VDM prior in {vdm_workdir} ({want} steps)...")
    t0 = time.time()
    vdm_train.train_and_evaluate(vc, vdm_workdir)
    info["train_seconds"] = time.time() - t0
    vdm, params, step = vdm_train.load_params(vc, vdm_workdir)
  info["step"] = int(step)
  gamma_fn = vdm.gamma_fn(params)
  info["gamma_0"], info["gamma_1"] = (float(g) for g in gamma_fn(
      jnp.array([0.0, 1.0])))
  sde = ScheduleVPSDE(gamma_fn=gamma_fn, eps=t_min)
  prior_score_apply = score_from_vdm(vdm)
  check_prior_matches_data(prior_score_apply, params, data_shape)
  print(f"loaded VDM prior (step {step}, gamma_0 {info['gamma_0']:.2f}, "
        f"gamma_1 {info['gamma_1']:.2f}) from {vdm_workdir}")
  return sde, prior_score_apply, params, info
