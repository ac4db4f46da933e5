"""The compressed-file format: a fixed header, then the ANS payload words.

Layout (all integers little-endian)::

    offset size  field
    0      4     magic  b"VDMC"
    4      2     format version (1)
    6      1     latent_precision (log2 of bins per std)
    7      1     image rank R (<= 4)
    8      16    image shape, 4 x uint32 (unused entries 0)
    24     4     number of images N
    28     4     vocab_size V
    32     4     T (number of diffusion steps)
    36     4     window (half-width of coded Gaussians, in stds, as float32)
    40     16    model fingerprint: SHA-256 of the parameters, first 16 bytes
    56     4     CRC-32 of the float32 gamma table gamma(i/T), i = 0..T
    60     8     SHA-256 (first 8 bytes) of the original images
    68     4     number of initial-stock words the decoder prepends
    72     4     number of payload words P
    76     4     CRC-32 of the payload
    80     4     CRC-32 of bytes 0..79 of the header
    84     4P    payload: P uint32 words

Every way a file can be unusable gives its own exception that names the cause:
not a VDM file, unsupported version, corrupted header, truncated file, corrupted
payload, a header field no encoder writes (:class:`InvalidHeaderError`, e.g. a
field edited and the header checksum recomputed), or a different checkpoint /
schedule / image shape than the one that encoded it. :func:`unpack` checks each
field on its own; :func:`vdm_jax.compression.codec.decode` checks the fields
against the model.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import NamedTuple

import numpy as np

MAGIC = b"VDMC"
VERSION = 1
_FORMAT = "<4sHBB4IIIIf16sI8sIII"
_BODY = struct.calcsize(_FORMAT)
HEADER_SIZE = _BODY + 4
MAX_NUM_STEPS = 2 ** 20        # T: the codec makes T sequential network calls per image.
MAX_LATENT_PRECISION = 12      # as vdm_jax.compression.chain.make_chain.
MIN_WINDOW, MAX_WINDOW = 1.0, 64.0  # as vdm_jax.compression.codec.encode.
MAX_VALUES = 2 ** 30           # N * prod(image_shape): integers one file may hold.


class ContainerError(ValueError):
  """Base class: the compressed file cannot be decoded as it is."""


class NotACompressedFileError(ContainerError):
  """The data does not start with the vdm_jax magic bytes."""


class UnsupportedVersionError(ContainerError):
  """The file was written by an unknown format version."""


class CorruptedFileError(ContainerError):
  """A checksum (header or payload CRC-32) does not match."""


class TruncatedFileError(ContainerError):
  """The file is shorter than its header says."""


class ModelMismatchError(ContainerError):
  """The file was encoded with different model parameters, schedule or image shape."""


class InvalidHeaderError(CorruptedFileError):
  """A header field holds a value no encoder writes (the header checksum matches)."""


def _invalid(field: str, expected: str, got) -> InvalidHeaderError:
  return InvalidHeaderError(
      f"invalid header: {field} must be {expected}, got {got!r}; the file was "
      "altered after it was written (its header checksum was recomputed).")


def check_header(header: "Header") -> None:
  """Raises InvalidHeaderError for a field out of the range every encoder writes.

  Only the fields' own ranges are checked here; checks against a model
  (parameter hash, vocabulary, image shape, schedule, initial-stock size) are
  made by :func:`vdm_jax.compression.codec.decode`.
  """
  shape = tuple(header.image_shape)
  if not 1 <= len(shape) <= 4:
    raise _invalid("the image rank (len(image_shape))", "in [1, 4]", len(shape))
  if any(s < 1 for s in shape):
    raise _invalid("image_shape", "positive sizes", shape)
  if header.num_images < 1:
    raise _invalid("num_images", ">= 1", header.num_images)
  num_values = header.num_images * int(np.prod(shape, dtype=np.int64))
  if num_values > MAX_VALUES:
    raise _invalid("num_images * prod(image_shape)", f"<= {MAX_VALUES}", num_values)
  if header.vocab_size < 2:
    raise _invalid("vocab_size", ">= 2", header.vocab_size)
  if not 1 <= header.num_steps <= MAX_NUM_STEPS:
    raise _invalid("num_steps (T)", f"in [1, {MAX_NUM_STEPS}]", header.num_steps)
  if not 0 <= header.latent_precision <= MAX_LATENT_PRECISION:
    raise _invalid("latent_precision", f"in [0, {MAX_LATENT_PRECISION}]",
                   header.latent_precision)
  if not MIN_WINDOW <= header.window <= MAX_WINDOW:  # False for NaN too.
    raise _invalid("window", f"in [{MIN_WINDOW:g}, {MAX_WINDOW:g}] standard deviations",
                   header.window)


class Header(NamedTuple):
  """Decoded header fields (see the module docstring for the layout)."""
  image_shape: tuple
  num_images: int
  vocab_size: int
  num_steps: int
  latent_precision: int
  window: float
  params_hash: bytes  # 32 bytes when packing; the stored first 16 after unpacking
  schedule_crc: int
  images_digest: bytes
  num_prefix: int
  num_payload_words: int
  payload_crc: int


def images_digest(images: np.ndarray) -> bytes:
  """First 8 bytes of SHA-256 over the images' shape and int64 values."""
  images = np.ascontiguousarray(np.asarray(images, np.int64))
  h = hashlib.sha256(repr(images.shape).encode())
  h.update(images.astype("<i8").tobytes())
  return h.digest()[:8]


