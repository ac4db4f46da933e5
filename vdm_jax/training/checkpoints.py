"""Orbax checkpoints of a `TrainState`: save, restore the latest, fail by name.

A save that fails (a full disk, a lost mount) raises one `CheckpointError`
naming the workdir, the step and the last good checkpoint, with the first real
error (e.g. ``OSError: [Errno 28] No space left on device``) as its cause,
instead of the cascade of asyncio errors orbax's background writer ends in.
Saves are synchronous for that reason; orbax writes each step to a temporary
folder and renames it when complete, so a failed save never touches the last
good checkpoint, and restoring reads only completed steps.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np


class CheckpointError(RuntimeError):
  """A checkpoint could not be written or read."""


def _root_cause(error: BaseException) -> BaseException:
  """The innermost OSError in the cause/context chain, else the innermost error."""
  seen, chain = set(), []
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    chain.append(error)
    error = error.__cause__ or error.__context__
  for e in reversed(chain):
    if isinstance(e, OSError):
      return e
  return chain[-1]


class Checkpointer:
  """The checkpoints of one run in ``workdir/checkpoints`` (orbax `CheckpointManager`).

  Args:
    workdir: the run's folder.
    keep: how many most recent checkpoints to keep (>= 1).
  """

  def __init__(self, workdir: str, *, keep: int):
    if not isinstance(keep, int) or keep < 1:
      raise ValueError(
          f"keep_checkpoints must be an integer >= 1 (the number of most recent "
          f"checkpoints kept), got {keep!r}.")
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    self._ocp = ocp
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state, step: int) -> None:
    """Writes host copy of `state` (an unreplicated pytree) as `step`."""
    host = jax.device_get(state)
    try:
      self._manager.save(int(step), args=self._ocp.args.StandardSave(host), force=True)
      self._manager.wait_until_finished()
    except Exception as e:  # orbax wraps I/O errors in several types.
      cause = _root_cause(e)
      raise CheckpointError(
          f"Could not write the checkpoint of step {step} in {self.directory}: "
          f"{type(cause).__name__}: {cause}. Training stopped; the last good "
          f"checkpoint is step {self.latest_step()}. Free space (or fix the "
          f"folder) and rerun the same command to resume from it.") from cause

  def restore(self, template, step: int | None = None) -> Any | None:
    """The checkpoint `step` (default the latest) shaped like `template`, or None."""
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    target = jax.tree.map(np.asarray, template)
    try:
      restored = self._manager.restore(
          step, args=self._ocp.args.StandardRestore(target))
    except (ValueError, KeyError, TypeError) as e:
      raise CheckpointError(
          f"The checkpoint of step {step} in {self.directory} does not match the "
          f"model this config builds ({type(e).__name__}: {e}). Was it written "
          f"with another config? Use that config, or another workdir.") from e
    restored = jax.tree.unflatten(jax.tree.structure(template), jax.tree.leaves(restored))
    # Orbax restores arrays of the saved shapes even where the template's
    # differ (e.g. a wider network): name that here, not in a later apply.
    bad = [(jax.tree_util.keystr(path), np.shape(r), np.shape(t))
           for (path, t), r in zip(jax.tree_util.tree_leaves_with_path(target),
                                   jax.tree.leaves(restored))
           if np.shape(r) != np.shape(t) or np.asarray(r).dtype != np.asarray(t).dtype]
    if bad:
      listed = "; ".join(f"{p}: checkpoint {a}, config {b}" for p, a, b in bad[:3])
      raise CheckpointError(
          f"The checkpoint of step {step} in {self.directory} does not match the "
          f"model this config builds ({len(bad)} arrays differ: {listed}). Was it "
          f"written with another config? Use that config, or another workdir.")
    return restored

  def close(self) -> None:
    self._manager.close()


def save_params(path: str, params) -> str:
  """Writes a parameter pytree to the orbax folder `path` (overwritten); returns it.

  Stored as ``{'params': params}`` with orbax's `StandardCheckpointer`, the
  layout `restore_params` reads. For a whole `TrainState` with resume, use
  `Checkpointer`.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(path)
  ckpt = ocp.StandardCheckpointer()
  try:
    ckpt.save(path, {"params": jax.device_get(params)}, force=True)
    ckpt.wait_until_finished()
  except Exception as e:  # orbax wraps I/O errors in several types.
    cause = _root_cause(e)
    raise CheckpointError(f"Could not write parameters to {path}: "
                          f"{type(cause).__name__}: {cause}.") from cause
  return path


def restore_params(path: str):
  """The parameter pytree `save_params` wrote to the orbax folder `path`."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(path)
  if not os.path.exists(path):
    raise CheckpointError(f"No parameter checkpoint at {path}.")
  return ocp.StandardCheckpointer().restore(path)["params"]
