"""Boundary checks shared by the library: shapes, ranks and dtypes, failing by name.

All checks here are *static*: they look at `.shape` and `.dtype`, which are known
while tracing, so they cost nothing under `jit` and raise at trace time with a
message that names the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np


def check_floating(x, name: str) -> None:
  """Raises TypeError unless `x` has a floating dtype."""
  dtype = jnp.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"{name} must have a floating dtype, got {dtype}.")


def check_rank(x, rank: int | Sequence[int], name: str) -> None:
  """Raises ValueError unless `x.ndim` is `rank` (or one of `rank`)."""
  ranks = (rank,) if isinstance(rank, int) else tuple(rank)
  ndim = np.ndim(x)
  if ndim not in ranks:
    raise ValueError(
        f"{name} must have rank {' or '.join(map(str, ranks))}, got shape "
        f"{np.shape(x)} (rank {ndim}).")


def check_min_rank(x, rank: int, name: str) -> None:
  """Raises ValueError unless `x.ndim >= rank`."""
  if np.ndim(x) < rank:
    raise ValueError(
        f"{name} must have rank >= {rank}, got shape {np.shape(x)}.")


def check_same_shape(a, b, name_a: str, name_b: str) -> None:
  """Raises ValueError unless `a` and `b` have identical shapes."""
  if np.shape(a) != np.shape(b):
    raise ValueError(
        f"{name_a} and {name_b} must have the same shape, got "
        f"{np.shape(a)} and {np.shape(b)}.")


def check_batch(t, x, name_t: str = "t", name_x: str = "x") -> None:
  """Checks that `t` is a scalar or a `[B]` vector matching `x.shape[0]`."""
  if np.ndim(t) == 0:
    return
  if np.ndim(t) != 1 or np.shape(t)[0] != np.shape(x)[0]:
    raise ValueError(
        f"{name_t} must be a scalar or have shape [B] with B = {name_x}.shape[0] "
        f"= {np.shape(x)[0] if np.ndim(x) else '?'}, got shape {np.shape(t)}.")


def broadcast_to_data(v, x):
  """Reshapes a scalar or `[B]` per-example quantity to broadcast against `x`.

  `[B]` becomes `[B, 1, ..., 1]`; a scalar stays a scalar. Explicit reshaping is
  used (rather than relying on numpy broadcasting from the right) because a `[B]`
  vector would otherwise silently broadcast against the *last* axis of `x`.
  """
  v = jnp.asarray(v)
  if v.ndim == 0:
    return v
  check_batch(v, x, "per-example value", "x")
  return v.reshape(v.shape + (1,) * (jnp.ndim(x) - 1))


def sum_except_batch(x):
  """Sums over every axis but the first: `[B, ...] -> [B]`."""
  return jnp.sum(x, axis=tuple(range(1, jnp.ndim(x))))
