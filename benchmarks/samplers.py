r"""Sampler quality vs number of score evaluations (NFE), on a 2-D toy and the digits.

For each sampler of `vdm_jax.sde.samplers` and a sweep of step counts (or, for
the adaptive probability-flow ODE, of tolerances) the benchmark records the
NFE and the energy distance between its samples and held-out data, and the
PF-ODE likelihood against the NFE of the likelihood solve:

* ``toy``: ring of 8 Gaussians in 2-D, driven by the *exact* score (isolates
  discretisation error) and by a small `ScoreMLP` trained here (DSM, VP SDE);
  ODE NLL in nats and bits/dim of the continuous 2-D density (exact divergence).
* ``digits_mlp``: the 8x8 digits flattened to 64-D, a `ScoreMLP` trained here
  on uniformly dequantised data in [-1, 1] (V = 17 levels, so the bpd is a
  proper bound); ODE bits/dim with the Hutchinson (Rademacher) divergence and
  the offset log2(17) - 1 (`likelihood.bpd_offset`).
* ``digits_vdm``: the digits VDM of the training system (UNet, learned
  schedule; ``launch.py --config=configs/vdm_digits.py --workdir=runs/digits``
  first), sampled through its `ScheduleVPSDE`; ODE bits/dim with the forward
  process as dequantiser (`likelihood.forward_dequantized_ode_bpd`), exact
  divergence on --vdm_exact_n test images and Hutchinson on all 297, next to
  the model's own VLB on the same images.

Outputs in --workdir: ``results.json``, ``table.md`` (printed) and
``tradeoff.png`` (energy distance vs NFE per sampler, log-log; ODE NLL vs NFE).

  python -m benchmarks.samplers --workdir results/bench_samplers   # ~5-10 min CPU
  python -m benchmarks.samplers --quick --workdir /tmp/bench_samplers
  python -m benchmarks.samplers --parts digits_vdm   # only the VDM rows

(`python -m` from the repository root: run as a script, benchmarks/compression.py
would shadow the standard-library `compression` module that jax imports.)
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from vdm_jax.models import ScoreMLP  # noqa: E402
from vdm_jax.sde import likelihood  # noqa: E402
from vdm_jax.sde import losses  # noqa: E402
from vdm_jax.sde import metrics  # noqa: E402
from vdm_jax.sde import samplers  # noqa: E402
from vdm_jax.sde import score_fns  # noqa: E402
from vdm_jax.sde import sdes  # noqa: E402
from vdm_jax.sde import training  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "results/bench_samplers",
                               "Output directory.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny smoke run.")
_PARTS = flags.DEFINE_list(
    "parts", ["toy", "digits_mlp", "digits_vdm"],
    "Which models to (re)run; rows of the others are kept from an earlier "
    "results.json in --workdir.")
_VDM_WORKDIR = flags.DEFINE_string(
    "vdm_workdir", "runs/digits",
    "Workdir of `launch.py --config=configs/vdm_digits.py` (the digits_vdm "
    "part loads its latest EMA checkpoint).")
_VDM_SWEEP = flags.DEFINE_bool(
    "vdm_sweep", True, "digits_vdm: also run the sampler sweep (slow on CPU).")
_VDM_EXACT_N = flags.DEFINE_integer(
    "vdm_exact_n", 20, "Test images for the exact-divergence ODE bits/dim.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")


def ring_mixture(k=8, radius=2.0, std=0.2):
  ang = 2 * np.pi * np.arange(k) / k
  means = radius * np.stack([np.cos(ang), np.sin(ang)], -1).astype(np.float32)
  covs = np.tile((std**2 * np.eye(2)).astype(np.float32), (k, 1, 1))
  return means, covs, np.full(k, -math.log(k), np.float32)


def ring_samples(n, seed):
  means, covs, _ = ring_mixture()
  rs = np.random.default_rng(seed)
  comp = rs.integers(0, len(means), n)
  return (means[comp] + np.sqrt(covs[0, 0, 0]) * rs.standard_normal(
      (n, 2))).astype(np.float32)


def sweeps(quick):
  """name -> list of (label, sampler partial without rng/score/sde/shape)."""
  if quick:
    steps, ode_tols = [5, 20], [1e-2, 1e-4]
  else:
    steps, ode_tols = [5, 10, 20, 50, 100, 200, 500], [1e-1, 1e-2, 1e-3, 1e-4,
                                                       1e-5]
  p = functools.partial
  return {
      "euler_maruyama": [(n, p(samplers.pc_sample, n_steps=n)) for n in steps],
      "reverse_diffusion": [(n, p(samplers.pc_sample, n_steps=n,
                                  predictor="reverse_diffusion"))
                            for n in steps],
      "pc_rd_langevin": [(n, p(samplers.pc_sample, n_steps=n,
                               predictor="reverse_diffusion",
                               corrector="langevin"))
                         for n in steps if n <= 250],
      "ddim_eta0": [(n, p(samplers.ddim_sample, n_steps=n))
                    for n in steps if n <= 200],
      "ddim_eta1": [(n, p(samplers.ddim_sample, n_steps=n, eta=1.0))
                    for n in steps],
      "ode_heun": [(n, p(samplers.ode_sample, solver="heun", n_steps=n))
                   for n in steps if n <= 100],
      "ode_tsit5": [(tol, p(samplers.ode_sample, rtol=tol, atol=tol))
                    for tol in ode_tols],
  }


def run_sweep(rng, score_fn, sde, shape, held_out, quick, tag):
  rows = []
  for name, configs in sweeps(quick).items():
    for setting, sampler in configs:
      run = jax.jit(lambda k, sampler=sampler: sampler(k, score_fn, sde, shape))
      t0 = time.time()
      x, nfe = run(rng)
      x = np.asarray(x)
      secs = time.time() - t0
      finite = bool(np.all(np.isfinite(x)))
      ed = float(metrics.energy_distance(x, held_out)) if finite else float(
          "nan")
      rows.append({"model": tag, "sampler": name, "setting": setting,
                   "nfe": int(nfe), "energy_distance": ed,
                   "seconds": round(secs, 2)})
      print(f"  {tag:14s} {name:18s} {str(setting):8s} nfe={int(nfe):5d} "
            f"energy={ed:.4f}")
  return rows


def toy_benchmark(rng, quick):
  n_train, n = (2000, 500) if quick else (20000, 2000)
  sde = sdes.VPSDE()
  data = ring_samples(n_train, 0)
  held_out = ring_samples(n, 1)
  floor = float(metrics.energy_distance(ring_samples(n, 2), held_out))
  exact_score, exact_logp = score_fns.gaussian_mixture_score(*ring_mixture(),
                                                             sde)
  net = ScoreMLP(hidden=(128, 128, 128), emb_dim=32)
  params = net.init(jax.random.key(1), jnp.zeros((1, 2)), jnp.zeros((1,)))
  loss_fn = losses.make_dsm_loss_fn(sde, net.apply, antithetic=True)
  fit = training.fit(jax.random.fold_in(rng, 0), loss_fn, params, (data,),
                     n_steps=300 if quick else 6000, batch_size=256)
  learned = score_fns.make_score_fn(sde, functools.partial(net.apply,
                                                           fit.ema_params))
  rows = []
  for tag, sf in (("toy_exact", exact_score), ("toy_learned", learned)):
    rows += run_sweep(jax.random.fold_in(rng, 1), sf, sde, (n, 2), held_out,
                      quick, tag)
  # PF-ODE NLL of the learned model vs tolerance.
  n_nll = 200 if quick else 1000
  true_nll = float(-jnp.mean(exact_logp(held_out[:n_nll],
                                        jnp.zeros((n_nll,)))))
  nll_rows = []
  for tol in ([1e-2, 1e-4] if quick else [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]):
    f = jax.jit(lambda k, x, tol=tol: likelihood.ode_logp(
        k, learned, sde, x, divergence="exact", rtol=tol, atol=tol))
    logp, _, nfe = f(jax.random.fold_in(rng, 2), held_out[:n_nll])
    nll = float(-jnp.mean(logp))
    nll_rows.append({"model": "toy_learned", "tol": tol, "nfe": int(nfe),
                     "nll_nats": nll, "bits_per_dim": nll / (2 * math.log(2)),
                     "true_nll_nats": true_nll})
    print(f"  toy ODE NLL tol={tol:g}: nfe={int(nfe)} nll={nll:.4f} "
          f"(true {true_nll:.4f})")
  return rows, nll_rows, floor


def digits_benchmark(rng, quick):
  from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
  vocab = 17
  train_x, _ = digits_arrays("train")
  test_x, _ = digits_arrays("test")
  train_int = train_x.reshape(len(train_x), -1).astype(np.int32)
  test_int = test_x.reshape(len(test_x), -1).astype(np.int32)
  sde = sdes.VPSDE()
  net = ScoreMLP(hidden=(256, 256, 256), emb_dim=64)
  params = net.init(jax.random.key(1), jnp.zeros((1, 64)), jnp.zeros((1,)))
  loss_fn = losses.make_dsm_loss_fn(sde, net.apply, antithetic=True)
  # Train on uniformly dequantised data z = 2 (x + u) / V - 1, matching the
  # scaling that `ode_bpd` evaluates (score_sde trains on x / 255 but evaluates
  # bpd on (x + u) / 256).
  preprocess = lambda k, x: (likelihood.dequantize(
      k, x, vocab_size=vocab)[0],)
  t0 = time.time()
  fit = training.fit(jax.random.fold_in(rng, 10), loss_fn, params,
                     (train_int,), n_steps=300 if quick else 8000,
                     batch_size=128, preprocess=preprocess)
  print(f"  digits model trained in {time.time() - t0:.0f}s, loss "
        f"{fit.losses[-1]:.3f}")
  score = score_fns.make_score_fn(sde, functools.partial(net.apply,
                                                         fit.ema_params))
  centres = (2.0 * (test_int + 0.5) / vocab - 1.0).astype(np.float32)
  floor = float(metrics.energy_distance(
      (2.0 * (train_int[:len(test_int)] + 0.5) / vocab - 1.0), centres))
  n = 100 if quick else 500
  rows = run_sweep(jax.random.fold_in(rng, 11), score, sde, (n, 64), centres,
                   quick, "digits_mlp")
  bpd_rows = []
  n_bpd = 50 if quick else len(test_int)
  for tol in ([1e-2] if quick else [1e-2, 1e-3, 1e-4]):
    f = jax.jit(lambda k, x, tol=tol: likelihood.ode_bpd(
        k, score, sde, x, vocab_size=vocab, divergence="rademacher",
        rtol=tol, atol=tol))
    bpd, nfe = f(jax.random.fold_in(rng, 12), jnp.asarray(test_int[:n_bpd]))
    bpd_rows.append({"model": "digits_mlp", "tol": tol, "nfe": int(nfe),
                     "bits_per_dim": float(jnp.mean(bpd)),
                     "bits_per_dim_se": float(jnp.std(bpd) / math.sqrt(n_bpd))})
    print(f"  digits ODE bpd tol={tol:g}: nfe={int(nfe)} "
          f"bpd={float(jnp.mean(bpd)):.4f}")
  return rows, bpd_rows, floor


def _part_of(model):
  return {"toy_exact": "toy", "toy_learned": "toy"}.get(model, model)


def digits_vdm_benchmark(rng, quick, workdir, exact_n):
  """Sampler sweep and PF-ODE bits/dim of the training system's digits VDM."""
  from configs import vdm_digits  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
  cfg = vdm_digits.get_config()
  vdm, params, step = train.load_params(cfg, workdir)
  gamma_fn = vdm.gamma_fn(params)
  eps_fn = vdm.eps_fn(params)
  sde = sdes.ScheduleVPSDE(gamma_fn=gamma_fn)

  def score(z, t):
    g = gamma_fn(t)
    s = jnp.sqrt(jax.nn.sigmoid(g)).reshape((-1,) + (1,) * (z.ndim - 1))
    return -eps_fn(z, g) / s

  vocab = cfg.data.vocab_size
  train_x, _ = digits_arrays("train")
  test_x, _ = digits_arrays("test")
  centre = lambda x: (2.0 * (x.astype(np.float32) + 0.5) / vocab - 1.0)
  held_out = centre(test_x).reshape(len(test_x), -1)
  floor = float(metrics.energy_distance(
      centre(train_x[:len(test_x)]).reshape(len(test_x), -1), held_out))
  n = 100 if quick else len(test_x)

  flat_score = lambda z, t: score(z.reshape((-1,) + test_x.shape[1:]),
                                  t).reshape(z.shape)
  rows = run_sweep(jax.random.fold_in(rng, 0), flat_score, sde,
                   (n, held_out.shape[1]), held_out, quick,
                   "digits_vdm") if _VDM_SWEEP.value else []
  x_all = jnp.asarray(test_x, jnp.int32)
  vlb_fn = jax.jit(lambda k, x: vdm.vlb_terms(params, k, x).total)
  vlb = float(np.mean([np.mean(vlb_fn(jax.random.fold_in(rng, 50 + i), x_all))
                       for i in range(8)])) / (
                           math.prod(test_x.shape[1:]) * math.log(2.0))
  like = []
  settings = [("exact", exact_n if not quick else 4, tol)
              for tol in ([1e-2] if quick else [1e-2, 1e-3, 1e-4, 1e-5])]
  settings.append(("rademacher", len(test_x) if not quick else 20,
                   1e-3 if quick else 1e-5))
  for div, n_img, tol in settings:
    x = x_all[:n_img]
    f = jax.jit(lambda k, x, tol=tol, div=div:
                likelihood.forward_dequantized_ode_bpd(
                    k, score, sde, x, vocab_size=vocab, divergence=div,
                    rtol=tol, atol=tol))
    t0 = time.time()
    bpd, _, nfe = f(jax.random.fold_in(rng, 13), x)
    bpd = np.asarray(bpd)
    vlb_sub = float(np.mean([np.mean(vlb_fn(jax.random.fold_in(rng, 50 + i), x))
                             for i in range(8)])) / (
                                 math.prod(test_x.shape[1:]) * math.log(2.0))
    like.append({"model": "digits_vdm", "tol": tol, "nfe": int(nfe),
                 "bits_per_dim": float(bpd.mean()),
                 "bits_per_dim_se": float(bpd.std() / math.sqrt(len(bpd))),
                 "n_images": int(n_img), "divergence": div,
                 "vlb_bits_per_dim_same_images": vlb_sub,
                 "vlb_bits_per_dim_test": vlb, "checkpoint_step": step,
                 "seconds": round(time.time() - t0, 1),
                 "note": (f"q(z_0|x) dequantisation, {div} div., "
                          f"{n_img} images, VLB {vlb_sub:.3f}")})
    print(f"  digits_vdm ODE bpd {div} tol={tol:g} n={n_img}: nfe={int(nfe)} "
          f"bpd={bpd.mean():.4f} (VLB same images {vlb_sub:.4f}) "
          f"{time.time() - t0:.0f}s", flush=True)
  return rows, like, floor


