"""How fast each node really gets through its tasks, so hash can share work by it and not by CPUs alone.

Hash's bounds weigh a node by its CPUs. A node whose tasks run slower (a
slow disk, a noisy neighbour, an older CPU) then holds as many keys as a
fast one of its size, falls behind, and its keys scatter when idle nodes
take its waiting work. The driver reports each node's mean run time per
task with its brain calls (`report_run_times`, `read_run_times`: tasks that
report ``cache_hit`` count only when they hit, so a cold cache does not
pass for a slow node); `NodeSpeed` keeps a recent average per node and
gives each a factor: the median node's time over its own, 1.0 while it is
within ``DEAD_BAND`` of the median (noise moves nothing), and within
``[MIN_FACTOR, MAX_FACTOR]``. Hash's share of a node is its CPUs times its
factor: a node with half the throughput of the others is given about half
the keys. Without reports every factor is 1.0: placements are as without this.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from raysched.policies.node_reports import fold_recent_means, read_pairs, report_pairs

__all__ = ["NodeSpeed", "read_run_times", "report_run_times"]

RUN_S_PREFIX = "run_s@"  # pacing entries from the driver: summed run seconds of ok tasks on that node...
RUNS_PREFIX = "runs@"  # ...and how many tasks, since its last brain call
MIN_TASKS = 20  # tasks a node must report before its time counts
WINDOW_TASKS = 40  # its time is an average over about this many recent tasks
DEAD_BAND = 1.5  # a node within this ratio of the median node's time is as fast as the median
MIN_FACTOR, MAX_FACTOR = 0.25, 4.0


def report_run_times(runs: Mapping[str, tuple[float, int]]) -> dict[str, float]:
    """Per-node (seconds summed, tasks) as pacing entries for one brain call."""
    return report_pairs(RUN_S_PREFIX, RUNS_PREFIX, runs)


def read_run_times(stats: Mapping[str, object]) -> dict[str, tuple[float, float]]:
    """The per-node (seconds, tasks) a brain call carried (bad entries are ignored: they are hints)."""
    return read_pairs(RUN_S_PREFIX, RUNS_PREFIX, stats, lambda seconds, tasks: seconds >= 0)


class NodeSpeed:
    """Each node's recent mean run time per task, and its speed factor against the median node."""

    def __init__(self) -> None:
        self.mean_s: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.factors: dict[str, float] = {}  # only nodes whose factor is not 1.0

    def observe(self, runs: Mapping[str, tuple[float, float]]) -> set[str]:
        """Run times per node from the driver; the nodes whose factor changed."""
        fold_recent_means(self.mean_s, self.seen, runs, WINDOW_TASKS)
        measured = {n: t for n, t in self.mean_s.items() if self.seen[n] >= MIN_TASKS and t > 0}
        if len(measured) < 2:
            return set()
        median = statistics.median(measured.values())
        changed = set()
        for node, t in measured.items():
            ratio = median / t
            factor = 1.0 if 1 / DEAD_BAND <= ratio <= DEAD_BAND else min(MAX_FACTOR, max(MIN_FACTOR, ratio))
            if factor != self.factors.get(node, 1.0):
                changed.add(node)
                if factor == 1.0:
                    del self.factors[node]
                else:
                    self.factors[node] = factor
        return changed

    def factor(self, node: str) -> float:
        return self.factors.get(node, 1.0)

    def forget(self, gone: set[str]) -> None:
        """Nodes that left: what was measured of them goes too."""
        for node in gone:
            self.mean_s.pop(node, None)
            self.seen.pop(node, None)
            self.factors.pop(node, None)
