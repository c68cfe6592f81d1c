"""The driver's rules, shared by `raysched submit` (the runner) and `raysched simulate` (the engine).

Plain Python with no Ray import, so the simulator follows the very rules the
runner does: how often it asks the brain, how many tasks it keeps in flight,
and how often an attempt lost with its node is tried again.
"""

from __future__ import annotations

import math

__all__ = [
    "LOST_ATTEMPTS_LIMIT",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "PACE_AFTER_CALLS",
    "POLL_S",
    "WINDOW_PER_SLOT",
    "paces",
    "retry_failure",
    "retry_lost",
    "window",
]

#: With tasks waiting at the brain, ask at least this often: room freed by others is heard of only by asking.
POLL_S = 0.05

#: A brain call's round trip tells the pacer how long a freed slot waits only once this many calls were sent
#: after the run's first finish was noticed: the cycle before spans the start-up (workers and the brain
#: starting), which no slot waits for again. Counted, it made the pacer queue deep at once and drew most of a
#: short job into the window on its first finish (jobs/cpu_bound.py: all 300 tasks within 5 ms).
PACE_AFTER_CALLS = 2

#: The window (tasks held at once) is WINDOW_PER_SLOT x cluster CPUs x queue depth, within these bounds.
MIN_WINDOW, WINDOW_PER_SLOT, MAX_WINDOW = 64, 2, 100_000

#: An attempt lost with its node (a system failure) is tried again up to this many times, apart from
#: ``--retries`` for the task's own failures: bounded, in case a task kills its worker every time.
LOST_ATTEMPTS_LIMIT = 5


def window(cluster_cpus: float, depth: float, max_inflight: int | None = None) -> int:
    """How many tasks the driver holds at once: ``--max-inflight``, else enough to fill every node's queue."""
    if max_inflight is not None:
        return max_inflight
    slots = WINDOW_PER_SLOT * cluster_cpus * depth
    return int(min(MAX_WINDOW, max(MIN_WINDOW, math.ceil(slots))))


def paces(calls_since_first_finish: int) -> bool:
    """Whether the answer to the latest brain call is a round trip the pacer should hear (`PACE_AFTER_CALLS`)."""
    return calls_since_first_finish >= PACE_AFTER_CALLS


def retry_lost(lost_attempts: int) -> bool:
    """Whether a task runs again once ``lost_attempts`` of its attempts (this one too) were lost with their nodes."""
    return lost_attempts <= LOST_ATTEMPTS_LIMIT


def retry_failure(failed_attempts: int, retries: int) -> bool:
    """Whether a task runs again once its own code failed ``failed_attempts`` times (this one too): ``--retries``."""
    return failed_attempts <= retries