def best_at_budget(rows, model, budgets=(20, 50, 100, 200, 500)):
  """For each sampler, the best energy distance reached with NFE <= budget."""
  out = {}
  for r in rows:
    if r["model"] != model:
      continue
    d = out.setdefault(r["sampler"], {})
    for b in budgets:
      if r["nfe"] <= b and np.isfinite(r["energy_distance"]):
        d[b] = min(d.get(b, np.inf), r["energy_distance"])
  return out, budgets


def main(argv):
  del argv
  quick = _QUICK.value
  parts = set(_PARTS.value)
  unknown = parts - {"toy", "digits_mlp", "digits_vdm"}
  if unknown:
    raise app.UsageError(f"--parts: unknown {sorted(unknown)}.")
  os.makedirs(_WORKDIR.value, exist_ok=True)
  rng = jax.random.key(_SEED.value)
  rows, like_rows, floors = [], [], {}
  old_path = os.path.join(_WORKDIR.value, "results.json")
  if os.path.exists(old_path) and parts != {"toy", "digits_mlp", "digits_vdm"}:
    with open(old_path) as f:
      old = json.load(f)
    keep = lambda r: _part_of(r["model"]) not in parts
    rows += [r for r in old["sampling"] if keep(r)]
    like_rows += [r for r in old["likelihood"] if keep(r)]
    floors.update(old["floors"])
  if "toy" in parts:
    print("toy ring mixture:")
    r, lr, floors["toy"] = toy_benchmark(jax.random.fold_in(rng, 0), quick)
    rows += r
    like_rows += lr
  if "digits_mlp" in parts:
    print("digits (64-D ScoreMLP):")
    r, lr, floors["digits"] = digits_benchmark(jax.random.fold_in(rng, 1),
                                               quick)
    rows += r
    like_rows += lr
  if "digits_vdm" in parts:
    print(f"digits (VDM UNet from {_VDM_WORKDIR.value}):")
    r, lr, floors["digits"] = digits_vdm_benchmark(
        jax.random.fold_in(rng, 3), quick, _VDM_WORKDIR.value,
        _VDM_EXACT_N.value)
    rows += r
    like_rows += lr

  lines = []
  for model in dict.fromkeys(r["model"] for r in rows):
    table, budgets = best_at_budget(rows, model)
    floor = floors["digits" if model.startswith("digits") else "toy"]
    lines.append(f"### {model}: best energy distance with NFE <= budget "
                 f"(noise floor {floor:.4f})")
    lines.append("| sampler | " + " | ".join(f"NFE<={b}" for b in budgets) +
                 " |")
    lines.append("|---|" + "---|" * len(budgets))
    for name, d in table.items():
      lines.append(f"| {name} | " + " | ".join(
          f"{d[b]:.4f}" if b in d else "-" for b in budgets) + " |")
    lines.append("")
  lines.append("### PF-ODE likelihood vs solver tolerance")
  lines.append("| model | tol | NFE | NLL (nats) | bits/dim | note |")
  lines.append("|---|---|---|---|---|---|")
  for r in like_rows:
    if "true_nll_nats" in r:
      note = f"true NLL {r['true_nll_nats']:.4f}"
    else:
      note = f"+- {r['bits_per_dim_se']:.3f} (s.e.), V=17, {r.get('note', 'uniform dequantisation')}"
    nll = f"{r['nll_nats']:.4f}" if "nll_nats" in r else "-"
    lines.append(f"| {r['model']} | {r['tol']:g} | {r['nfe']} | {nll} | "
                 f"{r['bits_per_dim']:.4f} | {note} |")
  table = "\n".join(lines)
  print(table)
  with open(os.path.join(_WORKDIR.value, "table.md"), "w") as f:
    f.write(table + "\n")
  with open(os.path.join(_WORKDIR.value, "results.json"), "w") as f:
    json.dump({"sampling": rows, "likelihood": like_rows, "floors": floors,
               "quick": quick}, f, indent=2)
  plot(rows, like_rows, floors, os.path.join(_WORKDIR.value, "tradeoff.png"))


