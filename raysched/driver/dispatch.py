"""Sending placed attempts to Ray, pinned to their node, and getting their results back.

Each attempt runs with hard node affinity and ``max_retries=0``: a lost attempt
is placed again through the brain, never re-pinned to a dead node. Consecutive
tiny tasks for one node travel as one Ray task (a batch; see pacing).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysched.driver import remote
from raysched.driver.attempts import Attempt
from raysched.job import JobFileError

# Ray errors that mean the node the task was pinned to is gone.
NODE_LOST_ERRORS: tuple[type[BaseException], ...] = (
    ray.exceptions.NodeDiedError,
    ray.exceptions.TaskUnschedulableError,
)
REMOTE_CACHE = 4096  # (function, node) pairs kept with their Ray options


class PinnedFunctions:
    """Ray remote functions for a task function pinned to a node, with Ray's options: an LRU of them.

    Building `.options(...)` is not free, so they are reused; the cache is
    bounded, so a long run on an autoscaled cluster does not keep one per node
    that ever lived.
    """

    def __init__(self, demand_of: Callable[[Any], Mapping[str, float]], limit: int = REMOTE_CACHE) -> None:
        self._demand_of = demand_of
        self.limit = limit
        self._pinned: collections.OrderedDict[tuple[Any, str, bool], Any] = collections.OrderedDict()
        self._wrapped: dict[tuple[Any, bool], tuple[Any, dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self._pinned)

    def get(self, fn: Any, node: str, batch: bool) -> Any:
        """`fn` (or its batch runner) as a Ray remote function with hard affinity to `node`."""
        key = (fn, node, batch)
        cached = self._pinned.get(key)
        if cached is not None:
            self._pinned.move_to_end(key)
            return cached
        wrapped = self._wrapped.get((fn, batch))
        if wrapped is None:
            runner = remote.wrap_batch(fn) if batch else remote.wrap(fn)
            wrapped = self._wrapped[(fn, batch)] = (ray.remote(runner), ray_options(self._demand_of(fn)))
        base, options = wrapped
        cached = self._pinned[key] = base.options(
            **options, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
        )
        if len(self._pinned) > self.limit:
            self._pinned.popitem(last=False)
        return cached


def submit(pinned: PinnedFunctions, node: str, attempts: Sequence[Attempt], job_name: str) -> Any:
    """Start the attempts (one, or a batch of one function) on `node`; their Ray ObjectRef.

    A function or arguments that cannot be pickled is the job's mistake: a JobFileError that says so.
    """
    first = attempts[0]
    try:
        if len(attempts) == 1:
            return pinned.get(first.task.fn, node, False).remote(*first.task.args, **(first.task.kwargs or {}))
        calls = [(a.task.args, a.task.kwargs) for a in attempts]
        return pinned.get(first.task.fn, node, True).remote(calls)
    except (TypeError, ValueError, AttributeError) as err:  # pickling a function or its arguments failed
        raise not_serializable(first, job_name, err) from None


def not_serializable(first: Attempt, job_name: str, err: BaseException) -> JobFileError:
    """The job's mistake: a task whose function or arguments cannot be pickled, said so."""
    name = getattr(first.task.fn, "__qualname__", repr(first.task.fn))
    reason = " ".join(str(err).split())[:200]
    return JobFileError(
        f"{job_name}: task {first.task_id} ({name}) cannot be serialized to send it to the cluster "
        f"({reason}); create locks, generators and connections inside the task function instead of "
        "capturing them"
    )


def get_each(refs: list[Any]) -> list[Any]:
    """Results of finished tasks in one call; a Ray error stands in for a lost task's result."""
    if not refs:
        return []
    try:
        return ray.get(refs)
    except ray.exceptions.RayError:
        results = []
        for ref in refs:
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as err:
                results.append(err)
        return results


def ray_options(demand: Mapping[str, float]) -> dict[str, Any]:
    """Ray's own options for a demand, with Ray's retries off (the brain re-places instead)."""
    options: dict[str, Any] = {"num_cpus": demand.get("CPU", 0), "num_gpus": demand.get("GPU", 0), "max_retries": 0}
    if demand.get("memory"):
        options["memory"] = demand["memory"]
    custom = {k: v for k, v in demand.items() if k not in ("CPU", "GPU", "memory")}
    if custom:
        options["resources"] = custom
    return options
