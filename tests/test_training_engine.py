"""The training engine (vdm_jax.training) with a non-VDM method: the score trainer."""

import errno
import functools
import json
import os
import re
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vdm_jax import training
from vdm_jax.intrinsic_dim import score_training
from vdm_jax.models import ScoreMLP
from vdm_jax.training import metrics_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = ScoreMLP(hidden=(16, 16), emb_dim=8, zero_init_output=False)
X = jax.random.normal(jax.random.key(0), (32, 4))


# One step function per setting: `training.train`'s pmap of the same function
# reuses its trace and compile (a new closure would trace and compile again).
@functools.lru_cache(maxsize=None)
def _score_step(*, axis_name=training.AXIS, learning_rate=1e-2, total=20):
  """The score trainer's method (loss on a minibatch drawn on device) as an engine step."""
  loss_fn = score_training.make_loss_fn(MODEL, gamma_min=-8.0, gamma_max=-2.0,
                                        parameterization="residual")

  def batch_loss(params, data, key, shard):
    (x,) = data
    kb, kl = jax.random.split(key)
    idx = training.take_shard(jax.random.randint(kb, (8,), 0, x.shape[0]), shard)
    return loss_fn(params, kl, x[idx], shard), {}

  opt = training.make_optimizer(learning_rate=learning_rate, warmup_steps=2,
                                decay="cosine", total_steps=total, grad_clip=1.0)
  ema = training.ema(0.9)
  params = MODEL.init(jax.random.key(1), X[:1], jnp.zeros((1,)))["params"]
  step = training.make_step(training.value_and_grad(batch_loss), opt, ema,
                            axis_name=axis_name)
  return step, training.init_state(params, opt, ema)


def _train(workdir, total=20, **kw):
  step, state = _score_step(total=total, learning_rate=kw.pop("learning_rate", 1e-2))
  return training.train(step, state, batches=training.Resident((X,)),
                        base_rng=jax.random.key(2), num_steps=total, log_every=1,
                        workdir=workdir, num_devices=1, progress=False, **kw)


def _losses(workdir):
  records = metrics_log.read(os.path.join(workdir, "metrics.jsonl"))
  return {r["step"]: r["loss"] for r in records if "loss" in r}


def _leaves_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------
# EMA.
# ----------------------------------------------------------------------------
def test_ema_warmup_matches_the_closed_form():
  ema = training.ema(0.99)
  state = ema.init({"w": jnp.zeros(())})
  for _ in range(5):
    state = ema.update({"w": jnp.ones(())}, state)
  # e_5 = 1 - prod_{n<5} rho_n with rho_n = min(0.99, (1 + n) / (10 + n)).
  rho = np.minimum(0.99, (1 + np.arange(5)) / (10 + np.arange(5)))
  np.testing.assert_allclose(state.params["w"], 1 - np.prod(rho), rtol=1e-6)
  assert int(state.count) == 5
  plain = training.ema(0.99, warmup=False)
  state = plain.init({"w": jnp.zeros(())})
  for _ in range(5):
    state = plain.update({"w": jnp.ones(())}, state)
  np.testing.assert_allclose(state.params["w"], 1 - 0.99 ** 5, rtol=1e-6)


def test_ema_rejects_a_bad_decay():
  with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\), got 1.0"):
    training.ema(1.0)


def test_step_reports_the_global_norms_of_gradients_and_new_params():
  """'grad_norm' and 'param_norm' are the L2 norms over every leaf (float32 sums)."""
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(3, 4)).astype(np.float32),
            "b": {"c": rng.normal(size=(5,)).astype(np.float32)}}
  grad_fn = training.value_and_grad(
      lambda p, batch, key, shard: (jnp.sum(p["w"] ** 2) + jnp.sum(jnp.sin(p["b"]["c"])), {}))
  optimizer = optax.sgd(0.1)
  step = jax.jit(training.make_step(grad_fn, optimizer, training.ema(0.9)))
  state, metrics = step(training.init_state(params, optimizer, training.ema(0.9)), None,
                        jax.random.key(0))
  grads = {"w": 2 * params["w"], "b": {"c": np.cos(params["b"]["c"])}}
  norm = lambda t: np.sqrt(sum(np.sum(np.square(x, dtype=np.float64))
                               for x in jax.tree.leaves(t)))
  np.testing.assert_allclose(metrics["grad_norm"], norm(grads), rtol=1e-5)
  np.testing.assert_allclose(metrics["param_norm"], norm(state.params), rtol=1e-5)
  assert norm(state.params) != pytest.approx(norm(params), rel=1e-3)  # the new params'.
  assert bool(metrics["finite"])


