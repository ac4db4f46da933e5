r"""2-D score-SDE toy: train a small MLP score model, sample with every sampler.

Data: a ring of 8 Gaussians (known density; default) or two moons. A
`ScoreMLP` predicting eps is trained with DSM (VP SDE, lambda = s_t^2) and then
sampled with Euler-Maruyama, the reverse-diffusion predictor, predictor-corrector
(reverse diffusion + Langevin), DDIM (eta = 0 and 1) and the probability-flow ODE
(diffrax Tsit5). For each sampler the script reports the number of score
evaluations, the energy distance to held-out data (and, for the ring, the same
sampler driven by the *exact* score), and the held-out NLL of the model through
the PF-ODE (exact divergence) against the true NLL. Outputs in the workdir:

* ``table.md`` / ``results.json``: the table below, printed too;
* ``samples.png``: data and each sampler's samples;
* ``score_field.png``: learned vs exact score field at three times.

  python launch.py --config=configs/toy_2d.py --workdir=results/toy_2d      # ~2-4 min CPU
  python launch.py --config=configs/toy_2d.py:quick --workdir=/tmp/toy_2d   # smoke run
  python launch.py --config=configs/toy_2d.py:data=moons --workdir=results/toy_2d_moons

Measured (defaults: ring, 6,000 steps, 2,000 samples; data-vs-data energy
distance 0.0015): Euler-Maruyama 0.0019 (500 NFE), reverse diffusion 0.0019
(500), PC 0.0036 (500), DDIM eta=0 0.0023 (50), DDIM eta=1 0.0032 (250), ODE
Tsit5 0.0022 (85); PF-ODE NLL 1.794 nats vs true 1.695.

References:
  Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole. Score-based generative
  modeling through stochastic differential equations.
  https://arxiv.org/abs/2011.13456, 2021.
  Song, Meng & Ermon. Denoising diffusion implicit models.
  https://arxiv.org/abs/2010.02502, 2021.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

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

RING_K, RING_R, RING_STD = 8, 2.0, 0.2


def ring_mixture():
  """(means [8, 2], covs [8, 2, 2], log_weights [8]) of the ring of Gaussians."""
  ang = 2 * np.pi * np.arange(RING_K) / RING_K
  means = RING_R * np.stack([np.cos(ang), np.sin(ang)], -1).astype(np.float32)
  covs = np.tile((RING_STD**2 * np.eye(2)).astype(np.float32), (RING_K, 1, 1))
  return means, covs, np.full(RING_K, -math.log(RING_K), np.float32)


def make_data(name, n, seed):
  rs = np.random.default_rng(seed)
  if name == "ring":
    means, _, _ = ring_mixture()
    comp = rs.integers(0, RING_K, n)
    return (means[comp] + RING_STD * rs.standard_normal((n, 2))).astype(
        np.float32)
  from sklearn.datasets import make_moons  # pylint: disable=g-import-not-at-top
  x, _ = make_moons(n, noise=0.06, random_state=seed)
  return ((x - np.array([0.5, 0.25])) * 1.5).astype(np.float32)


def sampler_suite(s):
  """Every sampler, with `s` times its default number of steps."""
  n = lambda k: max(5, int(k * s))
  return {
      "euler_maruyama": functools.partial(samplers.pc_sample, n_steps=n(500)),
      "reverse_diffusion": functools.partial(
          samplers.pc_sample, predictor="reverse_diffusion", n_steps=n(500)),
      "pc_rd_langevin": functools.partial(
          samplers.pc_sample, predictor="reverse_diffusion",
          corrector="langevin", n_steps=n(250)),
      "ddim_eta0": functools.partial(samplers.ddim_sample, n_steps=n(50)),
      "ddim_eta1": functools.partial(samplers.ddim_sample, n_steps=n(250),
                                     eta=1.0),
      "ode_tsit5": functools.partial(samplers.ode_sample, rtol=1e-4,
                                     atol=1e-4),
  }


def run(config, workdir):
  """Trains the score model, runs every sampler; returns a summary dict."""
  # A bad sampler name fails here, not after training.
  suite = sampler_suite(config.sampler_scale)
  unknown = sorted(set(config.samplers) - set(suite))
  if unknown or not config.samplers:
    raise ValueError(f"config.samplers must be a non-empty subset of {tuple(suite)}, "
                     f"got {tuple(config.samplers)!r}.")
  os.makedirs(workdir, exist_ok=True)
  seed, data_name = config.seed, config.data
  rng = jax.random.key(seed)
  n_eval, steps = config.n_eval, config.steps
  data = make_data(data_name, config.n_train, seed)
  held_out = make_data(data_name, n_eval, seed + 1)

  sde = sdes.VPSDE()
  net = ScoreMLP(hidden=(128, 128, 128), emb_dim=32)
  params = net.init(jax.random.key(1), jnp.zeros((1, 2)), jnp.zeros((1,)))
  loss_fn = losses.make_dsm_loss_fn(sde, net.apply, parameterization="eps",
                                    weighting="std2", antithetic=True)
  t0 = time.time()
  fit = training.fit(jax.random.fold_in(rng, 1), loss_fn, params, (data,),
                     n_steps=steps, batch_size=config.batch_size,
                     learning_rate=config.learning_rate)
  train_s = time.time() - t0
  print(f"trained {steps} steps in {train_s:.1f}s; final loss "
        f"{fit.losses[-1]:.4f}")
  model_score = score_fns.make_score_fn(
      sde, functools.partial(net.apply, fit.ema_params),
      parameterization="eps")
  exact_score = None
  if data_name == "ring":
    exact_score, exact_logp = score_fns.gaussian_mixture_score(*ring_mixture(),
                                                               sde)

  rows, all_samples = [], {}
  for name, sampler in ((k, v) for k, v in suite.items() if k in config.samplers):
    row = {"sampler": name}
    for tag, sf in (("learned", model_score), ("exact", exact_score)):
      if sf is None:
        continue
      run = jax.jit(lambda k, sf=sf, sampler=sampler: sampler(
          k, sf, sde, (n_eval, 2)))
      t0 = time.time()
      x, nfe = run(jax.random.fold_in(rng, 2))
      x = np.asarray(x)
      row[f"{tag}_seconds"] = round(time.time() - t0, 2)
      row["nfe"] = int(nfe)
      row[f"{tag}_energy"] = float(metrics.energy_distance(x, held_out))
      if tag == "learned":
        all_samples[name] = x
    rows.append(row)

  # Reference: energy distance between two independent data draws.
  ref_energy = float(metrics.energy_distance(
      make_data(data_name, n_eval, seed + 2), held_out))

  # Held-out NLL through the PF-ODE (exact divergence, D = 2).
  n_nll = config.n_nll
  logp_fn = jax.jit(lambda k, x: likelihood.ode_logp(
      k, model_score, sde, x, divergence="exact", rtol=1e-5, atol=1e-5))
  logp, _, nll_nfe = logp_fn(jax.random.fold_in(rng, 3), held_out[:n_nll])
  nll = {"model_nll_nats": float(-jnp.mean(logp)), "ode_nfe": int(nll_nfe)}
  if exact_score is not None:
    nll["true_nll_nats"] = float(-jnp.mean(exact_logp(
        held_out[:n_nll], jnp.zeros((n_nll,)))))

  write_outputs(workdir, rows, nll, ref_energy, data, all_samples, sde,
                model_score, exact_score,
                {"steps": steps, "train_seconds": round(train_s, 1),
                 "data": data_name, "n_eval": n_eval, "quick": config.quick})
  summary = {f"{r['sampler']}_energy": r["learned_energy"] for r in rows}
  return dict(summary, ref_energy=ref_energy, **nll,
              table=os.path.join(workdir, "table.md"))


def write_outputs(workdir, rows, nll, ref_energy, data, all_samples, sde,
                  model_score, exact_score, meta):
  """Writes table.md, results.json, samples.png and score_field.png; prints the table."""
  cols = ["sampler", "nfe", "learned_energy", "exact_energy", "learned_seconds"]
  cols = [c for c in cols if any(c in r for r in rows)]
  lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  for r in rows:
    lines.append("| " + " | ".join(
        f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
        for c in cols) + " |")
  lines += ["", f"energy distance between two independent data draws "
            f"(noise floor): {ref_energy:.4f}",
            f"PF-ODE held-out NLL (nats/example): model "
            f"{nll['model_nll_nats']:.4f}"
            + (f", true density {nll['true_nll_nats']:.4f}"
               if "true_nll_nats" in nll else "")
            + f" ({nll['ode_nfe']} ODE evaluations)",
            f"setup: {json.dumps(meta)}"]
  table = "\n".join(lines)
  print(table)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table + "\n")
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"rows": rows, "nll": nll, "ref_energy": ref_energy,
               "meta": meta}, f, indent=2)

  names = ["data"] + list(all_samples)
  fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.8))
  for ax, name in zip(axes, names):
    pts = data[:len(next(iter(all_samples.values())))] if name == "data" \
        else all_samples[name]
    ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
    ax.set_title(name, fontsize=8)
    ax.set_xlim(-3.2, 3.2)
    ax.set_ylim(-3.2, 3.2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "samples.png"), dpi=120)
  plt.close(fig)

  grid = np.stack(np.meshgrid(np.linspace(-3, 3, 21), np.linspace(-3, 3, 21)),
                  -1).reshape(-1, 2).astype(np.float32)
  times = (0.01, 0.1, 0.5)
  n_rows = 2 if exact_score is not None else 1
  fig, axes = plt.subplots(n_rows, len(times), figsize=(3.2 * len(times),
                                                        3.2 * n_rows),
                           squeeze=False)
  # Jitted: called eagerly, the score MLP would compile each of its ops alone.
  fields = [(tag, jax.jit(sf)) for tag, sf in
            (("learned", model_score), ("exact", exact_score))[:n_rows]]
  for j, t in enumerate(times):
    tt = jnp.full((len(grid),), t)
    for i, (tag, sf) in enumerate(fields):
      s = np.asarray(sf(jnp.asarray(grid), tt))
      s = s / (1e-6 + np.linalg.norm(s, axis=-1, keepdims=True)) * np.log1p(
          np.linalg.norm(s, axis=-1, keepdims=True))
      ax = axes[i, j]
      ax.quiver(grid[:, 0], grid[:, 1], s[:, 0], s[:, 1], angles="xy")
      ax.set_title(f"{tag} score, t={t}", fontsize=9)
      ax.set_aspect("equal")
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "score_field.png"), dpi=110)
  plt.close(fig)
  del sde
