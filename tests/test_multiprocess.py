"""Several processes train as one: 2 processes x 1 CPU device == 1 process x 1 device.

One run of ``launch.py`` as 2 processes (`jax.distributed` on 127.0.0.1, gloo
collectives) is shared by every check, to keep the suite cheap: the per-step
losses and the final parameters match the in-process 1-device run, process 0
alone writes the metrics, one process restores and evaluates the 2-process
checkpoint, and killing one process (of a second, lighter run that joins
through launch.py's set-up) makes the other fail within a bounded time instead
of hanging.

One device per process, as CPU multi-process runs are normally laid out: with
2 fake CPU devices in each of 2 processes (jax and jaxlib 0.10.2), XLA:CPU's
gloo all-reduce of the train step intermittently never completed on one
device (py-spy and gdb: one worker thread in `gloo::allreduce` ...
`UnboundBuffer::waitRecv` while the other process had finished the step),
hanging the run at its first checkpoint in most tries on this 2-core machine.
With one device per process it did not hang.
"""

import glob
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from vdm_jax import train
from tests.xla_flags import COMPILE_FLAGS
from vdm_jax.training import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "vdm_tiny.py")
# Evaluation and sampling at the end are left out of the 2-process run: the
# single-process restore below evaluates its checkpoint instead.
OVERRIDES = ("--config.eval.at_end=False", "--config.sampling.at_end=False")
HEARTBEAT_S = 10  # jax.distributed's heartbeat: how soon a dead peer is noticed.
PEER_HEARTBEAT_S = 3  # the killed-peer run only sums: no compile to outlast.
LOSS_RTOL = 1e-5  # a pmean over gloo sums in another order than in-process (~1 ulp).
PARAM_ATOL = 1e-5


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _spawn(log_dir, argv, heartbeat_s=HEARTBEAT_S):
  """Starts processes 0 and 1 of one run (`argv(port, i)`), on one CPU device each."""
  port = _free_port()
  env = dict(os.environ)
  env.update(
      PYTHONPATH=os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p),
      JAX_PLATFORMS="cpu",
      XLA_FLAGS=("--xla_force_host_platform_device_count=1 "
                 "--xla_cpu_collective_call_terminate_timeout_seconds=60 " + COMPILE_FLAGS),
      # The same persistent compilation cache as this test process (conftest).
      JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or "",
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
      VDM_JAX_HEARTBEAT_TIMEOUT=str(heartbeat_s))
  procs = []
  for i in range(2):
    with open(os.path.join(log_dir, f"process{i}.log"), "w") as log:
      procs.append(subprocess.Popen([sys.executable, *argv(port, i)], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT))
  return procs


def _launch_args(workdir):
  def argv(port, i):
    return ["launch.py", f"--config={CONFIG}", f"--workdir={workdir}",
            f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
            f"--process_id={i}", *OVERRIDES]
  return argv


# Joins a run through launch.py's own set-up (flags, gloo, heartbeat timeout),
# then sums over both processes' devices until killed: a training run's
# collectives at a start-up cost of seconds.
_PEER = """
import sys, time
import numpy as np
import launch
launch.FLAGS(["launch.py", "--config=configs/vdm_tiny.py", "--workdir=unused",
              "--coordinator_address=127.0.0.1:" + sys.argv[1], "--num_processes=2",
              "--process_id=" + sys.argv[2]])
import jax
launch._init_distributed(jax)
psum = jax.pmap(lambda x: jax.lax.psum(x, "i"), axis_name="i")
ones = np.ones(jax.local_device_count(), np.float32)
while True:
  total = float(jax.block_until_ready(psum(ones))[0])
  print("psum", total, flush=True)
  time.sleep(0.05)
"""


def _log(log_dir, i):
  with open(os.path.join(log_dir, f"process{i}.log")) as f:
    return f.read()


def _wait(procs, log_dir, timeout):
  deadline = time.time() + timeout
  for i, p in enumerate(procs):
    try:
      p.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
      pytest.fail(f"process {i} still runs after {timeout} s:\n{_log(log_dir, i)[-3000:]}")
  for i, p in enumerate(procs):
    assert p.returncode == 0, f"process {i} exited {p.returncode}:\n{_log(log_dir, i)[-3000:]}"


def _reap(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
    p.wait()


def _losses(workdir):
  records = train.training.metrics_log.read(os.path.join(workdir, "metrics.jsonl"))
  return [(r["step"], r["loss"]) for r in records if "loss" in r]


def _max_abs_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _as_process(monkeypatch, index, gather):
  """This process plays `index` of 2; `gather(x)` stands for the other's all-gather."""
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: index)
  monkeypatch.setattr(checkpoints, "_allgather", gather)


def test_shared_workdir_check(tmp_path, monkeypatch):
  other = np.frombuffer(os.urandom(16), np.uint8)

  def gather_shared(x):  # process 1 wrote its token into the same folder.
    (tmp_path / ".processes" / "1").write_bytes(other.tobytes())
    return np.stack([x, other])
  _as_process(monkeypatch, 0, gather_shared)
  checkpoints.check_shared_workdir(str(tmp_path))

  elsewhere = tmp_path / "elsewhere"  # process 1 wrote into its own folder.
  _as_process(monkeypatch, 0, lambda x: np.stack([x, other]))
  with pytest.raises(checkpoints.CheckpointError, match=r"processes \[1\] wrote"):
    checkpoints.check_shared_workdir(str(elsewhere))


