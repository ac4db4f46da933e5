"""Lossless compression with a trained VDM: bits-back ANS coding (constriction)."""

from vdm_jax.compression.bitsback import DecodeMismatchError
from vdm_jax.compression.bitsback import decode_stream
from vdm_jax.compression.bitsback import encode_stream
from vdm_jax.compression.chain import Chain
from vdm_jax.compression.chain import make_chain
from vdm_jax.compression.codec import compress_file
from vdm_jax.compression.codec import decode
from vdm_jax.compression.codec import decompress_file
from vdm_jax.compression.codec import encode
from vdm_jax.compression.codec import read_header
from vdm_jax.compression.container import ContainerError
from vdm_jax.compression.container import CorruptedFileError
from vdm_jax.compression.container import ModelMismatchError
from vdm_jax.compression.container import NotACompressedFileError
from vdm_jax.compression.container import TruncatedFileError
from vdm_jax.compression.container import UnsupportedVersionError
from vdm_jax.compression.container import hash_params
from vdm_jax.compression.elbo import NelboTerms
from vdm_jax.compression.elbo import discrete_time_nelbo
from vdm_jax.compression.image_io import read_images
from vdm_jax.compression.image_io import write_images

__all__ = (
    "Chain",
    "ContainerError",
    "CorruptedFileError",
    "DecodeMismatchError",
    "ModelMismatchError",
    "NelboTerms",
    "NotACompressedFileError",
    "TruncatedFileError",
    "UnsupportedVersionError",
    "compress_file",
    "decode",
    "decode_stream",
    "decompress_file",
    "discrete_time_nelbo",
    "encode",
    "encode_stream",
    "hash_params",
    "make_chain",
    "read_header",
    "read_images",
    "write_images",
)
