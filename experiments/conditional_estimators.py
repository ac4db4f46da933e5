r"""CDE vs CDiffE vs MS-CDiffE on super-resolution, inpainting and edge-to-image.

For one task config this script
  1. loads the bundled 8x8 digits (or a prepared tfds data set) in [-1, 1] and
     builds (y, x) pairs with the task operator (`vdm_jax.conditional.tasks`);
  2. trains the three estimators with the same network family (y as extra
     input channels), the same optimiser, steps and batch, on VE SDEs
     (`vdm_jax.sde.VESDE`; MS-CDiffE's y on a slower VE SDE);
  3. samples `n_samples` x's per test condition with the same reverse-diffusion
     sampler (`vdm_jax.sde.samplers.sample_reverse`);
  4. scores them: PSNR and SSIM against the ground truth (mean over samples),
     consistency RMS(A(x_hat) - y) and diversity (per-pixel std across the
     samples of one y);
  5. writes `<workdir>/<task>.json`, a PNG grid `<workdir>/<task>_grid.png`
     (y | samples per estimator | ground truth), and rebuilds
     `<workdir>/table.md` from every `<task>.json` in the workdir, so running
     the three task configs into one workdir gives one table.

  python launch.py --config=configs/conditional_sr.py:factor=4 --workdir=results/conditional
  python launch.py --config=configs/conditional_inpainting.py:mask=box \
      --workdir=results/conditional
  python launch.py --config=configs/conditional_edges.py --workdir=results/conditional
  # smoke run, well under a minute:
  python launch.py --config=configs/conditional_sr.py:quick --workdir=/tmp/cond_quick

Reference: Batzolis, Stanczuk, Schonlieb, Etmann, Conditional Image Generation
with Score-Based Diffusion Models, https://arxiv.org/abs/2111.13606, 2021.
"""

from __future__ import annotations

import glob
import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import conditional as cond
from vdm_jax.conditional import metrics
from vdm_jax.conditional import training as cond_training
from vdm_jax.conditional import tasks
from vdm_jax.models import ScoreMLP
from vdm_jax.models import UNet
from vdm_jax.sde import VESDE
from vdm_jax.sde import samplers

_LABELS = {"cde": "CDE", "cdiffe": "CDiffE", "ms_cdiffe": "MS-CDiffE",
           "caflow": "CAFLOW"}


def _label(name):
  """Display name; rows like 'caflow_T0.6' (experiments/caflow.py) -> 'CAFLOW T=0.6'."""
  base, _, temp = name.partition("_T")
  if name not in _LABELS and base in _LABELS and temp:
    return f"{_LABELS[base]} T={temp}"
  return _LABELS.get(name, name)


def _ms_per_image(res, m):
  """Sampling ms per image (incl. compilation), from the row or the run config."""
  if "sample_ms_per_image" in m:
    return m["sample_ms_per_image"]
  data = res.get("config", {}).get("data", {})
  if "n_test" in data and "n_samples" in data:
    return 1e3 * m["sample_s"] / (data["n_test"] * data["n_samples"])
  return float("nan")


# ------------------------------------------------------------------ data -----
def load_images(cfg):
  """Returns (train, test) float32 `[N, H, W, C]` images in [-1, 1]."""
  if cfg.source == "digits":
    from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
    train = tasks.digits_to_images(digits_arrays("train")[0])
    test = tasks.digits_to_images(digits_arrays("test")[0])
  elif cfg.source == "tfds":
    from vdm_jax import data as data_lib  # pylint: disable=g-import-not-at-top

    def split(name):
      images, _ = data_lib.tfds_arrays(cfg.name, name)
      return data_lib.resize_images(images, cfg.image_size, grayscale=True) / 127.5 - 1.0
    train, test = split("train"), split("test")
  else:
    raise ValueError(f"data.source must be 'digits' or 'tfds', got {cfg.source!r}.")
  if cfg.max_train:
    train = train[:cfg.max_train]
  return train.astype(np.float32), test.astype(np.float32)


def make_training_pairs(task, images, repeats, rng):
  """(x, y) training pairs; `repeats` conditions per image (random masks)."""
  xs, ys = [], []
  for _ in range(repeats):
    y, _ = task.make_pairs(images, rng)
    xs.append(images)
    ys.append(y)
  return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


