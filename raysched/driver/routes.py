"""Where a placed attempt runs, behind one interface (`Route`): the driver loop sends every attempt through it.

Three routes, chosen by the attempt's ``via``: ``task`` (a Ray task pinned to the node the brain chose,
`PinnedTasks`), ``executor`` (a call on the executor the brain handed out with the placement,
`ExecutorCalls`) and ``replica`` (a call to the service replica the router chose, `ReplicaCalls`). Each
returns one Ray ObjectRef per send, whose value is what the node side reports (`remote.Outcome`, or a
list of them for a batch), and turns a function or arguments that cannot be pickled into a JobFileError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from raysched.driver import remote
from raysched.driver.attempts import Attempt
from raysched.driver.deployed import Fleets
from raysched.driver.dispatch import PinnedFunctions, not_serializable, submit
from raysched.job import JobFileError

__all__ = ["ExecutorCalls", "PinnedTasks", "ReplicaCalls", "Route"]


class Route(Protocol):
    def send(self, attempts: Sequence[Attempt], resend: bool = False) -> Any:
        """Start the attempts (one, or a batch of one function for one place); their Ray ObjectRef."""
        ...


class PinnedTasks:
    """Placed attempts as Ray tasks with hard affinity to their node (a batch as one task)."""

    def __init__(self, pinned: PinnedFunctions, job_name: str) -> None:
        self.pinned = pinned
        self.job_name = job_name

    def send(self, attempts: Sequence[Attempt], resend: bool = False) -> Any:
        return submit(self.pinned, attempts[0].node, attempts, self.job_name)


class ReplicaCalls:
    """Calls to a service, each sent to the replica its router chose (one call per attempt)."""

    def __init__(self, fleet: Fleets, job_name: str) -> None:
        self.fleet = fleet
        self.job_name = job_name

    def send(self, attempts: Sequence[Attempt], resend: bool = False) -> Any:
        (a,) = attempts
        call = a.call
        assert call is not None
        try:
            return self.fleet.call(a.replica, call.method, a.task.args, a.task.kwargs)
        except (TypeError, ValueError, AttributeError) as err:  # pickling the arguments failed
            reason = " ".join(str(err).split())[:200]
            raise JobFileError(
                f"{self.job_name}: call {a.task_id} ({call.__qualname__}) cannot be serialized ({reason})"
            ) from None


class ExecutorCalls:
    """Placed attempts sent as calls to the executors the brain handed out with them.

    A batch of one function's attempts is one call (`raysched.brain.executor_host.ExecutorHost.run`). The
    function's runner travels once per executor; an executor that no longer has it answers None and the
    attempts are sent again with it (`resend`). An executor whose actor died is forgotten here and reported to
    the brain on the next call (`take_lost`).
    """

    def __init__(self, run_id: str, job_name: str) -> None:
        self.run_id = run_id
        self.job_name = job_name
        self.handles: dict[str, Any] = {}
        self._fn_ids: dict[Any, str] = {}
        self._runners: dict[Any, Any] = {}
        self._sent: set[tuple[str, str]] = set()
        self._lost: list[str] = []

    def add(self, handles: Mapping[str, Any]) -> None:
        """Handles of executors the brain handed out for the first time."""
        self.handles.update(handles)

    def has(self, name: str) -> bool:
        return name in self.handles

    def send(self, attempts: Sequence[Attempt], resend: bool = False) -> Any:
        """Send the attempts as one call to their executor; its Ray ObjectRef (a list of Outcomes, or None)."""
        name = attempts[0].executor
        fn = attempts[0].task.fn
        fn_id = self._fn_ids.get(fn)
        if fn_id is None:
            fn_id = self._fn_ids[fn] = f"{self.run_id}:{len(self._fn_ids)}"
            self._runners[fn] = remote.wrap_batch(fn)
        runner = None if (name, fn_id) in self._sent and not resend else self._runners[fn]
        calls = [(a.task.args, a.task.kwargs) for a in attempts]
        try:
            ref = self.handles[name].run.remote(fn_id, runner, calls)
        except (TypeError, ValueError, AttributeError) as err:  # pickling the function or its arguments failed
            raise not_serializable(attempts[0], self.job_name, err) from None
        self._sent.add((name, fn_id))
        return ref

    def lose(self, name: str) -> None:
        """The executor's actor died: no more calls to it; the brain hears of it on the next call."""
        if self.handles.pop(name, None) is not None:
            self._lost.append(name)
            self._sent = {sent for sent in self._sent if sent[0] != name}

    def take_lost(self) -> list[str]:
        lost, self._lost = self._lost, []
        return lost