def plot(rows, like_rows, floors, path):
  models = list(dict.fromkeys(r["model"] for r in rows))
  fig, axes = plt.subplots(1, len(models) + 1,
                           figsize=(4.2 * (len(models) + 1), 3.6))
  for ax, model in zip(axes, models):
    for name in dict.fromkeys(r["sampler"] for r in rows):
      pts = sorted((r["nfe"], r["energy_distance"]) for r in rows
                   if r["model"] == model and r["sampler"] == name
                   and np.isfinite(r["energy_distance"]))
      if pts:
        ax.plot(*zip(*pts), marker="o", ms=3, label=name)
    floor = floors["digits" if model.startswith("digits") else "toy"]
    ax.axhline(floor, color="k", ls=":", lw=1, label="data vs data")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("score evaluations (NFE)")
    ax.set_ylabel("energy distance to held-out")
    ax.set_title(model, fontsize=9)
  axes[0].legend(fontsize=6)
  ax = axes[-1]
  for model in dict.fromkeys(r["model"] for r in like_rows):
    pts = sorted((r["nfe"], r["bits_per_dim"]) for r in like_rows
                 if r["model"] == model)
    ax.plot(*zip(*pts), marker="s", label=model)
  ax.set_xscale("log")
  ax.set_xlabel("ODE evaluations (likelihood solve)")
  ax.set_ylabel("bits/dim (PF-ODE)")
  ax.set_title("likelihood vs NFE", fontsize=9)
  ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  app.run(main)
