r"""CAFLOW beside CDE / CDiffE / MS-CDiffE on SR, inpainting and edge-to-image.

For one task config this script
  1. builds exactly the (y, x) training pairs and test conditions of
     `experiments/conditional_estimators.py` (same loader, seed, task operator
     and call order, so the test conditions and masks are the same);
  2. trains CAFLOW (`vdm_jax.caflow`) by maximum likelihood on the dequantised
     targets: the digits take 17 values 0..16, so x is mapped to levels 0..16,
     dequantised with K = 17 bins and scored in bits/dim of those levels. The
     pairs of the last `train.val_fraction` of the training images are held
     out, and the parameters with the best held-out bits/dim (checked every
     `log_every` steps) are kept: without it the flow memorises the 1,500
     digits (edges: 0.8 bits/dim on training pairs, 5.5 on test pairs);
  3. draws `n_samples` x's per test condition, coarse to fine, at each
     temperature of `sampling.temperatures`;
  4. scores them with the estimators' `evaluate` (PSNR, SSIM, consistency,
     diversity) and adds the conditional bits/dim of all test images (each with
     its own freshly drawn condition), sampling seconds and ms per image;
  5. merges an entry 'caflow' (and 'caflow_T<t>' for the other temperatures)
     into the `estimators` dict of `<workdir>/<task>.json` (created if absent),
     writes `<workdir>/<task>_caflow_grid.png` and rebuilds `<workdir>/table.md`
     with the estimators' `write_table`.

  python launch.py --config=configs/caflow.py:task=sr4 --workdir=results/caflow
  python launch.py --config=configs/caflow.py:task=inpaint_box --workdir=results/caflow
  python launch.py --config=configs/caflow.py:task=edges --workdir=results/caflow
  # smoke run:
  python launch.py --config=configs/caflow.py:task=sr2,quick --workdir=/tmp/caflow_quick

Run the estimators' configs (configs/conditional_*.py) into the same workdir (or
copy their `<task>.json` files there) to get the diffusion rows in the same
table.

Reference: Batzolis, Carioni, Etmann, Afyouni, Kourtzi, Schoenlieb. CAFLOW:
Conditional autoregressive flows. https://arxiv.org/abs/2106.02531, 2021.
"""

from __future__ import annotations

import json
import os
import time

from absl import logging
import jax
import numpy as np

from experiments import conditional_estimators as ce
from vdm_jax import caflow
from vdm_jax.conditional import tasks


def build_model(cfg):
  m = cfg.model
  return caflow.CAFlow(levels=m.levels, source_steps=m.source_steps,
                       target_steps=m.target_steps, cond_steps=m.cond_steps,
                       hidden=m.hidden, cond_hidden=m.cond_hidden,
                       scale_type=m.scale_type, learned_prior=m.learned_prior)


def _row_name(i, temperature):
  return "caflow" if i == 0 else f"caflow_T{temperature:g}"


