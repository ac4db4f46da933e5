"""Conditional image tasks: an observation operator A and paired data (y, x).

Each task maps a clean image batch ``x`` to a condition ``y = A(x)`` that has the
*same spatial shape* as ``x`` (``[N, H, W, Cy]``), so that every estimator can
take it as extra input channels, as in the MSDiff code (the low-resolution image
of super-resolution is up-sampled back by nearest neighbour; the inpainting
condition is the masked image plus the mask as one more channel; the edge
condition is a {-1, 1} edge map).

Conventions (shared with `vdm_jax.conditional.metrics` and reused by CAFLOW):
images are float arrays ``[N, H, W, C]`` **in [-1, 1]** (use
`to_unit_interval` / `from_unit_interval` to convert from/to [0, 1]). The
super-resolution and inpainting operators are linear and written in `jax.numpy`
(they work on numpy and jax arrays, also under `jit`); the edge operator calls
scikit-image on the host and so is numpy only.

.. math::

  \\text{SR}_f:\\; A(x) = U_f(\\text{avgpool}_f(x)),\\qquad
  \\text{inpaint}:\\; A(x) = [m \\odot x,\\; 2m - 1],\\qquad
  \\text{edges}:\\; A(x) = 2\\,\\text{canny}_\\sigma(x) - 1,

where :math:`U_f` repeats each pixel :math:`f \\times f` times and :math:`m` is
a {0, 1} mask of *observed* pixels.

References:
  Batzolis, Stanczuk, Schönlieb, Etmann, Conditional Image Generation with
  Score-Based Diffusion Models, https://arxiv.org/abs/2111.13606, 2021
  (super-resolution, inpainting and edge-to-image tasks).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks


def to_unit_interval(x):
  """Maps images from [-1, 1] to [0, 1]."""
  return (x + 1.0) / 2.0


def from_unit_interval(x):
  """Maps images from [0, 1] to [-1, 1]."""
  return 2.0 * x - 1.0


def digits_to_images(images_uint8):
  """Bundled 8x8 digits (uint8 values 0..16, `vdm_jax.data.digits_arrays`) -> [-1, 1].

  Raises ValueError for values outside 0..16 (8-bit images would land far
  outside [-1, 1]); rescale other data with `from_unit_interval`.
  """
  _checks.check_int_range(images_uint8, 17, "images_uint8 (digits grey levels)")
  return np.asarray(images_uint8, np.float32) / 8.0 - 1.0


def _check_image(x, name):
  _checks.check_rank(x, 4, f"{name} [N, H, W, C]")
  _checks.check_floating(x, name)


def downsample(x, factor: int):
  """Average-pools ``[N, H, W, C]`` by ``factor`` -> ``[N, H/f, W/f, C]``.

  Raises ValueError unless H and W are multiples of ``factor``.
  """
  _check_image(x, "x")
  if not isinstance(factor, (int, np.integer)) or factor < 1:
    raise ValueError(f"downsample factor must be a positive int, got {factor!r}.")
  n, h, w, c = x.shape
  if h % factor or w % factor:
    raise ValueError(f"downsample: image size {h}x{w} is not a multiple of "
                     f"factor {factor}.")
  x = jnp.reshape(x, (n, h // factor, factor, w // factor, factor, c))
  return jnp.mean(x, axis=(2, 4))


def upsample_nearest(y, factor: int):
  """Repeats every pixel ``factor x factor`` times: ``[N, h, w, C] -> [N, f h, f w, C]``."""
  _check_image(y, "y")
  if not isinstance(factor, (int, np.integer)) or factor < 1:
    raise ValueError(f"upsample factor must be a positive int, got {factor!r}.")
  return jnp.repeat(jnp.repeat(y, factor, axis=1), factor, axis=2)


def resize_condition(y, x_shape):
  """Brings a condition ``y [N, h, w, Cy]`` to x's spatial shape by nearest up-sampling.

  Args:
    y: `[N, h, w, Cy]` condition, e.g. a low-resolution image.
    x_shape: the shape `[N, H, W, C]` of the images it conditions.

  Returns:
    `[N, H, W, Cy]`.

  Raises:
    ValueError: if the batch sizes differ or H/h, W/w are not one same integer.
  """
  _check_image(y, "y")
  if len(x_shape) != 4:
    raise ValueError(f"x_shape must be [N, H, W, C], got {tuple(x_shape)}.")
  if y.shape[0] != x_shape[0]:
    raise ValueError(f"y batch {y.shape[0]} != x batch {x_shape[0]}.")
  fh, rh = divmod(x_shape[1], y.shape[1])
  fw, rw = divmod(x_shape[2], y.shape[2])
  if rh or rw or fh != fw or fh < 1:
    raise ValueError(
        f"cannot resize y of spatial size {y.shape[1]}x{y.shape[2]} to x's "
        f"{x_shape[1]}x{x_shape[2]}: need one integer up-sampling factor.")
  return upsample_nearest(y, fh)


def box_mask(shape, rng: np.random.Generator, *, frac: float = 0.25):
  """{0, 1} masks of *observed* pixels with one square hole at a random place.

  The hole side is ``floor(sqrt(frac H W))`` pixels (MSDiff: 25 % of the area).

  Args:
    shape: `(N, H, W)`.
    rng: numpy Generator.
    frac: fraction of the area hidden.

  Returns:
    float32 `[N, H, W, 1]`, 1 = observed.
  """
  n, h, w = shape
  if not 0.0 < frac < 1.0:
    raise ValueError(f"box mask frac must be in (0, 1), got {frac}.")
  side = max(1, int(np.floor(np.sqrt(frac * h * w))))
  if side > min(h, w):
    raise ValueError(f"box of side {side} does not fit a {h}x{w} image.")
  mask = np.ones((n, h, w, 1), np.float32)
  tops = rng.integers(0, h - side + 1, size=n)
  lefts = rng.integers(0, w - side + 1, size=n)
  for i in range(n):
    mask[i, tops[i]:tops[i] + side, lefts[i]:lefts[i] + side] = 0.0
  return mask


def random_mask(shape, rng: np.random.Generator, *, frac: float = 0.5):
  """{0, 1} masks hiding each pixel independently with probability ``frac``.

  Returns float32 `[N, H, W, 1]`, 1 = observed.
  """
  if not 0.0 < frac < 1.0:
    raise ValueError(f"random mask frac must be in (0, 1), got {frac}.")
  return (rng.random(tuple(shape) + (1,)) >= frac).astype(np.float32)


def inpaint_observe(x, mask):
  """Inpainting condition ``[m * x, 2 m - 1]`` -> ``[N, H, W, C + 1]``.

  Hidden pixels are set to 0 (mid grey) and the mask is appended as a channel so
  that a hidden pixel is not confused with an observed mid-grey one.
  """
  _check_image(x, "x")
  _check_image(mask, "mask")
  if mask.shape[:3] != x.shape[:3] or mask.shape[3] != 1:
    raise ValueError(f"mask must have shape {x.shape[:3] + (1,)}, got {mask.shape}.")
  return jnp.concatenate([x * mask, 2.0 * mask - 1.0], axis=-1)


def canny_edges(x, *, sigma: float = 0.5):
  """{-1, 1} Canny edge maps of images in [-1, 1] (grey = channel mean).

  Args:
    x: `[N, H, W, C]` in [-1, 1].
    sigma: width of the Gaussian smoothing before Canny (MSDiff blurs with 0.5).

  Returns:
    float32 numpy `[N, H, W, 1]`, 1 on edges and -1 elsewhere.
  """
  from skimage import feature  # pylint: disable=g-import-not-at-top
  x = np.asarray(x, np.float32)
  _check_image(x, "x")
  grey = np.clip(to_unit_interval(x.mean(axis=-1)), 0.0, 1.0)
  edges = np.stack([feature.canny(g, sigma=sigma) for g in grey])
  return (2.0 * edges.astype(np.float32) - 1.0)[..., None]


class Task(NamedTuple):
  """A conditional task: how to draw auxiliary randomness and observe.

  Attributes:
    name: e.g. 'sr4', 'inpaint_box', 'edges'.
    sample_aux: ``(rng: np.random.Generator, x_shape) -> aux`` (masks for
      inpainting; an empty [N, 0] array otherwise).
    observe: ``(x, aux) -> y`` with y `[N, H, W, Cy]`, the task operator A
      (``aux`` may be omitted for tasks without auxiliary data).
    y_channels: ``C -> Cy``.
    linear: whether A is linear (the exact Gaussian posterior applies).
  """
  name: str
  sample_aux: Callable
  observe: Callable
  y_channels: Callable
  linear: bool

  def make_pairs(self, x, rng: np.random.Generator):
    """Returns ``(y, aux)`` for a batch of clean images ``x [N, H, W, C]`` in [-1, 1]."""
    aux = self.sample_aux(rng, x.shape)
    return np.asarray(self.observe(x, aux)), aux


def _no_aux(rng, x_shape):
  del rng
  return np.zeros((x_shape[0], 0), np.float32)


def super_resolution(factor: int) -> Task:
  """Super-resolution by ``factor``: y = nearest-upsampled average-pooled x."""
  if factor not in (2, 4, 8):
    raise ValueError(f"super-resolution factor must be 2, 4 or 8, got {factor!r}.")

  def observe(x, aux=None):
    del aux
    return upsample_nearest(downsample(x, factor), factor)

  return Task(f"sr{factor}", _no_aux, observe, lambda c: c, True)


def inpainting(mask: str = "box", *, frac: float | None = None) -> Task:
  """Inpainting with ``mask`` in {'box', 'random'} (default hidden area 25 % / 50 %)."""
  if mask == "box":
    frac = 0.25 if frac is None else frac
    sample = lambda rng, s: box_mask(s[:3], rng, frac=frac)
  elif mask == "random":
    frac = 0.5 if frac is None else frac
    sample = lambda rng, s: random_mask(s[:3], rng, frac=frac)
  else:
    raise ValueError(f"inpainting mask must be 'box' or 'random', got {mask!r}.")
  return Task(f"inpaint_{mask}", sample, inpaint_observe, lambda c: c + 1, True)


def edges_to_image(*, sigma: float = 0.5) -> Task:
  """Edge-to-image: y = Canny edge map of x (scikit-image, host numpy)."""
  observe = lambda x, aux=None: canny_edges(x, sigma=sigma)
  return Task("edges", _no_aux, observe, lambda c: 1, False)


def make_task(name: str) -> Task:
  """Task by name: 'sr2', 'sr4', 'sr8', 'inpaint_box', 'inpaint_random', 'edges'."""
  table = {
      "sr2": lambda: super_resolution(2),
      "sr4": lambda: super_resolution(4),
      "sr8": lambda: super_resolution(8),
      "inpaint_box": lambda: inpainting("box"),
      "inpaint_random": lambda: inpainting("random"),
      "edges": edges_to_image,
  }
  if name not in table:
    raise ValueError(f"unknown task {name!r}; choose one of {sorted(table)}.")
  return table[name]()
