"""Reading and writing the images the codec works on (PNG files or a .npy array).

These are the file-system edge of the codec (the launcher's compress/decompress
modes use them); the codec itself only sees integer arrays.
"""

from __future__ import annotations

import glob
import os
from typing import Sequence

import numpy as np


def _png_paths(spec) -> list:
  if isinstance(spec, (list, tuple)):
    paths = [str(p) for p in spec]
  elif os.path.isdir(spec):
    paths = sorted(glob.glob(os.path.join(spec, "*.png")))
  else:
    paths = sorted(glob.glob(str(spec))) if any(c in str(spec) for c in "*?[") else [str(spec)]
  if not paths:
    raise ValueError(f"no PNG images found at {spec!r}.")
  return paths


def read_images(spec: str | os.PathLike | Sequence[str]) -> np.ndarray:
  """Load uint8 images as one [N, H, W, C] array.

  Args:
    spec: a ``.npy`` file holding uint8 images [N, H, W] or [N, H, W, C]; or a
      PNG file, a directory of PNG files (sorted by name), a glob pattern, or a
      comma-separated / Python list of PNG paths. All PNGs must share a size and
      mode; grey images get C = 1.

  Returns:
    [N, H, W, C] uint8.

  Raises:
    ValueError: on a missing file, a non-uint8 array or mismatched image sizes.
  """
  if isinstance(spec, (str, os.PathLike)) and str(spec).endswith(".npy"):
    if not os.path.exists(spec):
      raise ValueError(f"input file {spec!r} does not exist.")
    arr = np.load(spec, allow_pickle=False)
    if arr.dtype != np.uint8:
      raise ValueError(f"{spec!r}: expected a uint8 array of images, got dtype {arr.dtype}.")
    if arr.ndim == 3:
      arr = arr[..., None]
    if arr.ndim != 4:
      raise ValueError(f"{spec!r}: expected images [N, H, W] or [N, H, W, C], got {arr.shape}.")
    return arr
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if isinstance(spec, str) and "," in spec:
    spec = [p for p in spec.split(",") if p]
  images = []
  for path in _png_paths(spec):
    if not os.path.exists(path):
      raise ValueError(f"input image {path!r} does not exist.")
    with Image.open(path) as im:
      arr = np.asarray(im)
    if arr.dtype != np.uint8:
      raise ValueError(f"{path!r}: only 8-bit images are supported, got dtype {arr.dtype}.")
    images.append(arr[..., None] if arr.ndim == 2 else arr)
  shapes = {a.shape for a in images}
  if len(shapes) != 1:
    raise ValueError(f"all images must have the same shape, got {sorted(shapes)}.")
  return np.stack(images)


def write_images(images: np.ndarray, out: str | os.PathLike) -> list:
  """Save [N, H, W, C] uint8 images to a ``.npy`` file or as PNGs in a directory.

  Args:
    images: [N, H, W, C] (or [N, H, W]) uint8.
    out: path ending in ``.npy``, or a directory (created) that receives
      ``image_00000.png``, ...

  Returns:
    the list of written paths.
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(f"write_images expects uint8 images, got dtype {images.dtype}.")
  if str(out).endswith(".npy"):
    np.save(out, images)
    return [str(out)]
  from PIL import Image  # pylint: disable=g-import-not-at-top

  os.makedirs(out, exist_ok=True)
  paths = []
  for i, im in enumerate(images):
    if im.ndim == 3 and im.shape[-1] == 1:
      im = im[..., 0]
    path = os.path.join(out, f"image_{i:05d}.png")
    Image.fromarray(im).save(path)
    paths.append(path)
  return paths
