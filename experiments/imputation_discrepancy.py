r"""Imputation quality: RMSE versus distribution discrepancies, and downstream effects.

For tabular data that ships with scikit-learn (wine, breast cancer) and the 8x8
digits (flattened, 64 features), half of the rows are kept complete (the
reference every imputer may fit on; the diffusion model is trained on it) and
the other half is masked under MCAR, MAR and MNAR at several rates. Imputers:
mean, k-NN, iterative (MICE-style, BayesianRidge), random-forest iterative
(missForest-style, extra trees) and diffusion inpainting with a `ScoreMLP`
score model (VP SDE, RePaint resampling; `vdm_jax.studies.imputation`).
Scores on standardised features: RMSE/MAE on the missing entries; exact W1
(POT), sliced W2, RBF MMD^2, energy distance, Frechet distance and mean KS
between the imputed and the complete masked half (`vdm_jax.metrics`);
accuracy on the complete reference half of a random forest trained on the
imputed data, and the L1 change of its normalised feature importances against
one trained on the complete data.

Outputs in the workdir: ``table.md``, ``results.json``, ``rmse_vs_w1.png`` (one
panel per data set), ``rank_disagreement.png``, ``marginals.png``.

  python launch.py --config=configs/imputation_discrepancy.py --workdir=results/imputation
  python launch.py --config=configs/imputation_discrepancy.py:quick --workdir=/tmp/imp

California housing needs a download, so it is not used (no network).

References:
  Muzellec, Josse, Boyer & Cuturi. Missing data imputation using optimal
  transport. https://arxiv.org/abs/2002.03860, 2020.
  Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole. Score-based generative
  modeling through stochastic differential equations (imputation).
  https://arxiv.org/abs/2011.13456, 2021.
  Lugmayr, Danelljan, Romero, Yu, Timofte & Van Gool. RePaint: Inpainting using
  denoising diffusion probabilistic models. https://arxiv.org/abs/2201.09865,
  2022.
"""

from __future__ import annotations

import json
import os
import time

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from vdm_jax.metrics import discrepancy  # noqa: E402
from vdm_jax.models import ScoreMLP  # noqa: E402
from vdm_jax.sde import losses  # noqa: E402
from vdm_jax.sde import score_fns  # noqa: E402
from vdm_jax.sde import sdes  # noqa: E402
from vdm_jax.sde import training  # noqa: E402
from vdm_jax.studies import imputation as imp  # noqa: E402


def load(name):
  # pylint: disable=g-import-not-at-top
  from sklearn import datasets
  # pylint: enable=g-import-not-at-top
  if name == "wine":
    d = datasets.load_wine()
  elif name == "breast_cancer":
    d = datasets.load_breast_cancer()
  elif name == "digits":
    d = datasets.load_digits()
  else:
    raise ValueError(f"unknown data set {name!r}.")
  x = d.data.astype(np.float64)
  x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
  return x, d.target


def train_score_model(rng, x_ref, steps, *, batch_size=128, learning_rate=1e-3):
  sde = sdes.VPSDE()
  net = ScoreMLP(hidden=(256, 256, 256), emb_dim=64)
  params = net.init(rng, x_ref[:2].astype(np.float32), np.zeros(2, np.float32))
  loss_fn = losses.make_dsm_loss_fn(sde, lambda p, x, t: net.apply(p, x, t),
                                    parameterization="eps")
  res = training.fit(rng, loss_fn, params, [x_ref.astype(np.float32)],
                     n_steps=steps, batch_size=batch_size,
                     learning_rate=learning_rate,
                     chunk=min(100, steps))
  score = score_fns.make_score_fn(
      sde, lambda x, t: net.apply(res.ema_params, x, t), parameterization="eps")
  return sde, score


def downstream(x_train, y_train, x_eval, y_eval, seed):
  # pylint: disable=g-import-not-at-top
  from sklearn.ensemble import RandomForestClassifier
  # pylint: enable=g-import-not-at-top
  clf = RandomForestClassifier(n_estimators=60, random_state=seed, n_jobs=1)
  clf.fit(x_train, y_train)
  return clf.score(x_eval, y_eval), clf.feature_importances_


