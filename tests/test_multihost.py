"""Host-level all-gather over a key-value store, with processes played by threads."""

import threading

import pytest

from vdm_jax.training import multihost


class FakeStore:
  """An in-memory stand-in for jax.distributed's key-value client."""

  def __init__(self):
    self.data, self.cond = {}, threading.Condition()

  def key_value_set_bytes(self, key, value):
    with self.cond:
      assert key not in self.data, f"{key} written twice"
      self.data[key] = value
      self.cond.notify_all()

  def blocking_key_value_get_bytes(self, key, timeout_in_ms):
    with self.cond:
      if not self.cond.wait_for(lambda: key in self.data, timeout_in_ms / 1000):
        raise TimeoutError(f"DEADLINE_EXCEEDED: {key}")
      return self.data[key]

  def key_value_delete(self, key):
    with self.cond:
      del self.data[key]


def _run_processes(count, body):
  store, results, errors = FakeStore(), [None] * count, []

  def run(i):
    try:
      results[i] = body(multihost.Exchange(store, i, count, timeout_s=10))
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)
  threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(30)
  assert not errors, errors
  return store, results


def test_every_process_gets_every_value_in_process_order_and_old_keys_are_deleted():
  rounds = 5

  def body(ex):
    return [ex.allgather(f"{ex.index}:{r}".encode()) for r in range(rounds)]
  store, results = _run_processes(3, body)
  for got in results:
    assert got == [[f"{i}:{r}".encode() for i in range(3)] for r in range(rounds)]
  # Only the last call's keys remain (each process deletes its call n-1 key
  # once it has read everyone's call n).
  assert sorted(store.data) == [f"vdm_jax/exchange/{rounds - 1}/{i}" for i in range(3)]


def test_any_process_is_true_everywhere_when_one_process_says_so():
  def body(ex):
    flag = b"1" if ex.index == 2 else b"0"
    return [any(b == b"1" for b in ex.allgather(flag)),
            any(b == b"1" for b in ex.allgather(b"0"))]
  _, results = _run_processes(3, body)
  assert results == [[True, False]] * 3


def test_a_process_that_never_arrives_fails_by_name_after_the_timeout():
  ex = multihost.Exchange(FakeStore(), 0, 2, timeout_s=0.2)
  with pytest.raises(RuntimeError, match=r"waited 0.2 s for process 1 .*exchange 0"):
    ex.allgather(b"x")
  with pytest.raises(TypeError, match="bytes"):
    ex.allgather("not bytes")
  with pytest.raises(ValueError, match="outside range"):
    multihost.Exchange(FakeStore(), 2, 2)


def test_one_process_needs_no_client():
  assert multihost.allgather_bytes(b"abc") == [b"abc"]
  assert multihost.any_process(True) and not multihost.any_process(False)


def test_a_new_distributed_client_starts_a_new_exchange(monkeypatch):
  """After shutdown and a new initialize, call numbers restart at 0 with the new peers."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: 0)
  monkeypatch.setattr(multihost, "_default", None)
  first, second = FakeStore(), FakeStore()
  monkeypatch.setattr(distributed.global_state, "client", first)
  ex = multihost._exchange()
  assert multihost._exchange() is ex and ex.client is first and ex.count == 2
  monkeypatch.setattr(distributed.global_state, "client", second)
  assert multihost._exchange().client is second
  monkeypatch.setattr(distributed.global_state, "client", None)
  with pytest.raises(RuntimeError, match="jax.distributed.initialize"):
    multihost._exchange()
