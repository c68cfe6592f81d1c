"""Keys' homes for a deployed hash service (no Ray): the controller gives each key a replica once, balanced, and
every client (handles and runs) sends the key there.

Rules: no replica is given more than ``ceil(keys / replicas)`` keys (a ring alone split these 40 keys 16, 11, 10
and 3, and the replica of 16 missed its cache of 12 on every call); a key keeps its home; a replica that leaves
gives only its own keys new homes; past MAX_HOMES keys new keys go to their ring owner without asking; two
clients asking the same controller route every key alike; a run's router (`HomesFirst`) and a handle's
`TableRouter` agree.
"""

from __future__ import annotations

import collections
import math

from test_controller import controller
from test_handle_routing import table

from raysched.driver.calls import CallRouter, HomesFirst
from raysched.driver.table import MAX_HOMES, KeyHomes, RoutingTable, TableRouter, give_homes, replica_ring
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
