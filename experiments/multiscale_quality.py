"""Sample quality of uniform vs multi-scale diffusion trained for the same wall time.

  python launch.py --config=configs/multiscale.py --workdir=results/multiscale_quality
  python launch.py --config=configs/multiscale.py:quick --workdir=/tmp/ms_quality
  python launch.py --config=configs/multiscale.py --workdir=results/multiscale_quality \\
      --config.quality.seconds=300 --config.quality.clock=cpu   # shared machine

Data: the bundled 8x8 digits, bilinearly resized to 16x16 and scaled to
[-1, 1]. Models: the uniform baseline (one UNet, one log-SNR window [0, 1])
and the non-uniform model with L = 2 Haar levels (scales 16 -> 8 -> 4 px,
windows [0, 1/3], [0, 2/3], [0, 1], one UNet per stage, widths chosen so both
models have the same total parameter count). Both train with the same
noise-prediction loss, batch and learning rate for the same number of
seconds (`vdm_jax.multiscale.budget.train_for_time`: compilation excluded;
the multi-scale model updates one stage net per iteration, round robin, as in
the paper), then draw samples with the same number of ancestral steps per unit
time. Every field is in the `quality` section of `configs/multiscale.py`.

Quality is a Frechet distance (`vdm_jax.metrics.frechet`) between Gaussian fits
of features of a small MLP digit classifier trained here on the same data (its
64-unit penultimate layer, `vdm_jax.metrics.classifier`). **This is not the
Inception FID**: the numbers are only comparable within this experiment. For a
real FID set ``quality.feature_fn`` to ``module:function`` (a callable
``f(images [N, H, W, C] in [-1, 1], weights_path) -> [N, F]``, e.g. an
Inception-v3 pool3 extractor you provide) and ``quality.feature_weights`` (the
user-supplied weights file); nothing is downloaded.

Measured (``quality.seconds=300, quality.clock=cpu``, 2 shared cores, after
the GroupNorm fix): Frechet distance 21.7 (multi-scale, 3,297 stage updates)
vs 75.2 (uniform, 923 updates); real train vs test 8.8; sampling 16 vs 118
ms/image with 60 ancestral steps per unit time.

Writes ``table.md``, ``results.json`` and PNG grids (data, uniform,
multiscale) to the workdir.

Reference: Gbatzolis, Stanczuk, Schonlieb & Etmann. Non-Uniform Diffusion
Models. https://arxiv.org/abs/2207.09786, 2022 (same-training-time FID).
"""

from __future__ import annotations

import importlib
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import data as vdm_data
from vdm_jax.metrics import classifier as classifier_lib
from vdm_jax.metrics.frechet import frechet_distance
from vdm_jax.multiscale import budget
from vdm_jax.multiscale import model as ms_model
from vdm_jax.multiscale import nonuniform
from vdm_jax.multiscale import sampling

SIDE = 16


def load_digits16(split):
  images, labels = vdm_data.digits_arrays(split)
  x = images.astype(np.float32) / 16.0 * 2.0 - 1.0
  x = jax.image.resize(jnp.asarray(x), (x.shape[0], SIDE, SIDE, 1), "linear")
  return np.clip(np.asarray(x), -1.0, 1.0), labels


def make_model(kind, width, n_blocks):
  if kind == "uniform":
    proc = nonuniform.make_process(0)
    stages = [dict(ch=width, n_blocks=n_blocks, ch_mult=(1, 2), dropout=0.0)]
  else:
    proc = nonuniform.make_process(2)
    stages = [dict(ch=width, n_blocks=n_blocks, ch_mult=(1, 2), dropout=0.0),
              dict(ch=width, n_blocks=n_blocks, ch_mult=(1, 2), dropout=0.0),
              dict(ch=width, n_blocks=n_blocks, ch_mult=(1,), dropout=0.0)]
  # skip=True: residual on sigma_k z_k, so short CPU runs give sensible samples.
  nets = ms_model.make_multiscale_unets(proc, stages, image_shape=(SIDE, SIDE, 1),
                                        skip=True)
  return proc, nets


def n_params(nets):
  return ms_model.count_params(jax.eval_shape(nets.init, jax.random.key(0)))