def schedule_crc(gamma32: np.ndarray) -> int:
  """CRC-32 of the float32 gamma table the coder was built from."""
  return zlib.crc32(np.asarray(gamma32, "<f4").tobytes())


def hash_params(params) -> bytes:
  """SHA-256 fingerprint of a parameter pytree (paths, shapes, dtypes and values).

  Args:
    params: any pytree of arrays (e.g. Flax params), or None.

  Returns:
    32 bytes.
  """
  import jax  # pylint: disable=g-import-not-at-top

  h = hashlib.sha256(b"vdm_jax params v1")
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  for path, leaf in leaves:
    arr = np.ascontiguousarray(np.asarray(leaf))
    h.update(jax.tree_util.keystr(path).encode())
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
  return h.digest()


def pack(header: Header, payload: np.ndarray) -> bytes:
  """Serialise a header and its uint32 payload to bytes (CRCs are computed here).

  Args:
    header: the fields; `num_payload_words` and `payload_crc` are overwritten.
    payload: [P] uint32.

  Returns:
    the file contents.
  """
  payload = np.asarray(payload, dtype="<u4")
  data = payload.tobytes()
  shape = tuple(int(s) for s in header.image_shape)
  if len(shape) > 4:
    raise ValueError(f"image rank must be <= 4, got shape {shape}.")
  if header.num_images * int(np.prod(shape, dtype=np.int64)) > MAX_VALUES:
    raise ValueError(f"one file holds at most {MAX_VALUES} integers, got {header.num_images} "
                     f"images of shape {shape}; split them over several files.")
  if len(header.params_hash) != 32:
    raise ValueError(f"params_hash must be 32 bytes, got {len(header.params_hash)}.")
  params_hash = header.params_hash[:16]
  body = struct.pack(
      _FORMAT, MAGIC, VERSION, header.latent_precision, len(shape),
      *(shape + (0,) * (4 - len(shape))), header.num_images, header.vocab_size,
      header.num_steps, header.window, params_hash, header.schedule_crc,
      header.images_digest, header.num_prefix, payload.size, zlib.crc32(data))
  return body + struct.pack("<I", zlib.crc32(body)) + data


def unpack(data: bytes):
  """Parse and validate a compressed file.

  Args:
    data: the file contents.

  Returns:
    ``(header, payload)`` with payload a [P] uint32 array.

  Raises:
    NotACompressedFileError, UnsupportedVersionError, CorruptedFileError,
    TruncatedFileError, InvalidHeaderError: naming what is wrong.
  """
  data = bytes(data)
  if len(data) < 6 or data[:4] != MAGIC:
    raise NotACompressedFileError(
        f"not a vdm_jax compressed file: expected magic {MAGIC!r}, got {data[:4]!r}.")
  version = struct.unpack_from("<H", data, 4)[0]
  if version != VERSION:
    raise UnsupportedVersionError(
        f"unsupported file format version {version}; this vdm_jax reads version {VERSION}.")
  if len(data) < HEADER_SIZE:
    raise TruncatedFileError(
        f"truncated file: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header.")
  fields = struct.unpack_from(_FORMAT, data, 0)
  (header_crc,) = struct.unpack_from("<I", data, _BODY)
  if zlib.crc32(data[:_BODY]) != header_crc:
    raise CorruptedFileError("corrupted file: the header checksum (CRC-32) does not match.")
  (_, _, precision, rank, s0, s1, s2, s3, n, vocab, steps, window, params_hash, sched_crc,
   digest, num_prefix, num_words, payload_crc) = fields
  if not 1 <= rank <= 4:
    raise _invalid("the image rank (len(image_shape))", "in [1, 4]", rank)
  if any((s0, s1, s2, s3)[rank:]):
    raise _invalid(f"the unused image_shape entries beyond rank {rank}", "0",
                   (s0, s1, s2, s3)[rank:])
  expected = HEADER_SIZE + 4 * num_words
  if len(data) < expected:
    raise TruncatedFileError(
        f"truncated file: {len(data)} bytes, but the header announces {expected} bytes "
        f"({num_words} payload words).")
  if len(data) > expected:
    raise CorruptedFileError(
        f"corrupted file: {len(data) - expected} unexpected trailing bytes after the payload.")
  payload_bytes = data[HEADER_SIZE:expected]
  if zlib.crc32(payload_bytes) != payload_crc:
    raise CorruptedFileError("corrupted file: the payload checksum (CRC-32) does not match.")
  header = Header(image_shape=(s0, s1, s2, s3)[:rank], num_images=n, vocab_size=vocab,
                  num_steps=steps, latent_precision=precision, window=float(window),
                  params_hash=params_hash, schedule_crc=sched_crc, images_digest=digest,
                  num_prefix=num_prefix, num_payload_words=num_words, payload_crc=payload_crc)
  check_header(header)
  payload = np.frombuffer(payload_bytes, dtype="<u4").astype(np.uint32)
  return header, payload
