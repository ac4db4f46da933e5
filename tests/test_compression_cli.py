"""Tests for vdm_jax/compression/cli.py: the launcher's compress/decompress modes fail by name.

Every check here runs before the model is loaded or any image is coded; the
tests make loading and coding raise to prove it.
"""

import math

import ml_collections
import numpy as np
import pytest

from vdm_jax import compression
from vdm_jax import training
from vdm_jax.compression import cli
from vdm_jax.compression import codec
from vdm_jax.compression import toy_model

V = 5
SHAPE = (2, 3, 1)


@pytest.fixture(scope="module")
def spec():
  model = toy_model.init_toy_vdm(SHAPE, vocab_size=V, hidden=(16,), random_output=True)
  return (model.eps_fn, model.gamma_fn, V, compression.hash_params(model.params))


def _config(**compression_fields):
  comp = {"num_steps": 2, "latent_precision": 2}
  comp.update(compression_fields)
  return ml_collections.ConfigDict({"compression": comp,
                                    "data": {"image_shape": SHAPE, "vocab_size": V}})


def _images(n, shape=SHAPE, seed=0):
  return np.random.default_rng(seed).integers(0, V, (n,) + tuple(shape)).astype(np.uint8)


def _forbid(monkeypatch, *names):
  """Makes cli.load_model and the named codec functions fail the test if called."""
  def fail(*args, **kwargs):
    raise AssertionError("called before the arguments were checked")
  monkeypatch.setattr(cli, "load_model", fail)
  for name in names:
    monkeypatch.setattr(codec, name, fail)


def _compress(tmp_path, spec, images, name="x.vdmc", config=None):
  src = tmp_path / f"{name}.npy"
  np.save(src, images)
  return cli.run("compress", config or _config(), str(tmp_path), str(src),
                 str(tmp_path / name), model=spec)


def test_second_decompress_into_a_used_png_folder_is_refused(tmp_path, spec, monkeypatch):
  _compress(tmp_path, spec, _images(6), "six.vdmc")
  _compress(tmp_path, spec, _images(3, seed=1), "three.vdmc")
  first = cli.run("decompress", _config(), str(tmp_path), str(tmp_path / "six.vdmc"),
                  str(tmp_path / "out.npy"), model=spec)
  assert first["png_dir"] == str(tmp_path / "out")
  assert len(list((tmp_path / "out").iterdir())) == 6
  _forbid(monkeypatch, "decode", "decompress_file")
  with pytest.raises(ValueError, match=r"--output .*out.npy.*holds 6 entries.*image_00000.png.*"
                                       r"Remove the folder or choose another --output"):
    cli.run("decompress", _config(), str(tmp_path), str(tmp_path / "three.vdmc"),
            str(tmp_path / "out.npy"), model=spec)
  # Nothing was touched: the first decode's outputs are still whole and consistent.
  assert len(list((tmp_path / "out").iterdir())) == 6
  assert np.load(tmp_path / "out.npy").shape[0] == 6


def test_decompress_into_an_empty_png_folder_and_a_fresh_name(tmp_path, spec):
  _compress(tmp_path, spec, _images(3), "three.vdmc")
  (tmp_path / "out").mkdir()
  res = cli.run("decompress", _config(), str(tmp_path), str(tmp_path / "three.vdmc"),
                str(tmp_path / "out"), model=spec)
  assert res["output"] == str(tmp_path / "out.npy")
  np.testing.assert_array_equal(np.load(res["output"]), _images(3))
  np.testing.assert_array_equal(compression.read_images(res["png_dir"]), _images(3))
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("mode", ["compress", "decompress"])
def test_output_path_is_checked_before_any_coding(tmp_path, spec, monkeypatch, mode):
  _compress(tmp_path, spec, _images(2), "x.vdmc")
  src = tmp_path / ("x.vdmc.npy" if mode == "compress" else "x.vdmc")
  _forbid(monkeypatch, "encode", "compress_file", "decode", "decompress_file")
  missing = tmp_path / "no_such_folder" / "y.out"
  with pytest.raises(ValueError, match=r"--output .*no_such_folder.*expected a path in an "
                                       r"existing folder.*does not exist"):
    cli.run(mode, _config(), str(tmp_path), str(src), str(missing), model=spec)
  (tmp_path / "a_folder.npy").mkdir()
  with pytest.raises(ValueError, match="expected a file name, got the existing folder"):
    cli.run(mode, _config(), str(tmp_path), str(src), str(tmp_path / "a_folder.npy"), model=spec)


def test_zero_images_is_a_named_error(tmp_path, spec, monkeypatch):
  _forbid(monkeypatch, "encode", "compress_file")
  with pytest.raises(ValueError, match=r"--input .*empty.npy.*expected at least one image, "
                                       r"got 0 \(an array of shape \(0, 2, 3, 1\)\)"):
    _compress(tmp_path, spec, np.zeros((0,) + SHAPE, np.uint8), "empty")


def test_channel_mismatch_is_a_named_error(tmp_path, monkeypatch):
  _forbid(monkeypatch, "encode", "compress_file")
  with pytest.raises(ValueError, match=r"--input .*the model codes images with 1 channel\(s\) "
                                       r"\(config.data.image_shape=\(2, 3, 1\)\), got 3 "
                                       r"channel\(s\)"):
    _compress(tmp_path, None, _images(2, (2, 3, 3)), "rgb")


