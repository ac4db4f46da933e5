"""Closed forms for Gaussian data x ~ N(mu, s^2) under a VP process (VDM VLB terms)."""

import math

import jax.numpy as jnp
import numpy as np

from vdm_jax import schedules

MU, S = 0.3, 0.5


def optimal_eps(z, gamma, mu=MU, s=S):
  """eps*(z, t) = sigma (z - alpha mu) / (alpha^2 s^2 + sigma^2)."""
  g = jnp.reshape(gamma, jnp.shape(gamma) + (1,) * (z.ndim - jnp.ndim(gamma)))
  a, sig = schedules.alpha(g), schedules.sigma(g)
  return sig * (z - a * mu) / (a * a * s * s + sig * sig)


def optimal_score(z, gamma, mu=MU, s=S):
  g = jnp.reshape(gamma, jnp.shape(gamma) + (1,) * (z.ndim - jnp.ndim(gamma)))
  a, sig = schedules.alpha(g), schedules.sigma(g)
  return -(z - a * mu) / (a * a * s * s + sig * sig)


def continuous_diffusion_loss(gamma_0, gamma_1, s=S):
  """E L_inf = 1/2 ln(w_0 / w_1), w = 1 + s^2 SNR."""
  w0 = 1 + s * s * math.exp(-gamma_0)
  w1 = 1 + s * s * math.exp(-gamma_1)
  return 0.5 * math.log(w0 / w1)


def discrete_diffusion_loss(gammas, s=S):
  """E L_T = 1/2 sum_i (SNR_s - SNR_t) s^2 / (1 + s^2 SNR_t) over the grid."""
  snr = np.exp(-np.asarray(gammas, np.float64))
  snr_s, snr_t = snr[:-1], snr[1:]
  return 0.5 * float(np.sum((snr_s - snr_t) * s * s / (1 + s * s * snr_t)))


def expected_neg_vlb(gamma_1, mu=MU, s=S):
  """E[-VLB] = H(x) + KL(q(z_1) || N(0, 1)), independent of gamma_0 and the shape."""
  a2 = 1 / (1 + math.exp(gamma_1))
  s2 = 1 - a2
  h = 0.5 * math.log(2 * math.pi * math.e * s * s)
  v1 = a2 * s * s + s2
  return h + 0.5 * (a2 * (s * s + mu * mu) + s2 - 1 - math.log(v1))
