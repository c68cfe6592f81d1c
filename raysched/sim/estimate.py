"""The model's defaults, measured from the recorded run (each documented in `raysched simulate --help`).

* **miss cost** S: median ``run_s`` of the ok rows that missed their node's cache
  minus the median of those that hit (the trace's ``cache_hit`` column);
* **cache size** N and **scope**: the recorded run replayed through LRU caches,
  one per node and one per worker process (each task on the worker
  raysched.sim.workers deals it to): per scope, the N that hits as many
  accesses as the run did, the most accesses agreeing with its ``cache_hit``
  column among those (tasks in start order; Mattson's stack distances give
  every N in one pass; a hit touches its key at its start, a miss's key
  enters when its load ends, as the simulator's caches take keys in); then the
  scope that agrees with more accesses (node scope when both do equally well);
* **dispatch**: the 0.5th percentile of ``wait_s - brain_wait_s``, the time a
  task spent outside the brain (waiting for the driver's next call, reaching
  the brain, coming back, starting) for the quickest tasks, which met no queue
  at their node. Only the lowest tail is dispatch: under a policy that keeps
  node queues full (random on jobs/cache_affinity.py) fewer than 1% of the
  tasks go straight through, and already the 1st percentile can be a task that
  waited behind another at its node (measured: 35-46 ms there against 21-25 ms
  for the quickest tasks; the 10th percentile was over 100 ms).
* **turnaround** (per node, each worker): the median time from a worker's
  finish to the start of the next Ray task, over the Ray tasks that were
  already waiting at the node then (raysched.sim.workers);
* **start rate** (per driver): not estimated, no limit unless ``--start-rate``
  sets one. The densest window of 50 consecutive Ray task starts was tried and
  made replays worse: a run of long tasks never shows the cluster's capacity
  (jobs/cache_affinity.py under random starts at most 134/s where hash needs
  over 200/s), and the cap also shifted hash's bounded loads on runs that were
  not start-bound (measured, benchmarks/fidelity.py). On this machine the
  turnaround carries Ray's cost per task well enough;
* **start-up**: when each worker of each node first started a task that had
  been waiting for it, after the run's first start (workers of nodes or ranks
  the run did not show: the median of those).
"""

from __future__ import annotations

import numpy as np

from raysched.sim.trace import Trace
from raysched.sim.workers import WorkerAssignment

__all__ = [
    "DISPATCH_QUANTILE",
    "ESTIMATE_ROWS",
    "SCOPES",
    "estimate_cache",
    "estimate_cache_keys",
    "estimate_dispatch_s",
    "estimate_miss_s",
    "estimate_startup",
    "estimate_turnaround_s",
]

SCOPES = ("node", "worker")
MIN_TURNAROUNDS = 5  # fewer measured turnarounds than this: none modelled

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
    return _best_size(trace.node_ran[order], trace.keys[order], trace.cache_hit[order] == 1.0)[0]


def estimate_cache(
    trace: Trace, workers: WorkerAssignment, scope: str | None = None, load_s: float = 0.0
) -> tuple[str, int, float] | None:
    """(scope, keys, share of recorded hits and misses reproduced) that best fits the trace; None without
    a cache_hit column. ``scope`` given: only that scope is tried. ``load_s``: what a miss's load took (its key
    enters the cache when the load ends, as the simulator's caches take it in)."""
    if trace.cache_hit is None:
        return None
    order = workers.order
    seen = np.isfinite(trace.cache_hit[order])
    if not seen.any():
        return None
    order = order[seen]
    nodes = trace.node_ran[order]
    hit = trace.cache_hit[order] == 1.0
    starts = workers.started_s[seen]
    taken_in = np.where(hit, starts, starts + load_s)
    places = {
        "node": nodes,
        "worker": np.array([f"{n}/{w}" for n, w in zip(nodes.tolist(), workers.worker[seen].tolist(), strict=True)]),
    }
    best: tuple[str, int, float] | None = None
    for name in SCOPES if scope is None else (scope,):
        keys, agree = _best_size(places[name], trace.keys[order], hit, starts, taken_in)
        if best is None or agree > best[2] + 1e-12:
            best = (name, keys, agree)
    return best