def test_image_size_different_from_the_models_is_a_named_error(tmp_path, monkeypatch):
  # Same number of pixels as the model's 2x3 images: coded without a word before.
  _forbid(monkeypatch, "encode", "compress_file")
  with pytest.raises(ValueError, match=r"--input .*the model codes 2x3 images "
                                       r"\(config.data.image_shape=\(2, 3, 1\)\), got 3x2"):
    _compress(tmp_path, None, _images(2, (3, 2, 1)), "transposed")
  # The shape can come with the model instead of the config.
  config = ml_collections.ConfigDict({"compression": {"num_steps": 2, "latent_precision": 2}})
  spec = (None, None, V, None, SHAPE)
  with pytest.raises(ValueError, match=r"the model codes 2x3 images \(the model's "
                                       r"image_shape=\(2, 3, 1\)\), got 4x4"):
    _compress(tmp_path, spec, _images(2, (4, 4, 1)), "large", config=config)


def test_decompress_with_a_config_of_another_image_shape_is_a_named_error(tmp_path, spec,
                                                                          monkeypatch):
  _compress(tmp_path, spec, _images(2), "x.vdmc")
  _forbid(monkeypatch, "decode", "decompress_file")
  config = _config()
  config.data.image_shape = (3, 2, 1)
  with pytest.raises(compression.ModelMismatchError,
                     match=r"--input .*x.vdmc.*image_shape=\(2, 3, 1\), the model codes "
                           r"\(3, 2, 1\) \(config.data.image_shape\)"):
    cli.run("decompress", config, str(tmp_path), str(tmp_path / "x.vdmc"),
            str(tmp_path / "y.npy"), model=spec)


@pytest.mark.parametrize("field, value", [("num_steps", 0), ("latent_precision", 13)])
def test_compression_config_is_checked_before_the_model_is_loaded(tmp_path, monkeypatch, field,
                                                                   value):
  _forbid(monkeypatch, "encode", "compress_file")
  with pytest.raises(ValueError, match=rf"config.compression.{field}.*got {value}"):
    _compress(tmp_path, None, _images(2), "x", config=_config(**{field: value}))


def _tiny_vdm_config(**model_fields):
  from configs import vdm_tiny  # pylint: disable=g-import-not-at-top
  config = vdm_tiny.get_config()
  for key, value in model_fields.items():
    config.model[key] = value
  return config


def _params_shaped_for(config):
  """Zero parameters with the shapes `config` builds (what a checkpoint of it holds)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  x = jnp.zeros((1,) + tuple(config.data.image_shape), jnp.int32)
  shapes = jax.eval_shape(lambda: train.build_vdm(config).init(jax.random.key(0), x, None))
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def test_checkpoint_of_another_architecture_is_a_named_error(tmp_path, monkeypatch):
  # Orbax restores arrays of other shapes into the template's tree without a word;
  # the codec must notice before the network fails on them.
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  config = _tiny_vdm_config()  # ch=8
  trained = _params_shaped_for(_tiny_vdm_config(ch=16))
  monkeypatch.setattr(train, "load_params",
                      lambda cfg, workdir: (train.build_vdm(cfg), trained, 3))
  src = tmp_path / "x.npy"
  np.save(src, np.zeros((1, 8, 8, 1), np.uint8))
  with pytest.raises(training.CheckpointError,
                     match=rf"--workdir '{tmp_path}'.*step 3 holds parameters of another "
                           r"architecture.*config.model.ch=8.*the config builds \(.*8.*\), "
                           r"the checkpoint holds \(.*16.*\).*Pass the config the run was "
                           r"trained with"):
    cli.run("compress", config, str(tmp_path), str(src), str(tmp_path / "x.vdmc"))


def test_checkpoint_of_another_tree_names_the_config_and_workdir(tmp_path, monkeypatch):
  from vdm_jax import train  # pylint: disable=g-import-not-at-top

  def load_params(config, workdir):
    raise training.CheckpointError(
        f"The checkpoint of step 3 in {workdir}/checkpoints does not match the model this "
        "config builds (ValueError: tree structures do not match).")

  monkeypatch.setattr(train, "load_params", load_params)
  src = tmp_path / "x.npy"
  np.save(src, np.zeros((1, 8, 8, 1), np.uint8))
  with pytest.raises(training.CheckpointError,
                     match=rf"--workdir '{tmp_path}'.*config.data.image_shape=\(8, 8, 1\).*"
                           r"config.model.ch=8, config.model.n_blocks=1.*Pass the config the "
                           r"run was trained with.*tree structures do not match"):
    cli.run("compress", _tiny_vdm_config(), str(tmp_path), str(src), str(tmp_path / "x.vdmc"))


def test_rate_above_log2_vocab_is_reported_at_compress_time(tmp_path, spec, monkeypatch):
  warnings = []
  monkeypatch.setattr(cli.logging, "warning", lambda msg, *a: warnings.append(msg % a))
  # 2 images of 6 pixels: the 84-byte header alone is 56 bits/dim, far above log2(5).
  res = _compress(tmp_path, spec, _images(2), "small.vdmc")
  assert res["raw_bits_per_dim"] == pytest.approx(math.log2(V))
  assert res["bits_per_dim"] > math.log2(V) and res["above_raw_rate"] is True
  assert len(warnings) == 1
  assert "more than the 2.322 bits/dim (log2 of vocab_size=5)" in warnings[0]
  assert "config.compression.num_steps (T=2" in warnings[0]
  # A file under log2(V) bits/dim says nothing.
  warnings.clear()
  monkeypatch.setattr(codec, "encode", lambda images, **kw: bytes(images.size // 8))
  res = _compress(tmp_path, spec, _images(64), "large.vdmc")
  assert res["bits_per_dim"] == pytest.approx(1.0) and res["above_raw_rate"] is False
  assert not warnings
