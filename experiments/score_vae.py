r"""ScoreVAE vs a Gaussian-decoder VAE: a distortion-perception comparison.

Stages (each a small function below):
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

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vdm_jax import score_vae
from vdm_jax.conditional import metrics as cond_metrics
from vdm_jax.models import ScoreMLP
from vdm_jax.models import UNet
from vdm_jax.score_vae import metrics
from vdm_jax.score_vae import training as score_vae_training
from vdm_jax.sde import samplers
from vdm_jax.sde import ScheduleVPSDE
from vdm_jax.sde import VPSDE

# ------------------------------------------------------------------ data -----
def load_data(cfg):
  """Integer images and labels: (train [N,H,W,C], labels or None, test, labels, V).

  Pixels are integers in {0..V-1} (V = 17 grey levels for the digits, 256 for
  tfds images, which are resized to `image_size` and rounded).
  """
  if cfg.source == "digits":
    from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
    (xtr, ytr), (xte, yte) = digits_arrays("train"), digits_arrays("test")
    levels = 17
  elif cfg.source == "tfds":
    from vdm_jax import data as data_lib  # pylint: disable=g-import-not-at-top
    def split(name):
      n = cfg.max_train if name == "train" else cfg.max_test
      images, labels = data_lib.tfds_arrays(cfg.name, name, max_examples=n)
      images = data_lib.resize_images(images, cfg.image_size)
      return np.clip(np.round(images), 0, 255).astype(np.uint8), labels
    (xtr, ytr), (xte, yte) = split("train"), split("test")
    if np.all(ytr == 0):  # a set without labels
      ytr = yte = None
    levels = 256
  else:
    raise ValueError(f"data.source must be 'digits' or 'tfds', got {cfg.source!r}.")
  if cfg.max_train:
    xtr, ytr = xtr[:cfg.max_train], (None if ytr is None else ytr[:cfg.max_train])
  if cfg.max_test:
    xte, yte = xte[:cfg.max_test], (None if yte is None else yte[:cfg.max_test])
  return xtr, ytr, xte, yte, levels


def make_scaling(scaling, levels):
  """Returns (to_model(x_int), to_pixels(x_model)) for `data.scaling`.

  'unit': x / (V - 1) * 2 - 1 (pixel range exactly [-1, 1]); 'bins': the VDM
  bin centres 2 (x + 1/2) / V - 1 (`vdm_jax.losses.encode_discrete`), needed
  for a VDM prior. `to_pixels` maps model space back to the 'unit' scale, in
  which every metric is computed.
  """
  v = float(levels)
  if scaling == "unit":
    return (lambda x: np.asarray(x, np.float32) / (v - 1) * 2 - 1,
            lambda x: np.asarray(x))
  if scaling == "bins":
    return (lambda x: 2 * (np.asarray(x, np.float32) + 0.5) / v - 1,
            lambda x: ((np.asarray(x) + 1) * v / 2 - 0.5) / (v - 1) * 2 - 1)
  raise ValueError(f"data.scaling must be 'unit' or 'bins', got {scaling!r}.")


# -------------------------------------------------------------- training -----
fit = score_vae_training.fit


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


def load_vdm_config(path):
  """`get_config()` of a training-system config file (e.g. configs/vdm_digits.py)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(path)
  if not os.path.exists(path):
    raise ValueError(f"prior.vdm_config {path} does not exist.")
  # Config files import `configs.<base>`: the repository root is on the path
  # wherever experiments are importable (launch.py, tests).
  spec = importlib.util.spec_from_file_location("_score_vae_prior_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def load_vdm_prior(config, data_shape, levels):
  """Loads (or trains, then loads) a `vdm_jax.train` checkpoint as the prior.

  The checkpoint's data shape and grey levels, and the ScoreVAE data scaling,
  must match (`score_vae.check_vdm_matches_data`). If `prior.vdm_workdir` has
  no checkpoint at `training.num_train_steps` and `prior.train_if_missing`,
  runs (or resumes) `vdm_jax.train.train_and_evaluate` there first.

  Returns:
    (sde, prior_score_apply, params, info): the VP SDE of the learned schedule
    (`ScheduleVPSDE`), the score `-eps_hat / sigma_t`, the EMA parameters.
  """
  from vdm_jax import train as vdm_train  # pylint: disable=g-import-not-at-top
  cfg = config.prior
  vc = load_vdm_config(cfg.vdm_config)
  score_vae.check_vdm_matches_data(
      image_shape=vc.data.image_shape, vocab_size=vc.data.vocab_size,
      data_shape=data_shape, data_levels=levels, scaling=config.data.scaling)
  info = {"vdm_config": cfg.vdm_config, "vdm_workdir": cfg.vdm_workdir}
  want = int(vc.training.num_train_steps)
  step = -1
  if os.path.isdir(os.path.join(cfg.vdm_workdir, "checkpoints")):
    try:
      vdm, params, step = vdm_train.load_params(vc, cfg.vdm_workdir)
    except FileNotFoundError:
      pass
  if step < want:
    if not cfg.train_if_missing:
      raise ValueError(
          f"no VDM checkpoint at step {want} in {cfg.vdm_workdir} (latest: "
          f"{step}); train it with python launch.py --config={cfg.vdm_config} "
          f"--workdir={cfg.vdm_workdir}, or set prior.train_if_missing.")
    print(f"training the VDM prior in {cfg.vdm_workdir} ({want} steps)...")
    t0 = time.time()
    vdm_train.train_and_evaluate(vc, cfg.vdm_workdir)
    info["train_seconds"] = time.time() - t0
    vdm, params, step = vdm_train.load_params(vc, cfg.vdm_workdir)
  info["step"] = int(step)
  gamma_fn = vdm.gamma_fn(params)
  info["gamma_0"], info["gamma_1"] = (float(g) for g in gamma_fn(
      jnp.array([0.0, 1.0])))
  sde = ScheduleVPSDE(gamma_fn=gamma_fn, eps=config.sde.t_min)
  prior_score_apply = score_vae.score_from_vdm(vdm)
  score_vae.check_prior_matches_data(prior_score_apply, params, data_shape)
  print(f"loaded VDM prior (step {step}, gamma_0 {info['gamma_0']:.2f}, "
        f"gamma_1 {info['gamma_1']:.2f}) from {cfg.vdm_workdir}")
  return sde, prior_score_apply, params, info


def build_prior(config, xtr, levels, workdir, rng):
  """Returns (sde, prior_score_apply, prior_params, info) for `prior.source`."""
  data_shape = xtr.shape[1:]
  if config.prior.source == "vdm":
    return load_vdm_prior(config, data_shape, levels)
  if config.prior.source == "dsm":
    sde = VPSDE(beta_min=config.sde.beta_min, beta_max=config.sde.beta_max,
                eps=config.sde.t_min)
    return (sde,) + train_or_load_prior(config, sde, xtr, workdir, rng)
  raise ValueError(f"prior.source must be 'vdm' or 'dsm', got "
                   f"{config.prior.source!r}.")


# --------------------------------------------------------------- encoder -----
def make_encoder(cfg, latent_dim):
  if cfg.model == "mlp":
    return score_vae.MLPEncoder(latent_dim, hidden=tuple(cfg.hidden),
                                emb_dim=cfg.emb_dim)
  if cfg.model == "conv":
    return score_vae.ConvEncoder(latent_dim, ch=cfg.ch,
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
def train_scorevae(config, sde, prior_score_apply, prior_params, xtr, k, beta,
                   rng):
  """Trains a ScoreVAE encoder with latent size k and KL weight beta (prior frozen)."""
  encoder = make_encoder(config.encoder, k)
  tc = config.train
  loss = score_vae.make_scorevae_loss(
      sde, prior_score_apply, encoder.apply, latent_dim=k, beta=beta,
      weighting=tc.weighting, include_log_var=tc.include_log_var,
      t_min=config.sde.t_min)
  t0 = time.time()
  params, _, hist = fit(
      lambda p, key, x: loss(p, prior_params, key, x)[0],
      encoder.init(rng, jnp.asarray(xtr[:1]), jnp.zeros((1,))), xtr,
      steps=tc.steps, batch_size=tc.batch_size, lr=tc.lr, rng=rng,
      name=f"scorevae K={k} beta={beta:g}")
  return {"encoder": encoder, "params": params, "loss": hist[-1],
          "train_s": time.time() - t0}


def train_vae(config, xtr, k, beta, rng):
  """Trains the Gaussian VAE (same encoder architecture, K, steps, batch, lr)."""
  encoder = make_encoder(config.encoder, k)
  decoder = score_vae.GaussianDecoder(xtr.shape[1:],
                                      hidden=tuple(config.vae.hidden))
  params0 = {"encoder": encoder.init(rng, jnp.asarray(xtr[:1]), jnp.zeros((1,))),
             "decoder": decoder.init(rng, jnp.zeros((1, k)))}
  loss = score_vae.make_vae_loss(encoder.apply, decoder.apply, latent_dim=k,
                                 beta=beta)
  tc = config.train
  t0 = time.time()
  params, _, hist = fit(lambda p, key, x: loss(p, key, x)[0], params0, xtr,
                        steps=tc.steps, batch_size=tc.batch_size, lr=tc.lr,
                        rng=rng, name=f"vae K={k} beta={beta:g}")
  return {"encoder": encoder, "decoder": decoder, "params": params,
          "loss": hist[-1], "train_s": time.time() - t0}


def train_scorevae_plus(config, sde, prior_score_apply, prior_params, xtr, sv,
                        k, rng):
  """Trains the ScoreVAE+ correction of a trained ScoreVAE (encoder frozen)."""
  corr = score_vae.CorrectionMLP(hidden=tuple(config.correction.hidden),
                                 emb_dim=config.correction.emb_dim)
  base = score_vae.make_conditional_score(
      prior_score_apply, sv["encoder"].apply,
      include_log_var=config.train.include_log_var)
  plus = score_vae.make_corrected_score(base, corr.apply, sde)
  tc = config.train
  loss = score_vae.make_scorevae_plus_loss(
      sde, plus, sv["encoder"].apply, latent_dim=k, weighting=tc.weighting,
      t_min=config.sde.t_min)
  x1 = jnp.asarray(xtr[:1])
  params0 = corr.init(rng, x1, jnp.zeros((1,)), jnp.zeros((1, k)))
  t0 = time.time()
  params, _, hist = fit(
      lambda p, key, x: loss(p, sv["params"], prior_params, key, x), params0,
      xtr, steps=tc.plus_steps, batch_size=tc.batch_size, lr=tc.lr, rng=rng,
      name=f"scorevae+ K={k}")
  return {"score": plus, "params": (sv["params"], params), "loss": hist[-1],
          "train_s": time.time() - t0}


def eval_decoder(config, sde, score, data_shape, method="sde", steps=None):
  """Jitted decode(prior_params, cond_params, z, rng) of a conditional score."""
  return jax.jit(score_vae.make_decoder(
      sde, score, data_shape, n_steps=steps or config.eval.sde_steps,
      method=method, t_min=config.sde.t_min, tweedie=config.eval.tweedie))


def scorevae_decoders(config, sde, prior_score_apply, encoder, data_shape):
  """{name: jitted decode(prior_params, enc_params, z, rng)} for the eval config."""
  ec = config.eval
  def decoder(method, steps, gamma=1.0):
    score = score_vae.make_conditional_score(
        prior_score_apply, encoder.apply,
        include_log_var=config.train.include_log_var, guidance_scale=gamma)
    return eval_decoder(config, sde, score, data_shape, method, steps)
  out = {"ScoreVAE": decoder("sde", ec.sde_steps)}
  if ec.ode_steps:
    out["ScoreVAE (PF-ODE)"] = decoder("ode", ec.ode_steps)
  # Guidance gamma != 1 scales the encoder score (the ScoreVAE paper's knob;
  # no longer Bayes' rule): separate, labelled rows.
  for gamma in ec.extra_guidance_scales:
    out[f"ScoreVAE (guidance {gamma:g})"] = decoder("sde", ec.sde_steps,
                                                    float(gamma))
  return out


def decode_and_score(decoders, prior_params, cond_params, z, rng, args,
                     to_pixels, batch_size, *, first_index=0):
  """{name: (score_row, pixels)}: decodes z with each decoder and scores it.

  Decoder number d draws its noise from `fold_in(rng, first_index + d)`.
  """
  out = {}
  for d, (name, dec) in enumerate(decoders.items()):
    rec = to_pixels(batched(
        lambda zz, key, dec=dec: dec(prior_params, cond_params, zz, key), z,
        batch_size, jax.random.fold_in(rng, first_index + d)))
    out[name] = (score_row(rec, *args), rec)
  return out


def _brief(row):
  return ", ".join(f"{c} {row[c]:.3g}" for c in (
      "psnr_db", "hf_ratio", "frechet", "class_acc", "kl_nats") if c in row)


def mean_kl(encoder, params, x):
  m, lv = encoder.apply(params, jnp.asarray(x), jnp.zeros((len(x),)))
  return float(jnp.mean(score_vae.kl_to_standard_normal(m, lv)))


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
  xtr_i, ytr, xte_i, yte, levels = load_data(config.data)
  to_model, to_pixels = make_scaling(config.data.scaling, levels)
  xtr, xte = to_model(xtr_i), to_model(xte_i)          # model space
  ptr, pte = to_pixels(xtr), to_pixels(xte)            # [-1, 1] pixel space
  data_shape = xtr.shape[1:]
  print(f"data: train {xtr.shape}, test {xte.shape}, {levels} levels, "
        f"scaling {config.data.scaling!r}")
  ec = config.eval
  sde, prior_score_apply, prior_params, prior_info = build_prior(
      config, xtr, levels, workdir, r_prior)
  feats, classify, feat_desc = make_feature_fn(ec, ptr, ytr, r_feat)
  ref = feats(pte)
  args = (pte, yte, feats, classify, ec.hf_cutoff, ref)
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
  prior_fn = lambda x, t: prior_score_apply(prior_params, x, t)
  prior_only = jax.jit(lambda key: samplers.pc_sample(
      key, prior_fn, sde, xte.shape, n_steps=ec.sde_steps,
      t_end=config.sde.t_min, tweedie=ec.tweedie)[0])(
          jax.random.fold_in(r_dec, 99))
  rows["prior samples, no latent"] = score_row(to_pixels(prior_only), *args)
  timings["prior_samples"] = time.time() - t0

  tol = float(config.eval.comparable_db)
  grid_rows = {"original": pte}
  for i, k in enumerate(config.encoder.latent_dims):
    for j, beta in enumerate(config.train.betas):
      k, beta = int(k), float(beta)
      key = jax.random.fold_in(jax.random.fold_in(r_train, i), j)
      tag = f"K={k}, beta={beta:g}"
      vae = train_vae(config, xtr, k, beta, jax.random.fold_in(key, 1))
      rec = batched(jax.jit(lambda x, vae=vae: score_vae.vae_reconstruct(
          vae["encoder"].apply, vae["decoder"].apply, vae["params"], x)),
                    xte, ec.batch_size)
      rows[f"Gaussian VAE, {tag}"] = dict(
          score_row(to_pixels(rec), *args), model="Gaussian VAE",
          latent_dim=k, beta=beta,
          kl_nats=mean_kl(vae["encoder"], vae["params"]["encoder"], xte))
      grid_rows[f"VAE {tag}"] = to_pixels(rec)
      print(f"Gaussian VAE, {tag}: " + _brief(rows[f"Gaussian VAE, {tag}"]),
            flush=True)
      extra[f"Gaussian VAE, {tag}"] = {"final_loss": vae["loss"],
                                       "train_s": vae["train_s"]}
      if k not in config.train.scorevae_latent_dims:
        continue
      sv = train_scorevae(config, sde, prior_score_apply, prior_params, xtr, k,
                          beta, key)
      kl = mean_kl(sv["encoder"], sv["params"], xte)
      z = batched(jax.jit(lambda x, sv=sv: score_vae.encode(
          sv["encoder"].apply, sv["params"], x)), xte, ec.batch_size)
      dec_rng = jax.random.fold_in(r_dec, i * 100 + j)

      def add_rows(decoded, k=k, beta=beta, tag=tag, kl=kl):
        for name, (row, rec) in decoded.items():
          rows[f"{name}, {tag}"] = dict(row, model=name, latent_dim=k, beta=beta,
                                        kl_nats=kl)
          print(f"{name}, {tag}: " + _brief(rows[f"{name}, {tag}"]), flush=True)
          grid_rows[f"{name} {tag}"] = rec

      t0 = time.time()
      add_rows(decode_and_score(
          scorevae_decoders(config, sde, prior_score_apply, sv["encoder"],
                            data_shape),
          prior_params, sv["params"], z, dec_rng, args, to_pixels, ec.batch_size))
      extra[f"ScoreVAE, {tag}"] = {"final_loss": sv["loss"],
                                   "train_s": sv["train_s"],
                                   "decode_s": time.time() - t0}
      if not config.train.plus_steps:
        continue
      svp = train_scorevae_plus(config, sde, prior_score_apply, prior_params,
                                xtr, sv, k, jax.random.fold_in(key, 2))
      t0 = time.time()
      add_rows(decode_and_score(
          {"ScoreVAE+": eval_decoder(config, sde, svp["score"], data_shape)},
          prior_params, svp["params"], z, dec_rng, args, to_pixels,
          ec.batch_size, first_index=50))
      extra[f"ScoreVAE+, {tag}"] = {"final_loss": svp["loss"],
                                    "train_s": svp["train_s"],
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
