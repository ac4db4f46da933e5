"""Builds `vdm_test_patterns`, a tiny tfds dataset the tests read as they would CIFAR-10.

400 train and 100 test images, 32x32x3 uint8, of 10 classes of simple patterns
(stripes, checkerboard, disc, ring, ...) in random colours, with integer
labels; prepared in tfds's array_record format so that `tfds.data_source`
reads it with random access and without TensorFlow
(https://www.tensorflow.org/datasets/api_docs/python/tfds/data_source).

Writing the dataset encodes `tfds.features.Image` to PNG, which needs
TensorFlow; reading it does not. The prepared files are committed under
`tests/data/tfds/`, so the tests never run this script. To rebuild them
(byte-identical images and labels; the file layout may change with the
tensorflow-datasets version, so match the runtime's, 4.9.10 here):

  python3.11 -m venv /tmp/tfvenv
  /tmp/tfvenv/bin/pip install tensorflow-cpu tensorflow-datasets==4.9.10 \\
      array_record importlib_resources
  rm -rf tests/data/tfds/vdm_test_patterns
  /tmp/tfvenv/bin/python tests/data/make_tfds_fixture.py --data_dir=tests/data/tfds

`pattern_examples` is pure numpy, so the tests can regenerate the examples and
compare them with what tfds reads back.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

NAME = "vdm_test_patterns"
DATASET_VERSION = "1.0.0"
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
SPLIT_SIZES = {"train": 400, "test": 100}
SPLIT_SEEDS = {"train": 0, "test": 1}
CLASS_NAMES = ("h_stripes", "v_stripes", "diagonal", "checkerboard", "disc",
               "ring", "square", "cross", "h_gradient", "v_gradient")


def _mask(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
  """Foreground weights in [0, 1], [size, size], of pattern `label`."""
  y, x = np.mgrid[:size, :size].astype(np.float32)
  period = rng.integers(4, 9)
  phase = rng.integers(0, period)
  cy, cx = rng.uniform(10, 22, size=2)
  r = rng.uniform(5, 10)
  if label == 0:
    return ((y + phase) % period < period / 2).astype(np.float32)
  if label == 1:
    return ((x + phase) % period < period / 2).astype(np.float32)
  if label == 2:
    return ((x + y + phase) % period < period / 2).astype(np.float32)
  if label == 3:
    return (((x + phase) // (period / 2) + (y // (period / 2))) % 2).astype(np.float32)
  dist = np.hypot(y - cy, x - cx)
  if label == 4:
    return (dist < r).astype(np.float32)
  if label == 5:
    return (np.abs(dist - r) < 2).astype(np.float32)
  if label == 6:
    return (np.maximum(np.abs(y - cy), np.abs(x - cx)) < r).astype(np.float32)
  if label == 7:
    return (np.minimum(np.abs(y - cy), np.abs(x - cx)) < 2).astype(np.float32)
  if label == 8:
    return x / (size - 1)
  return y / (size - 1)


def pattern_examples(split: str):
  """The examples of `split`, a pure function of the split's seed.

  Returns:
    (images uint8 [N, 32, 32, 3] spanning 0..255, labels int64 [N] in 0..9);
    the labels cycle through the classes, so every class has N/10 images.
  """
  rng = np.random.default_rng(SPLIT_SEEDS[split])
  n = SPLIT_SIZES[split]
  labels = np.arange(n, dtype=np.int64) % NUM_CLASSES
  images = np.empty((n, *IMAGE_SHAPE), np.uint8)
  for i, label in enumerate(labels):
    mask = _mask(int(label), rng, IMAGE_SHAPE[0])[..., None]
    background, foreground = rng.uniform(0, 255, size=(2, 1, 1, 3))
    image = background + (foreground - background) * mask
    images[i] = np.clip(np.round(image), 0, 255).astype(np.uint8)
  return images, labels


def make_builder(data_dir: str):
  """A tfds builder of the dataset writing array_record files under `data_dir`."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class VdmTestPatterns(tfds.core.GeneratorBasedBuilder):
    """10 classes of 32x32 RGB patterns in random colours (a test fixture)."""

    VERSION = tfds.core.Version(DATASET_VERSION)
    RELEASE_NOTES = {DATASET_VERSION: "400 train / 100 test images."}

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          description=__doc__.splitlines()[0],
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Image(shape=IMAGE_SHAPE),
              "label": tfds.features.ClassLabel(names=CLASS_NAMES),
          }),
          supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
      del dl_manager  # generated, nothing to download.
      return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split):
      images, labels = pattern_examples(split)
      for i, (image, label) in enumerate(zip(images, labels)):
        yield i, {"image": image, "label": int(label)}

  assert VdmTestPatterns.name == NAME  # tfds names a builder after its class.
  return VdmTestPatterns(data_dir=data_dir, file_format="array_record")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "tfds"))
  args = parser.parse_args()
  builder = make_builder(args.data_dir)
  builder.download_and_prepare()
  print(f"prepared {NAME} in {builder.data_dir}")


if __name__ == "__main__":
  main()
