"""ScoreVAE: a VAE whose decoder is a frozen diffusion prior plus Bayes' rule.

Public names, one per line. See `conditional_score.py` for the model,
`losses.py` for the objective, `correction.py` for ScoreVAE+ and
`decoding.py` for sampling p(x | z).
"""

from vdm_jax.score_vae.conditional_score import bayes_rule_score
from vdm_jax.score_vae.conditional_score import bind_latent
from vdm_jax.score_vae.conditional_score import encoder_log_likelihood
from vdm_jax.score_vae.conditional_score import make_conditional_score
from vdm_jax.score_vae.correction import CorrectionMLP
from vdm_jax.score_vae.correction import make_corrected_score
from vdm_jax.score_vae.decoding import encode
from vdm_jax.score_vae.decoding import make_decoder
from vdm_jax.score_vae.encoder import ConvEncoder
from vdm_jax.score_vae.encoder import MLPEncoder
from vdm_jax.score_vae.encoder import gaussian_log_prob
from vdm_jax.score_vae.encoder import kl_to_standard_normal
from vdm_jax.score_vae.encoder import sample_latent
from vdm_jax.score_vae.gaussian_vae import GaussianDecoder
from vdm_jax.score_vae.gaussian_vae import make_vae_loss
from vdm_jax.score_vae.gaussian_vae import reconstruct as vae_reconstruct
from vdm_jax.score_vae.losses import make_latent_dsm
from vdm_jax.score_vae.losses import make_score_dsm
from vdm_jax.score_vae.losses import make_scorevae_loss
from vdm_jax.score_vae.losses import make_scorevae_plus_loss
from vdm_jax.score_vae.losses import make_scorevae_terms
from vdm_jax.score_vae.prior import check_prior_matches_data
from vdm_jax.score_vae.prior import check_vdm_matches_data
from vdm_jax.score_vae.prior import score_from_eps
from vdm_jax.score_vae.prior import score_from_vdm

__all__ = [
    "ConvEncoder",
    "CorrectionMLP",
    "GaussianDecoder",
    "MLPEncoder",
    "bayes_rule_score",
    "bind_latent",
    "check_prior_matches_data",
    "check_vdm_matches_data",
    "encode",
    "encoder_log_likelihood",
    "gaussian_log_prob",
    "kl_to_standard_normal",
    "make_conditional_score",
    "make_corrected_score",
    "make_decoder",
    "make_latent_dsm",
    "make_score_dsm",
    "make_scorevae_loss",
    "make_scorevae_plus_loss",
    "make_scorevae_terms",
    "make_vae_loss",
    "sample_latent",
    "score_from_eps",
    "score_from_vdm",
    "vae_reconstruct",
]
