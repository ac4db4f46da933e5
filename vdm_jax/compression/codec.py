"""Lossless image codec: bits-back coding with a discrete-time VDM, to bytes and files.

``encode(images, ...) -> bytes`` and ``decode(data, ...) -> images`` wrap
:mod:`vdm_jax.compression.bitsback` in the container of
:mod:`vdm_jax.compression.container`. The model is given as plain callables, so
any trained VDM can be used:

* ``gamma_fn(t) -> gamma`` (float32, strictly increasing; e.g. a bound
  ``vdm_jax.schedules`` module),
* ``eps_fn(z [B, *image_shape] float32, gamma [B] float32) -> eps_hat``, a pure
  (ideally jitted) function; the codec always calls it with B = 1,
* ``vocab_size`` V (pixels are integers in [0, V)),
* ``params_hash``: 32 bytes identifying the checkpoint
  (:func:`~vdm_jax.compression.container.hash_params`).

T (``num_steps``) and ``latent_precision`` are chosen at encode time and stored
in the header. Trade-offs:

* T: the discrete-time -ELBO falls as T grows, towards the continuous-time
  loss as T -> infinity (Kingma et al., Variational Diffusion Models,
  https://arxiv.org/abs/2107.00630, 2021), but encode and decode each cost T
  sequential network calls per image (batch 1).
* latent_precision p (2**p bins per narrowest std): both sides code every latent
  on the same grid, so bin widths cancel and the discretisation loss is second
  order; it was within noise of zero down to p = 1 on the digits and on a known
  categorical law (benchmarks/compression.py, tests). Each extra bit of p costs
  about 2 bits per data dimension once per stream (the first image borrows two
  latents' worth of bits, see ``bitsback.num_funding_images``), and very fine
  grids (p >= 6) lose to fixed-point ANS probabilities. p = 1-2 is the sweet
  spot; 2 is the default, for a margin on models whose p and q disagree more.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from vdm_jax.compression import bitsback
from vdm_jax.compression import container
from vdm_jax.compression.chain import make_chain

DEFAULT_NUM_STEPS = 50
DEFAULT_LATENT_PRECISION = 2
DEFAULT_WINDOW = 12.0


def _check_hash(params_hash):
  if not isinstance(params_hash, (bytes, bytearray)) or len(params_hash) != 32:
    raise TypeError("params_hash must be 32 bytes (use vdm_jax.compression.hash_params(params)), "
                    f"got {type(params_hash).__name__} of length "
                    f"{len(params_hash) if hasattr(params_hash, '__len__') else '?'}.")
  return bytes(params_hash)


def encode(images, *, eps_fn: Callable, gamma_fn: Callable, vocab_size: int, params_hash: bytes,
           num_steps: int = DEFAULT_NUM_STEPS, latent_precision: int = DEFAULT_LATENT_PRECISION,
           window: float = DEFAULT_WINDOW) -> bytes:
  """Compress a batch of integer images into one bits-back stream.

  The expected size is the T-step VDM negative ELBO of the images plus a
  one-off overhead (an 84-byte header, and the first images of the stream coded
  at log2(V) bits per dimension to fund the first bits-back pops), which the whole batch shares.

  Args:
    images: [N, *image_shape] integers in [0, vocab_size), rank of one image <= 4.
    eps_fn: noise prediction network, see the module docstring.
    gamma_fn: schedule t -> gamma(t).
    vocab_size: V.
    params_hash: 32-byte fingerprint of the model parameters.
    num_steps: T.
    latent_precision: log2 of the number of latent bins per standard deviation.
    window: half-width in stds of the window each Gaussian is coded in.

  Returns:
    the compressed file contents.

  References:
    Kingma, Salimans, Poole, Ho, Variational Diffusion Models,
    https://arxiv.org/abs/2107.00630, 2021 (§6.3).
  """
  params_hash = _check_hash(params_hash)
  images = np.asarray(images)
  if images.ndim < 2 or images.shape[0] < 1:
    raise ValueError(f"images must be [N, *image_shape] with N >= 1, got shape {images.shape}.")
  if int(vocab_size) != vocab_size or not 2 <= vocab_size < 2 ** 31:
    raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}.")
  if not 1 <= window <= 64:
    raise ValueError(f"window must be in [1, 64] standard deviations, got {window}.")
  chain = make_chain(gamma_fn, num_steps=num_steps, latent_precision=latent_precision)
  payload, num_prefix = bitsback.encode_stream(images, eps_fn=eps_fn, chain=chain,
                                               vocab_size=vocab_size, window=window)
  header = container.Header(
      image_shape=images.shape[1:], num_images=images.shape[0], vocab_size=int(vocab_size),
      num_steps=int(num_steps), latent_precision=int(latent_precision), window=float(window),
      params_hash=params_hash, schedule_crc=container.schedule_crc(chain.gamma32),
      images_digest=container.images_digest(images), num_prefix=num_prefix,
      num_payload_words=payload.size, payload_crc=0)
  return container.pack(header, payload)


def read_header(data: bytes) -> container.Header:
  """The validated header of a compressed file (see :mod:`container`)."""
  return container.unpack(data)[0]


def decode(data: bytes, *, eps_fn: Callable, gamma_fn: Callable, vocab_size: int,
           params_hash: bytes, image_shape=None) -> np.ndarray:
  """Decompress images written by :func:`encode`, bit-exactly.

  Every header field is checked before the first network call: its own range
  (:func:`container.check_header`), then against the model: parameter hash,
  vocabulary, image shape, the size of the initial stock, the latent windows
  that T, latent_precision and window give, and the schedule's gamma(i/T)
  table. Fields no check can bind to the model (latent_precision, window,
  num_prefix, images_digest within their ranges) make the decoder leave the
  encoder's path, which the bits-back stack detects (Townsend et al. 2019: the
  decoder must end on the initial bits) and the image checksum confirms.

  Args:
    data: the file contents.
    eps_fn, gamma_fn, vocab_size, params_hash: the same model as the encoder's.
    image_shape: the shape of one image the model codes (e.g.
      ``config.data.image_shape``); when None, `eps_fn` is called once on the
      header's shape instead, and an error there is a model mismatch.

  Returns:
    [N, *image_shape] images, uint8 when V <= 256, else int64.

  Raises:
    vdm_jax.compression.ContainerError subclasses for a bad file (one of them,
      InvalidHeaderError, for a header field out of range) or a model that is
      not the one the file was encoded with (by parameter hash, vocabulary, image
      shape or schedule); DecodeMismatchError if decoding diverged from encoding.
  """
  params_hash = _check_hash(params_hash)
  header, payload = container.unpack(data)
  if header.params_hash != params_hash[:len(header.params_hash)]:
    raise container.ModelMismatchError(
        "wrong checkpoint: the file was compressed with model parameters of hash "
        f"(params_hash) {header.params_hash.hex()[:16]}..., but the given model has hash "
        f"{params_hash.hex()[:16]}...; decode with the checkpoint used for encoding.")
  if header.vocab_size != vocab_size:
    raise container.ModelMismatchError(
        f"wrong model: the file has vocab_size={header.vocab_size}, the model {vocab_size}.")
  shape = tuple(header.image_shape)
  if image_shape is not None and shape != tuple(image_shape):
    raise container.ModelMismatchError(
        f"wrong model: the file holds images of image_shape={shape}, the model codes "
        f"{tuple(image_shape)}.")
  dim = int(np.prod(shape))
  max_prefix = bitsback.num_initial_words(dim)
  if header.num_prefix > max_prefix:
    raise container.InvalidHeaderError(
        f"invalid header: num_prefix must be in [0, {max_prefix}] (the initial stock for "
        f"images of shape {shape}), got {header.num_prefix}.")
  if image_shape is None:
    _probe(eps_fn, shape)
  chain = make_chain(gamma_fn, num_steps=header.num_steps,
                     latent_precision=header.latent_precision)
  if container.schedule_crc(chain.gamma32) != header.schedule_crc:
    raise container.ModelMismatchError(
        f"wrong schedule: gamma(i/T) of the given model for the file's num_steps (T)="
        f"{header.num_steps} does not match the file's schedule_crc (a different "
        "gamma_fn with the same parameter hash, or an altered T).")
  try:
    bitsback._windows(chain, header.window)  # pylint: disable=protected-access
  except ValueError as e:
    raise container.InvalidHeaderError(
        f"invalid header: num_steps={header.num_steps}, latent_precision="
        f"{header.latent_precision} and window={header.window} give latent windows no "
        f"encoder codes with ({e}).") from e
  fields = (f"num_images={header.num_images}, num_steps={header.num_steps}, latent_precision="
            f"{header.latent_precision}, window={header.window}, num_prefix={header.num_prefix}")
  try:
    images = bitsback.decode_stream(
        payload, header.num_prefix, num_images=header.num_images, image_shape=shape,
        eps_fn=eps_fn, chain=chain, vocab_size=vocab_size, window=header.window)
  except bitsback.DecodeMismatchError as e:
    raise bitsback.DecodeMismatchError(
        f"{e} The header fields used: {fields}; an altered field gives this error too.") from e
  if container.images_digest(images) != header.images_digest:
    raise bitsback.DecodeMismatchError(
        "decoded images do not match the encoder's checksum (images_digest): decoding "
        "diverged (different platform or non-deterministic eps_fn), or a header field "
        f"was altered ({fields}).")
  return images.astype(np.uint8) if vocab_size <= 256 else images


def _probe(eps_fn: Callable, image_shape) -> None:
  """One call of `eps_fn` on zeros [1, *image_shape]; failure is a ModelMismatchError."""
  shape = (1,) + tuple(image_shape)
  try:
    out = np.shape(eps_fn(np.zeros(shape, np.float32), np.zeros((1,), np.float32)))
  except Exception as e:  # pylint: disable=broad-except  (any network's shape error)
    raise container.ModelMismatchError(
        f"wrong model: the file holds images of image_shape={tuple(image_shape)}, which "
        f"the given eps_fn cannot take ({type(e).__name__}: {str(e)[:200]}).") from e
  if tuple(out) != shape:
    raise container.ModelMismatchError(
        f"wrong model: the file holds images of image_shape={tuple(image_shape)}; eps_fn "
        f"returned shape {tuple(out)} for a batch of shape {shape}.")


def compress_file(images, path: str | os.PathLike, **kwargs) -> int:
  """:func:`encode` to a file; returns the number of bytes written."""
  data = encode(images, **kwargs)
  with open(path, "wb") as fh:
    fh.write(data)
  return len(data)


def decompress_file(path: str | os.PathLike, **kwargs) -> np.ndarray:
  """:func:`decode` from a file."""
  with open(path, "rb") as fh:
    return decode(fh.read(), **kwargs)
