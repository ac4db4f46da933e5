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
"""

from __future__ import annotations

import json
import os

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


class MetricsWriter:
  """Logs metrics with absl and appends them to ``workdir/metrics.jsonl`` (if `active`)."""

  def __init__(self, workdir: str, *, active: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.active = active

  def resume(self, step: int) -> None:
    """Repairs the file for a run (re)starting at `step` and marks a resume."""
    if not self.active:
      return
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
