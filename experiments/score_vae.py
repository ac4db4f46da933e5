r"""ScoreVAE vs a Gaussian-decoder VAE: reconstruction sharpness and distortion.

Stages (each a small function below):
  1. data: the bundled digits (or a prepared tfds data set), scaled to [-1, 1];
  2. prior: an eps-prediction diffusion model on the VP SDE trained by DSM, or
     loaded from an orbax checkpoint written by this script (checked against
     the data shape before use);
  3. ScoreVAE: a time-dependent encoder trained with DSM of the composed score
     s_theta(x_t, t) + grad log q_phi(z | x_t, t) plus beta * KL, prior frozen;
  4. baseline: a Gaussian-decoder VAE with the same encoder architecture,
     latent size, steps, batch, learning rate and beta;
  5. evaluation on test images: PSNR, SSIM, high-frequency energy ratio to the
     data (sharpness), Frechet distance in a feature space (penultimate layer of
     a small classifier trained here on the training split, or PCA features),
     accuracy of that classifier on reconstructions; PNG grids.

ScoreVAE decodes z = encoder mean (t = 0) in two ways: a draw from p(x | z) by
Euler-Maruyama on the reverse SDE, and the probability-flow ODE (Heun).

  python experiments/score_vae.py --config configs/score_vae_digits.py \
      --workdir results/score_vae_digits
  python experiments/score_vae.py --config configs/score_vae_digits.py:quick \
      --workdir /tmp/score_vae_quick

Reference: Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational
Autoencoder (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
"""

from __future__ import annotations

import json
import math
import os
import time

from absl import app
from absl import logging
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax

from vdm_jax import score_vae
from vdm_jax.conditional import metrics as cond_metrics
from vdm_jax.models import ScoreMLP
from vdm_jax.models import UNet
from vdm_jax.score_vae import metrics
from vdm_jax.sde import VPSDE

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/score_vae_*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "results/score_vae",
                               "Output directory (tables, PNGs, checkpoint).")


# ------------------------------------------------------------------ data -----
def load_data(cfg):
  """Returns (train [N,H,W,C] in [-1,1], train labels or None, test, test labels)."""
  if cfg.source == "digits":
    from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
    (xtr, ytr), (xte, yte) = digits_arrays("train"), digits_arrays("test")
    scale = lambda x: (x.astype(np.float32) / 16.0) * 2.0 - 1.0
    xtr, xte = scale(xtr), scale(xte)
  elif cfg.source == "tfds":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    def split(name):
      n = cfg.max_train if name == "train" else cfg.max_test
      ds = tfds.load(cfg.name, split=name if not n else f"{name}[:{n}]")
      def prep(ex):
        img = tf.image.resize(ex["image"], (cfg.image_size, cfg.image_size),
                              antialias=True)
        return img / 127.5 - 1.0, ex.get("label", tf.constant(-1, tf.int64))
      xs, ys = zip(*tfds.as_numpy(ds.map(prep)))
      return np.stack(xs).astype(np.float32), np.asarray(ys)
    (xtr, ytr), (xte, yte) = split("train"), split("test")
    if np.all(ytr < 0):
      ytr = yte = None
  else:
    raise ValueError(f"data.source must be 'digits' or 'tfds', got {cfg.source!r}.")
  if cfg.max_train:
    xtr, ytr = xtr[:cfg.max_train], (None if ytr is None else ytr[:cfg.max_train])
  if cfg.max_test:
    xte, yte = xte[:cfg.max_test], (None if yte is None else yte[:cfg.max_test])
  return xtr, ytr, xte, yte


