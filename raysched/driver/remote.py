"""The node side: thin wrappers that run the user's function and report where and when.

Application errors are caught here and returned as data, so Ray treats the
task as finished and raysched decides about retries; only system failures
(node or worker lost) surface as Ray errors in the driver. A batch runs its
tasks in order in one Ray task and reports each one on its own (times,
metrics, error), so every task still gets its own row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from raysched.results.schema import error_text, numeric_metrics

_NODE_ID: str | None = None


class Outcome(NamedTuple):
    """What one attempt reports back to the driver."""

    node_ran: str
    started_at: float
    finished_at: float
    metrics: dict[str, float]
    error: str | None


def current_node_id() -> str:
    """This worker's Ray node id (hex), looked up once per worker process."""
    global _NODE_ID
    if _NODE_ID is None:
        import ray

        _NODE_ID = ray.get_runtime_context().get_node_id()
    return _NODE_ID


def run_task(fn: Callable[..., Any], node: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Outcome:
    """Run one task here and report it."""
    started = time.time()
    try:
        value = fn(*args, **(kwargs or {}))
    except Exception as err:  # the user's error becomes a row, not a crash
        return Outcome(node, started, time.time(), {}, error_text(err))
    return Outcome(node, started, time.time(), numeric_metrics(value), None)


def wrap(fn: Callable[..., Any]) -> Callable[..., Outcome]:
    """A function that runs `fn` and returns an `Outcome` instead of its value."""

    def run(*args: Any, **kwargs: Any) -> Outcome:
        return run_task(fn, current_node_id(), args, kwargs)

    return _named(run, fn)


def wrap_batch(fn: Callable[..., Any]) -> Callable[[Sequence[tuple]], list[Outcome]]:
    """A function that runs `fn` once per (args, kwargs) in order, returning one `Outcome` each."""

    def run_batch(calls: Sequence[tuple]) -> list[Outcome]:
        node = current_node_id()
        return [run_task(fn, node, args, kwargs) for args, kwargs in calls]

    return _named(run_batch, fn)


def _named(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """The wrapper takes the task function's name, so Ray's dashboard and errors show the user's."""
    wrapper.__name__ = getattr(fn, "__name__", "task")
    wrapper.__qualname__ = getattr(fn, "__qualname__", wrapper.__name__)
    return wrapper