def kendall(a, b):
  from scipy.stats import kendalltau  # pylint: disable=g-import-not-at-top
  return float(kendalltau(a, b).statistic)


def run(config, workdir):
  """Masks, imputes and scores every setting; returns a summary dict."""
  t0 = time.time()
  out = workdir
  os.makedirs(out, exist_ok=True)
  seed = config.seed
  datasets = list(config.datasets)
  rates = [float(r) for r in config.rates]
  mechs = list(config.mechanisms)
  for m in mechs:
    if m not in imp.MECHANISMS:
      raise ValueError(f"mechanisms must be in {imp.MECHANISMS}, got {m!r}.")
  steps = config.score_steps
  diff_steps, resample = config.diffusion_steps, config.resample
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  rows = []
  example = None
  for ds in datasets:
    x, y = load(ds)
    perm = rng.permutation(len(x))
    ref, tgt = perm[: len(x) // 2], perm[len(x) // 2:]
    x_ref, y_ref, x_tgt, y_tgt = x[ref], y[ref], x[tgt], y[tgt]
    key, k_fit = jax.random.split(key)
    sde, score = train_score_model(k_fit, x_ref, steps,
                                   batch_size=config.score_batch_size,
                                   learning_rate=config.score_learning_rate)
    acc_full, imp_full = downstream(x_tgt, y_tgt, x_ref, y_ref, seed)
    for mech in mechs:
      for rate in rates:
        mask = imp.make_mask(rng, x_tgt, mech, rate)
        x_nan = imp.apply_mask(x_tgt, mask)
        for name in imp.IMPUTERS:
          ts = time.time()
          if name == "diffusion":
            key, k_s = jax.random.split(key)
            x_imp = imp.diffusion_inpaint(k_s, score, sde, x_nan, mask,
                                          n_steps=diff_steps,
                                          n_resample=resample)
          else:
            x_imp = imp.impute_sklearn(name, x_nan, mask, reference=x_ref,
                                       seed=seed, max_iter=config.max_iter)
          assert np.array_equal(x_imp[~mask], x_tgt[~mask])
          err = x_imp[mask] - x_tgt[mask]
          key, k_d = jax.random.split(key)
          scores = discrepancy.discrepancy_scores(
              k_d, x_imp.astype(np.float32), x_tgt.astype(np.float32))
          acc, imps = downstream(x_imp, y_tgt, x_ref, y_ref, seed)
          rows.append({
              "dataset": ds, "mechanism": mech, "rate": rate, "imputer": name,
              "rmse": float(np.sqrt(np.mean(err ** 2))),
              "mae": float(np.mean(np.abs(err))), **scores,
              "acc": float(acc), "acc_complete": float(acc_full),
              "importance_shift": float(np.abs(imps - imp_full).sum()),
              "seconds": time.time() - ts})
        if ds == datasets[0] and mech == mechs[-1] and rate == rates[-1]:
          example = (ds, mech, rate, x_tgt, mask, x_nan, sde, score)

  # ---- rank agreement between RMSE and the discrepancy scores
  groups = {}
  for r in rows:
    groups.setdefault((r["dataset"], r["mechanism"], r["rate"]), []).append(r)
  agree = []
  for g, rs in groups.items():
    rm = [r["rmse"] for r in rs]
    agree.append({"dataset": g[0], "mechanism": g[1], "rate": g[2],
                  "best_rmse": min(rs, key=lambda r: r["rmse"])["imputer"],
                  "best_w1": min(rs, key=lambda r: r["w1_exact"])["imputer"],
                  "best_energy": min(rs, key=lambda r: r["energy"])["imputer"],
                  "tau_rmse_w1": kendall(rm, [r["w1_exact"] for r in rs]),
                  "tau_rmse_energy": kendall(rm, [r["energy"] for r in rs])})

  # ---- figures
  colors = dict(zip(imp.IMPUTERS, plt.cm.tab10.colors))
  fig, axs = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.8),
                          squeeze=False)
  for ax, ds in zip(axs[0], datasets):
    for r in rows:
      if r["dataset"] == ds:
        ax.scatter(r["rmse"], r["w1_exact"], color=colors[r["imputer"]],
                   marker={"mcar": "o", "mar": "s", "mnar": "^"}[r["mechanism"]])
    ax.set(xlabel="RMSE (missing entries)", ylabel="exact W1 to complete data",
           title=ds)
  for n, c in colors.items():
    axs[0][0].scatter([], [], color=c, label=n)
  axs[0][0].legend(fontsize=7, title="o MCAR, s MAR, ^ MNAR", title_fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "rmse_vs_w1.png"), dpi=120)

  fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(agree)), 3.5))
  ax.bar(range(len(agree)), [a["tau_rmse_w1"] for a in agree], label="tau(RMSE, W1)")
  ax.plot(range(len(agree)), [a["tau_rmse_energy"] for a in agree], "k.",
          label="tau(RMSE, energy)")
  ax.set_xticks(range(len(agree)))
  ax.set_xticklabels([f"{a['dataset'][:6]}\n{a['mechanism']} {a['rate']}"
                      for a in agree], fontsize=6)
  ax.axhline(0, c="gray")
  ax.set(ylabel="Kendall tau of imputer rankings", ylim=(-1.05, 1.05))
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "rank_disagreement.png"), dpi=120)

  if example is not None:
    ds, mech, rate, x_tgt, mask, x_nan, sde, score = example
    j = int(np.argmax(mask.mean(0)))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(x_tgt[:, j].min() - 0.5, x_tgt[:, j].max() + 0.5, 30)
    ax.hist(x_tgt[:, j], bins, histtype="step", color="k", label="complete")
    for name in ("mean", "iterative", "diffusion"):
      if name == "diffusion":
        xi = imp.diffusion_inpaint(jax.random.key(1), score, sde, x_nan, mask,
                                   n_steps=diff_steps, n_resample=resample)
      else:
        xi = imp.impute_sklearn(name, x_nan, mask, max_iter=config.max_iter)
      ax.hist(xi[:, j], bins, histtype="step", color=colors[name], label=name)
    ax.set(title=f"{ds} feature {j}, {mech} {rate}", xlabel="standardised value")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "marginals.png"), dpi=120)

  keys = ["rmse", "mae", "w1_exact", "sliced_w2", "mmd2_rbf", "energy",
          "frechet", "ks_mean", "acc", "importance_shift"]
  lines = ["| data | mech | rate | imputer | " + " | ".join(keys) + " |",
           "|---" * (4 + len(keys)) + "|"]
  for r in rows:
    lines.append(f"| {r['dataset']} | {r['mechanism']} | {r['rate']} | "
                 f"{r['imputer']} | " + " | ".join(f"{r[k]:.4g}" for k in keys)
                 + " |")
  lines += ["", "| data | mech | rate | best RMSE | best W1 | best energy | "
            "tau(RMSE,W1) | tau(RMSE,energy) |", "|---" * 8 + "|"]
  for a in agree:
    lines.append(f"| {a['dataset']} | {a['mechanism']} | {a['rate']} | "
                 f"{a['best_rmse']} | {a['best_w1']} | {a['best_energy']} | "
                 f"{a['tau_rmse_w1']:.2f} | {a['tau_rmse_energy']:.2f} |")
  lines += ["", "Random-forest accuracy with complete data: " + ", ".join(
      f"{ds} {next(r['acc_complete'] for r in rows if r['dataset'] == ds):.3f}"
      for ds in datasets), f"Wall time {time.time() - t0:.0f} s."]
  table = "\n".join(lines)
  print(table)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(table + "\n")
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"rows": rows, "agreement": agree}, f, indent=1)
  diffusion = [r for r in rows if r["imputer"] == "diffusion"]
  return {"settings": len(groups), "rows": len(rows),
          "mean_rmse_diffusion": float(np.mean([r["rmse"] for r in diffusion])),
          "mean_tau_rmse_w1": float(np.nanmean([a["tau_rmse_w1"] for a in agree])),
          "table": os.path.join(out, "table.md")}
