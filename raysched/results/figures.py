"""The arithmetic of every figure a run is judged by, each written once.

The end-of-run summary (`raysched.results.report`), `raysched analyze`, `raysched simulate` and
`raysched bench` all print throughput, rates, balance and the cache hit rate; they call these
functions so the same rows can never give two different numbers. Plain Python on counts and
sums (numpy underneath, so a pandas column gives bit for bit what pandas itself would), for the
live run loop and the DataFrame callers alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from raysched.results.schema import is_no_key

__all__ = [
    "RATE_METRICS",
    "capacity_imbalance",
    "cv",
    "hit_rate",
    "imbalance",
    "keyed",
    "makespan",
    "per_s",
    "quantile",
    "start_up",
    "tasks_per_s",
    "work_unit",
]

#: Task metrics summed over ok tasks and shown per second of the makespan (``items/s``, ``bytes/s``).
RATE_METRICS: tuple[str, ...] = ("items", "bytes")


def keyed(key: object, task_id: object) -> bool:
    """True when a row's task has a key of its own: a key (`schema.is_no_key` says no) other than its task id.

    A task without a key is recorded with its task id for key, so a run whose keys are all task ids has no
    keys: `submit`'s summary and `analyze` show no key figures (affinity, keys, spills) for it.
    """
    return not is_no_key(key) and str(key) != str(task_id)


def work_unit(tasks: int, calls: int) -> str:
    """What a run's work is called in its summary and `analyze`'s table: ``calls`` for a run of calls to services
    only, else ``tasks`` (a run of both tells its calls apart in call terms)."""
    return "calls" if calls and not tasks else "tasks"


def per_s(amount: float, seconds: float) -> float:
    """An amount per second of ``seconds``; NaN when no time passed (a rate over nothing means nothing)."""
    return amount / seconds if seconds > 0 else math.nan


def tasks_per_s(tasks: int, seconds: float) -> float:
    """The one definition of throughput: ok tasks / `makespan` (first task start to last finish)."""
    return per_s(tasks, seconds)


def makespan(first_started: float | None, last_finished: float | None) -> float:
    """The one clock: seconds from the first ok task's start to the last ok finish (NaN when unknown).

    It leaves out the start-up before the first task runs (Ray starting the driver's workers, seconds
    on a cold node), which is the same for every policy and which `raysched simulate` does not model:
    `raysched analyze`, the run summary and `simulate --validate` all count from here. The start-up
    is its own figure, `start_up`.
    """
    if first_started is None or last_finished is None:
        return math.nan
    return float(last_finished) - float(first_started)


def start_up(first_submitted: float | None, first_started: float | None) -> float:
    """Seconds from the first ok task's submission to the first ok task's start: the workers' start-up."""
    if first_submitted is None or first_started is None:
        return math.nan
    return max(0.0, float(first_started) - float(first_submitted))


def _numbers(values: Iterable[Any]) -> np.ndarray:
    """Floats from a list, a dict's values, a numpy array or a pandas Series; None and NaN become NaN."""
    if not hasattr(values, "__array__"):
        values = [math.nan if v is None else v for v in values]
    return np.asarray(values, dtype=np.float64)


def _used(tasks_per_node: Iterable[Any]) -> np.ndarray:
    counts = _numbers(tasks_per_node)
    return counts[counts > 0]


def imbalance(tasks_per_node: Iterable[Any]) -> float:
    """Most loaded node over the mean, over the nodes that ran at least one task (1.0 = even; NaN for none)."""
    used = _used(tasks_per_node)
    return float(used.max() / used.mean()) if len(used) else math.nan


def capacity_imbalance(tasks_per_node: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Imbalance weighted by capacity: the most tasks per unit of capacity on one node, over the run's tasks per
    unit of capacity, over the nodes that ran at least one task. 1.0 = every node ran work in proportion to its
    capacity, whatever the nodes' sizes. A node's weight is its CPUs, as the hash ring weighs it
    (`raysched.core.view.node_weight`). NaN for no tasks, or when a node that ran tasks has no known weight.
    """
    used = {node: float(count) for node, count in tasks_per_node.items() if count and count > 0}
    if not used or any(not weights.get(node) or weights[node] <= 0 for node in used):
        return math.nan
    per_unit = sum(used.values()) / sum(weights[node] for node in used)
    return max(count / weights[node] for node, count in used.items()) / per_unit


def cv(tasks_per_node: Iterable[Any]) -> float:
    """Coefficient of variation of tasks per node: population std (ddof=0) / mean, over nodes that ran a task."""
    used = _used(tasks_per_node)
    return float(used.std() / used.mean()) if len(used) else math.nan


def quantile(values: Iterable[Any], q: float) -> float:
    """The q-quantile of the known values, by linear interpolation (numpy's and pandas' default, so the summary
    and `raysched analyze` give the same number); NaN when none is known."""
    known = _numbers(values)
    known = known[~np.isnan(known)]
    return float(np.quantile(known, q)) if len(known) else math.nan


def hit_rate(hits: Iterable[Any]) -> float:
    """The cache hit rate in %: the mean of the tasks' ``cache_hit`` values (0 or 1), missing ones skipped.

    NaN when no task reported a hit or a miss.
    """
    known = _numbers(hits)
    known = known[~np.isnan(known)]
    return float(known.mean() * 100) if len(known) else math.nan
