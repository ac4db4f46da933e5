"""TensorBoard events beside metrics.jsonl: the same scalars, sample grids, resume purges."""

import glob
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vdm_jax import training
from vdm_jax.models import ScoreMLP
from vdm_jax.training import metrics_log

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")


def _events(workdir):
  """Every Event of the run's event files, read straight from the TFRecord framing."""
  out = []
  for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.*"))):
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[i + 12:i + 12 + length])  # after length + its CRC.
      out.append(event)
      i += 12 + length + 4  # and the data's CRC.
  return out


def _scalars(workdir, tag):
  return {e.step: v.simple_value for e in _events(workdir) for v in e.summary.value
          if v.tag == tag}


def _train(workdir, num_steps):
  model = ScoreMLP(hidden=(8,), emb_dim=4)
  x = jax.random.normal(jax.random.key(0), (16, 3))

  def loss(params, data, key, shard):
    (x,) = data
    t = jax.random.uniform(key, (x.shape[0],))
    return jnp.mean((model.apply({"params": params}, x, t) - x) ** 2), {}

  opt = training.make_optimizer(learning_rate=1e-2)
  ema = training.ema(0.9)
  params = model.init(jax.random.key(1), x[:1], jnp.zeros((1,)))["params"]
  step = training.make_step(training.value_and_grad(loss), opt, ema)
  return training.train(step, training.init_state(params, opt, ema),
                        batches=training.Resident((x,)), base_rng=jax.random.key(2),
                        num_steps=num_steps, log_every=2, save_every=2,
                        workdir=str(workdir), num_devices=1, progress=False)


def test_events_hold_the_jsonl_scalars_and_a_resume_purges_replayed_steps(tmp_path):
  _train(tmp_path, 4)
  jsonl = {r["step"]: r["loss"] for r in
           metrics_log.read(os.path.join(tmp_path, "metrics.jsonl")) if "loss" in r}
  assert sorted(jsonl) == [2, 4]
  got = _scalars(tmp_path, "loss")
  assert sorted(got) == [2, 4]
  np.testing.assert_allclose([got[s] for s in (2, 4)], [jsonl[s] for s in (2, 4)],
                             rtol=1e-6)
  # A second run from the step-4 checkpoint to step 6 adds step 6 only, and
  # TensorBoard is told to purge anything logged after step 4 by the first run.
  _train(tmp_path, 6)
  assert sorted(_scalars(tmp_path, "loss")) == [2, 4, 6]
  starts = [e.step for e in _events(tmp_path) if e.HasField("session_log")
            and e.session_log.status == event_pb2.SessionLog.START]
  assert starts == [4]  # TensorBoard drops events after step 4 logged before this.


def test_write_image_and_inactive_writers(tmp_path):
  writer = metrics_log.MetricsWriter(str(tmp_path))
  grid = np.zeros((6, 8, 3), np.uint8)
  grid[2:4, 3:5] = 255
  writer.write(3, {"bpd": 1.5}, prefix="eval_")
  writer.write_image(3, "samples", grid)
  writer.close()
  images = [v for e in _events(tmp_path) for v in e.summary.value if v.tag == "samples"]
  assert len(images) == 1
  assert (images[0].image.height, images[0].image.width) == (6, 8)
  assert images[0].image.encoded_image_string[:4] == b"\x89PNG"
  assert _scalars(tmp_path, "eval_bpd") == {3: 1.5}
  # Processes other than 0 write nothing.
  other = tmp_path / "other"
  other.mkdir()
  quiet = metrics_log.MetricsWriter(str(other), active=False)
  quiet.write(1, {"loss": 1.0})
  quiet.write_image(1, "samples", grid)
  assert os.listdir(other) == []