# ----------------------------------------------------------------------------
# Resume, non-finite stop, early stopping, devices.
# ----------------------------------------------------------------------------
class _Killed(Exception):
  pass


def test_resume_after_a_crash_replays_the_same_losses(tmp_path):
  full, part = str(tmp_path / "full"), str(tmp_path / "part")
  whole = _train(full)

  def crash(state, step):
    del state
    if step == 13:
      raise _Killed  # as a kill between checkpoints (last one: step 10).
    return {}

  with pytest.raises(_Killed):
    _train(part, save_every=5, eval_fn=crash, eval_every=1)
  assert max(_losses(part)) == 13  # steps 11-13 were logged after the checkpoint.
  resumed = _train(part, save_every=5)
  a, b = _losses(full), _losses(part)
  assert sorted(a) == sorted(b) == list(range(1, 21))
  assert [a[k] for k in sorted(a)] == [b[k] for k in sorted(b)]
  _leaves_equal(whole.state.params, resumed.state.params)
  _leaves_equal(whole.state.ema, resumed.state.ema)
  # The file stays valid JSONL: no duplicate steps, one resume marker.
  records = [json.loads(line) for line in open(os.path.join(part, "metrics.jsonl"))]
  steps = [r["step"] for r in records if "loss" in r]
  assert steps == sorted(set(steps))
  assert [r for r in records if "resumed_from" in r] == [{"step": 10, "resumed_from": 10}]


def test_non_finite_loss_stops_naming_the_step_and_last_checkpoint(tmp_path):
  _train(str(tmp_path), total=4)  # a good checkpoint at step 4.
  with pytest.raises(RuntimeError, match=r"Non-finite .* step 5 .*last good checkpoint is step 4"):
    _train(str(tmp_path), total=8, learning_rate=float("inf"))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]


def test_early_stopping_keeps_the_best_state(tmp_path):
  values = {1: 5.0, 2: 4.0, 3: 3.0, 4: 3.5, 5: 3.6, 6: 1.0}
  seen = {}

  def eval_fn(state, step):
    seen[step] = jax.device_get(state.params)
    return {"nll": values[step]}

  result = _train(None, eval_fn=eval_fn, eval_every=1,
                  early_stopping=training.EarlyStopping("nll", patience=2))
  assert result.early_stopped and result.step == 5
  assert result.best_step == 3
  _leaves_equal(result.best_state.params, seen[3])
  assert result.metrics["eval_nll"] == 3.6


def test_four_devices_equal_one_device_for_the_score_trainer():
  assert jax.local_device_count() == 4, "tests/conftest.py sets 4 CPU devices"
  kw = dict(num_steps=6, batch_size=8, learning_rate=1e-2, warmup_steps=2,
            gamma_min=-8.0, gamma_max=-2.0, parameterization="residual",
            steps_per_call=3)
  one, loss1 = score_training.train_score_model(MODEL, X, jax.random.key(3),
                                                num_devices=1, **kw)
  four, loss4 = score_training.train_score_model(MODEL, X, jax.random.key(3),
                                                 num_devices=4, **kw)
  np.testing.assert_allclose(loss4, loss1, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               four.ema_params, one.ema_params)


def test_score_trainer_resumes_from_its_workdir(tmp_path):
  kw = dict(num_steps=6, batch_size=8, gamma_min=-8.0, gamma_max=-2.0,
            steps_per_call=3, workdir=str(tmp_path))
  first, _ = score_training.train_score_model(MODEL, X, jax.random.key(3), **kw)
  again, losses = score_training.train_score_model(MODEL, X, jax.random.key(3), **kw)
  assert losses.size == 0  # nothing left to train: restored, not retrained.
  _leaves_equal(first.ema_params, again.ema_params)


