"""The model's defaults, measured from the recorded run (each documented in `raysched simulate --help`).

* **miss cost** S: median ``run_s`` of the ok rows that missed their node's cache
  minus the median of those that hit (the trace's ``cache_hit`` column);
* **cache size** N: the recorded run replayed through per-node LRU caches: the
  smallest N that best reproduces its ``cache_hit`` column (tasks in start
  order on the node they ran on; Mattson's stack distances give every N in one
  pass);
* **dispatch**: the 0.5th percentile of ``wait_s - brain_wait_s``, the time a
  task spent outside the brain (waiting for the driver's next call, reaching
  the brain, coming back, starting) for the quickest tasks, which met no queue
  at their node. Only the lowest tail is dispatch: under a policy that keeps
  node queues full (random on jobs/cache_affinity.py) fewer than 1% of the
  tasks go straight through, and already the 1st percentile can be a task that
  waited behind another at its node (measured: 35-46 ms there against 21-25 ms
  for the quickest tasks; the 10th percentile was over 100 ms).
"""

from __future__ import annotations

import numpy as np

from raysched.sim.trace import Trace

__all__ = ["DISPATCH_QUANTILE", "ESTIMATE_ROWS", "estimate_cache_keys", "estimate_dispatch_s", "estimate_miss_s"]

DISPATCH_QUANTILE = 0.005
DEFAULT_DISPATCH_S = 0.005  # when the trace has no wait_s at all
ESTIMATE_ROWS = 200_000  # the cache-size replay reads at most the first rows by start time


def estimate_miss_s(trace: Trace) -> float | None:
    """Seconds a miss added in the recorded run; None without both hits and misses to compare."""
    if trace.cache_hit is None:
        return None
    hits = trace.run_s[trace.cache_hit == 1.0]
    misses = trace.run_s[trace.cache_hit == 0.0]
    if not len(hits) or not len(misses):
        return None
    return max(0.0, float(np.median(misses) - np.median(hits)))


def estimate_dispatch_s(trace: Trace) -> float:
    """Seconds from placement to start for a task that did not queue at its node (see the module docstring)."""
    outside = trace.wait_s - np.nan_to_num(trace.brain_wait_s, nan=0.0)
    outside = outside[np.isfinite(outside)]
    if not len(outside):
        return DEFAULT_DISPATCH_S
    return max(0.0, float(np.quantile(outside, DISPATCH_QUANTILE)))


def estimate_cache_keys(trace: Trace) -> int | None:
    """The per-node LRU size that best reproduces the recorded hits; None without a cache_hit column."""
    if trace.cache_hit is None:
        return None
    known = np.flatnonzero(np.isfinite(trace.cache_hit) & np.isfinite(trace.started_at))
    order = known[np.argsort(trace.started_at[known], kind="stable")][:ESTIMATE_ROWS]
    distances = _stack_distances(trace.node_ran[order], trace.keys[order])
    hit = trace.cache_hit[order] == 1.0
    finite = distances >= 0
    top = int(distances.max()) + 2 if finite.any() else 2
    # A cache of N keys hits exactly the accesses whose stack distance is below N.
    hits_below = np.cumsum(np.bincount(distances[hit & finite], minlength=top))  # [d] = hits with distance <= d
    misses_below = np.cumsum(np.bincount(distances[~hit & finite], minlength=top))
    total_misses = int((~hit).sum())
    sizes = np.arange(1, top)
    agree = hits_below[sizes - 1] + (total_misses - misses_below[sizes - 1])
    return int(sizes[int(np.argmax(agree))])  # argmax: the first (smallest) of equally good sizes


def _stack_distances(nodes: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per access: distinct other keys its node ran since the key's last access there (-1: first access).

    A Fenwick tree per node over that node's accesses marks each key's latest
    access; the distance is the count of marks between the two accesses.
    """
    out = np.full(len(keys), -1, dtype=np.int64)
    by_node: dict[object, list[int]] = {}
    for i, node in enumerate(nodes.tolist()):
        by_node.setdefault(node, []).append(i)
    for positions in by_node.values():
        marks = _Fenwick(len(positions))
        last: dict[object, int] = {}
        for local, i in enumerate(positions):
            previous = last.get(keys[i])
            if previous is not None:
                out[i] = marks.prefix(local) - marks.prefix(previous + 1)
                marks.add(previous, -1)
            marks.add(local, 1)
            last[keys[i]] = local
    return out


class _Fenwick:
    """Prefix sums over positions 0..size-1 with point updates, both O(log size)."""

    def __init__(self, size: int) -> None:
        self.tree = [0] * (size + 1)

    def add(self, i: int, delta: int) -> None:
        tree, i = self.tree, i + 1
        while i < len(tree):
            tree[i] += delta
            i += i & -i

    def prefix(self, i: int) -> int:
        """The sum over positions < i."""
        tree, total = self.tree, 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total
