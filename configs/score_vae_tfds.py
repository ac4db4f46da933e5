"""ScoreVAE on a tfds image data set (CIFAR-10 32x32 or CelebA 64x64), for users with data.

Needs the data set already prepared by tensorflow-datasets (no download here).
Uses a UNet prior, a conv encoder and the paper's latent sizes (384 for
CIFAR-10, 512 for CelebA; Batzolis et al. 2023). Hours on one accelerator; not a CPU job.

  python launch.py --config=configs/score_vae_tfds.py:cifar10 --workdir=results/score_vae_cifar10
  python launch.py --config=configs/score_vae_tfds.py:celeb_a --workdir=results/score_vae_celeba --config.prior.checkpoint=/path/prior
"""

from configs import score_vae_digits


def get_config(arg="cifar10"):
  """`arg` is 'cifar10' or 'celeb_a'."""
  c = score_vae_digits.get_config()
  if arg not in ("cifar10", "celeb_a"):
    raise ValueError(f"arg must be 'cifar10' or 'celeb_a', got {arg!r}.")
  c.data.source = "tfds"
  c.data.name = arg
  c.data.image_size = 32 if arg == "cifar10" else 64
  c.data.max_test = 1000
  c.data.scaling = "unit"       # the prior is trained here ('dsm'), not a VDM
  c.sde.t_min = 1e-3            # the paper's VP SDE, eps = 1e-3
  c.prior.source = "dsm"
  c.prior.model = "unet"
  c.prior.ch = 128
  c.prior.n_blocks = 2
  c.prior.ch_mult = (1, 2, 2) if arg == "cifar10" else (1, 2, 2, 2)
  c.prior.steps = 400_000
  c.prior.lr = 2e-4
  c.prior.ema = 0.9999
  c.encoder.model = "conv"
  k = 384 if arg == "cifar10" else 512
  c.encoder.latent_dims = (k,)
  c.train.scorevae_latent_dims = (k,)
  c.encoder.ch = 64
  c.encoder.ch_mult = (1, 2, 2, 2)
  c.encoder.hidden = (1024,)
  c.train.steps = 200_000
  c.train.lr = 2e-4
  c.train.betas = (0.01,)
  c.train.plus_steps = 0        # ScoreVAE+: e.g. 100_000 with a wider correction
  c.correction.hidden = (1024, 1024)
  c.vae.hidden = (1024, 1024)
  c.eval.sde_steps = 1000
  c.eval.ode_steps = 128
  c.eval.batch_size = 100
  c.eval.features = "classifier" if arg == "cifar10" else "pca"
  c.eval.feature_dim = 64
  c.eval.classifier_steps = 5000
  return c
