r"""Intrinsic dimension from a diffusion model vs classical estimators: table + spectra.

For each data set in the config: draw a training set of known dimension, train
a small score model (`vdm_jax.intrinsic_dim.score_training`), estimate the dimension
at held-out anchors from score spectra (`vdm_jax.intrinsic_dim.estimate_intrinsic_dim`,
VP kernel at gamma_eval), run the classical baselines on the training points
(`vdm_jax.intrinsic_dim.baselines`) and write

* ``table.md`` / ``results.json``: true k vs every estimator per data set;
* ``spectra_<name>.png``: normalised score spectra of the anchors (log scale),
  the chosen gap marked.

  python launch.py --config=configs/intrinsic_dim_benchmark.py --workdir=results/intrinsic_dim
  python launch.py --config=configs/intrinsic_dim_benchmark.py:quick --workdir=/tmp/id_quick \
      --config.only=sphere10,squares10

Reference: Stanczuk, Batzolis, Deveney, Schonlieb, Your diffusion model
secretly knows the dimension of the data manifold,
https://arxiv.org/abs/2212.12611, 2022.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax.intrinsic_dim import baselines
from vdm_jax.intrinsic_dim import estimator as intrinsic_dim
from vdm_jax.intrinsic_dim import manifolds
from vdm_jax.intrinsic_dim import score_training
from vdm_jax.models import ScoreMLP
from vdm_jax.models import UNet

def make_data(name, d, num, seed):
  """Returns (train `[N, ...]`, anchors `[A, ...]`, true dim) as float32 numpy."""
  key = jax.random.key(seed)
  if d.kind == "digits":
    from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
    train, _ = digits_arrays("train")
    test, _ = digits_arrays("test")
    return (train.reshape(len(train), -1).astype(np.float32) / 16.0,
            test.reshape(len(test), -1).astype(np.float32) / 16.0, -1)
  if d.kind == "sphere":
    m = manifolds.sphere(d.true_dim, d.ambient_dim, seed=seed)
  elif d.kind == "subspace":
    m = manifolds.linear_subspace(d.true_dim, d.ambient_dim, noise=d.noise, seed=seed)
  elif d.kind == "swiss_roll":
    m = manifolds.swiss_roll(d.ambient_dim, seed=seed)
  elif d.kind == "sphere_product":
    radii = tuple(d.radii) if isinstance(d.radii, (tuple, list)) else float(d.radii)
    m = manifolds.sphere_product(tuple(d.sphere_dims), d.ambient_dim, radii=radii,
                                 seed=seed)
    if m.intrinsic_dim != d.true_dim:
      raise ValueError(f"{name}: true_dim {d.true_dim} != sum(sphere_dims) "
                       f"{m.intrinsic_dim}.")
  elif d.kind == "spaghetti_line":
    m = manifolds.spaghetti_line(d.ambient_dim)
  elif d.kind == "squares":
    m = manifolds.squares(d.true_dim, image_size=d.image_size)
  else:
    raise ValueError(f"{name}: unknown data kind {d.kind!r}.")
  train = np.asarray(m.sample(jax.random.fold_in(key, 1), num))
  anchors = np.asarray(m.sample(jax.random.fold_in(key, 2), 100))
  return train, anchors, m.intrinsic_dim


def make_model(d, cfg, data_shape):
  if d.model == "mlp":
    return ScoreMLP(hidden=tuple(d.hidden), emb_dim=32), (-1,)
  if d.model == "unet":
    if len(data_shape) != 3:
      raise ValueError(f"the UNet needs image data [H, W, C], got {data_shape}.")
    return UNet(ch=cfg.unet.ch, n_blocks=cfg.unet.n_blocks,
                ch_mult=tuple(cfg.unet.ch_mult), dropout=cfg.unet.dropout,
                fourier_exponents=()), tuple(data_shape)
  raise ValueError(f"unknown model {d.model!r}; expected 'mlp' or 'unet'.")


def plot_spectra(path, name, est, true_dim, ambient_dim):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 3.6))
  spectra = np.asarray(est.spectra)
  for i, s in enumerate(spectra):
    ax.semilogy(np.arange(1, s.size + 1), s / s[0], lw=1, alpha=0.7)
    n = int(est.normal_dim[i])
    ax.axvline(n + 0.5, color="k", ls=":", lw=0.8)
  if true_dim > 0:
    ax.axvline(ambient_dim - true_dim + 0.5, color="r", ls="--", lw=1,
               label=f"true normal dim D - k = {ambient_dim - true_dim}")
  ax.set_xlabel("singular value index i")
  ax.set_ylabel("s_i / s_1")
  ax.set_title(f"{name}: k_hat = {int(est.dimension)} (mode), true k = "
               f"{true_dim if true_dim > 0 else '?'}; dotted = chosen gap", fontsize=9)
  if true_dim > 0:
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run_dataset(name, d, cfg, workdir):
  t_start = time.time()
  train, anchors, true_dim = make_data(name, d, cfg.num_train, cfg.seed)
  ambient = int(np.prod(train.shape[1:]))
  model, shape = make_model(d, cfg, train.shape[1:])
  x_train = train.reshape((len(train),) + (shape if shape != (-1,) else (ambient,)))
  x_anchor = anchors[:cfg.num_anchors].reshape((-1,) + x_train.shape[1:])

  tc = cfg.train
  gmin, gmax = (tc.gamma_min, tc.gamma_max) if d.gamma_band is None else d.gamma_band
  steps = max(tc.steps_per_call, int(d.num_steps * tc.step_scale))
  param = d.parameterization or tc.parameterization
  print(f"[{name}] N = {len(train)}, D = {ambient}, true k = {true_dim}; "
        f"training {d.model} for {steps} steps", flush=True)
  state, losses = score_training.train_score_model(
      model, x_train, jax.random.key(cfg.seed), num_steps=steps,
      batch_size=d.batch_size, learning_rate=d.learning_rate,
      warmup_steps=tc.warmup_steps, ema_decay=tc.ema_decay,
      gamma_min=gmin, gamma_max=gmax,
      parameterization=param, steps_per_call=tc.steps_per_call)
  t_train = time.time() - t_start

  score_fn = score_training.make_score_fn(
      model, state.ema_params, gamma_min=gmin, gamma_max=gmax,
      parameterization=param)
  ge = cfg.estimator.gamma_eval if d.gamma_eval is None else d.gamma_eval
  alpha, sigma = intrinsic_dim.vp_kernel(ge)
  t0 = score_training.time_for_gamma(ge, gamma_min=gmin, gamma_max=gmax)
  est = intrinsic_dim.estimate_intrinsic_dim(
      score_fn, jnp.asarray(x_anchor), jax.random.key(cfg.seed + 1), t=t0,
      sigma=float(sigma), alpha=float(alpha),
      num_perturbations=cfg.estimator.perturbation_factor * ambient,
      rule=cfg.estimator.rule, chunk_size=cfg.estimator.chunk_size)
  alt = {rule: intrinsic_dim.summarise_spectra(est.spectra, ambient_dim=ambient, rule=rule)
         for rule in ("log_gap", "threshold")}
  jac = intrinsic_dim.estimate_intrinsic_dim(
      score_fn, jnp.asarray(x_anchor), jax.random.key(cfg.seed + 1), t=t0,
      sigma=float(sigma), alpha=float(alpha), method="jacobian", rule="log_gap",
      floor=cfg.estimator.jacobian_floor, chunk_size=cfg.estimator.chunk_size)
  t_est = time.time() - t_start - t_train

  rs = np.random.default_rng(cfg.seed)
  sub = train[rs.choice(len(train), min(cfg.num_baseline_points, len(train)),
                        replace=False)]
  # The linear span (numerical rank at 1e-3 of the top singular value): a
  # reading stuck at the best linear denoiser returns this, not k.
  flat = sub.reshape(len(sub), -1)
  sv = np.linalg.svd(flat - flat.mean(0), compute_uv=False)
  span = int(np.sum(sv > 1e-3 * sv[0]))
  classical = baselines.classical_estimates(flat, methods=tuple(cfg.baselines))
  plot_spectra(os.path.join(workdir, f"spectra_{name}.png"), name, est, true_dim,
               ambient)
  row = {
      "dataset": name, "ambient_dim": ambient, "true_dim": true_dim,
      "linear_span": span,
      "score_mode": int(est.dimension), "score_mean": float(est.mean),
      "score_per_anchor": np.asarray(est.per_point).tolist(),
      "score_gap_ratio_median": float(np.median(np.asarray(est.gap_ratio))),
      "score_log_gap_mode": int(alt["log_gap"].dimension),
      "score_threshold_mode": int(alt["threshold"].dimension),
      "jacobian_mode": int(jac.dimension),
      "jacobian_per_anchor": np.asarray(jac.per_point).tolist(),
      "gamma_band": [float(gmin), float(gmax)], "parameterization": param,
      **{k: float(v) for k, v in classical.items()},
      "gamma_eval": float(ge),
      "final_loss_nats": float(losses[-1]), "train_steps": steps,
      "model": d.model, "seconds_train": round(t_train, 1),
      "seconds_estimate": round(t_est, 1),
  }
  print(f"[{name}] {json.dumps({k: v for k, v in row.items() if not k.endswith('per_anchor')})}",
        flush=True)
  return row


def markdown_table(rows, baseline_names):
  head = ["data set", "D", "true k", "span", "score (mode)", "score (mean)", "log-gap",
          "threshold", "Jacobian"] + list(baseline_names)
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    k = r["true_dim"]
    cells = [r["dataset"], str(r["ambient_dim"]), str(k) if k > 0 else "?",
             str(r.get("linear_span", "?")),
             str(r["score_mode"]), f"{r['score_mean']:.1f}",
             str(r["score_log_gap_mode"]), str(r["score_threshold_mode"]),
             str(r["jacobian_mode"])]
    cells += [f"{r[b]:.2f}" if not float(r[b]).is_integer() else str(int(r[b]))
              for b in baseline_names]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def run(cfg, workdir):
  """Every data set of the config (or of ``cfg.only``): table.md, results.json, spectra PNGs."""
  os.makedirs(workdir, exist_ok=True)
  # '--config.only=a,b' reaches the tuple field as the one string 'a,b'.
  only = [n for entry in cfg.only for n in str(entry).split(",") if n]
  names = [n for n in cfg.datasets.keys() if not only or n in only]
  if only and set(only) - set(names):
    raise ValueError(f"config.only names {sorted(set(only) - set(names))} that are "
                     f"not in the config ({sorted(cfg.datasets.keys())}).")
  rows = [run_dataset(n, cfg.datasets[n], cfg, workdir) for n in names]
  table = markdown_table(rows, list(cfg.baselines))
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"config": cfg.to_dict(), "rows": rows}, f, indent=1, default=str)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table + "\n")
  print(table)
  return {"table": os.path.join(workdir, "table.md"), "datasets": ",".join(names)}