def matched_multiscale_width(width, n_blocks):
  target = n_params(make_model("uniform", width, n_blocks)[1])
  best = None
  for w in range(max(4, width // 2 // 2 * 2), width + 2, 2):
    p = n_params(make_model("multiscale", w, n_blocks)[1])
    if best is None or abs(p - target) < abs(best[1] - target):
      best = (w, p)
  return best[0], target, best[1]


def draw(proc, nets, params, n, *, steps_per_unit, seed, chunk=250):
  sampler = sampling.make_sampler(proc, nets.eps_fns(), image_shape=(SIDE, SIDE, 1),
                                  steps_per_unit=steps_per_unit)
  fn = jax.jit(sampler.sample, static_argnums=2)
  jax.block_until_ready(fn(params, jax.random.key(seed), chunk))  # compile
  out, t0 = [], time.perf_counter()
  for c in range(0, n, chunk):
    out.append(np.asarray(fn(params, jax.random.key(seed + 1 + c), chunk)))
  secs = time.perf_counter() - t0
  return np.clip(np.concatenate(out)[:n], -1.0, 1.0), secs / n


def save_grid(images, path, rows=8):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rows = min(rows, int(np.sqrt(len(images))))  # a full square of what there is
  imgs = (np.asarray(images[:rows * rows, ..., 0]) + 1.0) * 127.5
  grid = imgs.reshape(rows, rows, SIDE, SIDE).transpose(0, 2, 1, 3).reshape(
      rows * SIDE, rows * SIDE)
  Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8)).resize(
      (rows * SIDE * 4, rows * SIDE * 4), Image.NEAREST).save(path)


def run(config, workdir):
  """Trains both models for `config.quality.seconds` each; returns a summary."""
  q = config.quality
  os.makedirs(workdir, exist_ok=True)
  x_train, y_train = load_digits16("train")
  x_test, y_test = load_digits16("test")
  clf = classifier_lib.train_digit_classifier(
      x_train, y_train, steps=q.classifier_steps, seed=config.seed)
  acc = clf.accuracy(x_test, y_test)
  feat_fn = lambda imgs, weights=None: clf.features(imgs)
  feature_name = f"digit-MLP penultimate (test acc {acc:.3f}); NOT Inception FID"
  if q.feature_fn:
    mod, fn = q.feature_fn.split(":")
    feat_fn = getattr(importlib.import_module(mod), fn)
    feature_name = f"user features {q.feature_fn} ({q.feature_weights})"
  weights = q.feature_weights or None
  ref = feat_fn(x_test, weights)
  fd_real = frechet_distance(feat_fn(x_train[:len(x_test)], weights), ref)
  save_grid(x_test, os.path.join(workdir, "data.png"))

  ms_width, p_u, p_m = matched_multiscale_width(q.width, q.n_blocks)
  widths = {"uniform": q.width, "multiscale": ms_width}
  rows = []
  for kind in ("uniform", "multiscale"):
    proc, nets = make_model(kind, widths[kind], q.n_blocks)
    fit = budget.train_for_time(
        proc, nets, x_train, seconds=q.seconds, batch_size=q.batch_size,
        learning_rate=q.lr, ema_rate=q.ema, seed=config.seed, clock=q.clock)
    samples, s_per = draw(proc, nets, fit.ema_params, q.samples,
                          steps_per_unit=q.steps_per_unit, seed=config.seed + 7)
    save_grid(samples, os.path.join(workdir, f"{kind}.png"))
    fd = frechet_distance(feat_fn(samples, weights), ref)
    rows.append(dict(model=kind, width=widths[kind], params=n_params(nets),
                     train_iters=fit.iterations, train_seconds=fit.seconds,
                     train_wall_seconds=fit.wall_seconds,
                     final_loss=float(np.mean(fit.losses[-5:])),
                     sample_ms_per_image=1e3 * s_per, frechet=fd))
    print(json.dumps(rows[-1]), flush=True)

  table = ("| model | width | params | train iters (s) | last loss | "
           "sampling ms/image | Frechet distance |\n|---|---|---|---|---|---|---|\n")
  for r in rows:
    table += (f"| {r['model']} | {r['width']} | {r['params']:,} | "
              f"{r['train_iters']} ({r['train_seconds']:.0f}) | "
              f"{r['final_loss']:.4f} | {r['sample_ms_per_image']:.2f} | "
              f"{r['frechet']:.3f} |\n")
  table += (f"| real train vs test | | | | | | {fd_real:.3f} |\n\n"
            f"Features: {feature_name}. Digits 16x16, {q.samples} samples vs "
            f"{len(x_test)} test images, {q.steps_per_unit} ancestral steps "
            f"per unit time, {q.seconds:.0f} s ({q.clock} clock) training each.\n")
  print("\n" + table)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(dict(config=q.to_dict(), seed=config.seed, rows=rows,
                   frechet_real=fd_real, features=feature_name,
                   classifier_accuracy=acc, params_target=p_u,
                   params_multiscale=p_m), f, indent=1)
  return {"frechet_uniform": rows[0]["frechet"],
          "frechet_multiscale": rows[1]["frechet"], "frechet_real": fd_real,
          "train_iters": f"{rows[0]['train_iters']} / {rows[1]['train_iters']}",
          "table": os.path.join(workdir, "table.md")}
