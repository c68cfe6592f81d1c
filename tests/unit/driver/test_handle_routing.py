"""How a deployed service's clients route by its table (no Ray): the ring over replica names, and by load.

Adding a replica ``Name#k`` moves only the keys the ring gives it; removing the highest moves only its keys;
every client with the same table sends a key to the same replica, the one a run's hash router picks. The same with
homes on (the controller gives keys homes): an added replica takes keys only to itself or back to their ring owner,
a removed one moves only its keys; and a run's own router moves only the keys the ring gives an added replica.
"""

from __future__ import annotations

import collections

import pytest
from test_controller import controller

from raysched.driver.calls import CallRouter
from raysched.driver.controller import ServiceController
from raysched.driver.table import ReplicaEntry, RoutingTable, TableRouter, replica_ring
from raysched.policies import PolicyOptions, build_policy
from raysched.services import ServiceSpec

KEYS = [f"model-{i}" for i in range(2000)]


def table(count: int, routing: str = "hash", loads: dict | None = None, version: int = 1) -> RoutingTable:
    entries = tuple(ReplicaEntry(f"Shard#{i}", f"actor{i}", f"node{i}", 1) for i in range(count))
    return RoutingTable("Shard", version, routing, replicas=entries, loads=loads or {})


def owners(router: TableRouter) -> dict[str, str]:
    return {k: router.pick(k).name for k in KEYS}


def test_adding_replica_k_moves_only_the_keys_the_ring_gives_it() -> None:
    router = TableRouter(table(4))
    before = owners(router)
    router.update(table(5, version=2))
    after = owners(router)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved and all(after[k] == "Shard#4" for k in moved)  # each moved key went to the new replica
    assert moved == {k for k in KEYS if after[k] == "Shard#4"}
    assert 0.1 < len(moved) / len(KEYS) < 0.3  # about a fifth of the keys


def test_removing_the_highest_replica_moves_only_its_keys() -> None:
    router = TableRouter(table(5))
    before = owners(router)
    router.update(table(4, version=2))
    after = owners(router)
    assert {k for k in KEYS if before[k] != after[k]} == {k for k in KEYS if before[k] == "Shard#4"}


def test_the_ring_is_a_function_of_the_names_only() -> None:
    a, b = replica_ring(["Shard#0", "Shard#1", "Shard#2"], 1), replica_ring(["Shard#2", "Shard#0", "Shard#1"], 1)
    assert all(a.lookup(k) == b.lookup(k) for k in KEYS[:300])


def test_every_client_sends_a_key_where_a_runs_hash_router_sends_it() -> None:
    spec = ServiceSpec(cls=object, name="Shard", replicas=4, max_concurrency=1)
    run = CallRouter(spec, build_policy("hash", PolicyOptions(seed=1)))
    for i in range(4):
        run.replica_up(spec.replica(i))
    one, two = TableRouter(table(4), seed=1), TableRouter(table(4), seed=2)
    for uid, key in enumerate(KEYS[:200]):
        answer = run.route([], [(uid, {"CPU": 1.0}, key)], {"overcommit": 1.0})
        ((_, replica, *_),) = answer.placed
        run.route([uid], [], {"overcommit": 1.0})  # done at once: low load, no bounded-load move
        assert one.pick(key).name == two.pick(key).name == replica, key


def test_unkeyed_calls_spread_over_the_replicas() -> None:
    router = TableRouter(table(4))
    assert {router.pick(None).name for _ in range(200)} == {f"Shard#{i}" for i in range(4)}
    assert {router.pick("  ").name for _ in range(200)} == {f"Shard#{i}" for i in range(4)}  # blank: no key


def test_by_load_routing_counts_the_tables_calls_and_its_own() -> None:
    greedy = TableRouter(table(3, "greedy", loads={"Shard#0": 2, "Shard#1": 1}))
    assert greedy.pick("k").name == "Shard#2"
    greedy.sent("Shard#2")
    greedy.sent("Shard#2")
    assert greedy.pick("k").name == "Shard#1"  # 1 + 0 against 0 + 2
    greedy.done("Shard#2")
    greedy.done("Shard#2")
    assert greedy.own == {}
    pack = TableRouter(table(3, "pack", loads={"Shard#1": 0}))
    pack.sent("Shard#1")
    assert pack.pick("k").name == "Shard#0"  # Shard#1 is full (1 call, 1 slot): the most loaded with room
    p2c = TableRouter(table(2, "p2c", loads={"Shard#0": 5}), seed=3)
    assert {p2c.pick(None).name for _ in range(20)} == {"Shard#1"}


