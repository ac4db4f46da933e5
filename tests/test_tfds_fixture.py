"""A dataset prepared by tfds, read for real: the committed `vdm_test_patterns` fixture.

The VDM reads it through `config.data.name = 'tfds'`, the CIFAR-10 path
(`tfds.data_source` over array_record, no TensorFlow); configs/vdm_tfds_fixture.py
differs from configs/vdm_cifar10.py's data section only in `tfds_name` and
`data_dir`. tests/data/make_tfds_fixture.py built the files.
"""

import os

import numpy as np
import pytest

from configs import vdm_cifar10
from configs import vdm_tfds_fixture
from tests.data import make_tfds_fixture as fixture
from vdm_jax import data
from vdm_jax import train
from vdm_jax import variance_minimization


def _by_bytes(images, labels):
  return {image.tobytes(): int(label) for image, label in zip(images, labels)}


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_fixture_holds_what_the_script_generates(split):
  source = data.make_source(vdm_tfds_fixture.get_config(), split)
  images, labels = source.get(np.arange(len(source)))
  expected_images, expected_labels = fixture.pattern_examples(split)
  assert images.shape == expected_images.shape and images.dtype == np.uint8
  # tfds stores the examples in its own (key-hash) order: compare as a mapping.
  assert _by_bytes(images, labels) == _by_bytes(expected_images, expected_labels)
  assert np.bincount(labels).tolist() == [len(labels) // 10] * 10


def test_only_the_dataset_name_and_dir_differ_from_cifar10():
  fixture_data = vdm_tfds_fixture.get_config().data.to_dict()
  cifar_data = vdm_cifar10.get_config().data.to_dict()
  differ = {k for k in fixture_data if fixture_data[k] != cifar_data[k]}
  assert differ == {"tfds_name", "data_dir"}, differ


@pytest.mark.parametrize("field, value, message", [
    ("image_shape", (8, 8, 1), r"'vdm_test_patterns' has images of shape \(32, 32, 3\) but "
                               r"config.data.image_shape is \(8, 8, 1\)"),
    ("vocab_size", 17, r"'vdm_test_patterns' stores uint8 pixels \(256 values\) but "
                       r"config.data.vocab_size is 17"),
    ("num_classes", 5, r"'vdm_test_patterns' has 10 label classes but "
                       r"config.data.num_classes is 5"),
])
def test_a_config_that_disagrees_with_the_dataset_fails_naming_both(field, value, message):
  config = vdm_tfds_fixture.get_config()
  config.data[field] = value
  with pytest.raises(ValueError, match=message):
    data.make_source(config, "train")


def test_dataset_checks_without_tfds():
  ok = dict(dataset="d", image_shape=(4, 4, 1), image_dtype=np.uint8, num_classes=3,
            config_image_shape=(4, 4, 1), vocab_size=256)
  data.check_dataset_matches_config(**ok)
  data.check_dataset_matches_config(**ok, config_num_classes=3)
  data.check_dataset_matches_config(**{**ok, "image_dtype": np.uint16, "vocab_size": 65536})
  # A size tfds declares as varying (downsampled_imagenet/32x32: (None, None, 3)).
  data.check_dataset_matches_config(**{**ok, "image_shape": (None, None, 1)})
  with pytest.raises(ValueError, match=r"shape \(None, None, 3\) but config.data.image_shape "
                                       r"is \(4, 4, 1\)"):
    data.check_dataset_matches_config(**{**ok, "image_shape": (None, None, 3)})
  with pytest.raises(ValueError, match="'d': images of dtype float32 are not discrete"):
    data.check_dataset_matches_config(**{**ok, "image_dtype": np.float32})
  with pytest.raises(ValueError, match="'d' has no 'label' feature"):
    data.check_dataset_matches_config(**{**ok, "num_classes": None}, config_num_classes=3)


def test_tiny_vdm_trains_evaluates_and_samples_class_conditionally(tmp_path, monkeypatch):
  """One short run on the fixture; its labels reach the loss of the conditional model."""
  config = vdm_tfds_fixture.get_config()
  config.training.num_train_steps = 2
  config.training.save_every = 2
  config.sampling.num_steps = 2
  # Not a test of several devices: one compiles its step ~30% faster. The
  # evaluation of one batch of 4 test images is still the end-of-run eval.
  config.training.num_devices = 1
  config.eval.batch_size = 4
  config.eval.max_batches = 1
  # Spies on the way in (each batch's values) and at the loss (what it is
  # traced with; a host callback would keep the step out of the compile cache).
  batches, loss_labels = [], []
  train_batches = data.train_batches
  vlb_loss_and_grads = variance_minimization.vlb_loss_and_grads

  def recording_batches(*args, **kwargs):
    for batch in train_batches(*args, **kwargs):
      batches.append(batch)
      yield batch

  def recording_loss(*args, label=None, **kwargs):
    loss_labels.append(None if label is None else (label.shape, label.dtype))
    return vlb_loss_and_grads(*args, label=label, **kwargs)

  monkeypatch.setattr(data, "train_batches", recording_batches)
  monkeypatch.setattr(variance_minimization, "vlb_loss_and_grads", recording_loss)
  # A fresh build, so that the step is traced here, with the spy (a run of an
  # equal config earlier in this process would have left its traced step).
  train._programs.cache_clear()  # pylint: disable=protected-access
  result = train.train_and_evaluate(config, str(tmp_path))

  assert result["step"] == 2 and np.isfinite(result["loss"])
  assert np.isfinite(result["test_bpd"]) and result["test_bpd"] > 0
  assert os.path.getsize(result["samples_png"]) > 100
  expected = _by_bytes(*fixture.pattern_examples("train"))
  labels = []
  for batch in batches[:2]:  # the loop may read ahead; steps 1 and 2 used these.
    images = batch["image"].reshape(-1, *config.data.image_shape)
    labels += batch["label"].reshape(-1).tolist()
    assert [expected[x.tobytes()] for x in images] == labels[-len(images):]
  assert len(set(labels)) > 1
  per_device = config.training.batch_size // config.training.num_devices
  assert loss_labels and set(loss_labels) == {((per_device,), np.dtype(np.int32))}, loss_labels
