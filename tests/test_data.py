import os

import numpy as np
import pytest

from vdm_jax import data
from vdm_jax import images


def test_digits_split_is_fixed_and_disjoint():
  train_x, train_y = data.digits_arrays("train")
  test_x, _ = data.digits_arrays("test")
  assert train_x.shape == (1500, 8, 8, 1) and test_x.shape == (297, 8, 8, 1)
  assert train_x.dtype == np.uint8 and train_x.max() == 16 and train_x.min() == 0
  assert set(np.unique(train_y)) == set(range(10))
  all_x, _ = data.digits_arrays("all")
  np.testing.assert_array_equal(np.concatenate([test_x, train_x]), all_x)
  with pytest.raises(ValueError, match="split"):
    data.digits_arrays("valid")


def test_digits_are_scikit_learns_and_its_loader_is_the_fallback(monkeypatch):
  """The CSV read without importing scikit-learn gives its `load_digits` arrays."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  ref = load_digits()
  images, labels = data._sklearn_digits()  # pylint: disable=protected-access
  np.testing.assert_array_equal(images[..., 0], ref.images.astype(np.uint8))
  np.testing.assert_array_equal(labels, ref.target)
  assert images.dtype == np.uint8 and labels.dtype == np.int32
  monkeypatch.setattr(data.os.path, "exists", lambda path: False)  # a moved file.
  fallback = data._sklearn_digits()  # pylint: disable=protected-access
  np.testing.assert_array_equal(fallback[0], images)
  np.testing.assert_array_equal(fallback[1], labels)
  assert fallback[1].dtype == np.int32


def test_batch_indices_are_epoch_permutations_and_resumable():
  n, b = 10, 4
  stream = np.concatenate([data.batch_indices(k, b, n, seed=3) for k in range(5)])
  assert sorted(stream[:10]) == list(range(10))  # epoch 0 is a permutation
  assert sorted(stream[10:20]) == list(range(10))  # and so is epoch 1
  np.testing.assert_array_equal(data.batch_indices(3, b, n, 3), stream[12:16])
  assert not np.array_equal(data.batch_indices(0, b, n, 3), data.batch_indices(0, b, n, 4))


def test_hosts_and_devices_partition_the_global_batch():
  source = data._ArraySource(*data.digits_arrays("test"))
  whole = next(data.train_batches(source, global_batch=8, start_step=5, seed=0))
  parts = [next(data.train_batches(source, global_batch=8, start_step=5, seed=0,
                                   process_index=p, process_count=2, local_devices=2))
           for p in range(2)]
  assert parts[0]["image"].shape == (2, 2, 8, 8, 1)
  stacked = np.concatenate([p["image"].reshape(-1, 8, 8, 1) for p in parts])
  np.testing.assert_array_equal(stacked, whole["image"][0])
  with pytest.raises(ValueError, match="divisible by the number of devices"):
    next(data.train_batches(source, global_batch=6, start_step=0, seed=0, local_devices=4))


def test_eval_batches_cover_the_split_once():
  source = data._ArraySource(*data.digits_arrays("test"))
  masks = [b["mask"] for b in data.eval_batches(source, global_batch=100, local_devices=4)]
  assert sum(int(m.sum()) for m in masks) == 297
  assert masks[0].shape == (4, 25)


def test_check_images_names_the_problem():
  x = np.zeros((2, 8, 8, 1), np.uint8)
  data.check_images(x, (8, 8, 1), 17)
  with pytest.raises(ValueError, match="image_shape"):
    data.check_images(x, (8, 8, 3), 17)
  with pytest.raises(ValueError, match="vocab_size=17"):
    data.check_images(x + 20, (8, 8, 1), 17)


def test_missing_tfds_dataset_fails_at_once(tmp_path):
  import ml_collections
  config = ml_collections.ConfigDict({"data": {
      "name": "tfds", "tfds_name": "mnist", "data_dir": str(tmp_path),
      "train_split": "train", "test_split": "test", "split_seed": 0}})
  with pytest.raises(FileNotFoundError, match="never downloads"):
    data.make_source(config, "train")


def test_sample_grid_png(tmp_path):
  x = np.random.default_rng(0).integers(0, 17, (6, 8, 8, 1))
  grid = images.make_grid(images.to_uint8(x, 17), ncols=3)
  assert grid.shape == (2 * 9 + 1, 3 * 9 + 1, 1)
  assert images.to_uint8(np.array([16]), 17)[0] == 255
  path = images.save_grid(x, str(tmp_path / "g.png"), vocab_size=17)
  from PIL import Image
  assert Image.open(path).size[0] > 100


def test_resize_images_keeps_constants_and_uses_luma_weights():
  from vdm_jax import data
  rgb = np.zeros((2, 16, 16, 3), np.uint8)
  rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
  out = data.resize_images(rgb, 4, grayscale=True)
  assert out.shape == (2, 4, 4, 1) and out.dtype == np.float32
  np.testing.assert_allclose(out, 0.299 * 100 + 0.587 * 200 + 0.114 * 50, rtol=1e-5)
  np.testing.assert_allclose(data.resize_images(rgb, 8)[..., 1], 200.0, rtol=1e-5)


def test_tfds_arrays_of_an_unprepared_set_fails_at_once(tmp_path):
  from vdm_jax import data
  with pytest.raises(FileNotFoundError, match="'mnist' is not prepared"):
    data.tfds_arrays("mnist", "train", data_dir=str(tmp_path))


def _source_with_bad_pixel(step, global_batch, seed, vocab_size=17):
  """Digits whose batch at `step` holds one pixel = vocab_size (and no other batch)."""
  images, labels = data.digits_arrays("train")
  images = images.copy()
  n = len(images)
  bad_row = next(i for i in data.batch_indices(step, global_batch, n, seed)
                 if i != 0 and all(i not in data.batch_indices(s, global_batch, n, seed)
                                   for s in range(step)))
  images[bad_row, 3, 4, 0] = vocab_size
  return data._ArraySource(images, labels, vocab_size=vocab_size)


def test_every_training_batch_is_range_checked_and_names_its_step():
  source = _source_with_bad_pixel(step=5, global_batch=8, seed=0)
  batches = data.train_batches(source, global_batch=8, start_step=0, seed=0)
  for _ in range(5):
    next(batches)
  with pytest.raises(ValueError, match=r"training images must lie in \[0, 16\] for "
                                       r"vocab_size=17, got min 0 and max 17 in the batch of step 5"):
    next(batches)


def test_sources_from_the_config_carry_its_vocab_size():
  import ml_collections
  config = ml_collections.ConfigDict({"data": {"name": "digits", "split_seed": 0,
                                               "vocab_size": 17}})
  assert data.make_source(config, "test").vocab_size == 17


def test_training_stops_at_the_step_of_a_bad_batch(tmp_path, monkeypatch):
  """A pixel out of range in the batch of step 2: an error naming step 2, no NaN window."""
  from configs import vdm_tiny
  from vdm_jax import train
  config = vdm_tiny.get_config()
  config.training.num_train_steps = 4
  config.eval.at_end = False
  config.sampling.at_end = False
  config.training.num_devices = 1  # not about devices: one compiles ~30% faster.
  bad = _source_with_bad_pixel(step=2, global_batch=config.training.batch_size,
                               seed=config.seed)
  make_source = data.make_source
  monkeypatch.setattr(data, "make_source",
                      lambda cfg, split: bad if split == "train" else make_source(cfg, split))
  with pytest.raises(ValueError, match=r"training images must lie in \[0, 16\] .*"
                                       r"in the batch of step 2"):
    train.train_and_evaluate(config, str(tmp_path))
  steps = sorted(os.listdir(tmp_path / "checkpoints")) if (tmp_path / "checkpoints").exists() else []
  assert "3" not in steps and "4" not in steps
