"""A run's calls to its services: a router per service, the replicas, and the calls waiting for a replica.

The run loop hands every call here (`hold`), asks for what can go out now
(`route`), and sends it to the replica's actor; a call routed to a replica that
is being re-created waits in `backlog` until the replica is ready again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from raysched.brain.state import Placement
from raysched.driver.attempts import Attempt
from raysched.driver.calls import CallRouter
from raysched.driver.replicas import Fleet
from raysched.job import JobFileError
from raysched.services import spec_of


class ServiceCalls:
    """The routers and the fleet of one run, and the calls between them."""

    def __init__(self, fleet: Fleet, routers: Mapping[str, CallRouter]) -> None:
        self.fleet = fleet
        self.routers = dict(routers)
        self.backlog: dict[str, list[Attempt]] = {}  # replica -> calls routed to it while it is not up
        self._new: dict[str, list[Attempt]] = {name: [] for name in self.routers}
        self._finished: dict[str, list[int]] = {name: [] for name in self.routers}
        self._waiting: dict[str, int] = dict.fromkeys(self.routers, 0)

    def hold(self, a: Attempt) -> None:
        """A new call (or a retry): routed on the next `route`."""
        self._new[self._service(a)].append(a)

    def replica_up(self, name: str) -> list[Attempt]:
        """A replica is ready (first, or re-created): its router may route to it; the calls that waited for it."""
        self.routers[name.rpartition("#")[0]].replica_up(name)
        return self.backlog.pop(name, [])

    def finished(self, a: Attempt) -> None:
        """A call is over: its router frees the replica's slot."""
        self._finished[self._service(a)].append(a.task_id)

    def route(self, pacing: Mapping[str, float]) -> Iterator[Placement]:
        """Each router's answer, for the routers with news or with calls waiting for a slot."""
        for name, router in self.routers.items():
            new, finished = self._new[name], self._finished[name]
            if not (new or finished or self._waiting[name]):
                continue
            self._new[name], self._finished[name] = [], []
            answer = router.route(finished, [a.request for a in new], pacing)
            self._waiting[name] = answer.waiting
            yield answer

    def stop(self) -> None:
        """Remove the replicas and close the routers."""
        self.fleet.stop()
        for router in self.routers.values():
            router.close()

    def _service(self, a: Attempt) -> str:
        call = a.call
        assert call is not None
        name = spec_of(call.service).name
        if name not in self.routers:
            raise JobFileError(
                f"a call to {call.__qualname__}: service {name} is not declared at the top level of the job file"
            )
        return name
