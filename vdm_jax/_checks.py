"""Boundary checks shared by the library, failing by name.

Every message names the argument, what was expected and what was received.
Three kinds of check live here:

* **Static** checks (shapes, ranks, dtypes, integer sizes such as `num_steps`
  or `vocab_size`) look at what is known while tracing; they cost nothing under
  `jit` and raise `ValueError` / `TypeError` at trace time.
* **Host** checks (`check_int_range`) look at the values of concrete numpy or
  jax arrays, e.g. every training batch before it is sent to the devices.
* **Value** checks (`check_values`) depend on data that may be traced. With
  concrete values they raise `ValueError` at once. Under a transformation
  (`jit`, `pmap`, `grad`, `vmap`) XLA cannot raise, so the checked function's
  results are made NaN (`poison`) where a check fails: a plain `jit` returns
  NaN, never a plausible number, and costs only a few fused reductions and
  selects. Traced inside `checkified(fn)` (or `checked(fn)`, which also jits
  and raises), the same checks are also `jax.experimental.checkify` checks:
  the error names the argument, what was expected and what was found, and
  `err.throw()` raises `checkify.JaxRuntimeError` (a `ValueError`).

Why the checkify checks are emitted only inside `checkified`: a `checkify`
check left in a plain `jit` or `pmap` carries an effect that sends every call
through JAX's Python dispatch path, which costs milliseconds per training step
for a model with ~100 parameter arrays. Inside `checkified` the effect is
discharged into an ordinary error value, so the compiled step dispatches as
fast as an unchecked one. See ``benchmarks/check_overhead.py`` for the
measured share of a training step.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Callable, Sequence

import jax
from jax.experimental import checkify
import jax.numpy as jnp
import numpy as np

# The errors `checked` turns into exceptions: the library's value checks only.
ERRORS = checkify.user_checks

# Set while `checkified` traces its function: whether `check_values` also emits
# checkify checks. A context variable (like JAX's own config contexts) rather
# than an argument, so that every public function keeps its signature; it is
# only ever set inside the function that `jit` / `pmap` trace, so a cached
# trace always matches the setting it was made with.
_EMIT_CHECKIFY = contextvars.ContextVar("vdm_jax_emit_checkify", default=False)


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


# ----------------------------------------------------------------------------
# Static integer arguments.
# ----------------------------------------------------------------------------
def check_int(value, name: str, *, minimum: int) -> int:
  """Returns `value` as an int; ValueError unless it is an integer >= `minimum`.

  Meant for static arguments (`num_steps`, `vocab_size`, `num_dims`): a
  traced value is rejected with TypeError, since these sizes fix shapes and
  branches at trace time.
  """
  if isinstance(value, jax.core.Tracer):
    raise TypeError(f"{name} must be a static Python integer, got a traced "
                    f"value {value}.")
  try:
    as_int = int(value)
    integral = as_int == value and not isinstance(value, bool)
  except (TypeError, ValueError, OverflowError):
    integral = False
  if not integral:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  if as_int < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {as_int}.")
  return as_int


def check_vocab_size(vocab_size, name: str = "vocab_size") -> int:
  """Static check that a discrete vocabulary has V >= 2 values; returns V."""
  return check_int(vocab_size, name, minimum=2)


# ----------------------------------------------------------------------------
# Host checks of concrete values.
# ----------------------------------------------------------------------------
def check_int_range(x, vocab_size: int, name: str, where: str = "") -> None:
  """Host check that concrete integers lie in [0, vocab_size - 1].

  Uses numpy min/max (no device round trip for numpy input), so it is cheap
  enough for every training batch.

  Args:
    x: concrete integer array (numpy or jax).
    vocab_size: V.
    name: the argument's name for the message.
    where: optional context appended to the message, e.g. "in the batch of
      step 12".

  Raises:
    ValueError: a value lies outside [0, V - 1] (or V < 2).
  """
  vocab_size = check_vocab_size(vocab_size)
  x = np.asarray(x)
  if not x.size:
    return
  lo, hi = x.min(), x.max()
  if lo < 0 or hi >= vocab_size:
    suffix = f" {where}" if where else ""
    raise ValueError(
        f"{name} must lie in [0, {vocab_size - 1}] for vocab_size={vocab_size}, "
        f"got min {lo} and max {hi}{suffix}.")


# ----------------------------------------------------------------------------
# Value checks that also work under jit (checkify).
# ----------------------------------------------------------------------------
def is_concrete(x) -> bool:
  """True unless `x` is a tracer (i.e. its value is known now)."""
  return not isinstance(x, jax.core.Tracer)


def check_values(ok, message: str, **values):
  """A data-dependent check that fails by name, eagerly and under `jit`.

  Args:
    ok: scalar boolean: the condition that must hold.
    message: the error text, a `str.format` template over `values` (static
      numbers are best formatted into it beforehand).
    **values: arrays formatted into `message` (e.g. the min and max found).

  Returns:
    `ok` as a boolean array, for `poison`.

  Raises:
    ValueError: `ok` is concrete and False.
  """
  ok = jnp.asarray(ok, bool)
  if is_concrete(ok) and all(is_concrete(v) for v in values.values()):
    if not bool(ok):
      raise ValueError(message.format(**{k: str(np.asarray(v)[()]) for k, v in values.items()}))
    return ok
  if _EMIT_CHECKIFY.get():
    checkify.check(ok, message, **{k: jnp.asarray(v) for k, v in values.items()})
  return ok


def gamma_increasing_ok(gamma_t, gamma_s, *, pair: str, consequence: str):
  """`check_values` that log-SNR grows from s to t: gamma_t - gamma_s >= 0.

  Args:
    gamma_t, gamma_s: arrays (broadcastable) of gamma at the later and the
      earlier time.
    pair: how s relates to t in the message, e.g. 's = t - 1/T'.
    consequence: what a decreasing schedule would do, for the message.

  Returns:
    `(ok, gap)`: the check's boolean and ``gamma_t - gamma_s``.
  """
  gap = jnp.asarray(gamma_t - gamma_s)
  ok = check_values(
      jnp.all(gap >= 0),
      f"gamma_t must be >= gamma_s for {pair} (gamma_fn increasing in t; a "
      f"decreasing schedule {consequence}), got min(gamma_t - gamma_s) = {{gap}}.",
      gap=jnp.min(gap))
  return ok, gap


def int_range_ok(x, vocab_size: int, name: str):
  """Value check (`check_values`) that integers `x` lie in [0, vocab_size - 1].

  Returns:
    scalar bool array for `poison` (True for an empty `x`).
  """
  if not np.size(x):
    return jnp.asarray(True)
  x = jnp.asarray(x)
  lo, hi = jnp.min(x), jnp.max(x)
  # JAX casts a Python int to x's dtype in a comparison (weak typing), so for
  # uint8 pixels and V = 256 `hi < V` would compare with 256 -> 0 and reject
  # every image. When V exceeds the dtype's largest value the bound holds anyway.
  hi_ok = True if vocab_size > jnp.iinfo(x.dtype).max else hi < vocab_size
  return check_values(
      (lo >= 0) & hi_ok,
      f"{name} must lie in [0, {vocab_size - 1}] for vocab_size={vocab_size}, "
      "got min {lo} and max {hi}.", lo=lo, hi=hi)


def poison(ok, *outs):
  """Returns `outs` with every float replaced by NaN where `ok` is False.

  `ok` (from `check_values`) is a scalar; where it is concretely True nothing
  is computed. A single output is returned as is, several as a tuple.
  """
  if is_concrete(ok) and bool(ok):
    res = outs
  else:
    res = tuple(jax.tree.map(lambda o: jnp.where(ok, o, jnp.nan), o) for o in outs)
  return res[0] if len(res) == 1 else res


@contextlib.contextmanager
def _emitting_checkify():
  token = _EMIT_CHECKIFY.set(True)
  try:
    yield
  finally:
    _EMIT_CHECKIFY.reset(token)


def checkified(fn: Callable) -> Callable:
  """`checkify.checkify(fn)` with the library's value checks as checkify checks.

  The returned function gives `(err, out)`; it may be jitted or pmapped (a
  training engine: ``jax.pmap(checkified(train_step), ...)``), and
  `err.throw()` on the host raises the first failed check, by name, as
  `checkify.JaxRuntimeError` (a `ValueError`). Fetch `err` at the engine's
  own sync points (e.g. each log step) to keep steps asynchronous.

  `fn` must not be a `jax.jit` function that was already traced outside
  `checkified`: its cached trace would hold no checks.
  """
  checked_fn = checkify.checkify(fn, errors=ERRORS)

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    with _emitting_checkify():
      return checked_fn(*args, **kwargs)

  return wrapper


def checked(fn: Callable) -> Callable:
  """`fn`, jitted, with its value checks raising under `jit`, via `checkify`.

  .. code-block:: python

    loss = checked(functools.partial(losses.vlb_terms, gamma_fn=g, eps_fn=e,
                                     vocab_size=256))
    loss(rng, x_int)  # raises checkify.JaxRuntimeError (a ValueError) on x < 0

  The wrapped function compiles `fn` once per input signature (with
  `jax.jit`), synchronises on its error every call and returns what `fn`
  returns. Pass `fn` before `jax.jit`: `checked` compiles it itself.

  Raises:
    TypeError: `fn` is already a `jax.jit` function.
  """
  if hasattr(fn, "lower") and hasattr(fn, "trace"):
    raise TypeError(
        "checked(fn) compiles fn itself: pass the function before jax.jit (a "
        "jitted function may reuse a trace made without the checks).")
  compiled = jax.jit(checkified(fn))

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    err, out = compiled(*args, **kwargs)
    err.throw()
    return out

  return wrapper