# ----------------------------------------------------------------- model -----
def make_network(cfg, x_shape, cy, out_channels):
  """Returns (init_fn(rng) -> params, apply_fn(params, x_in, y_in, t) -> out)."""
  h, w, cx = x_shape[1:]
  if cfg.kind == "unet":
    net = UNet(ch=cfg.ch, n_blocks=cfg.n_blocks, ch_mult=tuple(cfg.ch_mult),
               dropout=0.0, fourier_exponents=(), out_channels=out_channels)
    init = lambda rng: net.init(rng, jnp.zeros((1, h, w, cx)), jnp.zeros((1,)),
                                y=jnp.zeros((1, h, w, cy)))
    apply = lambda p, x_in, y_in, t: net.apply(p, x_in, t, y=y_in)
  elif cfg.kind == "mlp":
    net = ScoreMLP(hidden=tuple(cfg.hidden), emb_dim=cfg.emb_dim,
                   out_dim=h * w * out_channels)
    init = lambda rng: net.init(rng, jnp.zeros((1, h * w * cx)), jnp.zeros((1,)),
                                y=jnp.zeros((1, h * w * cy)))

    def apply(p, x_in, y_in, t):
      b = x_in.shape[0]
      out = net.apply(p, x_in.reshape(b, -1), t, y=y_in.reshape(b, -1))
      return out.reshape(b, h, w, out_channels)
  else:
    raise ValueError(f"model.kind must be 'unet' or 'mlp', got {cfg.kind!r}.")
  return init, apply


def make_estimators(cfg, apply_fns):
  """One `Estimator` per name in cfg.estimators, sharing x's VE SDE."""
  x_sde = VESDE(sigma_min=cfg.sde.x_sigma_min, sigma_max=cfg.sde.x_sigma_max,
                eps=cfg.sde.eps)
  y_sde = VESDE(sigma_min=cfg.sde.y_sigma_min, sigma_max=cfg.sde.y_sigma_max,
                eps=cfg.sde.eps)
  return {name: cond.make_estimator(
      name, x_sde, apply_fns[name], y_sde=y_sde, weighting=cfg.train.weighting,
      y_noise=cfg.sampling.y_noise, allow_faster_y=cfg.sde.allow_faster_y)
          for name in cfg.estimators}


# ----------------------------------------------------------------- train -----
def train(est, params, x_train, y_train, cfg, rng):
  """Adam + clipping + EMA on the estimator's per-example loss; returns EMA params."""
  return cond_training.fit(est.loss_fn, params, x_train, y_train, steps=cfg.steps,
                           batch_size=cfg.batch_size, lr=cfg.lr, rng=rng,
                           warmup=cfg.warmup, grad_clip=cfg.grad_clip, ema=cfg.ema,
                           log_every=cfg.log_every, name=est.name)


# ---------------------------------------------------------------- sample -----
def sample(est, params, y, cfg, n_samples, x_channels, rng):
  """`[K, N, H, W, Cx]` samples for conditions y `[N, ..., Cy]`, clipped to [-1, 1]."""
  n = y.shape[0]
  y_rep = jnp.asarray(np.concatenate([y] * n_samples))
  shape = y_rep.shape[:-1] + (x_channels,)

  if cfg.sampler not in ("conditional", "pc"):
    raise ValueError(f"sampling.sampler must be 'conditional' or 'pc', got "
                     f"{cfg.sampler!r}.")

  @jax.jit
  def draw(key, y_rep):
    score_fn = est.score_fn(params, y_rep, jax.random.fold_in(key, 1))
    if cfg.sampler == "pc":  # the SDE toolkit's predictor-corrector sampler
      return samplers.pc_sample(
          key, score_fn, est.x_sde, shape, predictor="reverse_diffusion",
          corrector="langevin" if cfg.corrector_steps else "none",
          n_corrector_steps=max(cfg.corrector_steps, 1), n_steps=cfg.n_steps,
          snr=cfg.snr, t_end=est.x_sde.eps)[0]
    init = est.x_sde.prior_sample(jax.random.fold_in(key, 2), shape)
    return samplers.sample_reverse(
        key, est.x_sde.reverse(score_fn), init, n_steps=cfg.n_steps,
        predictor="reverse_diffusion",
        corrector="langevin" if cfg.corrector_steps else "none",
        n_corrector_steps=max(cfg.corrector_steps, 1), snr=cfg.snr)[0]

  out = np.asarray(draw(rng, y_rep))
  return np.clip(out, -1.0, 1.0).reshape((n_samples, n) + out.shape[1:])


