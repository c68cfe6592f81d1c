"""A deployed service's controller: the detached owner of its replicas and of the table every client routes by.

`raysched deploy` starts one per service, as the detached named actor ``raysched-service:NAME`` in
raysched's namespace, on the head node. It owns a `Fleet` (the same code that runs a submission's
replicas: placed by the brain under its own registration ``service:NAME``, created with node
affinity, re-created when lost), so the replicas live as long as it does, past the command that
deployed them. A thread (`tick`, every `TICK_S`) watches the replicas (the brain's view of their nodes,
and a probe of each actor), keeps the brain registration alive, and autoscales.

Clients call `sync` every `raysched.driver.table.REFRESH_S`: they report the calls they have
outstanding per replica (and waiting to be routed), and get the table back when it changed (a
replica up, lost, draining, removed). The per-call path never reaches the controller.

Autoscaling (``replicas=(low, high)``): the load is every fresh report's calls added up; an
`Autoscaler` says how many replicas to have. Growing adds ``Name#k`` (a draining replica is taken
back first: it is warm). Shrinking marks the highest index draining: it leaves the table, clients send
it nothing new, and it is removed once every client that reported since it left the table has no call
outstanding there (or after `DRAIN_TIMEOUT_S`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from raysched.brain.client import BrainClient
from raysched.cluster import NAMESPACE
from raysched.core.autoscale import Autoscaler
from raysched.driver.replicas import Fleet, Replica, ReplicaActors
from raysched.driver.table import (
    MAX_HOMES,
    REFRESH_S,
    ReplicaEntry,
    RoutingTable,
    give_homes,
    homes_for_added,
    replica_ring,
)
from raysched.job import task_demand
from raysched.policies import Policy
from raysched.policies.base import DEFAULT_VNODES_PER_CPU
from raysched.services import Service, spec_of

log = logging.getLogger(__name__)

__all__ = ["CONTROLLER_PREFIX", "ServiceController", "controller_name", "find_controller", "start_controller"]

CONTROLLER_PREFIX = "raysched-service:"
TICK_S = 0.25  # how often the controller looks at its replicas and its load
REPORT_TTL_S = 10 * REFRESH_S  # a client silent this long is gone: its report no longer counts
DRAIN_TIMEOUT_S = 60.0  # a draining replica is removed after this long even if some client still reports calls there


def controller_name(service: str) -> str:
    """The Ray actor name of a deployed service's controller."""
    return f"{CONTROLLER_PREFIX}{service}"


