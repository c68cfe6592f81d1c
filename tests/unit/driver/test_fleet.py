"""The fleet of service replicas, without Ray: its actor calls go through a fake `ReplicaActors`.

Rules under test: a replica whose __init__ fails is tried on at most MAX_TRIES nodes; a lost replica is
placed again under the same name, away from its old node; stop() removes every replica; a service grows by
the next index and shrinks by its highest (its reservation freed); a probe finds a dead actor; a report about
an actor already replaced changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import raysched
from raysched.driver.replicas import MAX_TRIES, ActorGone, Fleet, Replica
from raysched.job import JobFileError
from raysched.policies import build_policy
from raysched.policies.base import PolicyOptions

NODES = [f"node{i:02d}" for i in range(MAX_TRIES + 4)]


class Cache:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def get(self, key: str) -> int:
        return self.items.get(key, 0)


class FakeClient:
    """The brain's replica placement: the first node not excluded, keeping a replica where it runs."""

    def __init__(self) -> None:
        self.asked: list[tuple[list[str], list[str]]] = []
        self.released: list[str] = []
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def release_replicas(self, names: Sequence[str]) -> None:
        self.released.extend(names)

    def place_replicas(
        self, policy: Any, replicas: Sequence[tuple[str, Any, str | None]], exclude: Sequence[str], domains: Any
    ) -> list[tuple[str, str | None]]:
        self.asked.append(([name for name, _, _ in replicas], list(exclude)))
        out = []
        for name, _demand, node in replicas:
            if node is not None and node not in exclude:
                out.append((name, node))
            else:
                out.append((name, next((n for n in NODES if n not in exclude), None)))
        return out


class FakeActors:
    """Replica actors as data: each create() is one actor on one node; ``fail_init`` makes every __init__ raise."""

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.created: list[tuple[str, str]] = []  # (replica, node)
        self.killed: list[str] = []
        self.dead: set[str] = set()
        self._n = 0

    def create(self, replica: Replica, node: str) -> tuple[Any, Any]:
        self._n += 1
        handle = f"actor{self._n}"
        self.created.append((replica.name, node))
        return handle, (handle, node)

    def ready(self, refs: Sequence[Any], timeout: float) -> list[Any]:
        return list(refs)

    def answer(self, ref: Any) -> tuple[str, str | None]:
        handle, node = ref
        if handle in self.dead:
            raise ActorGone
        return node, ("ValueError: no model file here" if self.fail_init else None)

    def call(self, handle: Any, method: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Any:
        return (handle, method, tuple(args))

    def ping(self, handle: Any) -> Any:
        return (handle, "")

    def kill(self, handle: Any) -> None:
        self.killed.append(handle)


def fleet_of(replicas: int, actors: FakeActors) -> tuple[Fleet, FakeClient]:
    service = raysched.service(num_cpus=1, replicas=replicas)(Cache)
    client = FakeClient()
    policy = build_policy("greedy", PolicyOptions())
    fleet = Fleet([service], client, policy, lambda s: {"CPU": 1.0}, actors=actors)  # type: ignore[arg-type]
    return fleet, client


def test_a_replica_whose_init_always_fails_is_tried_on_max_tries_nodes_then_the_run_stops() -> None:
    actors = FakeActors(fail_init=True)
    fleet, _ = fleet_of(1, actors)
    with pytest.raises(JobFileError, match="raised ValueError: no model file here on every node"):
        fleet.start()
    tried = [node for _, node in actors.created]
    assert len(tried) == MAX_TRIES and len(set(tried)) == MAX_TRIES  # one more would be a node too many
    assert len(actors.killed) == MAX_TRIES  # each failed actor removed


def test_a_lost_replica_is_created_again_under_its_name_away_from_its_node() -> None:
    actors = FakeActors()
    fleet, client = fleet_of(2, actors)
    fleet.start()
    lost_calls: list[str] = []
    fleet.on_lost = lost_calls.append
    name = "Cache#0"
    old_node = fleet.node_of(name)
    fleet.lost(name)
    assert lost_calls == [name] and not fleet.is_up(name)
    assert client.asked[-1] == ([name], [old_node])  # placed again, its old node excluded
    fleet.poll()
    assert fleet.is_up(name) and fleet.node_of(name) != old_node
    assert [e["event"] for e in fleet.events if e["replica"] == name] == ["created", "lost", "recreated"]
    assert fleet.is_up("Cache#1")  # the other replica was left alone
    fleet.lost(name)
    fleet.lost(name)  # a second report of the same loss changes nothing
    assert lost_calls == [name, name]


def test_a_replica_that_dies_before_it_is_ready_is_placed_again() -> None:
    actors = FakeActors()
    fleet, _ = fleet_of(1, actors)
    fleet._place(list(fleet.replicas.values()))
    first = fleet.replicas["Cache#0"]
    actors.dead.add(first.handle)
    fleet.poll()
    fleet.poll()
    assert fleet.is_up("Cache#0") and len(actors.created) == 2
    assert actors.created[0][1] != actors.created[1][1]


def test_stop_removes_every_replica() -> None:
    actors = FakeActors()
    fleet, _ = fleet_of(3, actors)
    fleet.start()
    handles = sorted(r.handle for r in fleet.replicas.values())
    fleet.stop()
    assert sorted(actors.killed) == handles
    assert not any(fleet.is_up(name) for name in fleet.replicas)


def test_a_service_grows_by_the_next_index_and_shrinks_by_its_highest() -> None:
    actors = FakeActors()
    fleet, client = fleet_of(2, actors)
    fleet.start()
    up: list[str] = []
    fleet.on_up = lambda replica: up.append(replica.name)
    assert fleet.grow("Cache") == "Cache#2"
    fleet.poll()
    assert up == ["Cache#2"] and fleet.names("Cache") == ["Cache#0", "Cache#1", "Cache#2"]
    with pytest.raises(ValueError, match=r"only the highest replica of Cache is retired \(Cache#2\)"):
        fleet.retire("Cache#1")
    handle = fleet.replicas["Cache#2"].handle
    fleet.retire("Cache#2")
    assert fleet.count("Cache") == 2 and handle in actors.killed and client.released == ["Cache#2"]
    assert [e["event"] for e in fleet.events if e["replica"] == "Cache#2"] == ["created", "removed"]
    assert fleet.grow("Cache") == "Cache#2"  # the name comes back with the next growth


def test_a_probe_finds_a_dead_actor_and_it_is_created_again() -> None:
    actors = FakeActors()
    fleet, _ = fleet_of(2, actors)
    fleet.start()
    fleet.probe()  # asks each up replica once
    dead = fleet.replicas["Cache#1"]
    epoch = dead.epoch
    actors.dead.add(dead.handle)
    fleet.probe()
    assert not fleet.is_up("Cache#1") and fleet.is_up("Cache#0")
    fleet.poll()
    assert fleet.is_up("Cache#1") and fleet.replicas["Cache#1"].epoch == epoch + 1
    fleet.lost("Cache#1", epoch)  # a late report about the old actor: the new one stays
    assert fleet.is_up("Cache#1")