def test_no_replica_up_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="has no replica up"):
        TableRouter(table(0)).pick("k")


def run_owners(run: CallRouter, keys: list[str]) -> dict[str, str]:
    """Where a run's own hash router sends each key, one call at a time (each done at once: low load)."""
    out = {}
    for uid, key in enumerate(keys):
        answer = run.route([], [(uid, {"CPU": 1.0}, key)], {"overcommit": 1.0})
        ((_, replica, *_),) = answer.placed
        run.route([uid], [], {"overcommit": 1.0})
        out[key] = replica
    return out


def test_a_runs_router_moves_only_the_keys_the_ring_gives_an_added_replica() -> None:
    spec = ServiceSpec(cls=object, name="Shard", replicas=4, max_concurrency=1)
    run = CallRouter(spec, build_policy("hash", PolicyOptions(seed=1)))
    for i in range(4):
        run.replica_up(spec.replica(i))
    keys = KEYS[:400]
    before = run_owners(run, keys)
    run.replica_up(spec.replica(4))  # autoscaling added Shard#4
    after = run_owners(run, keys)
    ring = replica_ring([spec.replica(i) for i in range(5)], 1)
    moved = {k for k in keys if before[k] != after[k]}
    assert moved == {k for k in keys if ring.lookup(k) == "Shard#4"}  # its ring arcs' keys, no other
    assert all(after[k] == "Shard#4" for k in moved)
    run.replica_gone(spec.replica(4))  # drained away: only its keys move, back where they were
    assert run_owners(run, keys) == before


def homes_client(c: ServiceController) -> TableRouter:
    synced = c.sync("client", {}, 0, -1)
    assert synced is not None and synced.balancing  # homes on: keys asked of the controller
    return TableRouter(synced, ask=c.place_keys)


def routed(router: TableRouter, c: ServiceController, keys: list[str]) -> dict[str, str]:
    synced = c.sync("client", {}, 0, router.table.version)
    if synced is not None:
        router.update(synced)
    return {k: router.pick(k).name for k in keys}


def test_with_homes_on_adding_a_replica_moves_keys_only_to_it_or_to_their_ring_owner() -> None:
    c, _ = controller((4, 5), down=1000.0)
    client = homes_client(c)
    before = routed(client, c, KEYS)
    c.fleet.grow("Cache")
    c.tick()
    after = routed(client, c, KEYS)
    ring = replica_ring([f"Cache#{i}" for i in range(5)], 1)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert all(after[k] in ("Cache#4", ring.lookup(k)) for k in moved)
    assert {k for k in KEYS if ring.lookup(k) == "Cache#4"} <= moved
    assert max(collections.Counter(after.values()).values()) == len(KEYS) // 5  # 400 each


def test_with_homes_on_removing_the_highest_replica_moves_only_its_keys() -> None:
    c, now = controller((4, 5), down=2.0)
    c.fleet.grow("Cache")
    c.tick()
    client = homes_client(c)
    before = routed(client, c, KEYS)
    assert len(set(before.values())) == 5
    now[0] += 2.0
    c.tick()  # no load for the down delay: Cache#4 drains
    routed(client, c, KEYS[:1])  # the client takes the table without it
    routed(client, c, KEYS[:1])  # and reports, with it in hand, no call there
    c.tick()  # and it goes
    assert c.fleet.names("Cache") == [f"Cache#{i}" for i in range(4)]
    after = routed(client, c, KEYS)
    assert {k for k in KEYS if before[k] != after[k]} == {k for k in KEYS if before[k] == "Cache#4"}
    assert max(collections.Counter(after.values()).values()) <= len(KEYS) // 4 + 1