class ServiceController:
    """One deployed service: its fleet, its routing table, its clients' reports, its autoscaler."""

    def __init__(
        self,
        declared: Service,
        service_policy: Policy,
        routing: str,
        info: Mapping[str, Any],
        *,
        vnodes: int = DEFAULT_VNODES_PER_CPU,
        domains: Mapping[str, str] | None = None,
        client: BrainClient | None = None,
        actors: ReplicaActors | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec_of(declared)
        self.routing = routing
        self.vnodes = vnodes
        self.info = dict(info)
        self.clock = clock
        run_id = f"service:{self.spec.name}"  # its registration: status lists it with its replicas' nodes
        self.client = client or BrainClient(
            run_id, service_policy, {**self.info, "run_id": run_id, "service": self.spec.name}, overcommit=1.0
        )
        demand = task_demand(declared, self.spec.name)
        self.fleet = Fleet([declared], self.client, service_policy, lambda s: demand, domains, clock, actors)
        self.fleet.on_up = self._up
        self.fleet.on_lost = lambda name: self._changed()
        self.autoscaler = Autoscaler(self.spec.replicas, self.spec.high, self.spec.autoscale, self.spec.max_concurrency)
        self.version = 0
        self.homes: dict[str, str] = {}  # key -> its replica (hash): given once, the same answer to every client
        self.away: dict[str, str] = {}  # key -> where it goes while its home is down (being re-created)
        self.homed: set[str] = set()  # replicas that hold homes: routable once, not drained since
        self._ring_of: tuple[tuple[str, ...], Any] = ((), None)  # the ring over the routable names, cached
        self.draining: dict[str, tuple[float, int]] = {}  # replica -> when it left the table, the table's version
        # client -> (when, calls outstanding per replica, calls waiting, the table version it had)
        self.reports: dict[str, tuple[float, dict[str, int], int, int]] = {}
        self.started_at = time.time()
        cls = self.spec.cls
        self.methods = tuple(m for m in dir(cls) if not m.startswith("_") and callable(getattr(cls, m)))
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------------------
    def start(self, background: bool = True) -> dict[str, Any]:
        """Register with the brain, create every replica and wait until each is up; its status.

        A failure (a replica that cannot start) leaves nothing behind: replicas removed, registration ended.
        """
        try:
            self.client.start()
            self.fleet.start()
        except BaseException:
            self.stop()
            raise
        if background:
            self._thread = threading.Thread(target=self._run, daemon=True, name="raysched-service-controller")
            self._thread.start()
        return self.status()

    def stop(self) -> dict[str, Any]:
        """Remove every replica and end the brain registration (undeploy); the last status."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            final = self.status()
            self.fleet.stop()
            self.client.close()
            self.version += 1
            return final

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception as err:  # one bad round (the brain restarting) must not end the service
                log.warning("raysched service %s: %s: %s", self.spec.name, type(err).__name__, err)

    def tick(self) -> None:
        """One look: replicas ready or lost (the brain's view of their nodes, a probe of each actor), then scale."""
        with self._lock:
            self.fleet.poll()
            self.fleet.probe()
            self._scale(self.clock())

    # -- clients ----------------------------------------------------------------------------------
    def sync(
        self, client: str, outstanding: Mapping[str, int], waiting: int = 0, known: int = -1
    ) -> RoutingTable | None:
        """A client's report (calls outstanding per replica, calls waiting to be routed); the table if it is newer
        than ``known``, with the loads of the *other* clients (the caller adds its own)."""
        with self._lock:
            calls = {k: int(v) for k, v in outstanding.items() if v}
            self.reports[client] = (self.clock(), calls, int(waiting), int(known))
            return None if known == self.version else self.table(exclude=client)

    def place_keys(self, keys: Sequence[str]) -> dict[str, str]:
        """Homes of keys a client routes for the first time (`raysched.driver.table.give_homes`): the same answer to
        every client, so a key goes to one replica whoever calls; empty for keys past MAX_HOMES (the ring's)."""
        with self._lock:
            if self.routing != "hash":
                return {}
            names = self._routable()
            full = len(self.homes) >= MAX_HOMES
            homes = give_homes(self.homes, [str(k) for k in keys], names, self._ring(names), self.away)
            if not full and len(self.homes) >= MAX_HOMES:
                self._changed()  # clients stop asking (the table they fetch next says so)
            return homes

    def _routable(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.fleet.replicas.values() if r.up and r.name not in self.draining)

    def _ring(self, names: tuple[str, ...]) -> Any:
        """The ring over the routable names, cached."""
        if self._ring_of[0] != names:
            self._ring_of = (names, replica_ring(names, self.spec.max_concurrency, self.vnodes))
        return self._ring_of[1]

    def forget(self, client: str) -> None:
        """A client is done (a run's end, a handle closed): its calls no longer count."""
        with self._lock:
            self.reports.pop(client, None)

    def lost(self, name: str, epoch: int) -> None:
        """A client saw replica ``name`` (its actor number ``epoch``) die: re-create it (once per actor)."""
        with self._lock:
            self.fleet.lost(name, epoch)

    def table(self, exclude: str | None = None) -> RoutingTable:
        """The routing table now."""
        with self._lock:
            loads: dict[str, float] = {}
            for client, (_, outstanding, _w, _v) in self._fresh().items():
                if client != exclude:
                    for name, count in outstanding.items():
                        loads[name] = loads.get(name, 0.0) + count
            entries = tuple(
                ReplicaEntry(r.name, r.handle, r.node or "", r.epoch)
                for r in self.fleet.replicas.values()
                if r.up and r.name not in self.draining
            )
            return RoutingTable(
                service=self.spec.name,
                version=self.version,
                routing=self.routing,
                max_concurrency=self.spec.max_concurrency,
                vnodes=self.vnodes,
                replicas=entries,
                draining=tuple(self.draining),
                starting=tuple(r.name for r in self.fleet.replicas.values() if not r.up),
                methods=self.methods,
                loads=loads,
                homes={**self.homes, **self.away},  # where each key goes now: a stand-in while its home is down
                balancing=self.routing == "hash" and len(self.homes) < MAX_HOMES,
            )

    def load(self) -> float:
        """Calls outstanding at the service and waiting for it, over every client that reported lately."""
        with self._lock:
            return float(sum(sum(out.values()) + waiting for _, out, waiting, _v in self._fresh().values()))

    def _fresh(self) -> dict[str, tuple[float, dict[str, int], int, int]]:
        now = self.clock()
        for client in [c for c, report in self.reports.items() if now - report[0] > REPORT_TTL_S]:
            del self.reports[client]
        return self.reports

    # -- scaling ----------------------------------------------------------------------------------
    def _scale(self, now: float) -> None:
        service = self.spec.name
        active = self.fleet.count(service) - len(self.draining)
        wanted = self.autoscaler.wanted(now, self.load(), active)
        names = self.fleet.names(service)
        while wanted > active and self.draining:  # a draining replica is warm: take it back first
            back = min(self.draining, key=names.index)
            del self.draining[back]
            active += 1
            self._joined(back)
        for _ in range(wanted - active):
            self.fleet.grow(service)
            self._changed()
        if wanted < active:
            for name in [n for n in names if n not in self.draining][wanted:]:
                self.draining[name] = (now, self.version + 1)  # the version of the table that drops it
                self.homed.discard(name)
            self._changed()
        self._retire_drained(now)

    def _retire_drained(self, now: float) -> None:
        """Remove draining replicas, highest first, once every client has seen the table without them and has no
        call there (a client's report counts once it was made with that table in hand)."""
        service = self.spec.name
        while self.draining:
            highest = self.fleet.names(service)[-1]
            if highest not in self.draining:
                return
            since, version = self.draining[highest]
            reports = self._fresh().values()
            drained = all(known >= version and not out.get(highest) for _, out, _, known in reports)
            if not drained and now - since < DRAIN_TIMEOUT_S:
                return
            del self.draining[highest]
            self.fleet.retire(highest)
            self._changed()

    def _up(self, replica: Replica) -> None:
        if replica.name in self.homed or replica.name in self.draining:  # re-created: its keys come back
            self._changed()
        else:
            self._joined(replica.name)

    def _joined(self, name: str) -> None:
        """A replica became routable for the first time (or since it drained): it takes keys by
        `raysched.driver.table.homes_for_added` (those the ring now gives it, up to its share, and any that now fit
        their ring owner again; no other key moves)."""
        self.homed.add(name)
        if self.routing == "hash":
            names = self._routable()
            homes_for_added(self.homes, name, names, self._ring(names))
        self._changed()

    def _changed(self) -> None:
        """The routable replicas changed: the keys of a replica drained or removed go to their stand-in if they
        had one (it becomes their home), else get new homes when next asked; a stand-in whose home is up again
        is dropped (the key goes home)."""
        self.version += 1
        up = set(self._routable())
        homes: dict[str, str] = {}
        away: dict[str, str] = {}
        for key, home in self.homes.items():
            stand = self.away.get(key)
            if home not in self.homed:
                if stand is not None and stand in self.homed:
                    homes[key] = stand
                continue
            homes[key] = home
            if home not in up and stand is not None and stand in up:
                away[key] = stand
        self.homes, self.away = homes, away

    # -- status -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What `raysched status` shows of the service: its replicas (node, up, calls outstanding), its clients."""
        with self._lock:
            loads = self.table().loads
            return {
                "service": self.spec.name,
                **{k: v for k, v in self.info.items() if k in ("job", "policy", "service_policy", "deployed_by")},
                "routing": self.routing,
                "replicas_range": [self.spec.replicas, self.spec.high],
                "wanted": self.fleet.count(self.spec.name) - len(self.draining),
                "started_at": self.started_at,
                "clients": len(self._fresh()),
                "load": self.load(),
                "replicas": [
                    {
                        "name": r.name,
                        "node": r.node,
                        "state": "draining" if r.name in self.draining else ("up" if r.up else "starting"),
                        "outstanding": loads.get(r.name, 0.0),
                    }
                    for r in self.fleet.replicas.values()
                ],
                "events": list(self.fleet.events[-20:]),
            }


def find_controller(service: str) -> Any | None:
    """The controller actor of a deployed service, or None when it is not deployed."""
    import ray

    try:
        return ray.get_actor(controller_name(service), namespace=NAMESPACE)
    except ValueError:
        return None


def start_controller(
    declared: Service, service_policy: Policy, routing: str, info: Mapping[str, Any], **kw: Any
) -> Any:
    """Create a service's controller as a detached named actor on the head node (not started: call its start()).

    ValueError when a controller of that name exists (the service is deployed already): creation by name is
    atomic, so two deploys of one name cannot both win.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from raysched.brain.actor import brain_home

    name = controller_name(spec_of(declared).name)
    return (
        ray.remote(ServiceController)
        .options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=0,
            num_cpus=0,
            max_concurrency=4,  # a client's sync is not held up by a start or a status
            scheduling_strategy=NodeAffinitySchedulingStrategy(brain_home(), soft=False),
        )
        .remote(declared, service_policy, routing, info, **kw)
    )
