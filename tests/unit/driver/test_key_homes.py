"""Keys' homes for a deployed hash service (no Ray): the controller gives each key a replica once, balanced, and
every client (handles and runs) sends the key there.

Rules: no replica is given more than ``ceil(keys / replicas)`` keys (a ring alone split these 40 keys 16, 11, 10
and 3, and the replica of 16 missed its cache of 12 on every call); a key keeps its home; a replica that leaves
gives only its own keys new homes; past MAX_HOMES keys new keys go to their ring owner without asking; two
clients asking the same controller route every key alike; a run's router (`HomesFirst`) and a handle's
`TableRouter` agree; an added replica takes the keys its ring arcs give it (up to its share, then extra keys of
replicas over theirs) and keys move only to it or back to their ring owner; a lost replica's keys go to a stand-in
while it is down and back once it is re-created, and no other key moves.
"""

from __future__ import annotations

import collections
import math

from test_controller import controller
from test_handle_routing import homes_client, routed, table

from raysched.driver.calls import CallRouter, HomesFirst
from raysched.driver.table import (
    MAX_HOMES,
    KeyHomes,
    RoutingTable,
    TableRouter,
    give_homes,
    homes_for_added,
    replica_ring,
)
from raysched.policies import PolicyOptions, build_policy
from raysched.services import ServiceSpec

MODELS = [f"model-{i}" for i in range(40)]
NAMES = [f"Shard#{i}" for i in range(4)]


def balancing(count: int = 4, version: int = 1) -> RoutingTable:
    base = table(count, version=version)
    return RoutingTable(base.service, base.version, "hash", replicas=base.replicas, balancing=True)


