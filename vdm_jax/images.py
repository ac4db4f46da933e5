"""Pictures: PNG grids of discrete image samples (Pillow)."""

from __future__ import annotations

import math
import os

import numpy as np


def to_uint8(images, vocab_size: int):
  """Maps integer images in {0..V-1} to uint8 {0..255} (identity for V = 256)."""
  images = np.asarray(images)
  if vocab_size == 256:
    return images.astype(np.uint8)
  return np.round(images.astype(np.float64) * 255.0 / (vocab_size - 1)).astype(np.uint8)


def make_grid(images, *, ncols: int | None = None, pad: int = 1, scale: int = 1):
  """Tiles `[N, H, W, C]` uint8 images into one `[rows*(H+pad), ..., C]` array."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"make_grid expects [N, H, W, 1 or 3] images, got {images.shape}.")
  n, h, w, c = images.shape
  ncols = ncols or int(math.ceil(math.sqrt(n)))
  nrows = int(math.ceil(n / ncols))
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
  for i, img in enumerate(images):
    r, q = divmod(i, ncols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h,
         pad + q * (w + pad):pad + q * (w + pad) + w] = img
  if scale > 1:
    grid = np.repeat(np.repeat(grid, scale, 0), scale, 1)
  return grid


def grid_image(images, *, vocab_size: int = 256, ncols=None, scale: int | None = None):
  """Integer images `[N, H, W, C]` as one uint8 `[H', W', C]` grid (small images enlarged)."""
  images = to_uint8(images, vocab_size)
  scale = scale or max(1, 128 // max(images.shape[1:3]))
  return make_grid(images, ncols=ncols, scale=scale)


def save_grid(images, path: str, *, vocab_size: int = 256, ncols=None,
              scale: int | None = None) -> str:
  """Writes integer images as a PNG grid (small images are enlarged); returns path."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = grid_image(images, vocab_size=vocab_size, ncols=ncols, scale=scale)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
  return path
