r"""ScoreVAE vs a Gaussian-decoder VAE: a distortion-perception comparison.

This module unpacks the config, calls the library (`vdm_jax.score_vae`: data,
prior, training, evaluation, features, metrics) and turns the results into
tables, PNG grids and a plot. Stages:
  1. data: the bundled digits (or a prepared tfds data set) as integer pixels,
     scaled to the prior's model space ('bins': VDM bin centres, or 'unit');
     every metric is computed back on the [-1, 1] pixel scale;
  2. prior: a `vdm_jax.train` checkpoint (the training system's digits VDM,
     trained first if missing; shape, grey levels and scaling checked) on the
     VP SDE of its learned schedule, or ('dsm') an eps-model trained here;
  3. ScoreVAE: a time-dependent encoder trained with DSM of the composed score
     s_theta(x_t, t) + grad log q_phi(z | x_t, t) plus beta * KL, prior frozen,
     for every (latent size, beta) of the sweep;
  4. baseline: a Gaussian-decoder VAE (learned variance) with the same encoder
     architecture, latent size, steps, batch, learning rate and beta;
  5. evaluation on test images: PSNR, SSIM, high-frequency energy ratio to the
     data (sharpness), Frechet distance in a feature space (penultimate layer of
     a small classifier trained here on the training split, or PCA features),
     accuracy of that classifier on reconstructions, rate KL(q(z|x) || N(0, I));
     PNG grids, a distortion-perception plot (PSNR against HF ratio and against
     Frechet distance, one curve per model), and a table reading off whether
     ScoreVAE is sharper than every VAE with PSNR at most `eval.comparable_db`
     above it, and how it compares with the VAE at the nearest rate.

ScoreVAE decodes z = encoder mean (t = 0) by Euler-Maruyama on the reverse SDE
(a draw from p(x | z)), ending with Tweedie's E[x_0 | x_tmin, z]; optional rows
add the probability-flow ODE (Heun) and guidance scales gamma != 1.

  python launch.py --config=configs/score_vae_digits.py --workdir=results/score_vae_digits
  python launch.py --config=configs/score_vae_digits.py:quick --workdir=/tmp/score_vae_quick

Reference: Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational
Autoencoder (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from vdm_jax import score_vae
from vdm_jax.score_vae import metrics
from vdm_jax.sde import VPSDE


# ----------------------------------------------------------- config -> lib ----
def build_prior(config, xtr, levels, workdir, rng):
  """Returns (sde, prior_score_apply, prior_params, info) for `prior.source`."""
  pc = config.prior
  if pc.source == "vdm":
    return score_vae.load_vdm_prior(
        vdm_config=pc.vdm_config, vdm_workdir=pc.vdm_workdir,
        data_shape=xtr.shape[1:], levels=levels, scaling=config.data.scaling,
        t_min=config.sde.t_min, train_if_missing=pc.train_if_missing)
  if pc.source == "dsm":
    sde = VPSDE(beta_min=config.sde.beta_min, beta_max=config.sde.beta_max,
                eps=config.sde.t_min)
    return (sde,) + score_vae.train_or_load_dsm_prior(
        sde, xtr, checkpoint=pc.checkpoint, workdir=workdir, model=pc.model,
        hidden=pc.hidden, emb_dim=pc.emb_dim, ch=pc.ch, n_blocks=pc.n_blocks,
        ch_mult=pc.ch_mult, t_min=config.sde.t_min, steps=pc.steps,
        batch_size=pc.batch_size, lr=pc.lr, ema=pc.ema, rng=rng)
  raise ValueError(f"prior.source must be 'vdm' or 'dsm', got {pc.source!r}.")


def make_encoder(config, k):
  ec = config.encoder
  return score_vae.make_encoder(ec.model, k, hidden=ec.hidden, ch=ec.ch,
                                ch_mult=ec.ch_mult, emb_dim=ec.emb_dim)


def _fit_args(config, steps=None):
  tc = config.train
  return dict(steps=steps or tc.steps, batch_size=tc.batch_size, lr=tc.lr)


def _score_args(config):
  return dict(weighting=config.train.weighting,
              include_log_var=config.train.include_log_var,
              t_min=config.sde.t_min)


# ------------------------------------------------------ tables, figures ----
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


def _brief(row):
  return ", ".join(f"{c} {row[c]:.3g}" for c in (
      "psnr_db", "hf_ratio", "frechet", "class_acc", "kl_nats") if c in row)


def compare(rows, tol_db):
  """Reads 'sharper at comparable distortion' and 'at matched rate' off the rows.

  For every ScoreVAE and ScoreVAE+ (reverse-SDE) row: the Gaussian-VAE rows whose PSNR is at
  most `tol_db` above it (ScoreVAE's distortion comparable or better), and
  whether ScoreVAE is sharper than all of them (high-frequency ratio closer to
  the data's 1) and has a lower Frechet distance; and the VAE row at the
  nearest rate (KL, nats) with its PSNR / sharpness / Frechet.
  """
  vae = {n: r for n, r in rows.items() if r.get("model") == "Gaussian VAE"}
  out = []
  for name, r in rows.items():
    if r.get("model") not in ("ScoreVAE", "ScoreVAE+"):
      continue
    sharp = lambda q: abs(1.0 - q["hf_ratio"])
    near = {n: q for n, q in vae.items() if q["psnr_db"] <= r["psnr_db"] + tol_db}
    entry = {"scorevae": name, "psnr_db": r["psnr_db"], "hf_ratio": r["hf_ratio"],
             "frechet": r["frechet"], "kl_nats": r["kl_nats"],
             "vae_within_tol": sorted(near),
             "sharper_than_all": bool(near) and all(
                 sharp(r) < sharp(q) for q in near.values()),
             "lower_frechet_than_all": bool(near) and all(
                 r["frechet"] < q["frechet"] for q in near.values())}
    if vae:
      m = min(vae, key=lambda n: abs(vae[n]["kl_nats"] - r["kl_nats"]))
      entry["matched_rate_vae"] = m
      entry["matched_rate_vae_row"] = {c: vae[m][c] for c in (
          "psnr_db", "hf_ratio", "frechet", "kl_nats")}
    out.append(entry)
  return out


def comparison_markdown(comps, tol_db):
  lines = [f"ScoreVAE vs every Gaussian VAE whose PSNR is at most {tol_db:g} dB "
           "above it ('comparable or better distortion'); sharper = |1 - HF "
           "ratio| smaller than all of them.", "",
           "| ScoreVAE | PSNR | HF | Frechet | KL | #VAE within | sharper than all"
           " | lower Frechet than all | VAE at nearest KL: PSNR / HF / Frechet / KL |",
           "|---|---|---|---|---|---|---|---|---|"]
  for c in comps:
    m = c.get("matched_rate_vae_row")
    mr = (f"{c['matched_rate_vae']}: {m['psnr_db']:.2f} / {m['hf_ratio']:.3f} / "
          f"{m['frechet']:.2f} / {m['kl_nats']:.1f}") if m else "-"
    lines.append(
        f"| {c['scorevae']} | {c['psnr_db']:.2f} | {c['hf_ratio']:.3f} | "
        f"{c['frechet']:.2f} | {c['kl_nats']:.1f} | {len(c['vae_within_tol'])} "
        f"| {c['sharper_than_all']} | {c['lower_frechet_than_all']} | {mr} |")
  return "\n".join(lines)


def save_tradeoff_plot(path, rows):
  """Distortion-perception plot: PSNR against HF ratio and against Frechet distance."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  models = sorted({r["model"] for r in rows.values() if "model" in r})
  for model, marker in zip(models, "os^vD<>"):
    pts = sorted([(r["psnr_db"], r["hf_ratio"], r["frechet"],
                   f"K{r['latent_dim']},b{r['beta']:g}")
                  for r in rows.values() if r.get("model") == model])
    for ax, j in zip(axes, (1, 2)):
      ax.plot([p[j] for p in pts], [p[0] for p in pts], marker=marker, ls=":",
              label=model)
      for p in pts:
        ax.annotate(p[3], (p[j], p[0]), fontsize=6)
  axes[0].axvline(1.0, color="gray", lw=0.8, ls="--")
  axes[0].set_xlabel("high-frequency energy / data's (1 = data sharpness)")
  axes[1].set_xlabel("Frechet distance to test features (lower = more realistic)")
  ref = rows.get("training images (reference)", {}).get("frechet")
  if ref is not None:
    axes[1].axvline(ref, color="gray", lw=0.8, ls="--")
  for ax in axes:
    ax.set_ylabel("PSNR (dB, higher = less distortion)")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(config, workdir):
  """Runs all stages; returns the results dict (also written to workdir)."""
  os.makedirs(workdir, exist_ok=True)
  t_start = time.time()
  rng = jax.random.key(config.seed)
  r_prior, r_train, r_feat, r_dec = jax.random.split(rng, 4)
  dc = config.data
  xtr_i, ytr, xte_i, yte, levels = score_vae.load_images(
      source=dc.source, name=dc.name, image_size=dc.image_size,
      max_train=dc.max_train, max_test=dc.max_test)
  to_model, to_pixels = score_vae.make_scaling(dc.scaling, levels)
  xtr, xte = to_model(xtr_i), to_model(xte_i)          # model space
  ptr, pte = to_pixels(xtr), to_pixels(xte)            # [-1, 1] pixel space
  data_shape = xtr.shape[1:]
  print(f"data: train {xtr.shape}, test {xte.shape}, {levels} levels, "
        f"scaling {dc.scaling!r}")
  ec, t_min = config.eval, config.sde.t_min
  sde, prior_score_apply, prior_params, prior_info = build_prior(
      config, xtr, levels, workdir, r_prior)
  feats, classify, feat_desc = score_vae.make_feature_space(
      ec.features, ptr, ytr, feature_dim=ec.feature_dim,
      classifier_steps=ec.classifier_steps, rng=r_feat)
  ref = feats(pte)

  def score_row(rec):
    return score_vae.reconstruction_metrics(
        rec, pte, features=feats, reference_features=ref, cutoff=ec.hf_cutoff,
        labels=yte, classify=classify)

  timings = {}
  rows, extra = {}, {}
  n_ref = min(len(xte), len(xtr))
  rows["training images (reference)"] = {
      "frechet": metrics.frechet_distance(feats(ptr[-n_ref:]), ref),
      "hf_ratio": metrics.high_frequency_ratio(ptr[-n_ref:], pte,
                                               cutoff=ec.hf_cutoff)}
  if classify is not None and yte is not None:
    rows["training images (reference)"]["class_acc"] = float(
        np.mean(classify(pte) == yte))
  # Unconditional prior samples (z ignored, same sampler as the decoders): what
  # a decoder that ignores the latent would score.
  t0 = time.time()
  prior_only = score_vae.sample_prior(
      sde, prior_score_apply, prior_params, xte.shape,
      jax.random.fold_in(r_dec, 99), n_steps=ec.sde_steps, t_min=t_min,
      tweedie=ec.tweedie)
  rows["prior samples, no latent"] = score_row(to_pixels(prior_only))
  timings["prior_samples"] = time.time() - t0

  tol = float(config.eval.comparable_db)
  grid_rows = {"original": pte}
  decode = lambda decoders, params, z, rng, **kw: score_vae.decode_and_score(
      decoders, prior_params, params, z, rng, to_pixels=to_pixels,
      score_fn=score_row, batch_size=ec.batch_size, **kw)
  for i, k in enumerate(config.encoder.latent_dims):
    for j, beta in enumerate(config.train.betas):
      k, beta = int(k), float(beta)
      key = jax.random.fold_in(jax.random.fold_in(r_train, i), j)
      tag = f"K={k}, beta={beta:g}"
      vae = score_vae.train_vae(
          make_encoder(config, k), xtr, latent_dim=k, beta=beta,
          decoder_hidden=config.vae.hidden, rng=jax.random.fold_in(key, 1),
          **_fit_args(config))
      rec = to_pixels(score_vae.map_batches(
          jax.jit(lambda x, vae=vae: score_vae.vae_reconstruct(
              vae.encoder.apply, vae.decoder.apply, vae.params, x)),
          xte, ec.batch_size))
      rows[f"Gaussian VAE, {tag}"] = dict(
          score_row(rec), model="Gaussian VAE", latent_dim=k, beta=beta,
          kl_nats=score_vae.mean_kl(vae.encoder, vae.params["encoder"], xte))
      grid_rows[f"VAE {tag}"] = rec
      print(f"Gaussian VAE, {tag}: " + _brief(rows[f"Gaussian VAE, {tag}"]),
            flush=True)
      extra[f"Gaussian VAE, {tag}"] = {"final_loss": vae.final_loss,
                                       "train_s": vae.train_seconds}
      if k not in config.train.scorevae_latent_dims:
        continue
      sv = score_vae.train_scorevae(
          make_encoder(config, k), sde, prior_score_apply, prior_params, xtr,
          latent_dim=k, beta=beta, rng=key, **_score_args(config),
          **_fit_args(config))
      kl = score_vae.mean_kl(sv.encoder, sv.params, xte)
      z = score_vae.map_batches(jax.jit(lambda x, sv=sv: score_vae.encode(
          sv.encoder.apply, sv.params, x)), xte, ec.batch_size)
      dec_rng = jax.random.fold_in(r_dec, i * 100 + j)

      def add_rows(decoded, k=k, beta=beta, tag=tag, kl=kl):
        for name, (row, rec) in decoded.items():
          rows[f"{name}, {tag}"] = dict(row, model=name, latent_dim=k, beta=beta,
                                        kl_nats=kl)
          print(f"{name}, {tag}: " + _brief(rows[f"{name}, {tag}"]), flush=True)
          grid_rows[f"{name} {tag}"] = rec

      t0 = time.time()
      add_rows(decode(score_vae.scorevae_decoders(
          sde, prior_score_apply, sv.encoder, data_shape,
          include_log_var=config.train.include_log_var, sde_steps=ec.sde_steps,
          ode_steps=ec.ode_steps, guidance_scales=ec.extra_guidance_scales,
          t_min=t_min, tweedie=ec.tweedie), sv.params, z, dec_rng))
      extra[f"ScoreVAE, {tag}"] = {"final_loss": sv.final_loss,
                                   "train_s": sv.train_seconds,
                                   "decode_s": time.time() - t0}
      if not config.train.plus_steps:
        continue
      cc = config.correction
      svp = score_vae.train_scorevae_plus(
          sv, sde, prior_score_apply, prior_params, xtr, latent_dim=k,
          hidden=cc.hidden, emb_dim=cc.emb_dim,
          rng=jax.random.fold_in(key, 2), **_score_args(config),
          **_fit_args(config, config.train.plus_steps))
      t0 = time.time()
      plus = score_vae.make_jit_decoder(sde, svp.score, data_shape,
                                        n_steps=ec.sde_steps, t_min=t_min,
                                        tweedie=ec.tweedie)
      add_rows(decode({"ScoreVAE+": plus}, svp.params, z, dec_rng,
                      first_index=50))
      extra[f"ScoreVAE+, {tag}"] = {"final_loss": svp.final_loss,
                                    "train_s": svp.train_seconds,
                                    "decode_s": time.time() - t0}

  n = min(ec.n_grid, len(xte))
  names = list(grid_rows)
  for start in range(0, len(names), 8):   # 8 rows per PNG keeps them legible
    chunk = names[start:start + 8]
    if start:
      chunk = ["original"] + chunk
    save_grid(os.path.join(workdir, f"reconstructions_{start // 8}.png"),
              [grid_rows[c] for c in chunk], chunk, n)
  save_tradeoff_plot(os.path.join(workdir, "distortion_perception.png"), rows)
  comps = compare(rows, tol)
  timings["total"] = time.time() - t_start
  results = {
      "table": rows, "comparison": comps, "per_run": extra,
      "prior": prior_info, "features": feat_desc, "n_test": int(len(xte)),
      "timings_s": timings, "config": json.loads(config.to_json()),
      "metrics_note": ("PSNR/SSIM/L2 on [0,1] pixels against the test image; "
                       "hf_ratio = mean spectral power above "
                       f"{ec.hf_cutoff} cycles/pixel, relative to the test "
                       "images (1 = data-like sharpness); frechet = Frechet "
                       "distance to the test images' features; kl_nats = "
                       "mean KL(q(z|x) || N(0, I)) on the test images (the "
                       "rate)."),
  }
  table = markdown_table(rows) + "\n\n" + comparison_markdown(comps, tol)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table + "\n")
  print(table)
  print(json.dumps({"per_run": extra, "timings_s": timings}, indent=1))
  return results
