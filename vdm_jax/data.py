"""Datasets: the bundled digits (offline) and tfds image datasets, sharded per host.

Arrays returned by the loaders are integer images ``[N, H, W, C]`` with values
in ``{0, ..., vocab_size - 1}`` plus int labels; the VDM encodes them to
[-1, 1] at bin centres itself (`vdm_jax.losses.encode_discrete`). A source made
by `make_source` knows its configured `vocab_size`, and `train_batches` /
`eval_batches` check every batch against it on the host (numpy min/max, a few
microseconds for a digits batch), raising an error that names the batch's step
rather than letting an out-of-range pixel reach the loss. A tfds source made
from a config also checks the dataset's declared image shape, pixel dtype and
number of classes against the config before reading anything
(`check_dataset_matches_config`).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Iterator

import numpy as np

from vdm_jax import _checks

DIGITS_VOCAB_SIZE = 17  # grey levels 0..16 in scikit-learn's digits.
DIGITS_TEST_SIZE = 297  # 1,797 images: 1,500 train / 297 test.


def _sklearn_digits():
  """scikit-learn's digits as (uint8 [1797, 8, 8, 1], int32 [1797]).

  Read from the CSV that scikit-learn ships (`sklearn.datasets.load_digits`
  reads the same file) without importing scikit-learn, whose import costs
  every process that trains on the digits ~1.6 s; its loader is the fallback
  if the file is not where it has always been.
  """
  spec = importlib.util.find_spec("sklearn")
  path = (os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
          if spec is not None and spec.origin else None)
  if path is not None and os.path.exists(path):
    table = np.loadtxt(path, delimiter=",")  # [1797, 64 pixels + label]
    return (table[:, :-1].reshape(-1, 8, 8, 1).astype(np.uint8),
            table[:, -1].astype(np.int32))
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  return digits.images.astype(np.uint8)[..., None], digits.target.astype(np.int32)


def digits_arrays(split: str = "train", *, split_seed: int = 0):
  """The 8x8 handwritten digits that ship with scikit-learn (no network).

  Args:
    split: 'train' (1,500 images), 'test' (297) or 'all' (1,797).
    split_seed: seed of the fixed permutation that defines the split.

  Returns:
    (images uint8 [N, 8, 8, 1] with values 0..16, labels int32 [N] in 0..9).
  """
  images, labels = _sklearn_digits()
  perm = np.random.default_rng(split_seed).permutation(len(images))
  images, labels = images[perm], labels[perm]
  if split == "all":
    return images, labels
  if split == "test":
    return images[:DIGITS_TEST_SIZE], labels[:DIGITS_TEST_SIZE]
  if split == "train":
    return images[DIGITS_TEST_SIZE:], labels[DIGITS_TEST_SIZE:]
  raise ValueError(f"digits split must be 'train', 'test' or 'all', got {split!r}.")


# ----------------------------------------------------------------------------
# tfds (real datasets on a cluster; never downloads at run time).
# ----------------------------------------------------------------------------
def dataset_vocab_size(dtype) -> int:
  """Number of pixel values an unsigned-integer image dtype holds (uint8: 256)."""
  dtype = np.dtype(dtype)
  if dtype.kind != "u":
    raise ValueError(f"images of dtype {dtype} are not discrete pixels; vdm_jax "
                     f"models unsigned-integer images (e.g. uint8).")
  return 2 ** (8 * dtype.itemsize)


def check_dataset_matches_config(dataset: str, *, image_shape, image_dtype,
                                 num_classes: int | None, config_image_shape,
                                 vocab_size: int, config_num_classes: int | None = None):
  """Raises a ValueError if a dataset's declared features disagree with `config.data`.

  Compares the dataset's image shape with `config.data.image_shape`, the number
  of values its pixel dtype holds with `config.data.vocab_size` (the VDM's
  discrete decoder has one bin per pixel value), and, when
  `config_num_classes` is given (class-conditional models), its number of
  label classes with `config.data.num_classes`. Reading the declared features
  (tfds `DatasetInfo.features`) catches a mismatch before any model is built.

  Args:
    dataset: the dataset's name, for the message.
    image_shape: the dataset's declared image shape [H, W, C]; None for a
      dimension that varies (it then matches any configured size).
    image_dtype: the dataset's pixel dtype.
    num_classes: the dataset's number of label classes (None: no labels).
    config_image_shape: `config.data.image_shape`.
    vocab_size: `config.data.vocab_size`.
    config_num_classes: `config.data.num_classes`, or None to skip the labels.
  """
  # tfds declares a size that varies across examples as None (e.g.
  # downsampled_imagenet/32x32 declares (None, None, 3)); those match any size,
  # and train.py checks the first batch's actual shape.
  if len(image_shape) != len(config_image_shape) or any(
      d is not None and d != c for d, c in zip(image_shape, config_image_shape)):
    raise ValueError(
        f"dataset {dataset!r} has images of shape {tuple(image_shape)} but "
        f"config.data.image_shape is {tuple(config_image_shape)}; set "
        f"--config.data.image_shape to match the dataset.")
  try:
    expected_vocab = dataset_vocab_size(image_dtype)
  except ValueError as e:
    raise ValueError(f"dataset {dataset!r}: {e}") from None
  if vocab_size != expected_vocab:
    raise ValueError(
        f"dataset {dataset!r} stores {np.dtype(image_dtype)} pixels "
        f"({expected_vocab} values) but config.data.vocab_size is {vocab_size}; set "
        f"--config.data.vocab_size={expected_vocab}.")
  if config_num_classes is None:
    return
  if num_classes is None:
    raise ValueError(
        f"dataset {dataset!r} has no 'label' feature but the model is class "
        f"conditional (config.model.class_conditional).")
  if num_classes != config_num_classes:
    raise ValueError(
        f"dataset {dataset!r} has {num_classes} label classes but "
        f"config.data.num_classes is {config_num_classes}; set "
        f"--config.data.num_classes={num_classes}.")


class _TfdsSource:
  """Random access to a prepared tfds dataset (array_record), images and labels.

  If `image_shape` and `vocab_size` are given, the dataset's declared features
  are checked against them and `num_classes` (`check_dataset_matches_config`).
  """

  def __init__(self, name: str, split: str, data_dir: str | None,
               vocab_size: int | None = None, *, image_shape=None,
               num_classes: int | None = None):
    self.vocab_size = vocab_size
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    not_prepared = FileNotFoundError(
        f"tfds dataset {name!r} is not prepared in "
        f"{data_dir or '~/tensorflow_datasets'}; vdm_jax never downloads at run "
        f"time. Prepare it once with network access, e.g. `tfds build {name} "
        f"--file_format=array_record --data_dir=DIR`, then pass "
        f"--config.data.data_dir=DIR.")
    try:
      builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
      # A name tfds has no builder class for, and no files of in data_dir.
      raise not_prepared from None
    if not builder.is_prepared():
      raise not_prepared
    if image_shape is not None and vocab_size is not None:
      features = builder.info.features
      label = features["label"] if "label" in features else None
      check_dataset_matches_config(
          name, image_shape=features["image"].shape,
          image_dtype=features["image"].np_dtype,
          num_classes=None if label is None else label.num_classes,
          config_image_shape=image_shape, vocab_size=vocab_size,
          config_num_classes=num_classes)
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir,
                                      download=False)
    except Exception as e:  # tfds raises several types for a tfrecord-only build.
      raise FileNotFoundError(
          f"tfds dataset {name!r} is prepared but not readable by random access "
          f"({e}). Rebuild it with `--file_format=array_record`.") from e

  def __len__(self):
    return len(self._source)

  def get(self, indices):
    records = self._source.__getitems__(list(map(int, indices)))
    images = np.stack([r["image"] for r in records]).astype(np.uint8)
    labels = np.asarray([r.get("label", 0) for r in records], np.int32)
    return images, labels


def tfds_arrays(name: str, split: str = "train", *, data_dir: str | None = None,
                max_examples: int = 0):
  """A prepared tfds image dataset as arrays, read without TensorFlow (never downloads).

  Args:
    name: tfds name, e.g. 'cifar10' or 'mnist'.
    split: tfds split name.
    data_dir: tfds data dir (None: the default).
    max_examples: read only the first this many (0: all).

  Returns:
    (images uint8 [N, H, W, C], labels int32 [N]; 0 where the set has none).
  """
  source = _TfdsSource(name, split, data_dir)
  n = len(source) if not max_examples else min(max_examples, len(source))
  return source.get(np.arange(n))


def resize_images(images, size: int, *, grayscale: bool = False):
  """uint8 images [N, H, W, C] -> float32 [N, size, size, C'] in [0, 255].

  Antialiased bilinear resizing (`jax.image.resize`); `grayscale` maps RGB to
  luma with the ITU-R BT.601 weights (0.299, 0.587, 0.114).
  """
  import jax  # pylint: disable=g-import-not-at-top
  x = np.asarray(images, np.float32)
  if grayscale and x.shape[-1] == 3:
    x = x @ np.asarray([0.299, 0.587, 0.114], np.float32)[:, None]
  out = jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "linear",
                         antialias=True)
  return np.asarray(out)


class _ArraySource:
  """Random access to in-memory arrays."""

  def __init__(self, images, labels, vocab_size: int | None = None):
    self._images, self._labels = images, labels
    self.vocab_size = vocab_size

  def __len__(self):
    return len(self._images)

  def get(self, indices):
    return self._images[indices], self._labels[indices]


def make_source(config, split: str):
  """The dataset named by `config.data` (`name` = 'digits' or 'tfds')."""
  vocab_size = config.data.get("vocab_size")
  if config.data.name == "digits":
    return _ArraySource(*digits_arrays(split, split_seed=config.data.split_seed),
                        vocab_size=vocab_size)
  if config.data.name == "tfds":
    tfds_split = config.data.train_split if split == "train" else config.data.test_split
    conditional = config.get("model", {}).get("class_conditional", False)
    return _TfdsSource(config.data.tfds_name, tfds_split, config.data.data_dir or None,
                       vocab_size=vocab_size, image_shape=config.data.get("image_shape"),
                       num_classes=config.data.num_classes if conditional else None)
  raise ValueError(
      f"config.data.name must be 'digits' or 'tfds', got {config.data.name!r}.")


def batch_indices(step: int, global_batch: int, num_examples: int, seed: int):
  """Indices of the global batch at `step`: a deterministic function of the step.

  The data stream is the concatenation of per-epoch permutations
  (`default_rng((seed, epoch))`), cut into consecutive global batches. Because
  batch k depends only on (seed, k), a run restarted at step k reads exactly the
  batches an uninterrupted run would have read.
  """
  start = step * global_batch
  out = np.empty(global_batch, np.int64)
  filled = 0
  while filled < global_batch:
    epoch, offset = divmod(start + filled, num_examples)
    perm = np.random.default_rng((seed, epoch)).permutation(num_examples)
    take = min(global_batch - filled, num_examples - offset)
    out[filled:filled + take] = perm[offset:offset + take]
    filled += take
  return out


def check_divisible(global_batch: int, num_devices: int, what: str = "batch_size"):
  if global_batch % num_devices:
    raise ValueError(
        f"{what}={global_batch} must be divisible by the number of devices "
        f"({num_devices}); choose a multiple of {num_devices}.")


def train_batches(source, *, global_batch: int, start_step: int, seed: int,
                  process_index: int = 0, process_count: int = 1,
                  local_devices: int = 1) -> Iterator[dict]:
  """Yields this host's part of each global batch, shaped [devices, per_device, ...].

  Host p reads rows [p B/P, (p+1) B/P) of the global batch, so the P hosts
  together see exactly the single-host batch. If the source has a
  `vocab_size` (sources from `make_source` do), every batch's pixels are
  checked to lie in [0, vocab_size - 1]; a ValueError names the step.
  """
  check_divisible(global_batch, process_count * local_devices)
  per_host = global_batch // process_count
  vocab_size = getattr(source, "vocab_size", None)
  step = start_step
  while True:
    idx = batch_indices(step, global_batch, len(source), seed)
    images, labels = source.get(idx[process_index * per_host:(process_index + 1) * per_host])
    if vocab_size is not None:
      _checks.check_int_range(images, vocab_size, "training images",
                              f"in the batch of step {step}")
    yield {"image": images.reshape(local_devices, -1, *images.shape[1:]),
           "label": labels.reshape(local_devices, -1)}
    step += 1


def eval_batches(source, *, global_batch: int, process_index: int = 0,
                 process_count: int = 1, local_devices: int = 1) -> Iterator[dict]:
  """One pass over the whole split, padded to full batches with a `mask`."""
  check_divisible(global_batch, process_count * local_devices, "eval.batch_size")
  per_host = global_batch // process_count
  n = len(source)
  for start in range(0, n, global_batch):
    idx = np.arange(start, start + global_batch)
    mask = idx < n
    idx = np.where(mask, idx, 0)[process_index * per_host:(process_index + 1) * per_host]
    mask = mask[process_index * per_host:(process_index + 1) * per_host]
    images, labels = source.get(idx)
    if getattr(source, "vocab_size", None) is not None:
      _checks.check_int_range(images, source.vocab_size, "evaluation images",
                              f"in the batch starting at example {start}")
    yield {"image": images.reshape(local_devices, -1, *images.shape[1:]),
           "label": labels.reshape(local_devices, -1),
           "mask": mask.reshape(local_devices, -1)}


def check_images(images, image_shape, vocab_size: int, name: str = "data"):
  """Host-side check that a batch matches the configured shape and vocabulary."""
  if tuple(images.shape[-3:]) != tuple(image_shape):
    raise ValueError(
        f"{name}: images have shape {tuple(images.shape[-3:])} per example but "
        f"config.data.image_shape is {tuple(image_shape)}.")
  if images.min() < 0 or images.max() >= vocab_size:
    raise ValueError(
        f"{name}: pixel values span [{images.min()}, {images.max()}] but "
        f"config.data.vocab_size={vocab_size} allows [0, {vocab_size - 1}].")
