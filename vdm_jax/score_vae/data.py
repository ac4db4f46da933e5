"""Image data for ScoreVAE: integer pixels, and the map to the prior's model space.

ScoreVAE (Batzolis, Stanczuk, Schonlieb, https://arxiv.org/abs/2304.12141,
2023) encodes images with a frozen diffusion prior, so the data must be scaled
exactly as the prior was trained: `load_images` returns integer pixels in
{0..V-1} and `make_scaling` maps them to the model space ('unit':
x / (V - 1) * 2 - 1; 'bins': the VDM bin centres 2 (x + 1/2) / V - 1) and back
to the [-1, 1] pixel scale on which reconstructions are scored.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class ImageSplits(NamedTuple):
  """Integer images `[N, H, W, C]` in {0..levels-1}, labels `[N]` or None."""
  x_train: np.ndarray
  y_train: np.ndarray | None
  x_test: np.ndarray
  y_test: np.ndarray | None
  levels: int


class Scaling(NamedTuple):
  """`to_model(x_int)` and its inverse onto the [-1, 1] pixel scale."""
  to_model: Callable[[np.ndarray], np.ndarray]
  to_pixels: Callable[[np.ndarray], np.ndarray]


def load_images(*, source: str = "digits", name: str = "digits",
                image_size: int = 8, max_train: int = 0,
                max_test: int = 0) -> ImageSplits:
  """Train and test images as integer pixels, with labels where the set has them.

  Args:
    source: 'digits' (the bundled 8x8 digits, 17 grey levels) or 'tfds' (a
      prepared tfds data set, 256 levels, resized to `image_size` and rounded).
    name: the tfds name when `source == 'tfds'`.
    image_size: side of the resized tfds images.
    max_train: keep the first `max_train` training images (0: all).
    max_test: keep the first `max_test` test images (0: all).

  Returns:
    an `ImageSplits` (unpacks as `x_train, y_train, x_test, y_test, levels`).
  """
  if source == "digits":
    from vdm_jax.data import digits_arrays  # pylint: disable=g-import-not-at-top
    (xtr, ytr), (xte, yte) = digits_arrays("train"), digits_arrays("test")
    levels = 17
  elif source == "tfds":
    from vdm_jax import data as data_lib  # pylint: disable=g-import-not-at-top
    def split(which):
      n = max_train if which == "train" else max_test
      images, labels = data_lib.tfds_arrays(name, which, max_examples=n)
      images = data_lib.resize_images(images, image_size)
      return np.clip(np.round(images), 0, 255).astype(np.uint8), labels
    (xtr, ytr), (xte, yte) = split("train"), split("test")
    if np.all(ytr == 0):  # a set without labels
      ytr = yte = None
    levels = 256
  else:
    raise ValueError(f"source must be 'digits' or 'tfds', got {source!r}.")
  if max_train:
    xtr, ytr = xtr[:max_train], (None if ytr is None else ytr[:max_train])
  if max_test:
    xte, yte = xte[:max_test], (None if yte is None else yte[:max_test])
  return ImageSplits(xtr, ytr, xte, yte, levels)


def make_scaling(scaling: str, levels: int) -> Scaling:
  """`(to_model, to_pixels)` for integer pixels with `levels` grey levels.

  .. math::

    \\text{unit}: x \\mapsto \\frac{2x}{V - 1} - 1, \\qquad
    \\text{bins}: x \\mapsto \\frac{2 (x + 1/2)}{V} - 1

  'bins' are the VDM bin centres (`vdm_jax.losses.encode_discrete`), needed
  for a VDM prior. `to_pixels` maps model space back to the 'unit' scale, in
  which every metric is computed.

  Args:
    scaling: 'unit' or 'bins'.
    levels: V, the number of grey levels.
  """
  v = float(levels)
  if scaling == "unit":
    return Scaling(lambda x: np.asarray(x, np.float32) / (v - 1) * 2 - 1,
                   lambda x: np.asarray(x))
  if scaling == "bins":
    return Scaling(lambda x: 2 * (np.asarray(x, np.float32) + 0.5) / v - 1,
                   lambda x: ((np.asarray(x) + 1) * v / 2 - 0.5) / (v - 1) * 2 - 1)
  raise ValueError(f"scaling must be 'unit' or 'bins', got {scaling!r}.")
