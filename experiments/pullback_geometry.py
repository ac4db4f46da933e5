r"""Score-based pullback geometry: learned geodesics and the Riemannian autoencoder.

Part 1 (2-D, ``configs/pullback_2d.py``): for each deformed-Gaussian data set with a known
diffeomorphism, trains a RealNVP per method (isometry-regularised anisotropic
flow "ours", the standard flow "nf", ...), and compares its closed-form
geodesics phi^{-1}((1-t) phi(x) + t phi(y)) with the ground-truth ones on
random test pairs: geodesic error (1/100) sum_i ||gamma_hat(t_i) - gamma(t_i)||
and variation error (y -> y + 0.1 xi), mean (std) (Diepeveen, Batzolis,
Shumaylov, Schonlieb 2024, Table 1). PNGs show the geodesics over the true
density.

Part 2 (high-D, ``configs/pullback_rae.py``): trains "ours" on Sinusoid(k, D) and
Hemisphere(k, D) sets, each with its own hyperparameters
(``configs/pullback_rae.py``: ``per_dataset``), applies the epsilon rule to the
learned variances, and reports the RAE dimension against the true k and a
reference dimension, the reconstruction error and its bound; optionally on the
digits.

  python launch.py --config=configs/pullback_2d.py --workdir=results/pullback_geometry
  python launch.py --config=configs/pullback_rae.py --workdir=results/pullback_geometry
  python launch.py --config=configs/pullback_2d.py:quick --workdir=/tmp/pullback_quick
  python launch.py --config=configs/pullback_rae.py:quick --workdir=/tmp/pullback_quick

Writes results.json, table.md (both parts, whichever ran into the workdir) and
PNGs to the workdir and prints the tables.

Reference: Diepeveen, Batzolis, Shumaylov, Schoenlieb. Score-based pullback
Riemannian geometry. https://arxiv.org/abs/2410.01950, 2024.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax.geometry import flows
from vdm_jax.geometry import isometry
from vdm_jax.geometry import pullback
from vdm_jax.geometry import rae
from vdm_jax.geometry import toy_densities

from configs import pullback_2d
from configs import pullback_rae


# ----------------------------------------------------------------------------
# Part 1: geodesics in 2-D.
# ----------------------------------------------------------------------------
def _flow_args(config):
  """`isometry.train_flow`'s keyword arguments from a pullback config."""
  return dict(seed=config.seed, flow=config.flow.to_dict(), loss=config.loss.to_dict(),
              optim=config.optim.to_dict())


def _method_config(config, method):
  c = config.copy_and_resolve_references()
  c.loss.update(pullback_2d.method_overrides(method))
  return c


def _geodesic_metrics(learned, truth, x, y, z, t):
  """Geodesic and variation errors per pair, [P] each."""
  geo = jax.jit(pullback.geodesic, static_argnums=(0, 1))
  g_hat = geo(learned.forward, learned.inverse, x, y, t)
  g_true = geo(truth.phi, truth.phi_inv, x, y, t)
  g_var = geo(learned.forward, learned.inverse, x, z, t)
  err = jnp.mean(jnp.linalg.norm(g_hat - g_true, axis=-1), axis=-1)
  var = jnp.mean(jnp.linalg.norm(g_hat - g_var, axis=-1), axis=-1)
  return np.asarray(err), np.asarray(var), np.asarray(g_hat), np.asarray(g_true)


