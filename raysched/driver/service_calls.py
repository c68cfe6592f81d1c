"""A run's calls to its services: a router per service, the replicas, and the calls waiting for a replica.

The run loop hands every call here (`hold`), asks for what can go out now
(`route`), and sends it to the replica's actor; a call routed to a replica that
is being re-created waits in `backlog` until the replica is ready again.

Here too the run counts its calls outstanding per replica (routed, not finished): a deployed
service's controller hears them (`DeployedReplicas.load`), and a service of the run's own declared
with ``replicas=(low, high)`` autoscales on them, the driver deciding (`Autoscaler`, from the calls
outstanding and waiting in the router): it grows by ``Name#k`` and shrinks by draining the highest
index (the router sends it nothing new; it is removed once its calls are done).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from raysched.brain.state import Placement
from raysched.core.autoscale import Autoscaler
from raysched.driver.attempts import Attempt
from raysched.driver.calls import CallRouter
from raysched.driver.deployed import Fleets
from raysched.driver.replicas import Fleet
from raysched.job import JobFileError
from raysched.services import spec_of


class ServiceCalls:
    """The routers and the fleet of one run, and the calls between them."""

    def __init__(
        self, fleet: Fleet | Fleets, routers: Mapping[str, CallRouter], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fleet = fleet if isinstance(fleet, Fleets) else Fleets(fleet, {})
        self.routers = dict(routers)
        self.clock = clock
        self.backlog: dict[str, list[Attempt]] = {}  # replica -> calls routed to it while it is not up
        self._new: dict[str, list[Attempt]] = {name: [] for name in self.routers}
        self._finished: dict[str, list[int]] = {name: [] for name in self.routers}
        self._waiting: dict[str, int] = dict.fromkeys(self.routers, 0)
        self.outstanding: dict[str, dict[int, str]] = {name: {} for name in self.routers}  # service -> call -> replica
        self.draining: set[str] = set()  # replicas of the run's own services being drained (autoscaling down)
        own = self.fleet.own
        self.scalers: dict[str, Autoscaler] = {}
        for spec in own.specs if own is not None else ():
            if spec.high > spec.replicas and spec.name in self.routers:
                self.scalers[spec.name] = Autoscaler(spec.replicas, spec.high, spec.autoscale, spec.max_concurrency)
        self.fleet.on_removed = self._removed
        for name, part in self.fleet.deployed.items():
            part.load = lambda name=name: self.load_of(name)  # type: ignore[misc]

    def hold(self, a: Attempt) -> None:
        """A new call (or a retry): routed on the next `route`."""
        self._new[self._service(a)].append(a)

    def replica_up(self, name: str) -> list[Attempt]:
        """A replica is ready (first, or re-created): its router may route to it; the calls that waited for it."""
        if name not in self.draining:
            self.routers[name.rpartition("#")[0]].replica_up(name)
        return self.backlog.pop(name, [])

    def finished(self, a: Attempt) -> None:
        """A call is over: its router frees the replica's slot."""
        service = self._service(a)
        self._finished[service].append(a.task_id)
        self.outstanding[service].pop(a.task_id, None)

    def route(self, pacing: Mapping[str, float]) -> Iterator[Placement]:
        """Each router's answer, for the routers with news or with calls waiting for a slot."""
        self._scale()
        for name, router in self.routers.items():
            new, finished = self._new[name], self._finished[name]
            if not (new or finished or self._waiting[name]):
                continue
            self._new[name], self._finished[name] = [], []
            answer = router.route(finished, [a.request for a in new], pacing)
            self._waiting[name] = answer.waiting
            calls = self.outstanding[name]
            for uid, replica, *_ in answer.placed:
                calls[uid] = replica
            yield answer

    def load_of(self, service: str) -> tuple[dict[str, int], int]:
        """A service's calls from this run: outstanding per replica, and waiting (in the router or not routed yet)."""
        return dict(Counter(self.outstanding[service].values())), self._waiting[service] + len(self._new[service])

    def stop(self) -> None:
        """Remove the replicas and close the routers."""
        self.fleet.stop()
        for router in self.routers.values():
            router.close()

    # -- autoscaling the run's own services --------------------------------------------------------
    def _scale(self) -> None:
        own = self.fleet.own
        if own is None or not self.scalers:
            return
        now = self.clock()
        for service, scaler in self.scalers.items():
            names = own.names(service)
            draining = [n for n in names if n in self.draining]
            active = len(names) - len(draining)
            outstanding, waiting = self.load_of(service)
            wanted = scaler.wanted(now, sum(outstanding.values()) + waiting, active)
            for name in draining[: max(0, wanted - active)]:  # warm: taken back first
                self.draining.discard(name)
                if own.is_up(name):
                    self.routers[service].replica_up(name)
                active += 1
            for _ in range(wanted - active):
                own.grow(service)
            for name in [n for n in names if n not in self.draining][wanted:] if wanted < active else ():
                self.draining.add(name)
                self.routers[service].replica_gone(name)
            for name in reversed(own.names(service)):  # drained ones leave, highest first
                if name not in self.draining or outstanding.get(name) or self.backlog.get(name):
                    break
                self.draining.discard(name)
                own.retire(name)

    def _removed(self, name: str) -> None:
        """A deployed replica is draining or gone: the router sends it nothing new."""
        self.routers[name.rpartition("#")[0]].replica_gone(name)

    def _service(self, a: Attempt) -> str:
        call = a.call
        assert call is not None
        name = spec_of(call.service).name
        if name not in self.routers:
            raise JobFileError(
                f"a call to {call.__qualname__}: service {name} is not declared at the top level of the job file"
            )
        return name
