"""Checks and pairwise distances shared by the sample-based distances of `vdm_jax.metrics`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import _checks


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _check_finite(x, name):
  if _is_concrete(x) and not bool(jnp.all(jnp.isfinite(x))):
    bad = int(jnp.size(x) - jnp.sum(jnp.isfinite(x)))
    raise ValueError(f"{name} must be finite, got {bad} NaN/inf entries "
                     f"(impute or drop them before computing a distance).")


def _as_samples(x, name, *, allow_1d=True):
  """Returns `x` as floating `[N, D]`, checking rank, dtype and finiteness."""
  if not hasattr(x, "dtype"):
    x = np.asarray(x)
  _checks.check_floating(x, name)
  _checks.check_rank(x, (1, 2) if allow_1d else 2, f"{name} [N, D]")
  x = jnp.asarray(x)
  if x.ndim == 1:
    x = x[:, None]
  if x.shape[0] < 1:
    raise ValueError(f"{name} must hold at least one sample, got shape {x.shape}.")
  _check_finite(x, name)
  return x


def _check_pair(x, y, name_x="x", name_y="y", *, min_n=1):
  x = _as_samples(x, name_x)
  y = _as_samples(y, name_y)
  if x.shape[1] != y.shape[1]:
    raise ValueError(
        f"{name_x} and {name_y} must have the same number of features D, got "
        f"{name_x}.shape = {x.shape} and {name_y}.shape = {y.shape}.")
  for v, n in ((x, name_x), (y, name_y)):
    if v.shape[0] < min_n:
      raise ValueError(f"{n} needs at least {min_n} samples, got {v.shape[0]}.")
  dtype = jnp.result_type(x.dtype, y.dtype)
  return x.astype(dtype), y.astype(dtype)


def _safe_norm(d2):
  """sqrt with a zero (not NaN) gradient at 0 (diagonal of pairwise distances)."""
  pos = d2 > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1.0)), 0.0)


def sq_distances(x, y):
  """Pairwise squared Euclidean distances `[N, M]`, clipped at 0."""
  d2 = (jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None, :]
        - 2.0 * x @ y.T)
  return jnp.maximum(d2, 0.0)
