"""Datasets: the bundled digits (offline) and tfds image datasets, sharded per host.

Arrays returned by the loaders are integer images ``[N, H, W, C]`` with values
in ``{0, ..., vocab_size - 1}`` plus int labels; the VDM encodes them to
[-1, 1] at bin centres itself (`vdm_jax.losses.encode_discrete`).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

DIGITS_VOCAB_SIZE = 17  # grey levels 0..16 in scikit-learn's digits.
DIGITS_TEST_SIZE = 297  # 1,797 images: 1,500 train / 297 test.


def digits_arrays(split: str = "train", *, split_seed: int = 0):
  """The 8x8 handwritten digits that ship with scikit-learn (no network).

  Args:
    split: 'train' (1,500 images), 'test' (297) or 'all' (1,797).
    split_seed: seed of the fixed permutation that defines the split.

  Returns:
    (images uint8 [N, 8, 8, 1] with values 0..16, labels int32 [N] in 0..9).
  """
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = digits.images.astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  perm = np.random.default_rng(split_seed).permutation(len(images))
  images, labels = images[perm], labels[perm]
  if split == "all":
    return images, labels
  if split == "test":
    return images[:DIGITS_TEST_SIZE], labels[:DIGITS_TEST_SIZE]
  if split == "train":
    return images[DIGITS_TEST_SIZE:], labels[DIGITS_TEST_SIZE:]
  raise ValueError(f"digits split must be 'train', 'test' or 'all', got {split!r}.")
