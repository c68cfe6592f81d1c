"""How many distinct keys a node can keep warm: told by the user, or learned from the tasks' ``cache_hit``.

Hash apportions keys to nodes by their CPUs, but a node's cache holds what it
holds: a 4-CPU node given 32 keys against a 24-key cache misses on every task
(an LRU cycled by more keys than it holds keeps none of them), falls behind,
and its keys scatter. Two ways to know better:

* **A hint** (``keys_per_node``: ``--keys-per-node N`` or
  ``@raysched.task(keys_per_node=N)``): no node is given more than N distinct
  live keys while another node has room for one.
* **Learning** (no hint needed, when tasks return ``cache_hit``): the driver
  reports each node's hits with its brain calls (`report_hits`, `read_hits`),
  counting only tasks of keys that ran on that node before (a key's first task
  on a node misses wherever it goes: that is a cold start, not thrashing);
  a node whose recent hit rate is ``SHED_GAP`` below the best node's is
  thrashing, so its capacity is set a quarter below the keys it holds, and
  that many of its keys (the least recently placed) move whole to nodes with
  room. Its hit rate is then measured afresh; shedding stops when rates even
  out. Capacities only fall (a node's comes back when it leaves and rejoins).

Either one also tells hash that keys keep warm state there (`KeyCapacity.informed`):
a key that has run then waits for its home while the home gets through its
work within the locality wait, and a free slot on a node whose cache is full
of other keys is not taken (`HashPolicy.takes_slot`).

Without a hint and without ``cache_hit``, nothing here changes a placement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from raysched.policies.node_reports import fold_recent_means, read_pairs, report_pairs

__all__ = ["CACHE_HIT", "HITS_PREFIX", "TASKS_PREFIX", "KeyCapacity", "read_hits", "report_hits"]

CACHE_HIT = "cache_hit"  # the metric a task returns: 1 when its key's warm state was there, else 0
HITS_PREFIX = "cache_hits@"  # pacing entries from the driver: hits on that node since its last brain call
TASKS_PREFIX = "cache_tasks@"  # ... and tasks that reported cache_hit there
MIN_TASKS = 20  # tasks a node must report before its hit rate is compared (and again after each shed)
WINDOW_TASKS = 40  # the hit rate is an average over about this many recent tasks
SHED_GAP = 0.25  # a node this far below the best node's hit rate is thrashing
SHED_SHARE = 0.25  # ... and keeps this share fewer keys than it holds


def report_hits(counts: Mapping[str, tuple[int, int]]) -> dict[str, float]:
    """Per-node (hits, tasks) as pacing entries for one brain call."""
    return report_pairs(HITS_PREFIX, TASKS_PREFIX, counts)


def read_hits(stats: Mapping[str, object]) -> dict[str, tuple[float, float]]:
    """The per-node (hits, tasks) a brain call carried (bad entries are ignored: they are hints)."""
    return read_pairs(HITS_PREFIX, TASKS_PREFIX, stats, lambda hits, tasks: 0 <= hits <= tasks, missing=0.0)


class KeyCapacity:
    """Distinct keys each node may be given: the hint, and what its hit rate taught."""

    def __init__(self, hint: int | None = None) -> None:
        self.hint = hint
        self.caps: dict[str, int] = {}  # learned: node -> most distinct live keys
        self.rates: dict[str, float] = {}  # node -> recent hit rate
        self.seen: dict[str, float] = {}  # node -> tasks reported since its last shed (evidence)
        self.thrashing: set[str] = set()  # found thrashing; its capacity falls at the next decision
        self.sheds = 0

    @property
    def active(self) -> bool:
        """Does any node have a capacity? (None does: placements are exactly as without this.)"""
        return self.hint is not None or bool(self.caps or self.thrashing)

    @property
    def informed(self) -> bool:
        """Does the job say its keys keep warm state (a hint, or tasks that report ``cache_hit``)?"""
        return self.hint is not None or bool(self.seen)

    def of(self, node: str) -> float:
        """Distinct live keys ``node`` may hold."""
        learned = self.caps.get(node)
        hint = math.inf if self.hint is None else self.hint
        return hint if learned is None else min(hint, learned)

    def observe(self, counts: Mapping[str, tuple[float, float]]) -> None:
        """Hit counts per node from the driver; marks a node far below the best one as thrashing."""
        fold_recent_means(self.rates, self.seen, counts, WINDOW_TASKS)
        measured = {n: r for n, r in self.rates.items() if self.seen.get(n, 0.0) >= MIN_TASKS}
        if len(measured) < 2:
            return
        best = max(measured.values())
        for node, rate in measured.items():
            if rate < best - SHED_GAP:
                self.thrashing.add(node)

    def shed(self, node: str, keys_held: int) -> int:
        """``node`` thrashes holding ``keys_held`` keys: its new capacity; how many keys must leave it."""
        self.thrashing.discard(node)
        self.seen[node] = 0.0  # measured afresh once its keys have left
        self.rates.pop(node, None)
        if keys_held <= 1:
            return 0
        base = int(min(self.of(node), keys_held))  # of() is inf while nothing is known
        cap = max(1, base - max(1, math.ceil(base * SHED_SHARE)))
        self.caps[node] = cap
        self.sheds += 1
        return max(0, keys_held - cap)

    def forget(self, gone: Iterable[str]) -> None:
        """Nodes that left: what was learned of them goes too."""
        for node in gone:
            self.caps.pop(node, None)
            self.rates.pop(node, None)
            self.seen.pop(node, None)
            self.thrashing.discard(node)
