"""ScoreVAE: a VAE whose decoder is a frozen diffusion prior plus Bayes' rule.

Public names, one per line. See `conditional_score.py` for the model,
`losses.py` for the objective, `correction.py` for ScoreVAE+,
`decoding.py` for sampling p(x | z), `prior.py` for obtaining the frozen
prior, `data.py` for the data and its scaling, `training.py` for fitting the
models, `evaluation.py`, `features.py` and `metrics.py` for scoring
reconstructions.

Reference: Batzolis, Stanczuk, Schonlieb, Score-based Diffusion Variational
Autoencoder (ScoreVAE), https://arxiv.org/abs/2304.12141, 2023.
"""

from vdm_jax.score_vae.conditional_score import bayes_rule_score
from vdm_jax.score_vae.conditional_score import bind_latent
from vdm_jax.score_vae.conditional_score import encoder_log_likelihood
from vdm_jax.score_vae.conditional_score import make_conditional_score
from vdm_jax.score_vae.correction import CorrectionMLP
from vdm_jax.score_vae.correction import make_corrected_score
from vdm_jax.score_vae.data import ImageSplits
from vdm_jax.score_vae.data import Scaling
from vdm_jax.score_vae.data import load_images
from vdm_jax.score_vae.data import make_scaling
from vdm_jax.score_vae.decoding import encode
from vdm_jax.score_vae.decoding import make_decoder
from vdm_jax.score_vae.encoder import ConvEncoder
from vdm_jax.score_vae.encoder import MLPEncoder
from vdm_jax.score_vae.encoder import gaussian_log_prob
from vdm_jax.score_vae.encoder import kl_to_standard_normal
from vdm_jax.score_vae.encoder import make_encoder
from vdm_jax.score_vae.encoder import sample_latent
from vdm_jax.score_vae.evaluation import decode_and_score
from vdm_jax.score_vae.evaluation import make_jit_decoder
from vdm_jax.score_vae.evaluation import map_batches
from vdm_jax.score_vae.evaluation import mean_kl
from vdm_jax.score_vae.evaluation import sample_prior
from vdm_jax.score_vae.evaluation import scorevae_decoders
from vdm_jax.score_vae.features import DigitFeatureClassifier
from vdm_jax.score_vae.features import FeatureSpace
from vdm_jax.score_vae.features import make_feature_space
from vdm_jax.score_vae.gaussian_vae import GaussianDecoder
from vdm_jax.score_vae.gaussian_vae import make_vae_loss
from vdm_jax.score_vae.gaussian_vae import reconstruct as vae_reconstruct
from vdm_jax.score_vae.losses import make_latent_dsm
from vdm_jax.score_vae.losses import make_score_dsm
from vdm_jax.score_vae.losses import make_scorevae_loss
from vdm_jax.score_vae.losses import make_scorevae_plus_loss
from vdm_jax.score_vae.losses import make_scorevae_terms
from vdm_jax.score_vae.metrics import reconstruction_metrics
from vdm_jax.score_vae.prior import check_prior_matches_data
from vdm_jax.score_vae.prior import check_vdm_matches_data
from vdm_jax.score_vae.prior import eps_network_metadata
from vdm_jax.score_vae.prior import load_vdm_prior
from vdm_jax.score_vae.prior import make_eps_network
from vdm_jax.score_vae.prior import score_from_eps
from vdm_jax.score_vae.prior import score_from_vdm
from vdm_jax.score_vae.prior import train_or_load_dsm_prior
from vdm_jax.score_vae.training import TrainedModel
from vdm_jax.score_vae.training import fit
from vdm_jax.score_vae.training import train_dsm_prior
from vdm_jax.score_vae.training import train_scorevae
from vdm_jax.score_vae.training import train_scorevae_plus
from vdm_jax.score_vae.training import train_vae

__all__ = [
    "ConvEncoder",
    "CorrectionMLP",
    "DigitFeatureClassifier",
    "FeatureSpace",
    "GaussianDecoder",
    "ImageSplits",
    "MLPEncoder",
    "Scaling",
    "TrainedModel",
    "bayes_rule_score",
    "bind_latent",
    "check_prior_matches_data",
    "check_vdm_matches_data",
    "decode_and_score",
    "encode",
    "encoder_log_likelihood",
    "eps_network_metadata",
    "fit",
    "gaussian_log_prob",
    "kl_to_standard_normal",
    "load_images",
    "load_vdm_prior",
    "make_conditional_score",
    "make_corrected_score",
    "make_decoder",
    "make_encoder",
    "make_eps_network",
    "make_feature_space",
    "make_jit_decoder",
    "make_latent_dsm",
    "make_scaling",
    "make_score_dsm",
    "make_scorevae_loss",
    "make_scorevae_plus_loss",
    "make_scorevae_terms",
    "make_vae_loss",
    "map_batches",
    "mean_kl",
    "reconstruction_metrics",
    "sample_latent",
    "sample_prior",
    "score_from_eps",
    "score_from_vdm",
    "scorevae_decoders",
    "train_dsm_prior",
    "train_or_load_dsm_prior",
    "train_scorevae",
    "train_scorevae_plus",
    "train_vae",
    "vae_reconstruct",
]
