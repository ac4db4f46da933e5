"""Tests for vdm_jax/compression/container.py, codec.py and image_io.py: file format and errors."""

import numpy as np
import pytest

from vdm_jax import compression
from vdm_jax.compression import container
from vdm_jax.compression import toy_model

V = 5
SHAPE = (2, 3, 1)


@pytest.fixture(scope="module")
def model():
  return toy_model.init_toy_vdm(SHAPE, vocab_size=V, hidden=(16,), random_output=True)


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(0).integers(0, V, (6,) + SHAPE).astype(np.uint8)


@pytest.fixture(scope="module")
def data(model, images):
  return compression.encode(images, eps_fn=model.eps_fn, gamma_fn=model.gamma_fn, vocab_size=V,
                            params_hash=compression.hash_params(model.params), num_steps=3,
                            latent_precision=2)


def _decode(data, model, **kw):
  kw.setdefault("params_hash", compression.hash_params(model.params))
  kw.setdefault("eps_fn", model.eps_fn)
  return compression.decode(data, gamma_fn=model.gamma_fn, vocab_size=V, **kw)


def test_header_round_trip(data, images):
  header = compression.read_header(data)
  assert header.image_shape == SHAPE
  assert header.num_images == 6 and header.vocab_size == V and header.num_steps == 3
  assert header.latent_precision == 2
  assert len(data) == container.HEADER_SIZE + 4 * header.num_payload_words
  assert header.images_digest == container.images_digest(images)


def test_decode_round_trip(data, model, images):
  out = _decode(data, model)
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, images)


def test_file_round_trip(tmp_path, model, images):
  path = tmp_path / "digits.vdmc"
  kw = dict(eps_fn=model.eps_fn, gamma_fn=model.gamma_fn, vocab_size=V,
            params_hash=compression.hash_params(model.params))
  n = compression.compress_file(images, path, num_steps=2, latent_precision=1, **kw)
  assert path.stat().st_size == n
  np.testing.assert_array_equal(compression.decompress_file(path, **kw), images)


def test_not_a_file_and_version(data):
  with pytest.raises(compression.NotACompressedFileError, match="magic"):
    compression.read_header(b"PNG...." + data)
  bad = bytearray(data)
  bad[4] = 9
  with pytest.raises(compression.UnsupportedVersionError, match="version 9"):
    compression.read_header(bytes(bad))


def test_truncated_file(data):
  with pytest.raises(compression.TruncatedFileError, match="truncated"):
    compression.read_header(data[:-3])
  with pytest.raises(compression.TruncatedFileError, match="header"):
    compression.read_header(data[:40])


@pytest.mark.parametrize("where, what", [(20, "header checksum"), (-1, "payload checksum")])
def test_corrupted_file(data, where, what):
  bad = bytearray(data)
  bad[where] ^= 0x10
  with pytest.raises(compression.CorruptedFileError, match=what):
    compression.read_header(bytes(bad))


def test_trailing_bytes_are_corruption(data):
  with pytest.raises(compression.CorruptedFileError, match="trailing"):
    compression.read_header(data + b"\0")


def test_wrong_checkpoint(data, model):
  other = toy_model.init_toy_vdm(SHAPE, vocab_size=V, hidden=(16,), seed=1, random_output=True)
  with pytest.raises(compression.ModelMismatchError, match="wrong checkpoint"):
    _decode(data, model, params_hash=compression.hash_params(other.params))


def test_wrong_vocab_and_schedule(data, model):
  h = compression.hash_params(model.params)
  with pytest.raises(compression.ModelMismatchError, match="vocab_size"):
    compression.decode(data, eps_fn=model.eps_fn, gamma_fn=model.gamma_fn, vocab_size=V + 1,
                       params_hash=h)
  with pytest.raises(compression.ModelMismatchError, match="schedule"):
    compression.decode(data, eps_fn=model.eps_fn, gamma_fn=lambda t: model.gamma_fn(t) + 0.1,
                       vocab_size=V, params_hash=h)


