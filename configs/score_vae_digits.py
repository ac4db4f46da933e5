"""ScoreVAE vs a Gaussian-decoder VAE on the bundled 8x8 digits (CPU, minutes).

Loads the training system's digits VDM as the frozen prior (trains it first,
~3 min, if `runs/digits` has no checkpoint), trains ScoreVAE encoders with the
likelihood-weighted objective (a bound on -log p(x | z) in nats, like the VAE's
Gaussian NLL, so one beta means one rate-distortion trade-off for both) and
Gaussian VAEs with the same encoder, latent sizes, betas, steps and batch, and
compares reconstructions of the 297 test digits on a distortion-perception
plot.

  python launch.py --config=configs/vdm_digits.py --workdir=runs/digits  # prior
  python launch.py --config=configs/score_vae_digits.py --workdir=results/score_vae_digits
  python launch.py --config=configs/score_vae_digits.py:quick --workdir=/tmp/score_vae_quick          # smoke run, ~1 minute

Measured with this config (seed 0, 297 test digits, 3000 steps for every
model; 22 min wall on the shared 2-core CPU; prior: the runs/digits VDM,
1.851 test bits/dim; ScoreVAE decoding = reverse SDE, 250 Euler-Maruyama
steps + Tweedie; ScoreVAE+ = ScoreVAE plus a 3000-step correction MLP, encoder
frozen). PSNR dB / HF ratio (data 0.977) / Frechet (train vs test 12.6) /
class kept / KL nats:

  | model, K, beta      | PSNR | HF    | Frechet | class | KL    |
  | VAE K=4, 0.03 / 0.1 | 18.3 / 18.4 | 0.81 / 0.82 | 2.94 / 2.43 | 0.96 | 22 / 18 |
  | VAE K=8, 0.03 / 0.1 | 20.6 / 20.8 | 0.88 / 0.88 | 1.92 / 1.89 | 0.99 | 42 / 33 |
  | VAE K=16            | 23.3 / 23.4 | 0.91 / 0.90 | 1.55 / 1.36 | 0.98 | 69 / 57 |
  | VAE K=32            | 28.5 / 25.6 | 0.94 / 0.91 | 0.66 / 1.04 | 0.98 | 120 / 78 |
  | ScoreVAE K=8        | 13.6 / 13.4 | 0.97 / 0.99 | 6.4 / 7.5   | 0.65 | 41 / 31 |
  | ScoreVAE+ K=8       | 15.6 / 15.7 | 0.97 / 0.97 | 3.4 / 3.4   | 0.80 | 41 / 31 |
  | ScoreVAE K=32       | 21.7 / 17.1 | 0.95 / 0.94 | 0.81 / 1.86 | 0.96 | 108 / 51 |
  | ScoreVAE+ K=32      | 23.0 / 18.8 | 0.96 / 0.98 | 0.31 / 0.92 | 0.97 | 108 / 51 |

Every ScoreVAE and ScoreVAE+ row is sharper and has a lower Frechet distance
than every VAE whose PSNR is at most 1 dB above it: e.g. ScoreVAE K=32 (21.7
dB) against the K=8 VAEs (20.6-20.8 dB), ScoreVAE+ K=32 (23.0 dB, Frechet
0.31) against the K=16 VAEs (23.3-23.4 dB, 1.36-1.55). At the same latent
size the VAE has the higher PSNR: a decoder that samples p(x | z) pays at
least 3 dB against one that returns its mean, and ScoreVAE pays ~7 dB at K=32.
"""

import ml_collections

from configs import default


