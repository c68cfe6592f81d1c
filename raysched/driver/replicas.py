"""A run's service replicas: created where the brain placed them, watched, re-created when lost, removed at the end.

Each replica is a Ray actor (`ReplicaHost`, holding one instance of the user's
class) with hard affinity to the node the brain chose and no Ray restarts: Ray
would restart it on the same dead node, or never. When a replica is lost (its
calls fail with an actor error, or the brain drops its node after the node-health
probe), the brain places it again by the service policy, preferring another node,
and it is re-created there under the same name, so the ring over replica names,
and every surviving key's replica, stay as they were. Calls routed to it meanwhile
wait in the driver and go out once it is ready.

A service that autoscales grows by `grow` (replica ``Name#k``, the next index) and shrinks by `retire`
(the highest index, once its calls are drained by the caller), so replica names stay ``#0..#n-1``
and, with hash routing, only the keys the ring gives to that one replica move. A deployed service's
controller (`raysched.driver.controller`) owns a fleet too; it has no calls of its own to see a
replica die by, so it asks the replicas themselves (`probe`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysched.brain.client import BrainClient
from raysched.driver.dispatch import ray_options
from raysched.driver.remote import Outcome, current_node_id, run_task
from raysched.job import JobFileError
from raysched.policies import InfeasibleError, Policy
from raysched.results.schema import error_text
from raysched.services import Service, ServiceSpec, spec_of

CHECK_EVERY_S = 0.5  # how often the brain is asked whether a replica's node is still live
READY_TIMEOUT_S = 120.0  # a replica that is not ready by then (a node that never starts it) counts as failed
MAX_TRIES = 16  # nodes one replica's __init__ is tried on before the run gives up


class ReplicaHost:
    """The actor behind one replica: the user's instance, and its calls reported like tasks (`remote.Outcome`).

    An ``__init__`` that raises is kept as text, not raised: the driver reads it with `ready` and decides.
    """

    def __init__(self, cls: type) -> None:
        self.error: str | None = None
        self.instance: Any = None
        try:
            self.instance = cls()
        except Exception as err:  # the user's __init__: reported, not a crash
            self.error = error_text(err)

    def ready(self) -> tuple[str, str | None]:
        """The node it runs on, and its __init__'s error (None: ready for calls)."""
        return current_node_id(), self.error

    def call(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Outcome:
        return run_task(getattr(self.instance, method), current_node_id(), args, kwargs)

    def invoke(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Any:
        """A handle's call (`raysched.get_service`): the method's own return value; what it raises, Ray raises."""
        return getattr(self.instance, method)(*args, **(kwargs or {}))


class ActorGone(Exception):
    """A replica's actor died before it answered (its node or its process is gone)."""


class ReplicaActors:
    """The fleet's Ray calls, behind one seam (the unit tests drive a fake of it): create a replica's actor on a
    node, wait for actors to be ready, read one's answer, call it, remove it."""

    def create(self, replica: Replica, node: str) -> tuple[Any, Any]:
        """Create the replica's actor with hard affinity to ``node``; its handle and the ref of its ready()."""
        options = ray_options(replica.demand)
        options.pop("max_retries", None)
        handle: Any = (
            ray.remote(ReplicaHost)
            .options(
                **options,
                max_concurrency=replica.spec.max_concurrency,
                max_restarts=0,
                max_task_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            )
            .remote(replica.spec.cls)
        )
        return handle, handle.ready.remote()

    def ready(self, refs: Sequence[Any], timeout: float) -> list[Any]:
        """Those of ``refs`` that have answered within ``timeout`` seconds."""
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout, fetch_local=True)
        return list(done)

    def answer(self, ref: Any) -> tuple[str, str | None]:
        """A ready() answer: the node, and its __init__'s error (None: ready); ActorGone when the actor died."""
        try:
            node, error = ray.get(ref)
        except ray.exceptions.RayError:
            raise ActorGone from None
        return str(node), error

    def call(self, handle: Any, method: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Any:
        return handle.call.remote(method, args, kwargs)

    def ping(self, handle: Any) -> Any:
        """Ask a replica's actor whether it lives (its ready() again); read the answer with `answer`."""
        return handle.ready.remote()

    def kill(self, handle: Any) -> None:
        with contextlib.suppress(Exception):  # already gone with its node
            ray.kill(handle, no_restart=True)


@dataclass(eq=False)
class Replica:
    """One replica of a service: where it runs and whether calls may go to it."""

    name: str
    spec: ServiceSpec
    demand: Mapping[str, float]
    node: str | None = None
    handle: Any = None
    ready_ref: Any = None
    up: bool = False
    tried: list[str] = field(default_factory=list)  # nodes its __init__ failed on
    error: str = ""
    epoch: int = 0  # actors created for it so far: a report of a lost actor names the one it saw
    ping_ref: Any = None  # a probe under way (`Fleet.probe`)


class Fleet:
    """Every replica of a run's services, and the record of where each ran (for the sidecar)."""

    def __init__(
        self,
        services: Sequence[Service],
        client: BrainClient,
        policy: Policy,
        demand_of: Callable[[Any], Mapping[str, float]],
        domains: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        actors: ReplicaActors | None = None,
    ) -> None:
        self.actors = actors if actors is not None else ReplicaActors()
        self.client = client
        self.policy = policy
        self.domains = domains
        self.clock = clock
        self.replicas: dict[str, Replica] = {}
        self._kinds: dict[str, tuple[ServiceSpec, Mapping[str, float]]] = {}  # service name -> spec, demand
        for declared in services:
            spec = spec_of(declared)
            demand = demand_of(declared)
            self._kinds[spec.name] = (spec, demand)
            for i in range(spec.replicas):
                name = spec.replica(i)
                self.replicas[name] = Replica(name, spec, demand)
        self.events: list[dict[str, Any]] = []
        self._created: set[str] = set()  # replicas that were ready once: a later ready is a re-creation
        self.on_up: Callable[[Replica], None] = lambda replica: None  # ready: its waiting calls may go out
        self.on_lost: Callable[[str], None] = lambda name: None  # gone: its calls under way are lost
        self._checked = 0.0

    @property
    def specs(self) -> list[ServiceSpec]:
        return [spec for spec, _ in self._kinds.values()]

    def names(self, service: str) -> list[str]:
        """The replicas a service has now, by index (``Name#0`` first)."""
        spec, _ = self._kinds[service]
        return [spec.replica(i) for i in range(self.count(service))]

    def count(self, service: str) -> int:
        """How many replicas a service has now (up or on the way)."""
        return sum(1 for r in self.replicas.values() if r.spec.name == service)

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Place and create every replica, and wait until each is ready (or the run cannot have it)."""
        self._place(list(self.replicas.values()))
        deadline = self.clock() + READY_TIMEOUT_S
        while not all(r.up for r in self.replicas.values()):
            self.poll(block_s=0.2)
            if self.clock() > deadline:
                pending = sorted(r.name for r in self.replicas.values() if not r.up)
                raise JobFileError(
                    f"service replicas {', '.join(pending)} were not ready after {READY_TIMEOUT_S:.0f} s"
                )

    def _place(self, replicas: Sequence[Replica], exclude: Sequence[str] = ()) -> None:
        """Ask the brain where they run (keeping live ones), and create those that moved or have no actor."""
        try:
            answer = self.client.place_replicas(
                self.policy, [(r.name, r.demand, r.node) for r in replicas], list(exclude), self.domains
            )
        except InfeasibleError as err:
            raise JobFileError(f"service {replicas[0].spec.name}: its replicas can never be placed: {err}") from None
        for name, node in answer:
            replica = self.replicas[name]
            if node is None:
                continue  # no room now: asked again at the next check
            if node != replica.node or replica.handle is None:
                self._create(replica, node)

    def _create(self, replica: Replica, node: str) -> None:
        if replica.handle is not None:
            self._kill(replica)
            self._event(replica, "lost")
            self.on_lost(replica.name)
        replica.node, replica.up, replica.ping_ref = node, False, None
        replica.epoch += 1
        replica.handle, replica.ready_ref = self.actors.create(replica, node)

    # -- grow and shrink (autoscaling) ------------------------------------------------------------
    def grow(self, service: str) -> str:
        """Add one replica to a service, ``Name#k`` with the next index, placed by the service policy; its name.

        It is created now and comes up later (``on_up``), like any replica.
        """
        spec, demand = self._kinds[service]
        name = spec.replica(self.count(service))
        replica = self.replicas[name] = Replica(name, spec, demand)
        self._place([replica])
        return name

    def retire(self, name: str) -> None:
        """Remove a replica for good (its calls drained by the caller): its actor killed, its reservation freed.

        Only the highest index goes, so the names stay ``#0..#n-1`` and a later `grow` reuses the name.
        """
        replica = self.replicas[name]
        service = replica.spec.name
        highest = self.names(service)[-1]
        if name != highest:
            raise ValueError(f"only the highest replica of {service} is retired ({highest}), not {name}")
        self._kill(replica)
        del self.replicas[name]
        self.client.release_replicas([name])
        self._event(replica, "removed")

    # -- watch ----------------------------------------------------------------------------------
    def poll(self, block_s: float = 0.0) -> None:
        """Mark replicas that became ready; re-place failed ones; every CHECK_EVERY_S, ask about the nodes."""
        pending = {r.ready_ref: r for r in self.replicas.values() if r.ready_ref is not None}
        if pending:
            for ref in self.actors.ready(list(pending), block_s):
                self._ready(pending[ref], ref)
        now = self.clock()
        if now - self._checked >= CHECK_EVERY_S:
            self._checked = now
            placed = [r for r in self.replicas.values() if r.node is not None or r.handle is None]
            if placed:
                self._place(placed)

    def _ready(self, replica: Replica, ref: Any) -> None:
        replica.ready_ref = None
        try:
            node, error = self.actors.answer(ref)
        except ActorGone:  # the actor died before it was ready (its node or its process): a loss
            old = replica.node
            self._kill(replica)
            self._event(replica, "lost")
            self._place([replica], exclude=[old] if old else [])
            return
        if error is None:
            replica.up = True
            self._event(replica, "recreated" if replica.name in self._created else "created")
            self._created.add(replica.name)
            self.on_up(replica)
            return
        replica.error = error
        replica.tried.append(str(node))
        self._kill(replica)
        if len(replica.tried) >= MAX_TRIES:
            raise JobFileError(
                f"service {replica.spec.name}: __init__ of {replica.name} raised {error} on every node it was tried on"
            )
        before = replica.node
        self._place([replica], exclude=replica.tried)
        if replica.node == before and replica.handle is None:
            raise JobFileError(
                f"service {replica.spec.name}: __init__ of {replica.name} raised {error} "
                f"on every node that could hold it ({len(replica.tried)})"
            )

    def probe(self, block_s: float = 0.0) -> None:
        """Ask each up replica's actor whether it lives (one question at a time each); a dead one is `lost`.

        For an owner that sends no calls of its own (a deployed service's controller): a run sees a replica
        die by its calls failing. A busy replica answers late, never wrongly: only an actor error counts.
        """
        asked = {r.ping_ref: r for r in self.replicas.values() if r.ping_ref is not None}
        for ref in self.actors.ready(list(asked), block_s) if asked else ():
            replica = asked[ref]
            replica.ping_ref = None
            try:
                self.actors.answer(ref)
            except ActorGone:
                self.lost(replica.name)
        for replica in self.replicas.values():
            if replica.up and replica.ping_ref is None:
                replica.ping_ref = self.actors.ping(replica.handle)

    def lost(self, name: str, epoch: int | None = None) -> None:
        """A call found the replica gone (its actor died): re-create it, on another node if one has room.

        ``epoch``: the actor the caller saw (`Replica.epoch`); a report about an actor already replaced is ignored.
        """
        replica = self.replicas.get(name)
        if replica is None or not replica.up or (epoch is not None and epoch != replica.epoch):
            return
        replica.up = False
        self._event(replica, "lost")
        self.on_lost(name)
        old = replica.node
        replica.handle = None
        self._place([replica], exclude=[old] if old else [])

    def is_up(self, name: str) -> bool:
        return self.replicas[name].up

    def node_of(self, name: str) -> str:
        return self.replicas[name].node or ""

    def call(self, name: str, method: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Any:
        """Send one call to a replica; its ObjectRef."""
        return self.actors.call(self.replicas[name].handle, method, args, kwargs)

    # -- end ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Remove every replica (the run's end, Ctrl-C included)."""
        for replica in self.replicas.values():
            self._kill(replica)

    def _kill(self, replica: Replica) -> None:
        if replica.handle is not None:
            self.actors.kill(replica.handle)
        replica.handle, replica.ready_ref, replica.up, replica.ping_ref = None, None, False, None

    def _event(self, replica: Replica, what: str) -> None:
        self.events.append({"replica": replica.name, "node": replica.node, "event": what, "at": time.time()})
