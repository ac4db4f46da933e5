r"""WGAN critic estimate versus the true Wasserstein-1 distance, and mini-batch OT.

Three generators per data set (``config.methods``, all three by default), all
MLPs trained on the engine (`vdm_jax.studies.wgan.fit`): WGAN with weight
clipping (RMSProp), WGAN-GP (Adam) and a generator trained directly on the exact
mini-batch W1 (optimal matching per batch, `vdm_jax.metrics.ot_assignment`).
Data: a 2-D Gaussian, a
ring of 8 Gaussians and the digits projected on their first 8 principal
components (standardised). Every `log_every` generator
steps we log the critic's gap (its W1 estimate, on a large sample) next to the
exact W1 between generated and real samples (POT on `n_eval` points, repeated
on independent draws to show its sampling error; the noise floor is W1 between
two independent real samples of that size) and, as an independent measure of
sample quality, the energy distance to held-out real data.

Outputs in the workdir: ``table.md``, ``results.json``, ``curves.png`` (critic
estimate and exact W1 over training), ``critic_vs_w1.png`` (scatter, y = x),
``quality.png`` (energy distance vs exact W1 and vs critic gap), ``samples.png``.

  python launch.py --config=configs/wgan_vs_w1.py --workdir=results/wgan_vs_w1
  python launch.py --config=configs/wgan_vs_w1.py:quick --workdir=/tmp/wgan

Measured (defaults): the critic's gap is far from the exact W1 throughout
(clipped critic about 1e-4; correlation with W1 over training between -0.94
and +1.0); the mini-batch OT generator reaches the lowest W1 but not the best
energy distance on digits.

References:
  Arjovsky, Chintala & Bottou. Wasserstein GAN.
  https://arxiv.org/abs/1701.07875, 2017.
  Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville. Improved training of
  Wasserstein GANs. https://arxiv.org/abs/1704.00028, 2017.
  Stanczuk, Etmann, Kreusser & Schoenlieb. Wasserstein GANs work because they
  fail (to approximate the Wasserstein distance).
  https://arxiv.org/abs/2103.01678, 2021.
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

from vdm_jax.metrics import discrepancy  # noqa: E402
from vdm_jax.studies import wgan  # noqa: E402

METHODS = wgan.METHODS


def make_data(name, rng, n):
  if name == "gaussian":
    return (rng.normal(size=(n, 2)) * np.array([0.5, 1.5]) + 1.0).astype(np.float32)
  if name == "ring":
    ang = 2 * np.pi * rng.integers(0, 8, n) / 8
    c = 2.0 * np.stack([np.cos(ang), np.sin(ang)], -1)
    return (c + 0.1 * rng.normal(size=(n, 2))).astype(np.float32)
  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_digits
  from sklearn.decomposition import PCA
  # pylint: enable=g-import-not-at-top
  x = load_digits().data
  z = PCA(8, random_state=0).fit_transform((x - x.mean(0)))
  z = z / z.std()
  return z[rng.permutation(len(z))].astype(np.float32)


def exact_w1_with_error(rng, fake_fn, real, n_eval, reps=2):
  vals = []
  for _ in range(reps):
    i = rng.choice(len(real), n_eval, replace=len(real) < n_eval)
    vals.append(discrepancy.exact_wasserstein(fake_fn(), real[i]))
  return float(np.mean(vals)), float(np.std(vals))


def train_and_log(method, real, held, steps, log_every, n_eval, batch, seed,
                  n_critic=5):
  """Trains one generator; logs critic gap, exact W1 and energy every `log_every`."""
  rng = np.random.default_rng(seed)
  data = jnp.asarray(real)
  log = []
  # The modules and loop key that `wgan.fit` builds for this seed.
  gen, critic, _, key, z_dim = wgan.init_models(method, real.shape[1], seed)
  sample = jax.jit(lambda p, k, n: gen.apply(p, jax.random.normal(k, (n, z_dim))),
                   static_argnums=2)

  def evaluate(state, s):
    kk = jax.random.fold_in(key, 10_000_000 + s)
    big = sample(state.gen.params, kk, 4000)
    gap = float(wwgap(critic, state.critic.params, data[:4000], big))
    w1, w1_sd = exact_w1_with_error(
        rng, lambda: np.asarray(sample(state.gen.params, jax.random.fold_in(
            kk, rng.integers(1 << 30)), n_eval)), real, n_eval)
    energy = float(discrepancy.energy_distance(np.asarray(big[:1500]), held[:1500]))
    log.append({"step": s, "critic_gap": gap, "w1": w1, "w1_sd": w1_sd,
                "energy": energy})
    return {"critic_gap": gap, "w1": w1, "energy": energy}

  _, _, state = wgan.fit(method, real, steps=steps, batch_size=batch, seed=seed,
                         eval_fn=evaluate, eval_every=log_every, host_rng=rng,
                         n_critic=n_critic)
  final = np.asarray(sample(state.gen.params, jax.random.fold_in(key, 7), 2000))
  return log, final


def wwgap(critic, cp, real, fake):
  return wgan.critic_gap(critic.apply(cp, real), critic.apply(cp, fake))


def run(config, workdir):
  """Trains the generators of `config.methods` on every data set; returns a summary dict."""
  t0 = time.time()
  out = workdir
  steps, log_every, n_eval = config.steps, config.log_every, config.n_eval
  datasets = list(config.datasets)
  methods = tuple(config.methods)
  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    raise ValueError(f"config.methods must be a non-empty subset of {METHODS}, "
                     f"got {methods!r}.")
  os.makedirs(out, exist_ok=True)
  rng = np.random.default_rng(config.seed)
  results, finals, floors = {}, {}, {}
  for ds in datasets:
    allx = make_data(ds, rng, 12000)
    n_tr = len(allx) * 2 // 3 if ds == "digits_pca8" else 8000
    real, held = allx[:n_tr], allx[n_tr:]
    # Noise floor of the exact W1: two independent real samples of size n_eval.
    fl = [discrepancy.exact_wasserstein(
        real[rng.choice(len(real), n_eval)], held[rng.choice(len(held), n_eval)])
          for _ in range(3)]
    floors[ds] = (float(np.mean(fl)), float(np.std(fl)))
    for m in methods:
      log, final = train_and_log(m, real, held, steps, log_every, n_eval,
                                 config.batch_size, config.seed, config.n_critic)
      results[(ds, m)] = log
      finals[(ds, m)] = final
      print(ds, m, log[-1], flush=True)

  # ---- figures
  fig, axs = plt.subplots(len(datasets), len(methods),
                          figsize=(4 * len(methods), 3 * len(datasets)),
                          squeeze=False)
  for i, ds in enumerate(datasets):
    for j, m in enumerate(methods):
      lg = results[(ds, m)]
      st = [r["step"] for r in lg]
      w1 = np.array([r["w1"] for r in lg])
      sd = np.array([r["w1_sd"] for r in lg])
      ax = axs[i][j]
      ax.plot(st, w1, "k-", label="exact W1 (POT)")
      ax.fill_between(st, w1 - 2 * sd, w1 + 2 * sd, color="k", alpha=0.2)
      ax.axhline(floors[ds][0], color="gray", ls=":", label="W1 noise floor")
      ax.plot(st, [r["critic_gap"] for r in lg], "r-", label="critic gap")
      ax.set(title=f"{ds}: {m}", xlabel="generator step")
      if i == 0 and j == 0:
        ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "curves.png"), dpi=110)

  fig, ax = plt.subplots(figsize=(4.5, 4))
  mk = dict(zip(datasets, "os^"))
  for (ds, m), lg in results.items():
    ax.scatter([r["w1"] for r in lg], [r["critic_gap"] for r in lg],
               marker=mk[ds], color=plt.cm.tab10(METHODS.index(m)), s=12)
  lim = max(max(r["w1"] for lg in results.values() for r in lg), 1e-3)
  ax.plot([0, lim], [0, lim], "k--", lw=1)
  for m in methods:  # colours by the method's place in METHODS, whatever the subset.
    ax.scatter([], [], color=plt.cm.tab10(METHODS.index(m)), label=m)
  ax.set(xlabel="exact W1 (POT)", ylabel="critic gap (W1 estimate)",
         yscale="symlog", title="critic estimate vs true W1")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "critic_vs_w1.png"), dpi=110)

  fig, axs = plt.subplots(1, 2, figsize=(8.5, 3.6))
  for (ds, m), lg in results.items():
    c = plt.cm.tab10(METHODS.index(m))
    e = [r["energy"] for r in lg]
    axs[0].scatter([r["w1"] for r in lg], e, color=c, marker=mk[ds], s=12)
    axs[1].scatter([r["critic_gap"] for r in lg], e, color=c, marker=mk[ds], s=12)
  axs[0].set(xlabel="exact W1", ylabel="energy distance to held-out data",
             yscale="log")
  axs[1].set(xlabel="critic gap", xscale="symlog", yscale="log")
  for m in methods:
    axs[0].scatter([], [], color=plt.cm.tab10(METHODS.index(m)), label=m)
  axs[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "quality.png"), dpi=110)

  two_d = [ds for ds in datasets if ds != "digits_pca8"]
  fig, axs = plt.subplots(len(two_d), len(methods) + 1,
                          figsize=(3 * (len(methods) + 1), 3 * len(two_d)),
                          squeeze=False)
  for i, ds in enumerate(two_d):
    ref = make_data(ds, np.random.default_rng(1), 2000)
    axs[i][0].scatter(*ref.T, s=1, c="k")
    axs[i][0].set_title(f"{ds}: data")
    for j, m in enumerate(methods):
      axs[i][j + 1].scatter(*finals[(ds, m)].T, s=1)
      axs[i][j + 1].set_title(m)
      axs[i][j + 1].set_xlim(axs[i][0].get_xlim())
      axs[i][j + 1].set_ylim(axs[i][0].get_ylim())
  fig.tight_layout()
  fig.savefig(os.path.join(out, "samples.png"), dpi=110)

  lines = ["| data | method | final critic gap | final exact W1 (+-sd) | "
           "W1 noise floor | energy to held-out | corr(gap, W1) over training |",
           "|---|---|---|---|---|---|---|"]
  rows = []
  for (ds, m), lg in results.items():
    g = np.array([r["critic_gap"] for r in lg])
    w = np.array([r["w1"] for r in lg])
    corr = float(np.corrcoef(g, w)[0, 1]) if np.std(g) > 0 and np.std(w) > 0 else float("nan")
    f = lg[-1]
    rows.append({"data": ds, "method": m, **f, "corr_gap_w1": corr})
    lines.append(f"| {ds} | {m} | {f['critic_gap']:.4g} | {f['w1']:.4f} "
                 f"(+-{f['w1_sd']:.4f}) | {floors[ds][0]:.4f} | "
                 f"{f['energy']:.4g} | {corr:.2f} |")
  lines += ["", f"{steps} generator steps, exact W1 on {n_eval} samples; wall "
            f"time {time.time() - t0:.0f} s."]
  table = "\n".join(lines)
  print(table)
  with open(os.path.join(out, "table.md"), "w") as fh:
    fh.write(table + "\n")
  with open(os.path.join(out, "results.json"), "w") as fh:
    json.dump({"final": rows, "floors": floors,
               "logs": {f"{k[0]}/{k[1]}": v for k, v in results.items()}},
              fh, indent=1)
  return {f"w1_{r['data']}_{r['method']}": r["w1"] for r in rows} | {
      "table": os.path.join(out, "table.md")}
