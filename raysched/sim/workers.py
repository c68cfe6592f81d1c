"""The worker processes of the recorded run, reconstructed from its rows (Ray does not record them).

Ray runs a node's tasks in worker processes, one task at a time each; a worker
that finishes takes the next task queued for it at once (the owner reuses its
lease), and a task that finds several idle workers gets the one that went idle
last. So, per node, the tasks in start order are dealt to workers: a task
takes the most recently freed worker whose task finished by its start, or a
new worker when none has. From that assignment come

* each task's **worker** (for a cache kept per worker process, the way a
  module-level LRU is kept);
* the **Ray tasks** (units): tasks of a batch run back to back on one worker,
  the next starting when the previous finishes (within ``SAME_UNIT_S``);
* the **turnarounds**: for a unit that was already waiting at its node when its
  worker finished the previous one, the time from that finish to its start
  (the reply, the next push, the start: Ray's cost per task on a busy node);
* each worker's **first start**, when its first task had been waiting at the
  node: the worker was not up before that (worker start-up at the beginning of a run).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from raysched.sim.trace import Trace

__all__ = ["SAME_UNIT_S", "WorkerAssignment", "assign_workers"]

SAME_UNIT_S = 2e-4  # a task starting this close after its worker's previous finish ran in the same Ray task
ROWS = 200_000  # the assignment reads at most the first rows by start time


@dataclass
class WorkerAssignment:
    """Per task (in start order, ``order`` indexes the trace): its node's worker, and the run's worker facts."""

    order: np.ndarray  # trace positions, by start time (at most ROWS)
    started_s: np.ndarray  # per entry of order: seconds after the run's first start
    worker: np.ndarray  # int: worker number within its node, per entry of order
    unit_start: np.ndarray  # bool: the entry starts a Ray task (not the next task of a batch)
    turnarounds: np.ndarray  # seconds, per unit that waited for its worker
    first_starts: dict[object, list[float]]  # node -> per worker, seconds after the run's first start
    #   that its first task started, when that task had been waiting (else 0: the worker may have been up)
    span_s: float  # first start to last finish


def assign_workers(trace: Trace, dispatch_s: float) -> WorkerAssignment:
    """Deal each node's recorded tasks to its workers, as Ray does (see the module docstring)."""
    known = np.flatnonzero(np.isfinite(trace.started_at) & np.isfinite(trace.run_s))
    order = known[np.argsort(trace.started_at[known], kind="stable")][:ROWS]
    worker = np.zeros(len(order), dtype=np.int64)
    unit_start = np.ones(len(order), dtype=bool)
    if not len(order):
        return WorkerAssignment(order, np.zeros(0), worker, unit_start, np.zeros(0), {}, 0.0)
    t0 = float(trace.started_at[order[0]])
    start = trace.started_at[order] - t0
    finish = start + trace.run_s[order]
    placed = start - np.nan_to_num(trace.wait_s[order], nan=0.0) + np.nan_to_num(trace.brain_wait_s[order], nan=0.0)
    arrived = placed + dispatch_s  # when the task could have been at its node
    turnarounds: list[float] = []
    first_starts: dict[object, list[float]] = {}
    nodes = trace.node_ran[order]
    by_node: dict[object, list[int]] = {}
    for i, node in enumerate(nodes.tolist()):
        by_node.setdefault(node, []).append(i)
    for node, entries in by_node.items():
        busy: list[tuple[float, int, int]] = []  # (finish, seq, worker)
        idle: list[tuple[float, int, int]] = []  # heap of (-finish, -seq, worker): the latest freed on top
        firsts: list[float] = []
        for seq, i in enumerate(entries):
            s = start[i]
            while busy and busy[0][0] <= s + SAME_UNIT_S:
                f, q, w = heapq.heappop(busy)
                heapq.heappush(idle, (-f, -q, w))
            if idle:
                negative_f, _, w = heapq.heappop(idle)
                freed = -negative_f
                gap = s - freed
                if gap <= SAME_UNIT_S:
                    unit_start[i] = False
                elif arrived[i] < freed:
                    turnarounds.append(gap)
            else:
                w = len(firsts)
                firsts.append(float(s) if arrived[i] + dispatch_s < s else 0.0)
            worker[i] = w
            heapq.heappush(busy, (float(finish[i]), seq, w))
        first_starts[node] = firsts
    return WorkerAssignment(
        order, start, worker, unit_start, np.asarray(turnarounds, dtype=np.float64), first_starts, float(finish.max())
    )