# ----------------------------------------------------------------------------
# Checkpoint writes that fail; metrics.jsonl that is cut.
# ----------------------------------------------------------------------------
def test_a_failed_checkpoint_write_is_one_clear_error_and_the_last_one_restores(
    tmp_path, monkeypatch):
  import orbax.checkpoint as ocp
  real_save, calls = ocp.CheckpointManager.save, []

  def full_disk(self, step, *args, **kwargs):
    calls.append(step)
    if len(calls) == 2:
      # As orbax reports a full disk: the OSError wrapped in its own errors.
      os.makedirs(os.path.join(str(tmp_path), "checkpoints", f"{step}.orbax-tmp-0"))
      try:
        raise OSError(errno.ENOSPC, "No space left on device")
      except OSError as e:
        raise RuntimeError("Event loop is closed") from e
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
  with pytest.raises(training.CheckpointError) as info:
    _train(str(tmp_path), save_every=5)
  message = str(info.value)
  assert "step 10" in message and str(tmp_path) in message
  assert "No space left on device" in message
  assert "last good checkpoint is step 5" in message
  monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
  _, template = _score_step()
  manager = training.Checkpointer(str(tmp_path), keep=1)
  restored = manager.restore(template)
  manager.close()
  assert int(restored.step) == 5


def test_keep_zero_checkpoints_is_rejected(tmp_path):
  with pytest.raises(ValueError, match=r"keep_checkpoints must be an integer >= 1.*got 0"):
    training.Checkpointer(str(tmp_path), keep=0)


def test_metrics_file_is_repaired_on_resume(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s, "loss": float(s)}) + "\n"
                          for s in range(1, 6)) + '{"step": 6, "lo')
  writer = metrics_log.MetricsWriter(str(tmp_path))
  writer.resume(3)
  writer.write(4, {"loss": 40.0})
  records = [json.loads(line) for line in path.read_text().splitlines()]  # strict.
  assert [(r["step"], r.get("loss")) for r in records] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (3, None), (4, 40.0)]


def test_a_failed_metrics_write_leaves_complete_lines(tmp_path, monkeypatch):
  writer = metrics_log.MetricsWriter(str(tmp_path))
  writer.write(1, {"loss": 1.0})
  real_write = os.write

  def half_then_full_disk(fd, data):
    real_write(fd, data[:len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "write", half_then_full_disk)
  with pytest.raises(OSError):
    writer.write(2, {"loss": 2.0})
  monkeypatch.setattr(os, "write", real_write)
  writer.write(3, {"loss": 3.0})
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line)["step"] for line in lines] == [1, 3]


# ----------------------------------------------------------------------------
# Interval checks.
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    ({"num_steps": -5}, "num_train_steps"),
    ({"log_every": 0}, "log_every"),
    ({"save_every": -1}, "save_every"),
])
def test_bad_intervals_are_rejected_before_any_step(kwargs, name):
  step, state = _score_step()
  args = dict(batches=training.Resident((X,)), base_rng=jax.random.key(0),
              num_steps=4, log_every=1, progress=False)
  args.update(kwargs)
  with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
    training.train(step, state, **args)


def _kill_9_run(workdir, num_steps):
  """The run the kill -9 test kills and reruns: the score trainer, one device."""
  x = jax.random.normal(jax.random.key(0), (32, 4))
  model = ScoreMLP(hidden=(16, 16), emb_dim=8, zero_init_output=False)
  score_training.train_score_model(
      model, x, jax.random.key(3), num_steps=num_steps, batch_size=8,
      steps_per_call=1, workdir=workdir, save_every=50)


