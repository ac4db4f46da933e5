"""Linear-Gaussian ScoreVAE model with closed forms (a test oracle and toy model).

Closed forms (Gaussian algebra; Bayes' rule for scores as in ScoreVAE):

x0 ~ N(0, S), z | x0 ~ N(W x0, V), VP diffusion x_t = a_t x0 + s_t xi.
With P = (a^2 S + s^2 I)^{-1}:
  prior score       grad log p_t(x_t)    = -P x_t
  latent likelihood p_t(z | x_t)         = N(a W S P x_t, B),
                    B = V + W (S - a^2 S P S) W^T
  posterior         grad log p_t(x_t|z)  = -(a^2 C_z + s^2 I)^{-1} (x_t - a m_z),
                    m_z = S W^T (W S W^T + V)^{-1} z, C_z = S - S W^T (...)^{-1} W S.

All functions take batched `x [B, D]`, `t [B]`, `z [B, K]` and work under jit.

References:
  Batzolis, Stanczuk, Schonlieb, ScoreVAE, https://arxiv.org/abs/2304.12141, 2023.
"""

import jax
import jax.numpy as jnp
import numpy as np


class LinearGaussian:
  """Closed forms of the linear-Gaussian model for a given SDE.

  Args:
    S: `[D, D]` data covariance.
    W: `[K, D]` latent map.
    V: `[K, K]` latent noise covariance.
    sde: any object with `marginal_coeffs(t [B]) -> (a_t [B], s_t [B])`.
  """

  def __init__(self, S, W, V, sde):
    self.S = jnp.asarray(S, jnp.float32)
    self.W = jnp.asarray(W, jnp.float32)
    self.V = jnp.asarray(V, jnp.float32)
    self.sde = sde
    self.d = self.S.shape[0]
    self.k = self.W.shape[0]

  def coeffs(self, t):
    return self.sde.marginal_coeffs(t)

  def _P(self, a, s):
    return jnp.linalg.inv(a**2 * self.S + s**2 * jnp.eye(self.d))

  def _A_B(self, a, s):
    P = self._P(a, s)
    A = a * self.W @ self.S @ P
    B = self.V + self.W @ (self.S - a**2 * self.S @ P @ self.S) @ self.W.T
    return A, B

  def prior_score(self, x, t):
    a, s = self.coeffs(t)
    return jax.vmap(lambda xi, ai, si: -self._P(ai, si) @ xi)(x, a, s)

  def latent_log_likelihood(self, x, t, z):
    """Exact log p_t(z | x_t) [B] (full covariance)."""
    a, s = self.coeffs(t)

    def one(xi, zi, ai, si):
      A, B = self._A_B(ai, si)
      r = zi - A @ xi
      _, logdet = jnp.linalg.slogdet(B)
      return -0.5 * (r @ jnp.linalg.solve(B, r) + logdet
                     + self.k * jnp.log(2 * jnp.pi))
    return jax.vmap(one)(x, z, a, s)

  def latent_mean_var(self, x, t):
    """Mean [B, K] and diagonal of B [B, K] of p_t(z | x_t)."""
    a, s = self.coeffs(t)

    def one(xi, ai, si):
      A, B = self._A_B(ai, si)
      return A @ xi, jnp.diag(B)
    return jax.vmap(one)(x, a, s)

  def posterior(self, z):
    """m_z [K->D] and C_z [D, D] of p(x0 | z) for one z [K]."""
    G = self.S @ self.W.T @ jnp.linalg.inv(self.W @ self.S @ self.W.T + self.V)
    return G @ z, self.S - G @ self.W @ self.S

  def posterior_score(self, x, t, z):
    a, s = self.coeffs(t)

    def one(xi, zi, ai, si):
      m, C = self.posterior(zi)
      return -jnp.linalg.solve(ai**2 * C + si**2 * jnp.eye(self.d), xi - ai * m)
    return jax.vmap(one)(x, z, a, s)

  def sample(self, rng, n):
    k1, k2 = jax.random.split(rng)
    L = jnp.linalg.cholesky(self.S)
    x0 = jax.random.normal(k1, (n, self.d)) @ L.T
    Lv = jnp.linalg.cholesky(self.V)
    z = x0 @ self.W.T + jax.random.normal(k2, (n, self.k)) @ Lv.T
    return x0, z


def random_model(sde, d: int = 3, k: int = 2, seed: int = 0) -> LinearGaussian:
  """A random well-conditioned instance (numpy seed `seed`)."""
  rng = np.random.default_rng(seed)
  A = rng.normal(size=(d, d))
  S = A @ A.T / d + 0.3 * np.eye(d)
  W = rng.normal(size=(k, d))
  V = np.diag(rng.uniform(0.2, 0.5, size=k))
  return LinearGaussian(S, W, V, sde)
