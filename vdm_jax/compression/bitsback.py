"""Bits-back ANS coding over the discrete-time VDM chain, in the Bit-Swap order.

One ANS stack (``constriction.stream.stack.AnsCoder``) carries a whole stream of
images. Per image, the encoder runs (the Bit-Swap order of Kingma,
Abbeel, Ho 2019)::

    z_0 <- POP  Q(z_0 | x)                 # N(alpha_0 f, sigma_0^2) on the z_0 grid
           PUSH x with P(x | z_0)          # categorical decoder, V symbols per dimension
    for i = 1..T:
      z_i <- POP  Q(z_i | z_{i-1})         # N(alpha_{i|i-1} z_{i-1}, sigma^2_{i|i-1})
             PUSH z_{i-1} with P(z_{i-1} | z_i)   # N(mu_theta, sigma_{i-1}^2 c_i)
    PUSH z_T with N(0, I)

and the decoder runs the exact mirror image, images in reverse order. Each pop
after the first is paid for by the push just before it, and image k's first pop
by the bits image k-1 left on the stack, so the *initial bits* are paid once per
stream. The first few images of a stream are coded plainly at log2(V) bits per
dimension to put enough bits on the stack for the first bits-back image's pops
(:func:`num_funding_images`); below them lies a fixed pseudo-random stock
(:func:`initial_words`) whose untouched part is not written to the file (the
decoder regenerates it), so the file pays only for the stock bits actually used.

Discretisation (as in BB-ANS/Bit-Swap): latent z_i is an integer k_i on the grid delta_i * Z
(see :func:`vdm_jax.compression.chain.make_chain`). A Gaussian N(mu, s^2) codes k_i
as the offset j = k_i - round(mu / delta_i) under constriction's
``QuantizedGaussian(-M, M)`` with mean mu / delta_i - round(mu / delta_i) and std
s / delta_i, i.e. on the same absolute grid on push and pop. Offsets beyond the
window M (a bad model can put a latent far out in its tail) are sent through an
escape symbol +-(M + 1) followed by 32 raw bits, so coding never fails. All
means, stds and decoder probabilities are float64 numpy values computed by the
same expressions on both sides from the same grid integers and the same float32
network outputs: the network is called on identical [1, ...] inputs in both
directions, so its outputs are bit-identical on one machine and software stack.

References:
  Townsend, Bird, Barber, Practical lossless compression with latent variables
  using bits back coding (BB-ANS), https://arxiv.org/abs/1901.04866, 2019.
  Kingma, Abbeel, Ho, Bit-Swap: recursive bits-back coding for lossless
  compression with hierarchical latent variables, https://arxiv.org/abs/1905.06845, 2019.
  Kingma, Salimans, Poole, Ho, Variational Diffusion Models,
  https://arxiv.org/abs/2107.00630, 2021 (§6.3, App. N).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import constriction
import jax
import numpy as np

from vdm_jax import _checks
from vdm_jax.compression.chain import Chain
from vdm_jax.compression.chain import decoder_probs
from vdm_jax.compression.chain import encode_pixels

_MODEL = constriction.stream.model
_UNIFORM16 = _MODEL.Uniform(2 ** 16)
_UNIFORM24 = _MODEL.Uniform(2 ** 24)
_BIT_WEIGHTS = (1 << np.arange(24, dtype=np.int64))
_INITIAL_SEED = 0x5EED_B175


class DecodeMismatchError(RuntimeError):
  """The decoder did not retrace the encoder (different model, platform or data)."""


def initial_words(num_words: int) -> np.ndarray:
  """The fixed pseudo-random stock of initial bits at the bottom of every stack.

  Args:
    num_words: how many 32-bit words.

  Returns:
    [num_words] uint32; the last word has its top bit set so constriction reads
    it as a valid ANS head.
  """
  words = np.random.default_rng(_INITIAL_SEED).integers(
      0, 2 ** 32, size=num_words, dtype=np.uint32)
  words[-1] |= np.uint32(1 << 31)
  return words


def num_initial_words(dim: int) -> int:
  """Size of the initial stock: 64 bits per data dimension, plus slack.

  A pop of one symbol consumes at most 24 bits (constriction's probability
  precision), so this covers the first pop of z_0 (the main cost) with room for
  the running deficit of the first steps. Unused words cost nothing in the file.
  """
  return 2 * int(dim) + 64


def num_funding_images(chain: Chain, dim: int, vocab_size: int, num_images: int) -> int:
  """How many leading images are coded plainly (uniform over V) to fund the first pops.

  The first bits-back image of a stream pops z_0 and z_1 before it pushes
  anything substantial (p(x | z_0) costs almost nothing), so it borrows about
  two latents' worth of bits. Borrowed bits come either from the initial stock
  (and are then paid for in full) or from images already on the stack. Coding the
  first K images at log2(V) bits per dimension, with K just large enough to cover
  that dip, costs K * D * (log2 V - rate), which is never more than the dip.
  Encoder and decoder compute K from the same numbers.
  """
  s0 = chain.sigma[0] / chain.delta[0]
  s1 = chain.fwd_std[1] / chain.delta[1]
  h = math.log2(math.sqrt(2 * math.pi * math.e))
  dip = dim * (math.log2(s0) + math.log2(s1) + 2 * h)
  return min(num_images, int(math.ceil(dip / (dim * math.log2(vocab_size)))))


class _Windows(NamedTuple):
  pop: list      # QuantizedGaussian(-M, M) per latent i, for pops under q
  pop_m: list
  push: list     # QuantizedGaussian(-M-1, M+1) per latent i, for pushes under p / prior
  push_m: list


def _windows(chain: Chain, window: float) -> _Windows:
  """Window half-widths M (in bins) of every coded Gaussian: `window` stds, >= 16 bins.

  Every bin in a window gets at least constriction's smallest probability
  (2**-24), so windows are kept narrow: 2M + 1 bins cost about (2M + 1) 2**-24 /
  ln 2 bits per coded symbol. Pushes beyond the window use the escape code.
  """
  pop_std = np.concatenate([chain.sigma[:1], chain.fwd_std[1:]]) / chain.delta
  push_std = np.concatenate([chain.rev_std[1:], [1.0]]) / chain.delta
  pop_m = [max(16, int(math.ceil(window * s))) for s in pop_std]
  push_m = [max(16, int(math.ceil(window * s))) for s in push_std]
  if max(pop_m + push_m) > 2 ** 20:
    raise ValueError(f"latent windows too wide ({max(pop_m + push_m)} bins, limit 2**20): "
                     "lower latent_precision or raise T.")
  return _Windows(pop=[_MODEL.QuantizedGaussian(-m, m) for m in pop_m], pop_m=pop_m,
                  push=[_MODEL.QuantizedGaussian(-m - 1, m + 1) for m in push_m],
                  push_m=push_m)


def _bit_reverse24(u):
  bits = (u[:, None] >> np.arange(24)) & 1
  return (bits * _BIT_WEIGHTS[::-1]).sum(axis=1)


def _scramble(coder, n):
  """Bit-reverse the top n 24-bit words of the stack (an involution, rate-neutral).

  Right after a push under p, the quantile an ANS pop reads is the pushed
  symbol's own quantile under p (plus low-order state bits). Popping z_{i+1}
  under q straight after pushing z_{i-1} under p would therefore copy p's
  residuals of z_{i-1} into the "noise" of z_{i+1}, so the model's bias feeds
  back along the chain and the rate drifts far above the -ELBO. Reversing the
  bits of each 24-bit word moves the low-order, well-mixed state bits to the top
  so the next pops draw fresh-looking quantiles. Encoder and decoder apply it at
  mirrored points; it is its own inverse.
  """
  u = coder.decode(_UNIFORM24, n).astype(np.int64)
  coder.encode_reverse(_bit_reverse24(u).astype(np.int32), _UNIFORM24)


def _scramble_words(std_bins) -> int:
  """24-bit words to scramble before a pop: its expected cost, rounded up, plus one.

  The entropy of N(., s^2) on unit bins is about log2(s sqrt(2 pi e)) bits. Mixing
  only this many words keeps the first pop of a stream from rewriting (and so
  putting in the file) more of the initial stock than it consumes.
  """
  s = float(np.max(std_bins))
  bits = std_bins.shape[0] * max(1.0, math.log2(s * math.sqrt(2 * math.pi * math.e)))
  return int(math.ceil(bits / 24.0)) + 1


def _pop(coder, family, mean_bins, std_bins):
  _scramble(coder, _scramble_words(std_bins))
  centre = np.rint(mean_bins)
  j = coder.decode(family, mean_bins - centre, std_bins)
  return centre.astype(np.int64) + j.astype(np.int64)


def _push(coder, family, m, k, mean_bins, std_bins, what):
  """Push grid integers k under a window that holds them (a mirror of a pop)."""
  centre = np.rint(mean_bins)
  j = k - centre.astype(np.int64)
  if np.any(np.abs(j) > m):
    raise DecodeMismatchError(
        f"{what}: a latent fell outside the window it was popped from; the decoder "
        "diverged from the encoder (different model, schedule or platform).")
  coder.encode_reverse(j.astype(np.int32), family, mean_bins - centre, std_bins)
  _scramble(coder, _scramble_words(std_bins))


def _push_escaped(coder, family, m, k, mean_bins, std_bins):
  """Push grid integers k; offsets beyond +-M go through escape symbols + 32 raw bits."""
  centre = np.rint(mean_bins)
  j = k - centre.astype(np.int64)
  esc = np.abs(j) > m
  if np.any(esc):
    extra = np.abs(j[esc]) - (m + 1)
    if np.any(extra >= 2 ** 32):
      raise ValueError("a latent lies more than 2**32 bins from its model mean; the model "
                       "output is unusable for coding (check eps_fn).")
    hi, lo = extra >> 16, extra & 0xFFFF
    coder.encode_reverse(np.concatenate([hi, lo]).astype(np.int32), _UNIFORM16)
    j = np.where(esc, np.sign(j) * (m + 1), j)
  coder.encode_reverse(j.astype(np.int32), family, mean_bins - centre, std_bins)


def _pop_escaped(coder, family, m, mean_bins, std_bins):
  centre = np.rint(mean_bins)
  j = coder.decode(family, mean_bins - centre, std_bins).astype(np.int64)
  esc = np.abs(j) == m + 1
  n = int(esc.sum())
  if n:
    extra = coder.decode(_UNIFORM16, 2 * n).astype(np.int64)
    mag = (m + 1) + (extra[:n] << 16) + extra[n:]
    j[esc] = np.sign(j[esc]) * mag
  return centre.astype(np.int64) + j


class _Step(NamedTuple):
  """Float64 Gaussian parameters in bins for one step, shared by both sides."""
  fwd_mean: Callable   # k_{i-1} -> mean of q(z_i | z_{i-1}) in z_i-bins
  fwd_std: float
  rev_mean: Callable   # (k_i, eps_hat) -> mean of p(z_{i-1} | z_i) in z_{i-1}-bins
  rev_std: float


def _step(chain: Chain, i: int) -> _Step:
  d_prev, d_cur = chain.delta[i - 1], chain.delta[i]
  a, s_i, c_i, r = chain.fwd_scale[i], chain.sigma[i], chain.c[i], chain.rev_scale[i]

  def fwd_mean(k_prev):
    return a * (k_prev * d_prev) / d_cur

  def rev_mean(k_cur, eps_hat):
    return r * (k_cur * d_cur - s_i * c_i * eps_hat) / d_prev

  return _Step(fwd_mean, chain.fwd_std[i] / d_cur, rev_mean, chain.rev_std[i] / d_prev)


def make_eps_caller(eps_fn: Callable, chain: Chain, image_shape) -> Callable:
  """The one network call both sides make: eps_hat(z_i, gamma_i) on a [1, ...] batch.

  Args:
    eps_fn: ``eps_fn(z [B, *image_shape] float32, gamma [B] float32) -> eps_hat``.
    chain: the :class:`Chain` (its float32 gammas are fed to the network).
    image_shape: shape of one image.

  Returns:
    ``call(z [D] float64, i) -> eps_hat [D] float64``.
  """
  fn = eps_fn if hasattr(eps_fn, "lower") else jax.jit(eps_fn)  # jit only once.
  shape = (1,) + tuple(image_shape)

  def call(z, i):
    z32 = np.asarray(z, np.float32).reshape(shape)
    out = np.asarray(fn(z32, chain.gamma32[i:i + 1]), dtype=np.float64)
    if out.shape != shape:
      raise ValueError(f"eps_fn must return eps_hat of shape {shape}, got {out.shape}.")
    out = out.reshape(-1)
    if not np.all(np.isfinite(out)):
      raise ValueError(f"eps_fn returned non-finite values at step i={i}.")
    return out

  return call


def _check_images(images, vocab_size):
  _checks.check_vocab_size(vocab_size)
  images = np.asarray(images)
  if images.ndim < 2:
    raise ValueError(f"images must be [N, ...] with N >= 1, got shape {images.shape}.")
  if not np.issubdtype(images.dtype, np.integer):
    raise TypeError(f"images must be integers in [0, vocab_size), got dtype {images.dtype}.")
  _checks.check_int_range(images, vocab_size, "images")
  return images


def encode_stream(images, *, eps_fn: Callable, chain: Chain, vocab_size: int,
                  window: float = 16.0):
  """Bits-back encode a batch of integer images as one ANS stream.

  Args:
    images: [N, *image_shape] integers in [0, vocab_size).
    eps_fn: ``eps_fn(z [1, *image_shape], gamma [1]) -> eps_hat`` (float32).
    chain: :func:`~vdm_jax.compression.chain.make_chain` output (fixes T, grids).
    vocab_size: V.
    window: half-width, in stds, of the window each Gaussian is coded in.

  Returns:
    ``(payload, num_prefix)``: the uint32 words to store, and how many words of
    :func:`initial_words` the decoder must put in front of them.
  """
  images = _check_images(images, vocab_size)
  n, image_shape = images.shape[0], images.shape[1:]
  dim = int(np.prod(image_shape))
  stock = initial_words(num_initial_words(dim))
  coder = constriction.stream.stack.AnsCoder(stock.copy())
  win = _windows(chain, window)
  eps_at = make_eps_caller(eps_fn, chain, image_shape)
  cat = _MODEL.Categorical(perfect=False)
  steps = [None] + [_step(chain, i) for i in range(1, chain.num_steps + 1)]
  d0 = chain.delta[0]
  flat = images.reshape(n, dim)
  num_funding = num_funding_images(chain, dim, vocab_size, n)
  uniform = _MODEL.Uniform(int(vocab_size))
  for x in flat[:num_funding]:
    coder.encode_reverse(x.astype(np.int32), uniform)
  for x in flat[num_funding:]:
    f = encode_pixels(x, vocab_size)
    k = _pop(coder, win.pop[0], chain.alpha[0] * f / d0,
             np.full(dim, chain.sigma[0] / d0))
    coder.encode_reverse(x.astype(np.int32), cat, decoder_probs(k * d0, chain, vocab_size))
    for i in range(1, chain.num_steps + 1):
      st = steps[i]
      k_new = _pop(coder, win.pop[i], st.fwd_mean(k), np.full(dim, st.fwd_std))
      eps_hat = eps_at(k_new * chain.delta[i], i)
      _push_escaped(coder, win.push[i - 1], win.push_m[i - 1], k, st.rev_mean(k_new, eps_hat),
                    np.full(dim, st.rev_std))
      k = k_new
    _push_escaped(coder, win.push[-1], win.push_m[-1], k, np.zeros(dim),
                  np.full(dim, 1.0 / chain.delta[-1]))
  words = coder.get_compressed()
  m = min(words.size, stock.size)
  mismatch = np.nonzero(words[:m] != stock[:m])[0]
  num_prefix = int(mismatch[0]) if mismatch.size else m
  return words[num_prefix:].copy(), num_prefix


def decode_stream(payload, num_prefix: int, *, num_images: int, image_shape,
                  eps_fn: Callable, chain: Chain, vocab_size: int, window: float = 16.0):
  """Inverse of :func:`encode_stream`.

  Args:
    payload: uint32 words returned by the encoder.
    num_prefix: number of initial-stock words to prepend.
    num_images: N.
    image_shape: shape of one image.
    eps_fn, chain, vocab_size, window: exactly as given to the encoder.

  Returns:
    [N, *image_shape] int64 images.

  Raises:
    DecodeMismatchError: if the decoder provably left the encoder's path (a latent
      outside its window, or a final stack that is not the initial stock).
  """
  image_shape = tuple(image_shape)
  dim = int(np.prod(image_shape))
  stock = initial_words(num_initial_words(dim))
  if not 0 <= num_prefix <= stock.size:
    raise ValueError(f"num_prefix must be in [0, {stock.size}], got {num_prefix}.")
  _checks.check_vocab_size(vocab_size)
  coder = constriction.stream.stack.AnsCoder(
      np.concatenate([stock[:num_prefix], np.asarray(payload, np.uint32)]))
  win = _windows(chain, window)
  eps_at = make_eps_caller(eps_fn, chain, image_shape)
  cat = _MODEL.Categorical(perfect=False)
  steps = [None] + [_step(chain, i) for i in range(1, chain.num_steps + 1)]
  d0 = chain.delta[0]
  out = np.empty((num_images, dim), np.int64)
  num_funding = num_funding_images(chain, dim, vocab_size, num_images)
  for n in reversed(range(num_funding, num_images)):
    k = _pop_escaped(coder, win.push[-1], win.push_m[-1], np.zeros(dim),
                     np.full(dim, 1.0 / chain.delta[-1]))
    for i in range(chain.num_steps, 0, -1):
      st = steps[i]
      eps_hat = eps_at(k * chain.delta[i], i)
      k_prev = _pop_escaped(coder, win.push[i - 1], win.push_m[i - 1],
                            st.rev_mean(k, eps_hat), np.full(dim, st.rev_std))
      _push(coder, win.pop[i], win.pop_m[i], k, st.fwd_mean(k_prev), np.full(dim, st.fwd_std),
            f"image {n}, latent z_{i}")
      k = k_prev
    x = coder.decode(cat, decoder_probs(k * d0, chain, vocab_size)).astype(np.int64)
    f = encode_pixels(x, vocab_size)
    _push(coder, win.pop[0], win.pop_m[0], k, chain.alpha[0] * f / d0,
          np.full(dim, chain.sigma[0] / d0), f"image {n}, latent z_0")
    out[n] = x
  uniform = _MODEL.Uniform(int(vocab_size))
  for n in reversed(range(num_funding)):
    out[n] = coder.decode(uniform, dim)
  if not np.array_equal(coder.get_compressed(), stock):
    raise DecodeMismatchError(
        "after decoding, the ANS stack is not the initial stock of bits: the decoder "
        "diverged from the encoder (different model, schedule or platform), or the "
        "payload is corrupt.")
  return out.reshape((num_images,) + image_shape)
