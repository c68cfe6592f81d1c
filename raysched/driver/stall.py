"""Nodes that hold this run's work but stopped finishing it.

A node that finishes nothing for far longer than its tasks take is reported
to the brain as stalled. A report is a suspicion: the brain probes the node's
raylet (`raysched.brain.node_health`) and drops it only when it is dead or
unreachable, so its keys move seconds before Ray's health checks agree, and
long tasks on a live node cost nothing but a health check now and then.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

# A node with work of this run that finishes nothing for max(STALL_MIN_S, STALL_TASKS x the
# 90th-percentile unit time) is reported; one that has never finished anything in this run gets
# STALL_NEW_S (worker start-up).
STALL_MIN_S, STALL_NEW_S, STALL_TASKS = 2.0, 15.0, 10.0
STALL_CHECK_S = 0.5  # how often the nodes are looked at


class StallWatch:
    """Per node: the attempts running there, and when it last finished one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.work: collections.Counter[str] = collections.Counter()  # attempts running per node
        self._progress: dict[str, float] = {}  # last finish seen (or first dispatch) per node
        self._done: set[str] = set()  # nodes that finished something in this run
        self._reported: dict[str, float] = {}  # node -> when it was last reported (it may be alive: asked again)
        self._last_check = 0.0

    def dispatched(self, node: str, attempts: int) -> None:
        if self.work[node] == 0:
            self._progress[node] = self._clock()
        self.work[node] += attempts

    def returned(self, node: str, attempts: int) -> None:
        """Attempts came back from the node (finished, failed or lost)."""
        self.work[node] -= attempts

    def finished(self, node: str) -> None:
        """The node finished an attempt: it is alive and working."""
        self._progress[node] = self._clock()
        self._done.add(node)
        self._reported.pop(node, None)

    def check(self, unit_s: Callable[[], float], report: Callable[[str], None]) -> None:
        """Report each node quiet for longer than its limit (``unit_s()``: a Ray task's usual run time).

        Looks only every STALL_CHECK_S: the loop calls this on every turn, and ``unit_s`` sorts recent times.
        """
        now = self._clock()
        if now - self._last_check < STALL_CHECK_S:
            return
        self._last_check = now
        unit = unit_s()
        for node, work in self.work.items():
            if work <= 0:
                continue
            floor = STALL_MIN_S if node in self._done else STALL_NEW_S
            limit = max(floor, STALL_TASKS * unit)
            quiet_since = max(self._progress.get(node, now), self._reported.get(node, -math.inf))
            if now - quiet_since > limit:
                self._reported[node] = now
                report(node)