class FakeController:
    """The controller's side of `place_keys`: one homes table, answered to every client."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.homes: dict[str, str] = {}
        self.asked = 0

    def place_keys(self, keys: list[str]) -> dict[str, str]:
        self.asked += 1
        return give_homes(self.homes, keys, self.names, replica_ring(self.names, 1))


def test_homes_split_few_keys_evenly_where_the_ring_alone_does_not() -> None:
    ring = replica_ring(NAMES, 1)
    by_ring = collections.Counter(ring.lookup(k) for k in MODELS)
    assert max(by_ring.values()) > 12  # the ring alone overloads a replica's cache of 12
    homes: dict[str, str] = {}
    given = give_homes(homes, MODELS, NAMES, ring)
    counts = collections.Counter(given.values())
    assert set(given) == set(MODELS) and max(counts.values()) == math.ceil(len(MODELS) / len(NAMES))
    assert give_homes(homes, MODELS, NAMES, ring) == given  # asked again: the same answer
    assert sum(given[k] == ring.lookup(k) for k in MODELS) >= len(MODELS) // 2  # most stay with their owner


def test_a_replica_that_leaves_gives_only_its_keys_new_homes() -> None:
    homes: dict[str, str] = {}
    before = give_homes(homes, MODELS, NAMES, replica_ring(NAMES, 1))
    left = NAMES[:3]
    after = give_homes(homes, MODELS, left, replica_ring(left, 1))
    assert {k for k in MODELS if before[k] != after[k]} == {k for k in MODELS if before[k] == "Shard#3"}
    assert max(collections.Counter(after.values()).values()) <= math.ceil(len(MODELS) / 3) + 1


def test_past_max_homes_new_keys_are_left_to_the_ring() -> None:
    homes = {f"k{i}": NAMES[i % 4] for i in range(MAX_HOMES)}
    assert give_homes(homes, ["new"], NAMES, replica_ring(NAMES, 1)) == {}
    assert len(homes) == MAX_HOMES


def test_two_clients_route_every_key_to_its_one_home_and_ask_once_per_key() -> None:
    fake = FakeController(NAMES)
    one = TableRouter(balancing(), seed=1, ask=fake.place_keys)
    two = TableRouter(balancing(), seed=2, ask=fake.place_keys)
    picks_one = [one.pick(k).name for k in MODELS * 3]
    picks_two = [two.pick(k).name for k in reversed(MODELS * 3)]
    assert picks_one == list(reversed(picks_two))
    assert max(collections.Counter(picks_one[:40]).values()) == 10
    assert fake.asked == 2 * len(MODELS)  # once per key per client, never per call


def test_a_table_without_balancing_is_the_ring_and_asks_nothing() -> None:
    fake = FakeController(NAMES)
    router = TableRouter(table(4), ask=fake.place_keys)
    ring = replica_ring(NAMES, 1)
    assert all(router.pick(k).name == ring.lookup(k) for k in MODELS) and fake.asked == 0


def test_a_runs_router_sends_each_key_where_handles_do() -> None:
    fake = FakeController(NAMES)
    handle = TableRouter(balancing(), ask=fake.place_keys)
    homes = KeyHomes(fake.place_keys)
    homes.update(balancing())
    spec = ServiceSpec(cls=object, name="Shard", replicas=4, max_concurrency=1)
    run = CallRouter(spec, HomesFirst(build_policy("hash", PolicyOptions(seed=1, load_factor=None)), homes))
    for name in NAMES:
        run.replica_up(name)
    for uid, key in enumerate(MODELS):
        answer = run.route([], [(uid, {"CPU": 1.0}, key)], {"overcommit": 64.0})
        ((_, replica, *_),) = answer.placed
        assert replica == handle.pick(key).name, key


def test_the_controller_answers_every_client_alike_and_rehomes_a_drained_replicas_keys() -> None:
    c, now = controller(4, down=0.0)
    first = c.place_keys(MODELS)
    assert c.place_keys(list(reversed(MODELS))) == first
    assert max(collections.Counter(first.values()).values()) == 10
    synced = c.sync("a", {}, 0, -1)
    assert synced is not None and synced.balancing and dict(synced.homes) == first
    names = {e.name for e in c.table().replicas}
    c.autoscaler.low = 1  # let it shrink: no load
    for _ in range(3):
        now[0] += 10.0
        c.tick()
    gone = names - {e.name for e in c.table().replicas}
    assert gone and len(gone) < len(names)  # a replica drained away, not all
    again = c.place_keys(MODELS)
    assert all(again[k] == first[k] for k in MODELS if first[k] not in gone)
    assert all(again[k] not in gone for k in MODELS)


def test_an_added_replica_takes_the_keys_the_ring_gives_it_and_no_key_moves_between_two_old_replicas() -> None:
    c, _ = controller((4, 5), down=1000.0)
    client = homes_client(c)
    before = routed(client, c, MODELS)
    old = {e.name for e in c.table().replicas}
    assert max(collections.Counter(before.values()).values()) == 10
    c.fleet.grow("Cache")
    c.tick()  # Cache#4 comes up (fake actors are ready at once)
    after = routed(client, c, MODELS)
    assert set(after.values()) == old | {"Cache#4"}
    ring = replica_ring(sorted(old | {"Cache#4"}), 1)
    moved = {k for k in MODELS if after[k] != before[k]}
    assert {k for k in MODELS if ring.lookup(k) == "Cache#4"} <= moved  # its ring arcs' keys move to it
    assert all(after[k] == "Cache#4" or after[k] == ring.lookup(k) for k in moved)  # else back to their owner
    counts = collections.Counter(after.values())
    assert max(counts.values()) == math.ceil(len(MODELS) / 5) == counts["Cache#4"]  # balanced: 8 each
    assert routed(homes_client(c), c, MODELS) == after  # a new client routes every key alike


def test_a_lost_replicas_keys_go_to_a_stand_in_while_it_is_down_and_back_once_it_is_re_created() -> None:
    c, _ = controller(4)
    client = homes_client(c)
    before = routed(client, c, MODELS)
    lost = "Cache#1"
    c.lost(lost, c.fleet.replicas[lost].epoch)  # re-created at once, up at the next tick
    down = routed(client, c, MODELS)
    theirs = {k for k in MODELS if before[k] == lost}
    assert theirs and {k for k in MODELS if down[k] != before[k]} == theirs  # only its keys move
    assert lost not in down.values()
    assert routed(homes_client(c), c, MODELS) == down  # every client sends them to the same stand-ins
    c.tick()
    assert c.fleet.is_up(lost)
    assert routed(client, c, MODELS) == before  # back home; no other key moved
    assert routed(homes_client(c), c, MODELS) == before


def test_homes_for_an_added_replica_move_keys_only_to_it_or_back_to_their_ring_owner() -> None:
    for count, keys in [(1, 9), (2, 41), (3, 100), (4, 40), (6, 250)]:
        names = [f"Shard#{i}" for i in range(count)]
        models = [f"m{count}-{i}" for i in range(keys)]
        homes: dict[str, str] = {}
        before = dict(give_homes(homes, models, names, replica_ring(names, 1)))
        added, grown = f"Shard#{count}", [*names, f"Shard#{count}"]
        ring = replica_ring(grown, 1)
        moved = homes_for_added(homes, added, grown, ring)
        assert moved == {k: homes[k] for k in models if homes[k] != before[k]}
        assert all(to == added or to == ring.lookup(k) for k, to in moved.items()), count
        share = math.ceil(keys / len(grown))
        held = collections.Counter(homes.values())
        assert held[added] == share or all(k in moved for k in models if ring.lookup(k) == added)
        assert max(held.values()) <= share + 1, (count, held)
