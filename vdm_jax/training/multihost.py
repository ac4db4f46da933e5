"""Host-level agreement between the processes of one run, over jax.distributed's key-value store.

Some decisions concern hosts, not devices: is the workdir shared, do the saved
states agree, has any host been asked to stop. The processes exchange a few
bytes for them through the coordination service that `jax.distributed.initialize`
starts (the service that also carries orbax's barriers and the heartbeats),
not through a device collective: a device all-gather
(`multihost_utils.process_allgather`) compiles a program per shape and queues
it on the devices behind the training step, while the key-value store needs
no compile, no device and has a timeout.

Every process must make the same sequence of calls, as with any collective:
the n-th call of each process is matched with the n-th call of the others.
"""

from __future__ import annotations

import threading
from typing import Protocol

import jax

DEFAULT_TIMEOUT_S = 3600.0  # a peer may be evaluating or compiling meanwhile.


class KeyValueClient(Protocol):
  """The part of jax.distributed's client used here."""

  def key_value_set_bytes(self, key: str, value: bytes) -> None: ...

  def blocking_key_value_get_bytes(self, key: str, timeout_in_ms: int) -> bytes: ...

  def key_value_delete(self, key: str) -> None: ...


def _key(call: int, index: int) -> str:
  return f"vdm_jax/exchange/{call}/{index}"


class Exchange:
  """All-gathers bytes between `count` processes through a key-value store.

  Call n of process i writes ``vdm_jax/exchange/<n>/<i>`` and reads the other
  processes' keys of call n. Once process i has read every key of call n,
  every process has finished reading call n-1 (each writes call n only after
  reading n-1), so i then deletes its own key of n-1: the store holds at most
  two calls' keys per process.

  Args:
    client: the key-value store.
    index: this process's index in `range(count)`.
    count: the number of processes.
    timeout_s: how long a call waits for a slower process before failing.
  """

  def __init__(self, client: KeyValueClient, index: int, count: int, *,
               timeout_s: float = DEFAULT_TIMEOUT_S):
    if not 0 <= index < count:
      raise ValueError(f"process index {index} is outside range({count}).")
    self.client, self.index, self.count = client, index, count
    self._timeout_ms = int(timeout_s * 1000)
    self._calls = 0
    self._lock = threading.Lock()  # one call at a time keeps the call numbers matched.

  def allgather(self, value: bytes) -> list[bytes]:
    """Every process's `value`, in process order."""
    if not isinstance(value, bytes):
      raise TypeError(f"Exchange.allgather takes bytes, got {type(value).__name__}.")
    with self._lock:
      call = self._calls
      self._calls += 1
      self.client.key_value_set_bytes(_key(call, self.index), value)
      gathered = []
      for i in range(self.count):
        if i == self.index:
          gathered.append(value)
          continue
        try:
          gathered.append(self.client.blocking_key_value_get_bytes(
              _key(call, i), self._timeout_ms))
        except Exception as e:  # the client raises its own status errors.
          raise RuntimeError(
              f"Process {self.index} waited {self._timeout_ms / 1000:g} s for "
              f"process {i} to reach the same agreement point (exchange {call}) "
              f"and it did not: the processes of a run must make the same "
              f"checks in the same order. {type(e).__name__}: {e}") from e
      if call > 0:
        self.client.key_value_delete(_key(call - 1, self.index))
      return gathered


_default: Exchange | None = None


def _exchange() -> Exchange:
  """The exchange over this run's jax.distributed client (made on first use).

  Made again for a new client (after `jax.distributed.shutdown` and a new
  `initialize`), whose peers number their calls from 0 again.
  """
  global _default  # pylint: disable=global-statement
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  # There is no public accessor of the client; orbax reads the same attribute.
  client = distributed.global_state.client
  if client is None:
    raise RuntimeError(
        "Several JAX processes but no jax.distributed client: call "
        "jax.distributed.initialize() first (launch.py does it from "
        "--coordinator_address, --num_processes and --process_id).")
  if _default is None or _default.client is not client:
    _default = Exchange(client, jax.process_index(), jax.process_count())
  return _default


def allgather_bytes(value: bytes) -> list[bytes]:
  """Every process's `value` (bytes), in process order; `[value]` with one process."""
  if jax.process_count() == 1:
    return [value]
  return _exchange().allgather(value)


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is true on any (a barrier: every process must call it)."""
  if jax.process_count() == 1:
    return bool(flag)
  return any(b == b"1" for b in allgather_bytes(b"1" if flag else b"0"))
