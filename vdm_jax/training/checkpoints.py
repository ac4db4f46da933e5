"""Orbax checkpoints of a `TrainState`: save, restore the latest, fail by name.

A save that fails (a full disk, a lost mount) raises one `CheckpointError`
naming the workdir, the step and the last good checkpoint, with the first real
error (e.g. ``OSError: [Errno 28] No space left on device``) as its cause,
instead of the cascade of asyncio errors orbax's background writer ends in.
Saves are synchronous for that reason; orbax writes each step to a temporary
folder and renames it when complete, so a failed save never touches the last
good checkpoint, and restoring reads only completed steps.

Several processes (`jax.distributed`): the state is saved as host numpy
arrays, which orbax treats as replicated (its `NumpyHandler` writes them from
process 0 only, and every process joins the `CheckpointManager`'s barriers,
which run over the coordination service of `jax.distributed.initialize`). So
the checkpoint is the same whatever the number of processes or devices, and a
single process restores it. Every process must call `save` and `restore` with
the same step, and the workdir must be one folder that every process reads (a
shared filesystem on a pod): `Checkpointer` checks both, failing by name
instead of writing a checkpoint that some process cannot see (it would resume
alone from step 0) or saving states that have silently diverged.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import jax
import numpy as np

from vdm_jax.training import multihost


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


def leaf_digests(tree) -> tuple[list[str], np.ndarray]:
  """The leaves' paths and an 8-byte BLAKE2 digest of each leaf's bytes, `[L, 8]` uint8.

  Equal digests mean (up to hash collisions) bitwise-equal host arrays; it
  lets processes compare whole states by exchanging 8 bytes per leaf.
  """
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  digests = [np.frombuffer(hashlib.blake2b(np.ascontiguousarray(np.asarray(x)).tobytes(),
                                           digest_size=8).digest(), np.uint8)
             for _, x in leaves]
  return ([jax.tree_util.keystr(p) for p, _ in leaves],
          np.stack(digests) if digests else np.zeros((0, 8), np.uint8))


def _allgather(x: np.ndarray) -> np.ndarray:
  """Every process's uint8 array `x` (same shape everywhere), stacked in process order."""
  x = np.ascontiguousarray(x, np.uint8)
  return np.stack([np.frombuffer(b, np.uint8).reshape(x.shape)
                   for b in multihost.allgather_bytes(x.tobytes())])


def check_shared_workdir(workdir: str) -> None:
  """Raises `CheckpointError` unless every process of the run sees the same `workdir`.

  Each process writes a random token to ``workdir/.processes/<index>``; the
  tokens are gathered (`multihost.allgather_bytes`, also a barrier) and every
  process reads them all back. The check is symmetric: a process that misses
  another's token (a per-host local disk) is missed by it too, so every
  process fails, together, before the first step. One process: no-op.
  """
  count, index = jax.process_count(), jax.process_index()
  if count == 1:
    return
  folder = os.path.join(os.path.abspath(workdir), ".processes")
  os.makedirs(folder, exist_ok=True)
  token = uuid.uuid4().bytes
  tmp = os.path.join(folder, f"{index}.tmp")
  with open(tmp, "wb") as f:
    f.write(token)
  os.replace(tmp, os.path.join(folder, str(index)))
  tokens = _allgather(np.frombuffer(token, np.uint8))

  def read(j):
    try:
      with open(os.path.join(folder, str(j)), "rb") as f:
        return f.read()
    except OSError:
      return None
  missing = [j for j in range(count) if read(j) != tokens[j].tobytes()]
  if missing:
    raise CheckpointError(
        f"Process {index} of {count} does not see the files processes {missing} "
        f"wrote in its workdir {folder}: the processes of a run must share one "
        f"workdir (the same path on a shared filesystem), since process 0 alone "
        f"writes the checkpoints and every process reads them to resume.")


def check_same_state(tree, step: int) -> None:
  """Raises `CheckpointError` on every process unless all hold bitwise the same `tree`.

  After a step whose gradients are averaged over every device of the run,
  each process holds the same state; a difference means the processes have
  diverged (e.g. a mean over local devices only, different configs or data),
  and saving process 0's state would hide it. One process: no-op.
  """
  if jax.process_count() == 1:
    return
  paths, digests = leaf_digests(tree)
  every = _allgather(digests)  # [processes, leaves, 8]
  differ = sorted({paths[leaf] for p in range(1, every.shape[0])
                   for leaf in np.flatnonzero(np.any(every[p] != every[0], axis=-1))})
  if differ:
    raise CheckpointError(
        f"At step {step} the processes hold different training states "
        f"({len(differ)} of {len(paths)} arrays differ, e.g. {', '.join(differ[:3])}); "
        f"a multi-process run must keep one state on every process. Were they "
        f"started with the same config and flags?")


class Checkpointer:
  """The checkpoints of one run in ``workdir/checkpoints`` (orbax `CheckpointManager`).

  Args:
    workdir: the run's folder.
    keep: how many most recent checkpoints to keep (>= 1).

  Raises:
    CheckpointError: in a multi-process run whose processes do not share
      `workdir` (`check_shared_workdir`).
  """

  def __init__(self, workdir: str, *, keep: int):
    if not isinstance(keep, int) or keep < 1:
      raise ValueError(
          f"keep_checkpoints must be an integer >= 1 (the number of most recent "
          f"checkpoints kept), got {keep!r}.")
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    self._ocp = ocp
    check_shared_workdir(workdir)
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state, step: int) -> None:
    """Writes host copy of `state` (an unreplicated pytree) as `step`.

    Several processes: each calls this with its own copy; they are checked to
    be equal (`check_same_state`) and process 0's is written.
    """
    host = jax.device_get(state)
    check_same_state(host, step)
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