def run(cfg, workdir):
  """Trains, samples and scores CAFLOW for cfg.task; returns its metric dicts."""
  os.makedirs(workdir, exist_ok=True)
  rs = np.random.default_rng(cfg.seed)
  rng = jax.random.key(cfg.seed)
  task = tasks.make_task(cfg.task)
  train_images, test_images = ce.load_images(cfg.data)
  # Same calls in the same order as conditional_estimators.run: same pairs.
  x_train, y_train = ce.make_training_pairs(task, train_images,
                                            cfg.data.pair_repeats, rs)
  x_test = test_images[:cfg.data.n_test]
  y_test, aux_test = task.make_pairs(x_test, rs)
  y_all, _ = task.make_pairs(test_images, np.random.default_rng(cfg.seed + 1))
  k = cfg.num_bins
  xi_train = np.asarray(caflow.images_to_levels(x_train, num_bins=k))
  xi_all = np.asarray(caflow.images_to_levels(test_images, num_bins=k))
  if not np.allclose(xi_all / ((k - 1) / 2.0) - 1.0, test_images, atol=1e-5):
    raise ValueError(f"num_bins = {k} does not match the levels of the data.")
  logging.info("task %s: %d training pairs, x %s, y %s", task.name,
               len(x_train), x_train.shape[1:], y_train.shape[1:])

  # Hold out the pairs of the last `val_fraction` of the training images for
  # early stopping on conditional bits/dim (the test split stays untouched).
  n_img = len(train_images)
  held = (np.arange(len(x_train)) % n_img) >= n_img - int(
      cfg.train.val_fraction * n_img)
  xi_val, y_val = xi_train[held], y_train[held]
  xi_train, y_train = xi_train[~held], y_train[~held]

  model = build_model(cfg)
  n0 = min(cfg.train.init_batch, len(x_train))
  params = caflow.init_params(model, jax.random.fold_in(rng, 100),
                              xi_train[:n0], y_train[:n0], num_bins=k)
  n_params = int(sum(v.size for v in jax.tree.leaves(params)))
  logging.info("CAFLOW: %d parameters", n_params)
  loss_fn = caflow.make_loss_fn(model, num_bins=k,
                                source_weight=cfg.train.source_weight)
  eval_fn, val_log = None, []
  if len(xi_val):
    bpd_fn = caflow.make_loss_fn(model, num_bins=k)
    val_key = jax.random.fold_in(rng, 240)
    val_bpd = jax.jit(lambda p: bpd_fn(p, val_key, xi_val, y_val)["cond_bpd"])

    def eval_fn(p):
      val_log.append(float(np.mean(val_bpd(p))))
      logging.info("caflow held-out bits/dim %.4f", val_log[-1])
      return val_log[-1]

  t0 = time.time()
  params, losses = caflow.fit(
      loss_fn, params, xi_train, y_train, steps=cfg.train.steps,
      batch_size=cfg.train.batch_size, lr=cfg.train.lr,
      warmup=cfg.train.warmup, grad_clip=cfg.train.grad_clip,
      ema=cfg.train.ema, log_every=cfg.train.log_every,
      rng=jax.random.fold_in(rng, 200), eval_fn=eval_fn)
  train_s = time.time() - t0
  best_step = cfg.train.steps
  if val_log:
    j = int(np.argmin(val_log))
    best_step = min((j + 1) * cfg.train.log_every, cfg.train.steps)
  bpd = caflow.conditional_bits_per_dim(
      model, params, jax.random.fold_in(rng, 250), xi_all, y_all, num_bins=k)
  bpd_test = float(np.mean(bpd))
  # The same on as many training pairs: the gap measures over-fitting.
  n_tr = min(len(xi_all), len(xi_train))
  bpd_train = float(np.mean(caflow.conditional_bits_per_dim(
      model, params, jax.random.fold_in(rng, 260), xi_train[:n_tr],
      y_train[:n_tr], num_bins=k)))
  logging.info("conditional bits/dim: %.4f on %d test pairs, %.4f on %d "
               "training pairs", bpd_test, len(bpd), bpd_train, n_tr)

  sample_fn = caflow.make_sampler(model, channels=x_test.shape[-1], num_bins=k)
  rows, grids = {}, {}
  n_img = cfg.data.n_samples * len(x_test)
  for i, temp in enumerate(cfg.sampling.temperatures):
    t0 = time.time()   # includes compilation, as the estimators' sample_s
    samples = caflow.sample_many(sample_fn, params, jax.random.fold_in(rng, 300),
                                 y_test, cfg.data.n_samples, temperature=temp,
                                 batch_size=cfg.sampling.batch_size)
    sample_s = time.time() - t0
    t0 = time.time()   # warm: the same draws again, compiled
    caflow.sample_many(sample_fn, params, jax.random.fold_in(rng, 300), y_test,
                       cfg.data.n_samples, temperature=temp,
                       batch_size=cfg.sampling.batch_size)
    warm_s = time.time() - t0
    m = ce.evaluate(samples, x_test, y_test, aux_test, task)
    m.update(final_loss=losses[-1], losses=losses, train_s=train_s,
             sample_s=sample_s, sample_ms_per_image=1e3 * sample_s / n_img,
             warm_sample_ms_per_image=1e3 * warm_s / n_img,
             cond_bpd=bpd_test, train_cond_bpd=bpd_train,
             val_cond_bpd=min(val_log) if val_log else float("nan"),
             best_step=best_step,
             temperature=float(temp), n_params=n_params)
    name = _row_name(i, temp)
    rows[name], grids[name] = m, samples
    logging.info("%s %s: %s", task.name, name,
                 {a: b for a, b in m.items() if a != "losses"})

  path = os.path.join(workdir, f"{task.name}.json")
  results = {"task": task.name, "estimators": {}}
  if os.path.exists(path):
    with open(path) as f:
      results = json.load(f)
  results.setdefault("estimators", {}).update(rows)
  results.setdefault("caflow_config", {}).update(cfg.to_dict())
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  ce.save_grid(os.path.join(workdir, f"{task.name}_caflow_grid.png"),
               task.name, y_test, grids, x_test, list(grids),
               min(cfg.grid_conditions, len(x_test)))
  print(ce.write_table(workdir))
  return rows
