"""The discrete-time VDM chain as host-side float64 coefficients for entropy coding.

A T-step VDM is the Markov chain x -> z_{t_0} -> z_{t_1} -> ... -> z_{t_T} with
t_i = i / T. Bits-back coding needs, for every step, the forward conditional
q(z_{t_i} | z_{t_{i-1}}), the reverse model p(z_{t_{i-1}} | z_{t_i}) and the grid on
which each latent is discretised. This module computes all of them once, in
float64 numpy, from the T + 1 values gamma(t_i). Encoder and decoder call
:func:`make_chain` with the same `gamma_fn` and T, so both hold the very same
numbers (the gamma table is also fingerprinted in the file header).

Everything is written with gamma *differences* through ``expm1``/``softplus`` so
that nothing is formed as 1 - sigma^2 (Kingma et al. 2021, Variational Diffusion
Models, App. A; in float32 1 - sigmoid(gamma) is 17% off at gamma = 15 and 0 at 17).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks


def _softplus(x):
  return np.logaddexp(0.0, x)


def _sigmoid(x):
  # Stable for both signs: exp(-softplus(-x)).
  return np.exp(-_softplus(-x))


class Chain(NamedTuple):
  """Per-step coefficients of a T-step discrete-time VDM (float64, host).

  Index i runs over the latents z_i := z_{t_i}, i = 0..T, with t_i = i / T.

  Attributes:
    gamma32: [T+1] float32, gamma(t_i) exactly as the network sees it.
    gamma: [T+1] float64 copy of `gamma32`.
    alpha: [T+1] alpha_i = sqrt(sigmoid(-gamma_i)).
    sigma: [T+1] sigma_i = sqrt(sigmoid(gamma_i)).
    fwd_scale: [T+1] alpha_{i|i-1} = alpha_i / alpha_{i-1} (entry 0 unused, NaN).
    fwd_std: [T+1] sigma_{i|i-1} (entry 0 unused, NaN).
    c: [T+1] c_i = -expm1(gamma_{i-1} - gamma_i) in (0, 1) (entry 0 unused, NaN).
    rev_scale: [T+1] alpha_{i-1} / alpha_i (entry 0 unused, NaN).
    rev_std: [T+1] std of p(z_{i-1} | z_i) = sigma_{i-1} sqrt(c_i) (entry 0 unused).
    delta: [T+1] bin width of latent z_i's grid.
    bins_per_std: S = 2**latent_precision.
  """
  gamma32: np.ndarray
  gamma: np.ndarray
  alpha: np.ndarray
  sigma: np.ndarray
  fwd_scale: np.ndarray
  fwd_std: np.ndarray
  c: np.ndarray
  rev_scale: np.ndarray
  rev_std: np.ndarray
  delta: np.ndarray
  bins_per_std: float

  @property
  def num_steps(self) -> int:
    return self.gamma.shape[0] - 1


def gamma_table(gamma_fn: Callable, num_steps: int) -> np.ndarray:
  """gamma(i / T) for i = 0..T as float32, computed by one call of `gamma_fn`.

  Args:
    gamma_fn: schedule, maps t [T+1] float32 to gamma [T+1].
    num_steps: T >= 1.

  Returns:
    [T+1] float32 numpy array, strictly increasing.

  Raises:
    ValueError: if T < 1 or the schedule is not finite and strictly increasing.
  """
  if int(num_steps) != num_steps or num_steps < 1:
    raise ValueError(f"num_steps (T) must be an integer >= 1, got {num_steps!r}.")
  t = jnp.arange(num_steps + 1, dtype=jnp.float32) / num_steps
  g = np.asarray(gamma_fn(t), dtype=np.float32).reshape(-1)
  if g.shape != (num_steps + 1,):
    raise ValueError(f"gamma_fn must map t [{num_steps + 1}] to gamma [{num_steps + 1}], "
                     f"got shape {g.shape}.")
  if not np.all(np.isfinite(g)):
    raise ValueError("gamma_fn returned non-finite values on the grid t_i = i/T.")
  if not np.all(np.diff(g) > 0):
    raise ValueError("gamma_fn must be strictly increasing on t_i = i/T (got a non-increasing "
                     f"step; T={num_steps} may be too large for float32 gammas).")
  return g


def make_chain(gamma_fn: Callable, *, num_steps: int, latent_precision: int) -> Chain:
  r"""Coefficients and latent grids of the T-step VDM chain.

  With c_i = -expm1(gamma_{i-1} - gamma_i) (Kingma et al. 2021, App. A):

  .. math::

    q(z_i | z_{i-1}) = N(\alpha_{i|i-1} z_{i-1}, \sigma^2_{i|i-1}),\quad
      \log\alpha^2_{i|i-1} = \mathrm{softplus}(\gamma_{i-1}) - \mathrm{softplus}(\gamma_i),
      \quad \sigma^2_{i|i-1} = c_i\,\mathrm{sigmoid}(\gamma_i)

    p(z_{i-1} | z_i) = N\big(\tfrac{\alpha_{i-1}}{\alpha_i}(z_i - \sigma_i c_i \hat\epsilon),
      \ \sigma_{i-1}^2 c_i\big)

  Latent z_i lives on the grid delta_i * Z, whose width is a fixed fraction of
  the narrowest Gaussian that codes z_i: it is popped under q(z_i | z_{i-1})
  (std sigma_{i|i-1}; sigma_0 for q(z_0 | x)) and pushed under p(z_i | z_{i+1})
  (std sigma_i sqrt(c_{i+1})), or under the prior N(0, 1) for the top latent:

  .. math::

    \delta_i = \frac{\min(\sigma_i\sqrt{c_{i+1}},\ \sigma_{i|i-1})}{S}\ (i < T),
    \qquad \delta_T = \frac{\sigma_{T|T-1}}{S}, \qquad S = 2^{\text{latent\_precision}}.

  Both sides of the coder build the same grid from the same gammas, so bin widths
  cancel in log Q - log P (each is ~ density * delta_i) and the net rate tends to the -ELBO as S
  grows. The trade-off: each extra bit of precision costs about two bits per
  dimension of *initial bits* (paid once per stream: the first image pops z_0 and
  z_1 before pushing much) and removes a discretisation error that falls like
  1 / S^2 per coded latent and, as p and q share the grid, cancels to first order
  (measured within noise of zero at S = 2 on the digits).

  Args:
    gamma_fn: schedule t -> gamma(t) (float32), strictly increasing.
    num_steps: T, the number of diffusion steps.
    latent_precision: log2 of the number of bins per (narrowest) standard deviation.

  Returns:
    a :class:`Chain`.

  References:
    Kingma, Salimans, Poole, Ho, Variational Diffusion Models,
    https://arxiv.org/abs/2107.00630, 2021 (App. A, App. N).
  """
  if int(latent_precision) != latent_precision or not 0 <= latent_precision <= 12:
    raise ValueError(f"latent_precision must be an integer in [0, 12], got {latent_precision!r}.")
  g32 = gamma_table(gamma_fn, num_steps)
  g = g32.astype(np.float64)
  alpha = np.sqrt(_sigmoid(-g))
  sigma = np.sqrt(_sigmoid(g))
  nan = np.array([np.nan])
  g_prev, g_next = g[:-1], g[1:]
  c = np.concatenate([nan, -np.expm1(g_prev - g_next)])
  fwd_scale = np.concatenate([nan, np.exp(0.5 * (_softplus(g_prev) - _softplus(g_next)))])
  fwd_std = np.concatenate([nan, np.sqrt(c[1:] * _sigmoid(g_next))])
  rev_scale = np.concatenate([nan, np.exp(0.5 * (_softplus(g_next) - _softplus(g_prev)))])
  rev_std = np.concatenate([nan, sigma[:-1] * np.sqrt(c[1:])])
  s = float(2 ** int(latent_precision))
  pop_std = np.concatenate([sigma[:1], fwd_std[1:]])
  push_std = np.concatenate([rev_std[1:], [np.inf]])
  delta = np.minimum(pop_std, push_std) / s
  return Chain(gamma32=g32, gamma=g, alpha=alpha, sigma=sigma, fwd_scale=fwd_scale,
               fwd_std=fwd_std, c=c, rev_scale=rev_scale, rev_std=rev_std, delta=delta,
               bins_per_std=s)


def encode_pixels(x_int: np.ndarray, vocab_size: int) -> np.ndarray:
  r"""Integer pixels to the VDM data space, :math:`f = 2(x + 1/2)/V - 1` (float64).

  Raises ValueError for vocab_size < 2 or pixels outside [0, V - 1].
  """
  _checks.check_int_range(x_int, vocab_size, "x_int")
  return 2.0 * (x_int.astype(np.float64) + 0.5) / vocab_size - 1.0


def decoder_probs(z0: np.ndarray, chain: Chain, vocab_size: int) -> np.ndarray:
  r"""p(x | z_0) per dimension, float64, as a [D, V] table.

  .. math::

    \ell_k = -\tfrac12 (z_0/\alpha_0 - c_k)^2 e^{-\gamma_0},\quad
    c_k = (2k+1)/V - 1,\quad p(x = k | z_0) = \mathrm{softmax}_k(\ell)

  Args:
    z0: [D] float64 latent values (on the z_0 grid).
    chain: the :class:`Chain`.
    vocab_size: V.

  Returns:
    [D, V] float64 probabilities (rows sum to one).
  """
  vocab_size = _checks.check_vocab_size(vocab_size)
  centres = (2.0 * np.arange(vocab_size) + 1.0) / vocab_size - 1.0
  zt = z0 / chain.alpha[0]
  logits = -0.5 * (zt[:, None] - centres[None, :]) ** 2 * np.exp(-chain.gamma[0])
  logits -= logits.max(axis=1, keepdims=True)
  p = np.exp(logits)
  return p / p.sum(axis=1, keepdims=True)