# -------------------------------------------------------------- training -----
def fit(loss_fn, params, data, *, steps, batch_size, lr, rng, ema=None,
        chunk=200, name=""):
  """Adam on `mean(loss_fn(params, rng, batch))`; batches drawn on device.

  Runs `chunk` steps per compiled `lax.scan`; raises on a non-finite loss with
  the step window. Returns (params, ema_params or None, loss history).
  """
  data = jnp.asarray(data)
  opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))

  def step(carry, key):
    params, opt_state, ema_params = carry
    k_idx, k_loss = jax.random.split(key)
    idx = jax.random.randint(k_idx, (batch_size,), 0, data.shape[0])
    loss, grads = jax.value_and_grad(
        lambda p: jnp.mean(loss_fn(p, k_loss, data[idx])))(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if ema is not None:
      ema_params = jax.tree.map(lambda e, p: ema * e + (1 - ema) * p,
                                ema_params, params)
    return (params, opt_state, ema_params), loss

  @jax.jit
  def run(carry, keys):
    return jax.lax.scan(step, carry, keys)

  carry = (params, opt.init(params), params if ema is not None else None)
  history, done, t0 = [], 0, time.time()
  while done < steps:
    n = min(chunk, steps - done)
    keys = jax.random.split(jax.random.fold_in(rng, done), n)
    carry, losses = run(carry, keys) if n == chunk else jax.jit(
        lambda c, k: jax.lax.scan(step, c, k))(carry, keys)
    losses = np.asarray(losses)
    if not np.all(np.isfinite(losses)):
      raise RuntimeError(f"{name}: non-finite loss in steps {done}..{done + n}.")
    done += n
    history.append(float(losses.mean()))
    print(f"  [{name}] step {done}/{steps} loss {history[-1]:.4f} "
          f"({time.time() - t0:.0f}s)", flush=True)
  return carry[0], carry[2], history


# ----------------------------------------------------------------- prior -----
def make_prior(cfg, data_shape):
  """Returns (init(rng) -> params, eps_apply(params, x, t)) for the network."""
  x_init = jnp.zeros((1,) + tuple(data_shape))
  t_init = jnp.zeros((1,))
  if cfg.model == "mlp":
    net = ScoreMLP(hidden=tuple(cfg.hidden), emb_dim=cfg.emb_dim)
    def eps_apply(params, x, t):
      return net.apply(params, x.reshape(x.shape[0], -1), t).reshape(x.shape)
    return (lambda rng: net.init(rng, x_init.reshape(1, -1), t_init)), eps_apply
  if cfg.model == "unet":
    net = UNet(ch=cfg.ch, n_blocks=cfg.n_blocks, ch_mult=tuple(cfg.ch_mult),
               dropout=0.0, fourier_exponents=())
    return ((lambda rng: net.init(rng, x_init, t_init)),
            lambda params, x, t: net.apply(params, x, t))
  raise ValueError(f"prior.model must be 'mlp' or 'unet', got {cfg.model!r}.")


def prior_metadata(cfg, data_shape):
  return {"data_shape": list(data_shape), "model": cfg.model,
          "hidden": list(cfg.hidden), "emb_dim": cfg.emb_dim, "ch": cfg.ch,
          "n_blocks": cfg.n_blocks, "ch_mult": list(cfg.ch_mult),
          "parameterization": "eps", "sde": "vp"}


def train_or_load_prior(config, sde, xtr, workdir, rng):
  """Trains the eps-model by DSM (sigma^2 weighting), or loads a checkpoint."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  cfg = config.prior
  data_shape = xtr.shape[1:]
  init_prior, eps_apply = make_prior(cfg, data_shape)
  prior_score_apply = score_vae.score_from_eps(eps_apply, sde)
  if cfg.checkpoint:
    path = os.path.abspath(cfg.checkpoint)
    meta_path = os.path.join(path, "..", os.path.basename(path) + ".json")
    if not os.path.exists(path):
      raise ValueError(f"prior.checkpoint {path} does not exist.")
    metadata = json.load(open(meta_path)) if os.path.exists(meta_path) else None
    params = ocp.StandardCheckpointer().restore(path)["params"]
    score_vae.check_prior_matches_data(prior_score_apply, params, data_shape,
                                       metadata=metadata)
    print(f"loaded prior from {path}")
    return prior_score_apply, params, {"loaded_from": path}

  params = init_prior(rng)
  t_min = config.sde.t_min

  def dsm(params, key, x0):
    k_t, k_n = jax.random.split(key)
    t = jax.random.uniform(k_t, (x0.shape[0],), minval=t_min, maxval=sde.T)
    noise = jax.random.normal(k_n, x0.shape)
    mean, std = sde.marginal(x0, t)
    x_t = mean + std.reshape((-1,) + (1,) * (x0.ndim - 1)) * noise
    err = jnp.square(eps_apply(params, x_t, t) - noise)
    return 0.5 * jnp.sum(err.reshape(x0.shape[0], -1), -1)

  t0 = time.time()
  _, ema_params, hist = fit(dsm, params, xtr, steps=cfg.steps,
                            batch_size=cfg.batch_size, lr=cfg.lr,
                            rng=jax.random.fold_in(rng, 1), ema=cfg.ema,
                            name="prior")
  path = os.path.abspath(os.path.join(workdir, "prior_checkpoint"))
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(path, {"params": ema_params}, force=True)
  ckpt.wait_until_finished()
  with open(path + ".json", "w") as f:
    json.dump(prior_metadata(cfg, data_shape), f)
  return prior_score_apply, ema_params, {"train_seconds": time.time() - t0,
                                         "final_loss": hist[-1],
                                         "saved_to": path}


# --------------------------------------------------------------- encoder -----
def make_encoder(cfg):
  if cfg.model == "mlp":
    return score_vae.MLPEncoder(cfg.latent_dim, hidden=tuple(cfg.hidden),
                                emb_dim=cfg.emb_dim)
  if cfg.model == "conv":
    return score_vae.ConvEncoder(cfg.latent_dim, ch=cfg.ch,
                                 ch_mult=tuple(cfg.ch_mult),
                                 dense=cfg.hidden[0], emb_dim=cfg.emb_dim)
  raise ValueError(f"encoder.model must be 'mlp' or 'conv', got {cfg.model!r}.")


# -------------------------------------------------------------- features -----
class _Classifier(nn.Module):
  feature_dim: int

  @nn.compact
  def __call__(self, x):
    h = x.reshape(x.shape[0], -1)
    h = nn.silu(nn.Dense(256)(h))
    feats = nn.silu(nn.Dense(self.feature_dim)(h))
    return nn.Dense(10)(feats), feats


def make_feature_fn(cfg, xtr, ytr, rng):
  """Returns (features(x) -> [N, F], classify(x) -> [N] or None, description)."""
  if cfg.features == "classifier" and ytr is not None:
    net = _Classifier(cfg.feature_dim)
    params = net.init(rng, jnp.asarray(xtr[:1]))
    labels = jnp.asarray(ytr)

    def xent(params, key, idx_batch):
      del key
      idx = idx_batch[:, 0].astype(jnp.int32)
      logits, _ = net.apply(params, jnp.asarray(xtr)[idx])
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx])

    ids = np.arange(len(xtr), dtype=np.float32)[:, None]
    params, _, _ = fit(xent, params, ids, steps=cfg.classifier_steps,
                       batch_size=128, lr=1e-3, rng=rng, name="classifier")
    apply = jax.jit(lambda x: net.apply(params, x))
    return (lambda x: np.asarray(apply(jnp.asarray(x))[1]),
            lambda x: np.asarray(jnp.argmax(apply(jnp.asarray(x))[0], -1)),
            f"penultimate layer ({cfg.feature_dim} units) of an MLP classifier "
            "trained on the training split")
  from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
  pca = PCA(cfg.feature_dim).fit(xtr.reshape(len(xtr), -1))
  return (lambda x: pca.transform(np.asarray(x).reshape(len(x), -1)), None,
          f"{cfg.feature_dim} PCA components of the training split")


# ------------------------------------------------------------------- eval ----
def batched(fn, x, batch_size, *args):
  outs = [np.asarray(fn(jnp.asarray(x[i:i + batch_size]), *args))
          for i in range(0, len(x), batch_size)]
  return np.concatenate(outs)


def score_row(recon, xte, yte, feats, classify, cutoff, ref_feats):
  """Metrics of one set of reconstructions (clipped to the data range [-1, 1])."""
  recon = np.asarray(recon)
  nonfinite = float(np.mean(~np.isfinite(recon)))
  recon = np.clip(np.nan_to_num(recon, nan=0.0), -1.0, 1.0)
  to01 = lambda v: (np.asarray(v) + 1.0) / 2.0
  r, x = to01(recon), to01(xte)
  row = {
      "psnr_db": float(np.mean(cond_metrics.psnr(r, x, data_range=1.0))),
      "ssim": float(np.mean(cond_metrics.ssim(r, x, data_range=1.0))),
      "l2": float(np.mean(np.sqrt(np.sum((r - x) ** 2, axis=(1, 2, 3))))),
      "hf_ratio": metrics.high_frequency_ratio(r, x, cutoff=cutoff),
      "frechet": metrics.frechet_distance(feats(recon), ref_feats),
  }
  if classify is not None and yte is not None:
    row["class_acc"] = float(np.mean(classify(recon) == yte))
  if nonfinite:
    print(f"  warning: {nonfinite:.1%} of reconstructed pixels non-finite "
          "(set to 0); use more sampler steps.")
    row["nonfinite_frac"] = nonfinite
  return row


def save_grid(path, rows, names, n):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.8, len(rows) * 0.9))
  for i, (imgs, name) in enumerate(zip(rows, names)):
    for j in range(n):
      ax = axes[i, j]
      img = np.clip((imgs[j] + 1) / 2, 0, 1)
      ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray",
                vmin=0, vmax=1)
      ax.set_xticks([]), ax.set_yticks([])
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def markdown_table(rows):
  cols = ["psnr_db", "ssim", "l2", "hf_ratio", "frechet", "class_acc",
          "kl_nats"]
  cols = [c for c in cols if any(c in r for r in rows.values())]
  lines = ["| method | " + " | ".join(cols) + " |",
           "|---" * (len(cols) + 1) + "|"]
  for name, r in rows.items():
    lines.append(f"| {name} | " + " | ".join(
        f"{r[c]:.4g}" if c in r else "-" for c in cols) + " |")
  return "\n".join(lines)


# ------------------------------------------------------------------- main ----
def train_pair(config, sde, prior_score_apply, prior_params, xtr, beta, rng):
  """Trains a ScoreVAE encoder and a Gaussian VAE (same encoder, K, steps, beta)."""
  r_enc, r_vae = jax.random.split(rng)
  data_shape = xtr.shape[1:]
  encoder = make_encoder(config.encoder)
  k = config.encoder.latent_dim
  tc = config.train
  x1 = jnp.asarray(xtr[:1])
  sv_loss = score_vae.make_scorevae_loss(
      sde, prior_score_apply, encoder.apply, latent_dim=k, beta=beta,
      weighting=tc.weighting, include_log_var=tc.include_log_var,
      t_min=config.sde.t_min)
  t0 = time.time()
  enc_params, _, sv_hist = fit(
      lambda p, key, x: sv_loss(p, prior_params, key, x)[0],
      encoder.init(r_enc, x1, jnp.zeros((1,))), xtr, steps=tc.steps,
      batch_size=tc.batch_size, lr=tc.lr, rng=r_enc,
      name=f"scorevae beta={beta}")
  sv_time = time.time() - t0

  decoder = score_vae.GaussianDecoder(data_shape, hidden=tuple(config.vae.hidden))
  vae_params0 = {"encoder": encoder.init(r_vae, x1, jnp.zeros((1,))),
                 "decoder": decoder.init(r_vae, jnp.zeros((1, k)))}
  vae_loss = score_vae.make_vae_loss(encoder.apply, decoder.apply,
                                     latent_dim=k, beta=beta)
  t0 = time.time()
  vae_params, _, vae_hist = fit(
      lambda p, key, x: vae_loss(p, key, x)[0], vae_params0, xtr,
      steps=tc.steps, batch_size=tc.batch_size, lr=tc.lr, rng=r_vae,
      name=f"vae beta={beta}")
  return {"encoder": encoder, "decoder": decoder, "enc_params": enc_params,
          "vae_params": vae_params, "sv_loss": sv_hist[-1],
          "vae_loss": vae_hist[-1], "sv_train_s": sv_time,
          "vae_train_s": time.time() - t0}


def reconstruct_all(config, sde, prior_score_apply, prior_params, pair, xte, rng):
  """Returns {name: [N, ...] reconstructions} for the VAE and ScoreVAE decoders."""
  ec = config.eval
  encoder, data_shape = pair["encoder"], xte.shape[1:]
  enc_params = pair["enc_params"]
  def score(guidance_scale):
    return score_vae.make_conditional_score(
        prior_score_apply, encoder.apply,
        include_log_var=config.train.include_log_var,
        guidance_scale=guidance_scale)

  decoders = {
      "ScoreVAE (reverse SDE)": jax.jit(score_vae.make_decoder(
          sde, score(1.0), data_shape, n_steps=ec.sde_steps, method="sde",
          t_min=config.sde.t_min)),
      "ScoreVAE (PF-ODE)": jax.jit(score_vae.make_decoder(
          sde, score(1.0), data_shape, n_steps=ec.ode_steps, method="ode",
          t_min=config.sde.t_min)),
  }
  # Guidance gamma != 1 scales the encoder score (ScoreVAE paper's knob; not
  # Bayes' rule any more): reported as separate, labelled rows.
  for gamma in ec.extra_guidance_scales:
    decoders[f"ScoreVAE (reverse SDE, guidance {gamma:g})"] = jax.jit(
        score_vae.make_decoder(sde, score(float(gamma)), data_shape,
                               n_steps=ec.sde_steps, method="sde",
                               t_min=config.sde.t_min))
  encode = jax.jit(lambda x: score_vae.encode(encoder.apply, enc_params, x))
  vae_rec = jax.jit(lambda x: score_vae.vae_reconstruct(
      encoder.apply, pair["decoder"].apply, pair["vae_params"], x))
  out = {"Gaussian VAE": batched(vae_rec, xte, ec.batch_size)}
  z = batched(encode, xte, ec.batch_size)
  for i, (name, dec) in enumerate(decoders.items()):
    out[name] = batched(lambda zz, key, dec=dec: dec(prior_params, enc_params,
                                                     zz, key),
                        z, ec.batch_size, jax.random.fold_in(rng, i))
  return out


def save_tradeoff_plot(path, rows, betas):
  """PSNR (distortion) against high-frequency ratio (sharpness), one line per model."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5, 4))
  for method, marker in (("Gaussian VAE", "o"), ("ScoreVAE (reverse SDE)", "s"),
                         ("ScoreVAE (PF-ODE)", "^")):
    pts = [(rows[f"{method}, beta={b:g}"]["hf_ratio"],
            rows[f"{method}, beta={b:g}"]["psnr_db"]) for b in betas]
    ax.plot(*zip(*pts), marker=marker, label=method)
    for b, (hx, py) in zip(betas, pts):
      ax.annotate(f"{b:g}", (hx, py), fontsize=7)
  ax.axvline(1.0, color="gray", lw=0.8, ls="--")
  ax.set_xlabel("high-frequency energy / data (1 = data sharpness)")
  ax.set_ylabel("PSNR (dB)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(config, workdir):
  """Runs all stages; returns the results dict (also written to workdir)."""
  os.makedirs(workdir, exist_ok=True)
  rng = jax.random.key(config.seed)
  r_prior, r_train, r_feat, r_dec = jax.random.split(rng, 4)
  xtr, ytr, xte, yte = load_data(config.data)
  data_shape = xtr.shape[1:]
  print(f"data: train {xtr.shape}, test {xte.shape}")
  sde = VPSDE(beta_min=config.sde.beta_min, beta_max=config.sde.beta_max,
              eps=config.sde.t_min)
  ec = config.eval
  prior_score_apply, prior_params, prior_info = train_or_load_prior(
      config, sde, xtr, workdir, r_prior)
  feats, classify, feat_desc = make_feature_fn(ec, xtr, ytr, r_feat)
  ref = feats(xte)
  args = (xte, yte, feats, classify, ec.hf_cutoff, ref)

  rows, extra = {}, {}
  n_ref = min(len(xte), len(xtr))
  rows["training images (reference)"] = {
      "frechet": metrics.frechet_distance(feats(xtr[-n_ref:]), ref),
      "hf_ratio": metrics.high_frequency_ratio(xtr[-n_ref:], xte,
                                               cutoff=ec.hf_cutoff)}
  if classify is not None and yte is not None:
    rows["training images (reference)"]["class_acc"] = float(
        np.mean(classify(xte) == yte))
  # Unconditional prior samples (z ignored): what a decoder that ignores the
  # latent would score.
  prior_only = jax.jit(lambda key: score_vae.solve_probability_flow(
      sde, lambda x, t: prior_score_apply(prior_params, x, t),
      sde.prior_sample(key, xte.shape), n_steps=ec.ode_steps,
      t_min=config.sde.t_min))(jax.random.fold_in(r_dec, 99))
  rows["prior samples, no latent"] = score_row(np.asarray(prior_only), *args)

  betas = tuple(float(b) for b in config.train.betas)
  for i, beta in enumerate(betas):
    pair = train_pair(config, sde, prior_score_apply, prior_params, xtr, beta,
                      jax.random.fold_in(r_train, i))
    t0 = time.time()
    recons = reconstruct_all(config, sde, prior_score_apply, prior_params, pair,
                             xte, jax.random.fold_in(r_dec, i))
    decode_s = time.time() - t0
    for name, rec in recons.items():
      rows[f"{name}, beta={beta:g}"] = score_row(rec, *args)

    def mean_kl(params, encoder=pair["encoder"]):
      m, lv = encoder.apply(params, jnp.asarray(xte), jnp.zeros((len(xte),)))
      return float(jnp.mean(score_vae.kl_to_standard_normal(m, lv)))

    sv_kl = mean_kl(pair["enc_params"])
    for name in recons:
      if name.startswith("ScoreVAE"):
        rows[f"{name}, beta={beta:g}"]["kl_nats"] = sv_kl
    rows[f"Gaussian VAE, beta={beta:g}"]["kl_nats"] = mean_kl(
        pair["vae_params"]["encoder"])
    extra[f"beta={beta:g}"] = {
        "final_train_loss": {"ScoreVAE": pair["sv_loss"],
                             "Gaussian VAE": pair["vae_loss"]},
        "timings_s": {"scorevae_train": pair["sv_train_s"],
                      "vae_train": pair["vae_train_s"], "decode_all": decode_s}}
    n = min(ec.n_grid, len(xte))
    save_grid(os.path.join(workdir, f"reconstructions_beta{beta:g}.png"),
              [xte] + list(recons.values()),
              ["original", "Gaussian VAE", "ScoreVAE SDE", "ScoreVAE ODE"] +
              [f"SDE, guid. {g:g}" for g in ec.extra_guidance_scales], n)

  save_tradeoff_plot(os.path.join(workdir, "psnr_vs_sharpness.png"), rows, betas)
  results = {
      "table": rows, "per_beta": extra, "prior": prior_info,
      "features": feat_desc, "n_test": int(len(xte)),
      "config": json.loads(config.to_json()),
      "metrics_note": ("PSNR/SSIM/L2 on [0,1] pixels against the test image; "
                       "hf_ratio = mean spectral power above "
                       f"{ec.hf_cutoff} cycles/pixel, relative to the test "
                       "images (1 = data-like sharpness); frechet = Frechet "
                       "distance to the test images' features; kl_nats = "
                       "mean KL(q(z|x) || N(0, I)) on the test images."),
  }
  table = markdown_table(rows)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table + "\n")
  print(table)
  print(json.dumps(extra, indent=1))
  return results


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save step at INFO
  run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