def test_kill_9_then_rerun_gives_valid_jsonl_and_the_same_losses(tmp_path):
  """A real SIGKILL between checkpoints, then the same command again."""
  path = tmp_path / "run.py"
  path.write_text("import sys\nfrom tests.test_training_engine import _kill_9_run\n"
                  "_kill_9_run(sys.argv[1], int(sys.argv[2]))\n")
  # One device, the suite's other XLA flags: the same program as the
  # uninterrupted reference run in this process (tests/conftest.py).
  one_device = re.sub(r"--xla_force_host_platform_device_count=\d+",
                      "--xla_force_host_platform_device_count=1", os.environ["XLA_FLAGS"])
  run = lambda workdir, steps: subprocess.Popen(
      [sys.executable, str(path), workdir, str(steps)], cwd=ROOT,
      env=dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS=one_device),
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  full, part = str(tmp_path / "full"), str(tmp_path / "part")
  proc = run(part, 400)
  metrics = os.path.join(part, "metrics.jsonl")
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(metrics) and len(_losses(part)) >= 60:
      break
    time.sleep(0.02)
  proc.kill()
  proc.wait()
  killed_at = max(_losses(part))
  assert killed_at < 400, "the run finished before it could be killed"
  rerun = run(part, 400)
  _kill_9_run(full, 400)  # meanwhile, the uninterrupted reference in this process.
  assert rerun.wait(timeout=300) == 0
  a, b = _losses(full), _losses(part)
  assert [a[k] for k in sorted(a)] == [b[k] for k in sorted(b)]
  lines = open(metrics).read().splitlines()
  records = [json.loads(line) for line in lines]  # strict: every line parses.
  steps = [r["step"] for r in records if "loss" in r]
  assert steps == list(range(1, 401))


def _streamed_step():
  loss_fn = score_training.make_loss_fn(MODEL, gamma_min=-8.0, gamma_max=-2.0)
  opt = training.make_optimizer(learning_rate=1e-2, warmup_steps=2)
  ema = training.ema(0.9)
  params = MODEL.init(jax.random.key(1), X[:1], jnp.zeros((1,)))["params"]
  step = training.make_step(training.value_and_grad(
      lambda p, batch, key, shard: (loss_fn(p, key, batch["x"], shard), {})),
      opt, ema, axis_name=training.AXIS)
  return step, training.init_state(params, opt, ema)


def _stream(start):
  step = start
  while True:  # batch k is a function of k alone.
    idx = np.random.default_rng(step).integers(0, 32, 8)
    yield {"x": np.asarray(X)[idx][None]}
    step += 1


@pytest.mark.parametrize("resident", [True, False])
def test_steps_per_call_gives_the_losses_of_single_calls(resident):
  if resident:
    step, state = _score_step()
    batches = training.Resident((X,))
  else:
    step, state = _streamed_step()
    batches = _stream
  run = lambda k: training.train(step, state, batches=batches, base_rng=jax.random.key(2),
                                 num_steps=12, log_every=6, num_devices=1,
                                 progress=False, steps_per_call=k)
  one, four = run(1), run(3)
  assert [s for s, _ in one.history] == [s for s, _ in four.history] == [6, 12]
  for (_, a), (_, b) in zip(one.history, four.history):
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
  assert int(four.state.step) == 12
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               four.state.params, one.state.params)
  with pytest.raises(ValueError, match="log_every=6 must be a multiple of steps_per_call=4"):
    training.train(step, state, batches=batches, base_rng=jax.random.key(2),
                   num_steps=12, log_every=6, steps_per_call=4, progress=False)


def test_restoring_a_checkpoint_of_another_architecture_is_a_named_error(tmp_path):
  _train(str(tmp_path), total=4)
  wider = ScoreMLP(hidden=(32, 16), emb_dim=8, zero_init_output=False)
  params = wider.init(jax.random.key(1), X[:1], jnp.zeros((1,)))["params"]
  opt = training.make_optimizer(learning_rate=1e-2, warmup_steps=2, decay="cosine",
                                total_steps=4, grad_clip=1.0)  # as the saved run's
  template = training.init_state(params, opt, training.ema(0.9))
  manager = training.Checkpointer(str(tmp_path), keep=1)
  with pytest.raises(training.CheckpointError,
                     match=r"does not match the model this config builds \(\d+ arrays differ: "):
    manager.restore(template)
  manager.close()
