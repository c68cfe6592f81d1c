"""The actor behind one executor, and how the brain creates and removes one on a node.

An executor is a Ray actor holding one task slot of a demand shape on one node
(hard affinity, no Ray restarts: a lost executor is the brain's to replace). It
runs a batch of one task function's calls in order and returns what the
function's runner returns (one `raysched.driver.remote.Outcome` per call). The
runner arrives once per executor and function (``fn_id``), is kept in a small
LRU, and an unknown ``fn_id`` answers None so the driver sends the runner again.
The brain owns every executor: they outlive the drivers that used them and go
with the brain.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

RUNNERS_KEPT = 256  # task functions an executor keeps between calls (several submissions share it)


class ExecutorHost:
    """One task slot on one node: runs the calls it is sent, one at a time, in order."""

    def __init__(self) -> None:
        self._runners: collections.OrderedDict[str, Callable[[Sequence[tuple]], Any]] = collections.OrderedDict()

    def ready(self) -> str:
        """The node it runs on (the call returns once the actor is up)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def run(self, fn_id: str, runner: Callable[[Sequence[tuple]], Any] | None, calls: Sequence[tuple]) -> Any:
        """Run ``calls`` (args, kwargs) through the function's runner; None when it has not got that runner."""
        if runner is not None:
            self._runners[fn_id] = runner
            if len(self._runners) > RUNNERS_KEPT:
                self._runners.popitem(last=False)
        else:
            runner = self._runners.get(fn_id)
            if runner is None:
                return None
        self._runners.move_to_end(fn_id)
        return runner(calls)


def spawn_executor(name: str, node: str, demand: Mapping[str, float]) -> Any:
    """Create an executor actor on ``node`` holding ``demand`` (asynchronously); its handle."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    custom = {k: v for k, v in demand.items() if k not in ("CPU", "GPU", "memory")}
    options: dict[str, Any] = {"num_cpus": demand.get("CPU", 0), "num_gpus": demand.get("GPU", 0)}
    if demand.get("memory"):
        options["memory"] = demand["memory"]
    if custom:
        options["resources"] = custom
    return (
        ray.remote(ExecutorHost)
        .options(
            **options,
            max_concurrency=1,
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        )
        .remote()
    )


def kill_executor(handle: Any) -> None:
    """Remove an executor (already gone with its node is fine)."""
    import ray

    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)
