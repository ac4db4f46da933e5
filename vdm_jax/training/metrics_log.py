"""Metrics of a run: absl logging and ``WORKDIR/metrics.jsonl``, valid whatever happens.

The file holds one JSON object per line, each with a ``"step"``. It stays valid
JSONL across crashes, full disks and resumes:

* a record is written with one ``write`` and flushed; if the write fails (a
  full disk) the file is truncated back to its last complete line;
* on start-up (`repair`) an incomplete last line is dropped, and so is every
  record logged after the step the run resumes from (those steps are replayed
  and logged again), and a ``{"step": s, "resumed_from": s}`` record marks the
  resume.

`read` is the tolerant reader: it skips lines that do not parse.

The same scalars (and sample grids, `MetricsWriter.write_image`) also go to
TensorBoard event files in ``WORKDIR/tensorboard/`` when `tensorboardX` is
installed (an optional dependency: ``pip install -e ".[tensorboard]"``); a
resumed run purges the events logged after its checkpoint, as the JSONL does.
View them with ``tensorboard --logdir WORKDIR``.
"""

from __future__ import annotations

import json
import os
import uuid

from absl import logging


def read(path: str) -> list[dict]:
  """The records of a metrics file; lines that are not JSON objects are skipped."""
  records = []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if isinstance(record, dict):
        records.append(record)
  return records


def repair(path: str, resume_step: int) -> int:
  """Drops a partial last line and records after `resume_step`; returns how many dropped."""
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    text = f.read()
  kept, dropped = [], 0
  for line in text.split("\n"):
    if not line:
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      dropped += 1
      continue
    if isinstance(record, dict) and record.get("step", 0) > resume_step:
      dropped += 1
      continue
    kept.append(line)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write("".join(line + "\n" for line in kept))
  os.replace(tmp, path)
  return dropped


def _summary_writer(logdir: str, purge_step: int | None):
  """A tensorboardX `SummaryWriter`, or None (once logged) if it is not installed."""
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  except ImportError:
    logging.log_first_n(logging.INFO, "tensorboardX is not installed: metrics go to "
                        "metrics.jsonl only (pip install tensorboardX for TensorBoard "
                        "event files).", 1)
    return None
  # Event files are named by the second they were opened in; the suffix keeps
  # a resume within the same second from overwriting the first run's file.
  return SummaryWriter(logdir, purge_step=purge_step,
                       filename_suffix=f".{os.getpid()}.{uuid.uuid4().hex[:8]}")


class MetricsWriter:
  """Logs metrics with absl, to ``workdir/metrics.jsonl`` and to TensorBoard (if `active`).

  Args:
    workdir: the run's folder.
    active: write files (process 0 of a multi-process run); other processes
      only log.
    tensorboard: also write TensorBoard events to ``workdir/tensorboard`` when
      tensorboardX is installed.
  """

  def __init__(self, workdir: str, *, active: bool = True, tensorboard: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.tensorboard_dir = os.path.join(workdir, "tensorboard")
    self.active = active
    self._tensorboard = tensorboard
    self._tb = None

  def _events(self, purge_step: int | None = None):
    if self.active and self._tensorboard and self._tb is None:
      self._tb = _summary_writer(self.tensorboard_dir, purge_step)
      self._tensorboard = self._tb is not None
    return self._tb

  def resume(self, step: int) -> None:
    """Repairs the file for a run (re)starting at `step` and marks a resume."""
    if not self.active:
      return
    # Steps after `step` are replayed: TensorBoard drops the old ones too.
    self._events(purge_step=int(step) if step > 0 else None)
    dropped = repair(self.path, step)
    if step > 0:
      if dropped:
        logging.info("metrics.jsonl: dropped %d records logged after step %d "
                     "(they will be replayed).", dropped, step)
      self._append({"step": int(step), "resumed_from": int(step)})

  def write(self, step: int, metrics: dict, prefix: str = "") -> None:
    record = {"step": int(step), **{prefix + k: float(v) for k, v in metrics.items()}}
    logging.info("step %d: %s", step, ", ".join(
        f"{k}={v:.5g}" for k, v in record.items() if k != "step"))
    if self.active:
      self._append(record)
      events = self._events()
      if events is not None:
        for key, value in record.items():
          if key != "step":
            events.add_scalar(key, value, int(step))
        events.flush()

  def write_image(self, step: int, name: str, image) -> None:
    """Adds an `[H, W, C]` uint8 image (e.g. a sample grid) to the TensorBoard events."""
    events = self._events()
    if events is not None:
      events.add_image(name, image, int(step), dataformats="HWC")
      events.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def _append(self, record: dict) -> None:
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      offset = os.lseek(fd, 0, os.SEEK_END)
      try:
        written = os.write(fd, data)
        if written != len(data):
          raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
      except OSError:
        os.ftruncate(fd, offset)  # keep the file at its last complete line.
        raise
    finally:
      os.close(fd)
