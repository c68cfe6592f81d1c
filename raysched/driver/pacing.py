"""Pacing: how deep each node's queue should be, how many tiny tasks travel together, how often to call.

Measured online by each driver for its own submission:

* **Queue depth** (Little's law). A slot that frees waits ``gap`` seconds for
  its next task when nothing is queued at the node: the driver notices the
  finish, waits for its next brain call, the brain answers, Ray starts the
  task. To keep it busy the node needs about ``gap / unit_time`` units queued
  per slot (a unit is one Ray task: a task, or a batch of tiny ones). The depth
  is that, doubled for safety, rounded up, from 1 to ``MAX_DEPTH``; 0 when
  tasks are so long (over 20 x the gap) that the idle time is under 5%.
* **Batch size** (``--batch auto``). Ray's own cost per task (submission,
  lease, reply) is about half a millisecond to a millisecond of CPU on a small
  machine. Tasks shorter than ``BATCH_BELOW_S`` run, consecutive ones placed
  on one node together, as one Ray task of about ``BATCH_TARGET_S`` of work,
  at most ``MAX_BATCH`` tasks; on executors, tasks under
  ``EXECUTOR_BATCH_BELOW_S`` travel as calls of about ``EXECUTOR_BATCH_TARGET_S``
  of work. Each task keeps its own row.
* **Call interval.** Each brain call costs CPU on both sides, so while every
  slot has work the driver calls at most every ``CALL_INTERVAL_S``; the gap
  (and so the queue depth) includes that wait.

The brain admits ``capacity x overcommit`` of demand per node, with
``overcommit = (1 + depth) x batch``. ``--overcommit X`` and ``--batch N``
fix either by hand.
"""

from __future__ import annotations

import math
from collections import deque

from raysched.core.numbers import EPS

__all__ = ["Pacer"]

MAX_DEPTH = 64
CALL_INTERVAL_S = 0.02  # while every slot has work, call the brain at most this often
MAX_BATCH = 256
BATCH_BELOW_S = 0.002  # tasks shorter than this (2 ms) travel in batches
BATCH_TARGET_S = 0.005  # about this much work per batch
# On executors a call costs Ray about as much CPU as a task (0.5-1 ms here, measured on the executor's side) but
# no worker lease: calls of tasks under 20 ms carry about 20 ms of work (10 ms tasks two at a time), which took
# 10 ms tasks from 0.97x to 1.09x plain Ray's throughput (docs/performance.md).
EXECUTOR_BATCH_BELOW_S = 0.02
EXECUTOR_BATCH_TARGET_S = 0.02
NO_QUEUE_ABOVE = 20.0  # tasks over 20 x the gap need no queue at the node
START_DEPTH = 0  # before anything is measured: only what runs now (exact until tasks prove short)
EWMA = 0.1
SAMPLE = 512  # recent task times kept for percentiles


class Pacer:
    """Running estimates of task time and round-trip gap, and the settings they imply."""

    def __init__(self, fixed_overcommit: float | None = None, fixed_batch: int | None = None) -> None:
        self.fixed_overcommit = fixed_overcommit
        self.fixed_batch = fixed_batch
        self._recent: deque[float] = deque(maxlen=SAMPLE)
        self._task_s: float | None = None  # EWMA of one task's run time
        self._gap_s: float | None = None  # EWMA of the round trip a freed slot waits for
        self._sorted: list[float] | None = None
        self.on_executors = False  # tasks go as calls to executors (set by the runner once the brain hands one out)

    # -- observations -------------------------------------------------------------------
    def task_ran(self, run_s: float) -> None:
        """One task's own run time (batched tasks count one by one)."""
        if not run_s >= 0:
            return
        self._recent.append(run_s)
        self._sorted = None
        self._task_s = run_s if self._task_s is None else (1 - EWMA) * self._task_s + EWMA * run_s

    def gap(self, seconds: float) -> None:
        """One measured round trip: a finish noticed, the brain asked, the answer back."""
        if not seconds >= 0:
            return
        self._gap_s = seconds if self._gap_s is None else (1 - EWMA) * self._gap_s + EWMA * seconds

    # -- estimates -------------------------------------------------------------------------
    @property
    def task_s(self) -> float | None:
        return self._task_s

    def task_quantile(self, q: float) -> float | None:
        if not self._recent:
            return None
        if self._sorted is None:
            self._sorted = sorted(self._recent)
        values = self._sorted
        return values[min(len(values) - 1, int(q * len(values)))]

    def batch(self) -> int:
        """Tasks per Ray task."""
        if self.fixed_batch is not None:
            return self.fixed_batch
        t = self._task_s
        below, target = (
            (EXECUTOR_BATCH_BELOW_S, EXECUTOR_BATCH_TARGET_S) if self.on_executors else (BATCH_BELOW_S, BATCH_TARGET_S)
        )
        if t is None or t >= below:
            return 1
        return int(min(MAX_BATCH, max(1, round(target / max(t, 1e-6)))))

    def depth(self) -> int:
        """Units queued per slot beyond the one running."""
        t, gap = self._task_s, self._gap_s
        if t is None or gap is None:
            return START_DEPTH
        unit = max(t * self.batch(), 1e-6)
        if unit > NO_QUEUE_ABOVE * gap:
            return 0
        return int(min(MAX_DEPTH, max(1, math.ceil(2 * gap / unit - EPS))))

    def call_interval(self) -> float:
        """Seconds between brain calls while every slot has work: few calls (each costs CPU on both sides),
        but never more than a quarter of what the deepest queue holds."""
        t = self._task_s
        if t is None:
            return 0.0
        return min(CALL_INTERVAL_S, MAX_DEPTH * t * self.batch() / 4)

    def overcommit(self) -> float:
        """Demand a node may hold, as a multiple of its capacity: (1 + depth) x batch."""
        if self.fixed_overcommit is not None:
            return self.fixed_overcommit
        return float((1 + self.depth()) * self.batch())

    def stats(self) -> dict[str, float]:
        """What the brain is told with each call (admission, and task times for adaptive policies)."""
        out = {
            "overcommit": self.overcommit(),
            "adaptive": 0.0 if self.fixed_overcommit is not None else 1.0,
            "batch": float(self.batch()),  # tasks per call to a node: the brain hands out one executor per batch
        }
        p50, p90 = self.task_quantile(0.5), self.task_quantile(0.9)
        if p50 is not None and p90 is not None:
            out["task_p50_s"] = p50
            out["task_p90_s"] = p90
        return out
