"""The node side: a thin wrapper that runs the user's function and reports where and when.

Application errors are caught here and returned as data, so Ray treats the
task as finished and raysched decides about retries; only system failures
(node or worker lost) surface as Ray errors in the driver.
"""
from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

from raysched.results import error_text, numeric_metrics

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


def wrap(fn: Callable[..., Any]) -> Callable[..., Outcome]:
    """A function that runs `fn` and returns an `Outcome` instead of its value."""

    def run(*args: Any, **kwargs: Any) -> Outcome:
        node = current_node_id()
        started = time.time()
        try:
            value = fn(*args, **kwargs)
        except Exception as err:  # the user's error becomes a row, not a crash
            return Outcome(node, started, time.time(), {}, error_text(err))
        return Outcome(node, started, time.time(), numeric_metrics(value), None)

    run.__name__ = getattr(fn, "__name__", "task")
    run.__qualname__ = getattr(fn, "__qualname__", run.__name__)
    return run
