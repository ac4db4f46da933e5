r"""Label allocation in meta-learning: how many labels per task for a fixed budget?

Part 1 (exact, `vdm_jax.studies.meta_allocation`): mixed linear regression in
d dimensions; for budgets B the exact test risk of the averaged min-norm
meta-estimator as a function of labels-per-task n (T = B // n tasks), Monte
Carlo checks at one budget, and the optimal n versus B, which converges to the
constant n* = d + 1 + sqrt(sigma^2 d (d+1) / r^2) just above the interpolation
threshold n = d.

Part 2 (non-linear, `vdm_jax.studies.shared_features`): a shared MLP feature
extractor with per-task linear heads, meta-trained at fixed budgets on
(a) sinusoid regression (amplitude ~ U[0.1, 5], phase ~ U[0, pi]) and
(b) 2-way few-shot classification built from the digits classes (train
classes 0-5, test classes 6-9); test error of ridge heads on new tasks versus n.

Outputs in the workdir: ``table.md``, ``results.json``, ``risk_vs_allocation.png``,
``optimal_n_vs_budget.png``, ``nonlinear_allocation.png``.

  python launch.py --config=configs/meta_allocation.py --workdir=results/meta_allocation
  python launch.py --config=configs/meta_allocation.py:quick --workdir=/tmp/meta_alloc

Measured (defaults): optimal labels per task 5, 6, 20, 20, 20, 20, 18, 19, 18
for B = 20 ... 20,000, converging to n* = 18.4 just above the interpolation
threshold d = 10.

References:
  Cioba, Bromberg, Wang, Niyogi, Batzolis, Garcia, Shiu & Bernacchia. How to
  distribute data across tasks for meta-learning?
  https://arxiv.org/abs/2103.08463, 2022.
  Raghu, Raghu, Bengio & Vinyals. Rapid learning or feature reuse? (ANIL).
  https://arxiv.org/abs/1909.09157, 2020.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from vdm_jax import data as vdata  # noqa: E402
from vdm_jax.studies import meta_allocation as ma  # noqa: E402
from vdm_jax.studies import shared_features as sf  # noqa: E402


def sinusoid_tasks(rng, n_tasks, n):
  a = rng.uniform(0.1, 5.0, (n_tasks, 1, 1))
  ph = rng.uniform(0, np.pi, (n_tasks, 1, 1))
  x = rng.uniform(-5, 5, (n_tasks, n, 1))
  return x.astype(np.float32), (a * np.sin(x + ph)).astype(np.float32)


def digit_tasks(rng, images, labels, classes, n_tasks, n):
  """2-way tasks: a random class pair, n labelled points (one-hot targets)."""
  by_class = {c: np.flatnonzero(labels == c) for c in classes}
  xs, ys = [], []
  for _ in range(n_tasks):
    pair = rng.choice(classes, 2, replace=False)
    lab = rng.integers(0, 2, n)
    lab[: min(n, 2)] = np.arange(min(n, 2))  # both classes seen when n >= 2
    idx = np.array([rng.choice(by_class[pair[l]]) for l in lab])
    xs.append(images[idx])
    ys.append(np.eye(2, dtype=np.float32)[lab])
  return np.stack(xs), np.stack(ys)


def part1(prob, budgets, mc_reps):
  rows, curves = [], {}
  for b in budgets:
    ns = np.unique(np.round(np.geomspace(1, b, 60)).astype(int))
    curves[b] = (ns, np.array([ma.risk_at_budget(prob, b, n) for n in ns]))
    n_opt = ma.optimal_labels_per_task(prob, b)
    rows.append({"budget": b, "n_opt": n_opt, "tasks": b // n_opt,
                 "risk_opt": ma.risk_at_budget(prob, b, n_opt)})
  b_mc = budgets[len(budgets) // 2]
  mc = []
  for n in (2, 4, prob.d + 4, 2 * prob.d, 4 * prob.d):
    if b_mc // n >= 1:
      m, se = ma.monte_carlo_risk(jax.random.key(n), prob, n, b_mc // n,
                                  n_reps=mc_reps)
      mc.append((n, m, se, ma.risk_at_budget(prob, b_mc, n)))
  return rows, curves, b_mc, mc


def part2(kind, budgets, allocations, steps, seed):
  rng = np.random.default_rng(seed)
  if kind == "digits":
    images, labels = vdata.digits_arrays("all")
    images = images.reshape(len(images), -1).astype(np.float32) / 16.0
    make = lambda r, t, n, cls: digit_tasks(r, images, labels, cls, t, n)
    train_cls, test_cls, m_support = np.arange(6), np.arange(6, 10), 4
  else:
    make = lambda r, t, n, cls: sinusoid_tasks(r, t, n)
    train_cls = test_cls = None
    m_support = 10
  xs, ys = make(rng, 300, m_support + 50, test_cls)
  out = {}
  for b in budgets:
    errs = []
    for n in allocations:
      t = b // n
      if t < 1:
        errs.append(float("nan"))
        continue
      x, y = make(rng, t, n, train_cls)
      apply_f, theta = sf.meta_train(jax.random.key(seed + n), jnp.asarray(x),
                                     jnp.asarray(y), steps=steps)
      err = sf.evaluate(apply_f, theta, xs[:, :m_support], ys[:, :m_support],
                        xs[:, m_support:], ys[:, m_support:],
                        classify=kind == "digits")
      errs.append(float(err))
    out[b] = errs
  return out


def run(config, workdir):
  """Exact allocation curves and the non-linear meta-learner; returns a summary."""
  t0 = time.time()
  out = workdir
  os.makedirs(out, exist_ok=True)
  prob = ma.MLRProblem(d=config.dim, w0_norm2=config.w0_norm2, r2=config.r2,
                       sigma2=config.sigma2)
  budgets = [int(b) for b in config.budgets]
  rows, curves, b_mc, mc = part1(prob, budgets, config.mc_reps)
  star = ma.asymptotic_optimum(prob)

  nl_budgets = [int(b) for b in config.nonlinear_budgets]
  allocs = [int(n) for n in config.allocations]
  nonlin = {k: part2(k, nl_budgets, allocs, config.steps, config.seed)
            for k in ("sinusoid", "digits")}

  # ---- figures
  fig, ax = plt.subplots(figsize=(6, 4))
  for b in [b for b in (50, 200, 1000, 5000, 20000) if b in curves] or budgets:
    ns, r = curves[b]
    ax.plot(ns, r, label=f"B={b}")
  for n, m, se, ex in mc:
    ax.errorbar(n, m, yerr=2 * se, fmt="k.", capsize=2)
  ax.axvline(prob.d, ls=":", c="gray", label="n = d")
  ax.axvline(star, ls="--", c="gray", label="n* (B->inf)")
  ax.set(xscale="log", yscale="log", xlabel="labels per task n",
         ylabel="test risk", title=f"Mixed linear regression d={prob.d} "
         f"(dots: Monte Carlo at B={b_mc})")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "risk_vs_allocation.png"), dpi=120)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.plot([r["budget"] for r in rows], [r["n_opt"] for r in rows], "o-")
  ax.axhline(star, ls="--", c="gray", label=f"n* = {star:.1f}")
  ax.axhline(prob.d, ls=":", c="gray", label="d")
  ax.set(xscale="log", xlabel="budget B", ylabel="optimal n")
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(out, "optimal_n_vs_budget.png"), dpi=120)
  fig, axs = plt.subplots(1, 2, figsize=(9, 3.5))
  for ax, (k, res) in zip(axs, nonlin.items()):
    for b, errs in res.items():
      ax.plot(allocs, errs, "o-", label=f"B={b}")
    ax.set(xscale="log", xlabel="labels per task n",
           ylabel="query error rate" if k == "digits" else "query MSE",
           title=f"{k}: shared features + ridge heads")
    ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(out, "nonlinear_allocation.png"), dpi=120)

  # ---- tables
  lines = [f"# Label allocation (d={prob.d}, r2={prob.r2}, sigma2={prob.sigma2};"
           f" n* = {star:.2f})", "", "| budget B | optimal n | tasks | risk |",
           "|---|---|---|---|"]
  lines += [f"| {r['budget']} | {r['n_opt']} | {r['tasks']} | {r['risk_opt']:.4f} |"
            for r in rows]
  lines += ["", f"Monte Carlo check at B={b_mc}:", "",
            "| n | MC risk | +-2se | exact |", "|---|---|---|---|"]
  lines += [f"| {n} | {m:.4f} | {2 * se:.4f} | {ex:.4f} |" for n, m, se, ex in mc]
  for k, res in nonlin.items():
    lines += ["", f"Non-linear meta-learner, {k} (query "
              f"{'error rate' if k == 'digits' else 'MSE'}):", "",
              "| B \\ n | " + " | ".join(map(str, allocs)) + " |",
              "|---" * (len(allocs) + 1) + "|"]
    for b, errs in res.items():
      lines.append(f"| {b} | " + " | ".join(f"{e:.3f}" for e in errs) + " |")
  lines += ["", f"Wall time {time.time() - t0:.0f} s."]
  table = "\n".join(lines)
  print(table)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(table + "\n")
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"optimal": rows, "n_star": star, "monte_carlo": mc,
               "nonlinear": {k: {str(b): e for b, e in v.items()}
                             for k, v in nonlin.items()},
               "allocations": allocs}, f, indent=1)
  return {"n_star": star, "optimal_n": [r["n_opt"] for r in rows],
          "table": os.path.join(out, "table.md")}