def test_same_state_check_names_the_arrays_that_differ(monkeypatch):
  state = {"params": {"w": np.ones(3, np.float32), "b": np.zeros(2, np.float32)},
           "step": np.int32(7)}
  _, digests = checkpoints.leaf_digests(state)
  _as_process(monkeypatch, 1, lambda x: np.stack([x, x]))
  checkpoints.check_same_state(state, 7)

  other = dict(state, params={"w": np.ones(3, np.float32) + 1e-7, "b": state["params"]["b"]})
  _, other_digests = checkpoints.leaf_digests(other)
  _as_process(monkeypatch, 1, lambda x: np.stack([other_digests, x]))
  with pytest.raises(checkpoints.CheckpointError, match=r"1 of 3 arrays differ.*'w'"):
    checkpoints.check_same_state(state, 7)
  assert digests.shape == (3, 8)


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path):
  config = train.config_from_file(CONFIG)
  config.eval.at_end = False
  config.sampling.at_end = False
  two, one = str(tmp_path / "two"), str(tmp_path / "one")
  logs_a, logs_b = tmp_path / "logs_a", tmp_path / "logs_b"
  logs_a.mkdir()
  logs_b.mkdir()
  procs = []
  try:
    procs = _spawn(logs_a, _launch_args(two))
    # Not meanwhile: a third busy process on 2 cores can delay one of the two
    # past gloo's fixed 30 s rendezvous at their first collective.
    _wait(procs, logs_a, timeout=400)
    # The reference run, in this process, on one device: the step draws its
    # noise for the global batch, so the split over devices changes only the
    # order of the sums (and test_train.py's 1-device runs have compiled this
    # program already: the persistent cache loads it).
    config.training.num_devices = 1
    train.train_and_evaluate(config, one)

    # Same losses at every step, each logged once (process 0 alone writes).
    steps = list(range(1, config.training.num_train_steps + 1))
    two_losses, one_losses = _losses(two), _losses(one)
    assert [s for s, _ in two_losses] == steps
    np.testing.assert_allclose([l for _, l in two_losses], [l for _, l in one_losses],
                               rtol=LOSS_RTOL)
    assert len(glob.glob(os.path.join(two, "tensorboard", "events*"))) <= 1
    print("per-step |loss(2 processes) - loss(1 process)|:",
          [abs(a - b) for (_, a), (_, b) in zip(two_losses, one_losses)])

    # One process restores the 2-process checkpoint: the same parameters, the
    # same test bits/dim as the 1-process run.
    for ema in (False, True):
      _, params_two, step_two = train.load_params(config, two, ema=ema)
      _, params_one, step_one = train.load_params(config, one, ema=ema)
      assert step_two == step_one == config.training.num_train_steps
      diff = _max_abs_diff(params_two, params_one)
      print(f"max |params(2 processes) - params(1 process)| (ema={ema}): {diff:.3g}")
      assert diff <= PARAM_ATOL
    config.eval.max_batches = 1
    np.testing.assert_allclose(train.run_eval(config, two), train.run_eval(config, one),
                               rtol=1e-5)

    # One process dies (SIGKILL, no goodbye): the other must fail, not wait
    # forever in a collective.
    peer = tmp_path / "peer.py"
    peer.write_text(_PEER)
    procs = _spawn(logs_b, lambda port, i: [str(peer), str(port), str(i)],
                   heartbeat_s=PEER_HEARTBEAT_S)
    deadline = time.time() + 120
    while "psum 2.0" not in _log(logs_b, 0) or "psum 2.0" not in _log(logs_b, 1):
      assert time.time() < deadline, _log(logs_b, 0)[-3000:] + _log(logs_b, 1)[-3000:]
      assert procs[0].poll() is None and procs[1].poll() is None, (
          _log(logs_b, 0)[-3000:] + _log(logs_b, 1)[-3000:])
      time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    try:
      procs[0].wait(timeout=PEER_HEARTBEAT_S + 90)
    except subprocess.TimeoutExpired:
      pytest.fail(f"process 0 still runs {PEER_HEARTBEAT_S + 90} s after process 1 was "
                  f"killed:\n{_log(logs_b, 0)[-3000:]}")
    print(f"process 0 exited {procs[0].returncode} {time.time() - killed:.1f} s after "
          f"process 1 was killed")
    assert procs[0].returncode != 0
    # jax.distributed's own words: "... detected fatal errors ... The following
    # tasks are unhealthy (stopped sending heartbeats): 1".
    assert "heartbeats" in _log(logs_b, 0), _log(logs_b, 0)[-3000:]
  finally:
    _reap(procs)


def test_a_stop_request_is_agreed_by_every_process_at_a_window_end(monkeypatch):
  """SIGTERM reaches one host of a pod: every process stops, at one step."""
  from vdm_jax.training import loop  # pylint: disable=g-import-not-at-top
  from vdm_jax.training import multihost  # pylint: disable=g-import-not-at-top
  assert multihost.any_process(True) and not multihost.any_process(False)  # the real gather
  gathered = []
  # Process 1 was signalled; this one, process 0, was not.
  monkeypatch.setattr(multihost, "any_process", lambda flag: gathered.append(flag) or True)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with loop._StopRequest() as stop:
    assert not stop.agreed(at_window_end=False)  # mid-window: no gather, no stop.
    assert gathered == []
    assert stop.agreed(at_window_end=True)
    assert gathered == [False]
  monkeypatch.setattr(jax, "process_count", lambda: 1)
  with loop._StopRequest() as stop:
    assert not stop.agreed(at_window_end=True)
    stop.requested = True
    assert stop.agreed(at_window_end=False)  # one process stops at once.