def _best_size(
    places: np.ndarray,
    keys: np.ndarray,
    hit: np.ndarray,
    starts: np.ndarray | None = None,
    taken_in: np.ndarray | None = None,
) -> tuple[int, float]:
    """The LRU size (one cache per distinct place) that best reproduces ``hit``, and the share of accesses it does.

    Best: as many hits as recorded (the rate drives a replay's run times), then the most accesses agreeing,
    then the smallest size. Agreement alone picked sizes that hit far more often than the run did when
    workers shared keys (per-worker LRU under hash: 79% simulated hits against 56% measured; 61% now).
    """
    distances = _stack_distances(places, keys, starts, taken_in)
    finite = distances >= 0
    top = int(distances.max()) + 2 if finite.any() else 2
    # A cache of N keys hits exactly the accesses whose stack distance is below N.
    hits_below = np.cumsum(np.bincount(distances[hit & finite], minlength=top))  # [d] = hits with distance <= d
    misses_below = np.cumsum(np.bincount(distances[~hit & finite], minlength=top))
    total_misses = int((~hit).sum())
    sizes = np.arange(1, top)
    agree = hits_below[sizes - 1] + (total_misses - misses_below[sizes - 1])
    predicted = hits_below[sizes - 1] + misses_below[sizes - 1]  # accesses a cache of N keys would hit
    off = np.abs(predicted - int(hit.sum()))
    best = int(np.lexsort((-agree, off))[0])  # the hit count first, then agreement, then the smallest N
    return int(sizes[best]), float(agree[best]) / max(1, len(hit))


def estimate_turnaround_s(workers: WorkerAssignment) -> float:
    """A worker's finish to the start of the next Ray task already waiting for it (median; 0 if few seen)."""
    if len(workers.turnarounds) < MIN_TURNAROUNDS:
        return 0.0
    return float(np.median(workers.turnarounds))


def estimate_startup(workers: WorkerAssignment) -> tuple[dict[str, list[float]], float]:
    """When each recorded worker was first up (node -> per worker), and the median for any other worker."""
    startup = {str(node): list(firsts) for node, firsts in workers.first_starts.items()}
    every = [t for firsts in startup.values() for t in firsts]
    return startup, float(np.median(every)) if every else 0.0


def _stack_distances(
    places: np.ndarray, keys: np.ndarray, starts: np.ndarray | None = None, taken_in: np.ndarray | None = None
) -> np.ndarray:
    """Per access: distinct other keys its place took in since the key's own last take-in (-1: none yet).

    An access looks its key up at ``starts[i]`` and takes it in (to the front of the LRU) at ``taken_in[i]``:
    a hit at its start, a miss when its load ends, so a key still loading is not there yet and keys loaded
    meanwhile count from when they arrived (without times: each access in turn, taken in at once). A cache
    of N keys hits exactly the accesses whose distance is below N. A Fenwick tree per place over its
    take-ins marks each key's latest; the distance is the count of marks after the key's own.
    """
    out = np.full(len(keys), -1, dtype=np.int64)
    if starts is None or taken_in is None:
        starts = taken_in = np.arange(len(keys), dtype=np.float64)
    by_place: dict[object, list[int]] = {}
    for i, place in enumerate(places.tolist()):
        by_place.setdefault(place, []).append(i)
    for accesses in by_place.values():
        # In time order, then in start order, an access's look-up before its own take-in (as the simulator
        # serves look-ups one by one: a hit finds its key, then touches it).
        events = sorted([(starts[i], i, 0) for i in accesses] + [(taken_in[i], i, 1) for i in accesses])
        marks = _Fenwick(len(accesses))
        last: dict[object, int] = {}
        taken = 0
        for _, i, take in events:
            key = keys[i]
            previous = last.get(key)
            if not take:
                if previous is not None:
                    out[i] = marks.prefix(taken) - marks.prefix(previous + 1)
                continue
            if previous is not None:
                marks.add(previous, -1)
            marks.add(taken, 1)
            last[key] = taken
            taken += 1
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