# -------------------------------------------------------------- evaluate -----
def evaluate(samples, x_test, y_test, aux, task):
  """Metric dict (mean over conditions; PSNR/SSIM/consistency also over samples)."""
  k = samples.shape[0]
  flat = samples.reshape((-1,) + samples.shape[2:])
  rep = lambda a: np.concatenate([a] * k)
  aux_rep = None if aux.shape[-1] == 0 else rep(aux)
  out = {
      "psnr": float(np.mean(metrics.psnr(flat, rep(x_test)))),
      "ssim": float(np.mean(metrics.ssim(flat, rep(x_test)))),
      "consistency": float(np.mean(metrics.consistency(
          flat, rep(y_test), task.observe, aux_rep))),
      "diversity": float(np.mean(metrics.diversity(samples))),
  }
  out["psnr_of_mean"] = float(np.mean(metrics.psnr(samples.mean(0), x_test)))
  return out


# ---------------------------------------------------------------- output -----
def _show_condition(y, task_name):
  """A displayable [H, W] image of the condition in [-1, 1]."""
  if task_name.startswith("inpaint"):
    img, mask = y[..., 0], y[..., 1] > 0
    return np.where(mask, img, np.nan)
  return y[..., 0]


def save_grid(path, task_name, y, samples, x, names, n_rows):
  """PNG: per row y | samples of each estimator | ground truth."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  k = samples[names[0]].shape[0]
  n_cols = 2 + k * len(names)
  fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.9 * n_cols, 0.95 * n_rows),
                           squeeze=False)
  cmap = matplotlib.colormaps["gray"].with_extremes(bad="tab:red")
  for r in range(n_rows):
    cols = [("y", _show_condition(y[r], task_name))]
    for name in names:
      cols += [(f"{_label(name)} {j + 1}", samples[name][j, r, ..., 0])
               for j in range(k)]
    cols.append(("truth", x[r, ..., 0]))
    for c, (title, img) in enumerate(cols):
      ax = axes[r, c]
      ax.imshow(img, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(title, fontsize=6)
  fig.suptitle(f"{task_name}: condition, samples, ground truth", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_table(workdir):
  """Rebuilds table.md from every <task>.json in workdir; returns the text."""
  rows = []
  for path in sorted(glob.glob(os.path.join(workdir, "*.json"))):
    with open(path) as f:
      res = json.load(f)
    if "estimators" not in res:
      continue
    for name, m in res["estimators"].items():
      bpd = f"{m['cond_bpd']:.3f}" if "cond_bpd" in m else "-"
      rows.append(
          f"| {res['task']} | {_label(name)} | {m['psnr']:.2f} | "
          f"{m['psnr_of_mean']:.2f} | {m['ssim']:.3f} | {m['consistency']:.3f} | "
          f"{m['diversity']:.3f} | {m['final_loss']:.3f} | {bpd} | "
          f"{m['train_s']:.0f} | {m['sample_s']:.0f} | "
          f"{_ms_per_image(res, m):.1f} |")
  head = ("| task | estimator | PSNR dB ↑ | PSNR of mean ↑ | SSIM ↑ | "
          "consistency RMS ↓ | diversity | final loss | cond. bits/dim ↓ | "
          "train s | sample s | sample ms/image |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")
  text = head + "\n" + "\n".join(rows) + "\n"
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(text)
  return text


# ------------------------------------------------- closed-form bias table -----
def gaussian_bias_table(workdir, *, side=4, noise=0.05, n=512, seed=0):
  """Exact sampling-time error of the diffusive estimators vs y's speed.

  Gaussian 'images' (side x side, smooth covariance), y = avgpool_2(x) + noise,
  x on a VE SDE with sigma_max = sqrt(D). For each sigma_max,y (= sigma_max,x is
  CDiffE, smaller is MS-CDiffE, 0 is CDE) the relative error
  E||s^x(x_t, y_t) - grad log p_t(x_t|y)||^2 / E||grad log p_t(x_t|y)||^2 is
  averaged over x_t ~ p_t(x_t | y), (x, y) and t in a grid (no training).
  """
  from vdm_jax.conditional import gaussian  # pylint: disable=g-import-not-at-top
  d = side * side
  basis = jnp.eye(d).reshape(d, side, side, 1)
  a = np.asarray(tasks.downsample(basis, 2)).reshape(d, -1).T
  ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
  pos = np.stack([ii.ravel(), jj.ravel()], -1)
  cov = (0.5 * np.exp(-((pos[:, None] - pos[None]) ** 2).sum(-1) / 4.5)
         + 0.05 * np.eye(d))
  prob = gaussian.make_linear_gaussian(np.zeros(d), cov, a,
                                       noise**2 * np.eye(a.shape[0]))
  x_sde = VESDE(sigma_min=0.01, sigma_max=float(np.sqrt(d)))
  key = jax.random.key(seed)
  x, y = gaussian.sample(prob, key, n)
  noise_x = jax.random.normal(jax.random.fold_in(key, 1), x.shape)

  @jax.jit
  def rel_err(s_x, s_y):
    x_t = x + s_x[:, None] * noise_x
    err, _ = gaussian.diffusive_error(prob, x_t, y, x_std=s_x, y_std=s_y)
    ref = jnp.sum(gaussian.conditional_score(prob, x_t, y, x_std=s_x) ** 2, -1)
    return jnp.mean(err) / jnp.mean(ref)

  rows = []
  for sigma_max_y in (float(np.sqrt(d)), 2.0, 1.0, 0.5, 0.1, 0.0):
    rel = []
    for t in np.linspace(0.05, 1.0, 20):
      tt = jnp.full((n,), t)
      _, s_x = x_sde.marginal_coeffs(tt)
      s_y = jnp.zeros((n,)) if sigma_max_y == 0 else VESDE(
          sigma_min=0.01, sigma_max=sigma_max_y).marginal_coeffs(tt)[1]
      rel.append(float(rel_err(s_x, s_y)))
    label = ("CDiffE" if sigma_max_y == np.sqrt(d) else
             "CDE" if sigma_max_y == 0 else "MS-CDiffE")
    rows.append(f"| {label} | {sigma_max_y:.2f} | {np.mean(rel):.4f} | "
                f"{rel[0]:.4f} | {rel[9]:.4f} | {rel[-1]:.4f} |")
  text = ("Exact relative score error of the sampling-time conditional score "
          f"(Gaussian {side}x{side} SR x2, noise {noise}, sigma_max,x = "
          f"{np.sqrt(d):.0f}; no training)\n\n"
          "| estimator | sigma_max,y | mean over t | t=0.05 | t=0.5 | t=1 |\n"
          "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
  with open(os.path.join(workdir, "gaussian_bias.md"), "w") as f:
    f.write(text)
  return text


# ------------------------------------------------------------------ main -----
def run(cfg, workdir):
  """Trains, samples and scores every estimator for cfg.task; returns the results dict."""
  os.makedirs(workdir, exist_ok=True)
  rs = np.random.default_rng(cfg.seed)
  rng = jax.random.key(cfg.seed)
  task = tasks.make_task(cfg.task)
  train_images, test_images = load_images(cfg.data)
  x_train, y_train = make_training_pairs(task, train_images,
                                         cfg.data.pair_repeats, rs)
  x_test = test_images[:cfg.data.n_test]
  y_test, aux_test = task.make_pairs(x_test, rs)
  cx, cy = x_train.shape[-1], y_train.shape[-1]
  logging.info("task %s: %d training pairs, x %s, y %s", task.name,
               len(x_train), x_train.shape[1:], y_train.shape[1:])

  # Build the estimators once to learn their output channels, then their nets.
  probe = make_estimators(cfg, {n: None for n in cfg.estimators})
  nets = {n: make_network(cfg.model, x_train.shape, cy,
                          probe[n].out_channels(cx, cy)) for n in cfg.estimators}
  ests = make_estimators(cfg, {n: nets[n][1] for n in cfg.estimators})

  results = {"task": task.name, "config": cfg.to_dict(), "estimators": {}}
  samples = {}
  for i, name in enumerate(cfg.estimators):
    init_fn, _ = nets[name]
    params = init_fn(jax.random.fold_in(rng, 100 + i))
    t0 = time.time()
    params, losses = train(ests[name], params, x_train, y_train, cfg.train,
                           jax.random.fold_in(rng, 200 + i))
    train_s = time.time() - t0
    t0 = time.time()
    samples[name] = sample(ests[name], params, y_test, cfg.sampling,
                           cfg.data.n_samples, cx, jax.random.fold_in(rng, 300))
    sample_s = time.time() - t0
    m = evaluate(samples[name], x_test, y_test, aux_test, task)
    m.update(final_loss=losses[-1], losses=losses, train_s=train_s,
             sample_s=sample_s,
             n_params=int(sum(v.size for v in jax.tree.leaves(params))))
    results["estimators"][name] = m
    logging.info("%s %s: %s", task.name, name,
                 {k: v for k, v in m.items() if k != "losses"})

  with open(os.path.join(workdir, f"{task.name}.json"), "w") as f:
    json.dump(results, f, indent=1)
  save_grid(os.path.join(workdir, f"{task.name}_grid.png"), task.name, y_test,
            samples, x_test, list(cfg.estimators),
            min(cfg.grid_conditions, len(x_test)))
  gaussian_bias_table(workdir)
  print(write_table(workdir))
  return results