def test_diverging_decoder_is_detected(data, model):
  # Same hash, different network: the decoder leaves the encoder's path and must say so.
  other = toy_model.init_toy_vdm(SHAPE, vocab_size=V, hidden=(16,), seed=7, random_output=True)
  with pytest.raises((compression.DecodeMismatchError, compression.ContainerError)):
    _decode(data, model, eps_fn=other.eps_fn)


def test_params_hash_is_validated(model, images):
  with pytest.raises(TypeError, match="params_hash"):
    compression.encode(images, eps_fn=model.eps_fn, gamma_fn=model.gamma_fn, vocab_size=V,
                       params_hash="abc")


def test_hash_params_sees_every_value(model):
  import jax  # pylint: disable=g-import-not-at-top
  h = compression.hash_params(model.params)
  assert len(h) == 32 and h == compression.hash_params(model.params)
  bumped = jax.tree.map(lambda p: p.at[(0,) * p.ndim].add(1e-6), model.params)
  assert compression.hash_params(bumped) != h


def test_image_io_npy_and_png(tmp_path, images):
  npy = tmp_path / "x.npy"
  compression.write_images(images, str(npy))
  np.testing.assert_array_equal(compression.read_images(str(npy)), images)
  paths = compression.write_images(images, str(tmp_path / "pngs"))
  assert len(paths) == 6
  np.testing.assert_array_equal(compression.read_images(str(tmp_path / "pngs")), images)
  np.testing.assert_array_equal(compression.read_images(",".join(paths[:2])), images[:2])
  with pytest.raises(ValueError, match="uint8"):
    np.save(tmp_path / "f.npy", images.astype(np.float32))
    compression.read_images(str(tmp_path / "f.npy"))
  with pytest.raises(ValueError, match="no PNG"):
    compression.read_images(str(tmp_path / "empty*.png"))


def test_cli_compress_decompress(tmp_path, model, images):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from vdm_jax.compression import cli  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict({"compression": {"num_steps": 2, "latent_precision": 2}})
  spec = (model.eps_fn, model.gamma_fn, V, compression.hash_params(model.params))
  src = tmp_path / "in.npy"
  np.save(src, images)
  out = cli.run("compress", config, str(tmp_path), str(src), str(tmp_path / "x.vdmc"), model=spec)
  assert out["images"] == 6 and out["bytes"] == (tmp_path / "x.vdmc").stat().st_size
  res = cli.run("decompress", config, str(tmp_path), str(tmp_path / "x.vdmc"),
                str(tmp_path / "y.npy"), model=spec)
  np.testing.assert_array_equal(np.load(res["output"]), images)
  assert len(list((tmp_path / "y").glob("*.png"))) == 6
  np.save(src, images + V)
  with pytest.raises(ValueError, match="vocab_size"):
    cli.run("compress", config, str(tmp_path), str(src), str(tmp_path / "z.vdmc"), model=spec)


# Header fields changed under a valid header checksum: each gives a named error.
_FIELDS = ("magic", "version", "latent_precision", "rank", "shape0", "shape1", "shape2",
           "shape3", "num_images", "vocab_size", "num_steps", "window", "params_hash",
           "schedule_crc", "images_digest", "num_prefix", "num_payload_words", "payload_crc")


def _with_field(data, field, value):
  """`data` with one header field replaced and the header CRC-32 recomputed."""
  import struct  # pylint: disable=g-import-not-at-top
  import zlib  # pylint: disable=g-import-not-at-top
  fields = list(struct.unpack_from(container._FORMAT, data, 0))
  i = _FIELDS.index(field)
  fields[i] = value(fields[i]) if callable(value) else value
  body = struct.pack(container._FORMAT, *fields)
  return body + struct.pack("<I", zlib.crc32(body)) + data[container.HEADER_SIZE:]


