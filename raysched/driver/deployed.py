"""A run's view of its services' replicas: its own fleet, and the replicas of services deployed before it.

A job whose tasks call a service that is deployed (`raysched deploy`) under the same name uses the
deployed replicas: no new ones are created, and the run is one more client of the service's
controller (`raysched.driver.controller`). `DeployedReplicas` keeps the controller's table for the
run (refreshed every `REFRESH_S`, with the run's calls outstanding per replica reported on the same
round trip) and answers the run loop as the run's own `Fleet` does. `Fleets` puts the two behind the
one interface the run loop and `ServiceCalls` use.

What a table change means to the run: a replica up (first, or re-created under its name) takes calls
(``on_up``); one no longer up is lost (``on_lost``: its calls under way are retried through the router);
one draining takes no new call (``on_removed``: the router drops it) and keeps those under way.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from raysched.driver.replicas import READY_TIMEOUT_S, Fleet, Replica
from raysched.driver.table import REFRESH_S, RoutingTable
from raysched.job import JobFileError
from raysched.services import ServiceSpec

__all__ = ["DeployedReplicas", "Fleets", "ReplicaSet"]

ReplicaSet = Any  # a `Fleet` or `DeployedReplicas`: what the run loop asks of its replicas


class DeployedReplicas:
    """The replicas of one deployed service, as its controller's table says, for one run."""

    def __init__(
        self,
        spec: ServiceSpec,
        controller: Any,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec
        self.controller = controller
        self.client_id = f"run-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.sleep = sleep
        self.replicas: dict[str, Replica] = {}
        self.events: list[dict[str, Any]] = []
        self.version = -1
        self.on_up: Callable[[Replica], None] = lambda replica: None
        self.on_lost: Callable[[str], None] = lambda name: None
        self.on_removed: Callable[[str], None] = lambda name: None
        self.load: Callable[[], tuple[Mapping[str, int], int]] = lambda: ({}, 0)  # set by ServiceCalls
        self.on_table: Callable[[RoutingTable], None] = lambda table: None  # a newer table (the keys' homes)
        self._dead: dict[str, int] = {}  # replica -> the actor (epoch) this run saw die: not used again
        self._draining: set[str] = set()
        self._pending: Any = None
        self._synced_at = 0.0

    @property
    def specs(self) -> list[ServiceSpec]:
        return [self.spec]

    def start(self) -> None:
        """Read the table; wait (up to READY_TIMEOUT_S) until the service has a replica up."""
        import ray

        deadline = self.clock() + READY_TIMEOUT_S
        while True:
            try:
                table = ray.get(self.controller.sync.remote(self.client_id, {}, 0, -1), timeout=30)
            except ray.exceptions.RayActorError:
                raise JobFileError(
                    f"deployed service {self.spec.name} went away (undeployed?); deploy it again or drop it"
                ) from None
            self._apply(table)
            if any(r.up for r in self.replicas.values()):
                self._synced_at = self.clock()
                return
            if self.clock() > deadline:
                raise JobFileError(f"deployed service {self.spec.name} had no replica up for {READY_TIMEOUT_S:.0f} s")
            self.sleep(0.2)

    def poll(self, block_s: float = 0.0) -> None:
        """Take the table if a refresh came back; start one every REFRESH_S (reporting this run's calls)."""
        import ray

        if self._pending is not None:
            done, _ = ray.wait([self._pending], timeout=0, fetch_local=True)
            if not done:
                return
            ref, self._pending = self._pending, None
            try:
                table = ray.get(ref)
            except ray.exceptions.RayError:  # the controller is gone (undeployed meanwhile): keep what runs
                return
            if table is not None:
                self._apply(table)
        if self.clock() - self._synced_at >= REFRESH_S:
            self._synced_at = self.clock()
            outstanding, waiting = self.load()
            self._pending = self.controller.sync.remote(self.client_id, dict(outstanding), waiting, self.version)

    def _apply(self, table: RoutingTable) -> None:
        """Bring the replicas to the table: up, lost, draining or removed (see the module docstring)."""
        self.version = table.version
        self.on_table(table)
        routable = {e.name: e for e in table.replicas}
        for name, entry in routable.items():
            replica = self.replicas.get(name)
            if replica is None:
                replica = self.replicas[name] = Replica(name, self.spec, {})
            if self._dead.get(name) == entry.epoch:
                continue  # the actor this run saw die: wait for its successor
            if replica.up and replica.epoch != entry.epoch:
                self._lose(replica)  # re-created meanwhile: calls to the old actor are lost
            replica.handle, replica.node, replica.epoch = entry.handle, entry.node, entry.epoch
            if not replica.up or name in self._draining:
                self._draining.discard(name)
                replica.up = True
                self._event(replica, "up")
                self.on_up(replica)
        for name, replica in list(self.replicas.items()):
            if name in routable:
                continue
            if name in table.draining:
                if name not in self._draining and replica.up:
                    self._draining.add(name)
                    self._event(replica, "draining")
                    self.on_removed(name)
                continue
            if name in table.starting:
                if replica.up:
                    self._lose(replica)  # being re-created
            else:
                was_draining = name in self._draining
                self._draining.discard(name)
                del self.replicas[name]
                self._event(replica, "removed")
                if not was_draining:
                    self.on_removed(name)

    def _lose(self, replica: Replica) -> None:
        replica.up = False
        self._event(replica, "lost")
        self.on_lost(replica.name)

    def is_up(self, name: str) -> bool:
        replica = self.replicas.get(name)
        return replica is not None and replica.up

    def node_of(self, name: str) -> str:
        replica = self.replicas.get(name)
        return replica.node or "" if replica is not None else ""

    def call(self, name: str, method: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Any:
        return self.replicas[name].handle.call.remote(method, args, kwargs)

    def lost(self, name: str, epoch: int | None = None) -> None:
        """A call found the replica's actor dead: no more calls to it until the controller has re-created it."""
        replica = self.replicas.get(name)
        if replica is None or not replica.up:
            return
        self._dead[name] = replica.epoch
        with contextlib.suppress(Exception):
            self.controller.lost.remote(name, replica.epoch)  # the controller probes too; this is sooner
        self._synced_at = 0.0  # refresh at the next poll
        self._lose(replica)

    def stop(self) -> None:
        """The run is over: its calls no longer count at the controller (the replicas stay: they are deployed)."""
        with contextlib.suppress(Exception):
            self.controller.forget.remote(self.client_id)

    def _event(self, replica: Replica, what: str) -> None:
        self.events.append(
            {"replica": replica.name, "node": replica.node, "event": what, "at": time.time(), "deployed": True}
        )


class Fleets:
    """The run's own fleet and its deployed services' replicas, behind the one interface of a fleet."""

    def __init__(self, own: Fleet | None, deployed: Mapping[str, DeployedReplicas]) -> None:
        self.own = own
        self.deployed = dict(deployed)
        self._parts: list[Any] = [p for p in (own, *self.deployed.values()) if p is not None]
        self._on_up: Callable[[Replica], None] = lambda replica: None
        self._on_lost: Callable[[str], None] = lambda name: None
        self._on_removed: Callable[[str], None] = lambda name: None

    @property
    def on_up(self) -> Callable[[Replica], None]:
        return self._on_up

    @on_up.setter
    def on_up(self, hook: Callable[[Replica], None]) -> None:
        self._on_up = hook
        for part in self._parts:
            part.on_up = hook

    @property
    def on_lost(self) -> Callable[[str], None]:
        return self._on_lost

    @on_lost.setter
    def on_lost(self, hook: Callable[[str], None]) -> None:
        self._on_lost = hook
        for part in self._parts:
            part.on_lost = hook

    @property
    def on_removed(self) -> Callable[[str], None]:
        return self._on_removed

    @on_removed.setter
    def on_removed(self, hook: Callable[[str], None]) -> None:
        self._on_removed = hook
        for part in self.deployed.values():
            part.on_removed = hook

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for part in self._parts for e in part.events]

    def part(self, name: str) -> Any:
        """The part holding a replica (``Shard#2``) or a service (``Shard``)."""
        service = name.rpartition("#")[0] or name
        return self.deployed.get(service) or self.own

    def start(self) -> None:
        for part in self._parts:
            part.start()

    def poll(self, block_s: float = 0.0) -> None:
        for part in self._parts:
            part.poll(block_s)

    def is_up(self, name: str) -> bool:
        return bool(self.part(name).is_up(name))

    def node_of(self, name: str) -> str:
        return str(self.part(name).node_of(name))

    def call(self, name: str, method: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Any:
        return self.part(name).call(name, method, args, kwargs)

    def lost(self, name: str) -> None:
        self.part(name).lost(name)

    def stop(self) -> None:
        for part in self._parts:
            part.stop()