def get_config(arg=None):
  """Digits config; `arg='quick'` shrinks every stage for a smoke run."""
  quick = default.parse_arg(arg)["quick"]
  c = default.base_config("score_vae", seed=0)

  c.data = ml_collections.ConfigDict()
  c.data.source = "digits"        # 'digits' (bundled) or 'tfds'
  c.data.name = "digits"          # tfds name when source == 'tfds'
  c.data.image_size = 8           # tfds images are resized to this
  c.data.max_train = 0            # 0: all
  c.data.max_test = 297           # test images reconstructed and scored
  c.data.scaling = "bins"         # VDM bin centres; 'unit' for a 'dsm' prior

  c.sde = ml_collections.ConfigDict()
  c.sde.beta_min = 0.1            # 'dsm' prior only: VP SDE of the paper
  c.sde.beta_max = 20.0
  c.sde.t_min = 0.0               # VDM: gamma(0) is finite; 'dsm': 1e-3

  c.prior = ml_collections.ConfigDict()
  c.prior.source = "vdm"          # 'vdm': a vdm_jax.train checkpoint; 'dsm'
  c.prior.vdm_config = "configs/vdm_digits.py"
  c.prior.vdm_workdir = "runs/digits"
  c.prior.train_if_missing = True
  # 'dsm' only: an eps-model trained here by DSM on the VP SDE.
  c.prior.checkpoint = ""         # orbax dir written by this script; '' trains
  c.prior.model = "mlp"           # 'mlp' (flattened) or 'unet'
  c.prior.hidden = (512, 512, 512)
  c.prior.emb_dim = 128
  c.prior.ch = 64                 # unet only
  c.prior.n_blocks = 2
  c.prior.ch_mult = (1, 2)
  c.prior.steps = 8000
  c.prior.batch_size = 128
  c.prior.lr = 1e-3
  c.prior.ema = 0.999

  c.encoder = ml_collections.ConfigDict()
  c.encoder.model = "mlp"         # 'mlp' or 'conv', shared by ScoreVAE and VAE
  c.encoder.latent_dims = (1, 2, 4, 8, 16, 32)  # Gaussian VAE sweep
  c.encoder.hidden = (256, 256)
  c.encoder.ch = 32
  c.encoder.ch_mult = (1, 2)
  c.encoder.emb_dim = 64

  c.train = ml_collections.ConfigDict()   # shared by ScoreVAE and the VAE
  c.train.steps = 3000
  c.train.batch_size = 128
  c.train.lr = 1e-3
  c.train.betas = (0.03, 0.1)    # KL weights, swept for both models
  c.train.scorevae_latent_dims = (8, 32)  # ScoreVAE runs (UNet prior: slow)
  c.train.weighting = "likelihood"  # g^2: a bound in nats; 'sigma2': paper code
  c.train.include_log_var = True  # exact density; False = official code
  c.train.plus_steps = 3000       # > 0: also train ScoreVAE+ (a correction net)

  c.correction = ml_collections.ConfigDict()   # ScoreVAE+ only
  c.correction.hidden = (256, 256)
  c.correction.emb_dim = 64

  c.vae = ml_collections.ConfigDict()
  c.vae.hidden = (256, 256)

  c.eval = ml_collections.ConfigDict()
  c.eval.sde_steps = 250          # Euler-Maruyama steps, stochastic decoding
  c.eval.tweedie = True           # last step: E[x_0 | x_tmin, z]
  c.eval.ode_steps = 0            # > 0 adds PF-ODE (Heun) decoding rows
  c.eval.extra_guidance_scales = ()  # extra SDE rows with gamma != 1
  c.eval.batch_size = 300
  c.eval.n_grid = 16
  c.eval.features = "classifier"  # 'classifier' (trained in-script) or 'pca'
  c.eval.feature_dim = 32
  c.eval.classifier_steps = 1500
  c.eval.hf_cutoff = 0.25         # cycles/pixel
  c.eval.comparable_db = 1.0      # 'comparable distortion': PSNR within this

  if quick:
    c.data.scaling = "unit"
    c.sde.t_min = 1e-3
    c.prior.source = "dsm"
    c.prior.hidden = (64, 64)
    c.prior.steps = 200
    c.encoder.hidden = (64,)
    c.encoder.latent_dims = (2,)
    c.train.scorevae_latent_dims = (2,)
    c.train.steps = 100
    c.train.plus_steps = 50
    c.correction.hidden = (64,)
    c.vae.hidden = (64,)
    c.data.max_test = 32
    c.eval.sde_steps = 100
    c.eval.ode_steps = 20
    c.eval.classifier_steps = 100
  return c
