"""What the driver holds for each try of a task, and the job's tasks drawn as first attempts."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from raysched.brain.state import Request
from raysched.job import JobFile, Task, task_demand
from raysched.results.schema import format_demand, task_key
from raysched.services import ServiceMethod


@dataclass(eq=False)
class Attempt:
    """One try of one task, from the moment the driver takes it in to its row in the CSV."""

    task_id: int
    task: Task
    key: str
    demand: Mapping[str, float]
    demand_text: str
    attempt: int = 1
    lost: int = 0  # attempts of this task lost with their nodes so far (not its own failures)
    node: str = ""
    spill: str = ""
    brain_wait_s: float | None = None
    replica: str = ""  # a call: the replica it was routed to (``Shard#2``)
    executor: str = ""  # a task run as a call on an executor: its name (empty: a pinned Ray task)
    # When raysched took the attempt in (drawn from tasks(), or queued again for a retry), so
    # wait_s counts the wait for room as well as Ray's own dispatch.
    submitted_at: float = field(default_factory=time.time)
    received_at: float | None = None  # when its result reached the driver (for latency_s)

    @property
    def call(self) -> ServiceMethod | None:
        """The service method when this is a call to a service (routed to a replica), else None."""
        fn = self.task.fn
        return fn if isinstance(fn, ServiceMethod) else None

    @property
    def via(self) -> str:
        """How the attempt reached its node: ``task`` (pinned Ray task), ``executor`` or ``replica``; empty
        when it was never sent."""
        if self.replica:
            return "replica"
        if self.executor:
            return "executor"
        return "task" if self.node else ""

    @property
    def request(self) -> Request:
        """The attempt as the brain takes it: id, demand and the key placement hashes."""
        return (self.task_id, self.demand, self.key)

    def again(self) -> Attempt:
        """The next attempt of the same task, taken in now."""
        return Attempt(self.task_id, self.task, self.key, self.demand, self.demand_text, self.attempt + 1, self.lost)


def draw_attempts(
    job: JobFile, skip_task_ids: Collection[int] = frozenset(), on_skip: Callable[[int], Any] = lambda task_id: None
) -> Iterator[Attempt]:
    """The job's tasks, lazily, as first attempts; a task id in ``skip_task_ids`` (ok in a resumed CSV) is skipped.

    A task without a key (None or blank) is keyed by its task id, as `analyze` and `simulate` read it.
    """
    demands: dict[Any, tuple[Mapping[str, float], str]] = {}
    for task_id, task in enumerate(job.iter_tasks()):
        if task_id in skip_task_ids:
            on_skip(task_id)
            continue
        demand = demands.get(task.fn)
        if demand is None:
            resources = task_demand(task.fn, job.name)
            demand = demands[task.fn] = (resources, format_demand(resources))
        yield Attempt(task_id, task, task_key(task.key, task_id), demand[0], demand[1])