def _plot_geodesics(path, dens, curves, x_train):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  lo = np.percentile(np.asarray(x_train), 0.5, axis=0) - 0.5
  hi = np.percentile(np.asarray(x_train), 99.5, axis=0) + 0.5
  g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], 200),
                       np.linspace(lo[1], hi[1], 200))
  grid = jnp.asarray(np.stack([g1.ravel(), g2.ravel()], -1), jnp.float32)
  dens_vals = np.exp(np.asarray(toy_densities.log_density(dens, grid)))
  methods = [m for m in curves if m != "truth"]
  fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4),
                           squeeze=False)
  for ax, method in zip(axes[0], methods):
    ax.contourf(g1, g2, dens_vals.reshape(g1.shape), levels=20, cmap="Blues")
    for k, (c_hat, c_true) in enumerate(zip(curves[method], curves["truth"])):
      ax.plot(c_true[:, 0], c_true[:, 1], "k--", lw=1.5,
              label="ground truth" if k == 0 else None)
      ax.plot(c_hat[:, 0], c_hat[:, 1], "r-", lw=1.2,
              label="learned" if k == 0 else None)
      ax.plot(c_true[[0, -1], 0], c_true[[0, -1], 1], "ko", ms=3)
    ax.set_title(f"{dens.name}: {method}")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.legend(loc="lower right", fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run_geodesics(config, workdir):
  rows = []
  t = jnp.linspace(0.0, 1.0, config.eval.num_times)
  for di, name in enumerate(config.datasets):
    dens = toy_densities.get_density(name)
    rng = jax.random.fold_in(jax.random.key(config.seed), di)
    k_train, k_test, k_noise = jax.random.split(rng, 3)
    x_train = toy_densities.sample(dens, k_train, config.num_train)
    test = toy_densities.sample(dens, k_test, 2 * config.eval.num_pairs)
    x, y = test[: config.eval.num_pairs], test[config.eval.num_pairs:]
    z = y + config.eval.variation_scale * jax.random.normal(k_noise, y.shape)
    curves = {}
    for method in config.methods:
      c = _method_config(config, method)
      start = time.time()
      model, state, history = isometry.train_flow(x_train, **_flow_args(c))
      seconds = time.time() - start
      params = state.ema.params
      learned = flows.flow_maps(model, params["flow"])
      err, var, g_hat, g_true = _geodesic_metrics(learned, dens, x, y, z, t)
      z_test, log_det = model.apply(params["flow"], test)
      nll = isometry.anisotropic_nll(
          z_test, log_det,
          params["log_a"] if c.loss.learn_a else jnp.zeros(2))
      row = dict(dataset=name, method=method,
                 geodesic_error=float(err.mean()),
                 geodesic_error_std=float(err.std()),
                 variation_error=float(var.mean()),
                 variation_error_std=float(var.std()),
                 test_nll=float(jnp.mean(nll)),
                 true_nll=float(-jnp.mean(toy_densities.log_density(dens,
                                                                    test))),
                 learned_a=[round(float(v), 4) for v in isometry.diag_a_of(
                     params, learn_a=c.loss.learn_a)],
                 final_iso=history[-1]["iso"], train_seconds=seconds)
      rows.append(row)
      print(f"[geodesics] {name:16s} {method:15s} err {row['geodesic_error']:.4f}"
            f" ({row['geodesic_error_std']:.4f})  var "
            f"{row['variation_error']:.4f}  nll {row['test_nll']:.3f} "
            f"(true {row['true_nll']:.3f})  a {row['learned_a']}  "
            f"{seconds:.0f}s", flush=True)
      curves[method] = g_hat[: config.eval.plot_pairs]
      curves["truth"] = g_true[: config.eval.plot_pairs]
    _plot_geodesics(os.path.join(workdir, f"geodesics_{name}.png"), dens,
                    curves, x_train)
  return rows


# ----------------------------------------------------------------------------
# Part 2: the Riemannian autoencoder in high dimension.
# ----------------------------------------------------------------------------
def _rae_metrics(model_rae, phi, phi_inv, x_test, num_bound=64):
  err = rae.reconstruction_errors(model_rae, x_test)
  pw, lip = jax.jit(lambda v: rae.pointwise_bound(model_rae, phi, phi_inv, v))(
      x_test[:num_bound])
  lip_max = float(jnp.max(lip))
  return dict(
      rae_dim=model_rae.dim,
      epsilon_eff=model_rae.epsilon_eff,
      mse_per_coord=float(jnp.mean(err) / x_test.shape[1]),
      sq_error=float(jnp.mean(err)),
      bound_L1=rae.error_bound(model_rae),
      lipschitz_est=lip_max,
      bound_L=rae.error_bound(model_rae, lipschitz=lip_max),
      pointwise_ok=float(jnp.mean(err[:num_bound] <= pw * (1 + 1e-3) + 1e-6)),
  )


def _digits_arrays(seed):
  from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
  tr, _ = digits_arrays("train")
  te, _ = digits_arrays("test")
  rng = np.random.default_rng(seed)
  # Uniform dequantisation of the 17 grey levels, then scale to about [-1, 1].
  def prep(a):
    a = a.reshape(len(a), -1).astype(np.float32)
    return (a + rng.uniform(size=a.shape)) / 17.0 * 2.0 - 1.0
  return jnp.asarray(prep(tr)), jnp.asarray(prep(te))


def run_rae(config, workdir):
  del workdir
  rows = []
  for di, name in enumerate(list(config.datasets) +
                            (["digits"] if config.digits else [])):
    rng = jax.random.fold_in(jax.random.key(config.seed + 1), di)
    if name == "digits":
      x_train, x_test = _digits_arrays(config.seed)
      dens, eps = None, config.digits_epsilon
    else:
      dens = toy_densities.get_density(name)
      k_train, k_test = jax.random.split(rng)
      x_train = toy_densities.sample(dens, k_train, config.num_train)
      x_test = toy_densities.sample(dens, k_test, config.num_test)
      eps = config.epsilon
    set_config = pullback_rae.dataset_config(config, name)
    start = time.time()
    model, state, history = isometry.train_flow(x_train, **_flow_args(set_config))
    seconds = time.time() - start
    params = state.ema.params   # evaluation uses the EMA weights (as the paper's code)
    learned = flows.flow_maps(model, params["flow"])
    a = isometry.diag_a_of(params)
    a_sorted = np.sort(np.asarray(a))[::-1]
    model_rae = rae.make_rae(learned.forward, learned.inverse, a, epsilon=eps)
    row = dict(dataset=name, dim=int(x_train.shape[1]),
               true_k=None if dens is None else dens.intrinsic_dim,
               epsilon=eps, train_seconds=seconds,
               settings=dict(n_steps=set_config.flow.n_steps,
                             scale_type=set_config.flow.scale_type,
                             lambda_iso=set_config.loss.lambda_iso,
                             lambda_vol=set_config.loss.lambda_vol,
                             iso_estimator=set_config.loss.iso_estimator),
               final_nll=history[-1]["nll"],
               learned_a_top=[round(float(v), 4) for v in a_sorted[:8]],
               learned_a=[float(v) for v in a_sorted],
               gap_dim=rae.choose_dimension_by_gap(a)[0],
               nonvanishing_a=int(np.sum(a_sorted > 0.01 * a_sorted[0])))
    row.update(_rae_metrics(model_rae, learned.forward, learned.inverse,
                            x_test))
    if isinstance(dens, toy_densities.ToyDensity):
      true_rae = rae.make_rae(dens.phi, dens.phi_inv, dens.diag_a, epsilon=eps)
      truth = _rae_metrics(true_rae, dens.phi, dens.phi_inv, x_test)
      row["true_rae_dim"] = truth["rae_dim"]
      row["true_rae_sq_error"] = truth["sq_error"]
      row["true_rae_mse_per_coord"] = truth["mse_per_coord"]
      row["true_nll"] = float(-jnp.mean(toy_densities.log_density(dens,
                                                                  x_test)))
    elif isinstance(dens, toy_densities.EmbeddedManifold):
      ref = toy_densities.sphere_normal_coordinate_variances(
          x_train, dens.embedding)
      row["true_rae_dim"] = rae.choose_dimension(
          jnp.asarray(ref[:dens.intrinsic_dim]), epsilon=eps)[0]
      row["reference_variances"] = [round(float(v), 4) for v in ref]
    rows.append(row)
    print(f"[rae] {name:16s} D={row['dim']:3d} k={row['true_k']} "
          f"d_eps={row['rae_dim']} (ref {row.get('true_rae_dim')}) "
          f"eps_eff={row['epsilon_eff']:.4f} "
          f"gap_dim={row['gap_dim']} #a>1%={row['nonvanishing_a']} "
          f"err^2={row['sq_error']:.4g} bound(L={row['lipschitz_est']:.2f})="
          f"{row['bound_L']:.4g} a_top={row['learned_a_top']} "
          f"{seconds:.0f}s", flush=True)
  return rows


# ----------------------------------------------------------------------------
# Tables.
# ----------------------------------------------------------------------------
def _tables(geo_rows, rae_rows):
  out = []
  if geo_rows:
    out += ["## Geodesic error vs ground truth (2-D), mean (std)", "",
            "| data set | method | geodesic error | variation error | test NLL"
            " (true) | learned a |", "|---|---|---|---|---|---|"]
    for r in geo_rows:
      out.append(
          f"| {r['dataset']} | {r['method']} | {r['geodesic_error']:.4f} "
          f"({r['geodesic_error_std']:.4f}) | {r['variation_error']:.4f} "
          f"({r['variation_error_std']:.4f}) | {r['test_nll']:.3f} "
          f"({r['true_nll']:.3f}) | {r['learned_a']} |")
    out.append("")
  if rae_rows:
    out += ["## Riemannian autoencoder", "",
            "| data set | D | true k | RAE dim (eps_eff) | reference RAE dim |"
            " gap dim | #a_i > 1% max | E err^2 (true phi) | bound L^2 sum "
            "a_dropped (L est.) | pointwise bound holds | top learned a | "
            "train s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rae_rows:
      true_err = r.get("true_rae_sq_error")
      true_err = "" if true_err is None else f" ({true_err:.3g})"
      out.append(
          f"| {r['dataset']} | {r['dim']} | {r['true_k']} | {r['rae_dim']} "
          f"({r['epsilon_eff']:.3g}) | {r.get('true_rae_dim')} | "
          f"{r['gap_dim']} | {r['nonvanishing_a']} | "
          f"{r['sq_error']:.3g}{true_err} |"
          f" {r['bound_L']:.3g} ({r['lipschitz_est']:.2f}) | "
          f"{r['pointwise_ok']:.0%} | {r['learned_a_top'][:6]} | "
          f"{r['train_seconds']:.0f} |")
    out += ["", "eps = 0.1. Reference RAE dim: the epsilon rule on the true "
            "a (sinusoids, true phi) or on the variances of normal coordinates"
            " at the mean (hemisphere, ideal chart). Gap dim: the largest gap "
            "in log a (rae.choose_dimension_by_gap, not the paper's rule).",
            ""]
  return "\n".join(out)


def run(config, workdir):
  """Runs the parts in ``config.parts`` ('geodesics': a `pullback_2d` config,
  'rae': a `pullback_rae` config) and merges their rows into the workdir's
  results.json and table.md, so the two configs can be run into one workdir."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "results.json")
  results = {"geodesics": [], "rae": []}
  if os.path.exists(path):
    with open(path) as f:
      results.update(json.load(f))
  for part in config.parts:
    if part == "geodesics":
      results["geodesics"] = run_geodesics(config, workdir)
    elif part == "rae":
      results["rae"] = run_rae(config, workdir)
    else:
      raise ValueError(f"config.parts may hold 'geodesics' and 'rae', got {part!r}.")
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  table = _tables(results["geodesics"], results["rae"])
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table)
  print(table)
  return {"table": os.path.join(workdir, "table.md"),
          "parts": ",".join(config.parts)}