_HEADER_CASES = [
    ("magic", b"VDMX", compression.NotACompressedFileError, "magic"),
    ("version", 2, compression.UnsupportedVersionError, "version 2"),
    ("latent_precision", 13, container.InvalidHeaderError, "latent_precision"),
    ("latent_precision", 255, container.InvalidHeaderError, "latent_precision"),
    ("latent_precision", 3, compression.DecodeMismatchError, "latent_precision=3"),
    ("rank", 0, container.InvalidHeaderError, "image rank"),
    ("rank", 2, container.InvalidHeaderError, "unused image_shape"),
    ("rank", 4, container.InvalidHeaderError, "image_shape"),
    ("rank", 5, container.InvalidHeaderError, "image rank"),
    ("shape0", 0, container.InvalidHeaderError, "image_shape"),
    ("shape0", 3, compression.ModelMismatchError, r"image_shape=\(3, 3, 1\)"),
    ("shape1", 6, compression.ModelMismatchError, r"image_shape=\(2, 6, 1\)"),
    ("shape2", 3, compression.ModelMismatchError, r"image_shape=\(2, 3, 3\)"),
    ("shape3", 5, container.InvalidHeaderError, "unused image_shape"),
    ("num_images", 0, container.InvalidHeaderError, "num_images"),
    ("num_images", 2 ** 32 - 1, container.InvalidHeaderError, "num_images"),
    ("num_images", 5, compression.DecodeMismatchError, "num_images=5"),
    ("num_images", 7, compression.DecodeMismatchError, "num_images=7"),
    ("vocab_size", 0, container.InvalidHeaderError, "vocab_size"),
    ("vocab_size", V + 1, compression.ModelMismatchError, "vocab_size"),
    ("num_steps", 0, container.InvalidHeaderError, "num_steps"),
    ("num_steps", 2 ** 30, container.InvalidHeaderError, "num_steps"),
    ("num_steps", 2, compression.ModelMismatchError, r"num_steps \(T\)=2.*schedule_crc"),
    ("window", float("nan"), container.InvalidHeaderError, "window"),
    ("window", 0.5, container.InvalidHeaderError, "window"),
    ("window", 1e9, container.InvalidHeaderError, "window"),
    ("window", 13.0, compression.DecodeMismatchError, "window=13.0"),
    ("params_hash", b"\0" * 16, compression.ModelMismatchError, "params_hash"),
    ("schedule_crc", lambda c: c ^ 1, compression.ModelMismatchError, "schedule_crc"),
    ("images_digest", b"\0" * 8, compression.DecodeMismatchError, "images_digest"),
    ("num_prefix", 10 ** 6, container.InvalidHeaderError, "num_prefix"),
    ("num_prefix", lambda p: p - 1, compression.DecodeMismatchError, "num_prefix="),
    ("num_prefix", lambda p: p + 1, compression.DecodeMismatchError, "num_prefix="),
    ("num_payload_words", lambda p: p + 1, compression.TruncatedFileError, "truncated"),
    ("num_payload_words", lambda p: p - 1, compression.CorruptedFileError, "trailing"),
    ("payload_crc", lambda c: c ^ 1, compression.CorruptedFileError, "payload checksum"),
]


@pytest.mark.parametrize("field, value, error, message", _HEADER_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(_HEADER_CASES)])
def test_every_header_field_changed_under_a_valid_checksum_is_a_named_error(
    data, model, field, value, error, message):
  bad = _with_field(data, field, value)
  assert bad != data
  with pytest.raises(error, match=message):
    _decode(bad, model)


def test_every_header_field_is_covered_by_a_case():
  assert {c[0] for c in _HEADER_CASES} == set(_FIELDS)


@pytest.mark.parametrize("field, value", [("shape0", 3), ("shape2", 3), ("shape0", 1)])
def test_header_image_shape_is_checked_against_the_models(data, model, field, value):
  with pytest.raises(compression.ModelMismatchError, match="image_shape=.*the model codes"):
    _decode(_with_field(data, field, value), model, image_shape=SHAPE)
