"""A deployed service's routing table, and how a client routes one call by it (no Ray call on the way).

The controller of a deployed service (`raysched.driver.controller`) holds what every client must
agree on: which replicas take calls (up, not draining), their actors, the routing policy, and the
calls outstanding at each as the clients last reported them. Clients (`raysched.get_service`
handles, and runs whose job calls the service) cache a copy, refresh it every `REFRESH_S` (and
report their own outstanding calls on the same round trip), and route each call locally:

* ``hash``: the key's **home**, which the controller gives each key the first time a client asks
  (`KeyHomes`: once per key per client, never per call): its owner on a consistent-hash ring over the
  routable replicas' names (built as the hash policy builds its ring over nodes: BLAKE2b, ``vnodes``
  points per unit of weight, a replica's weight from its ``max_concurrency`` call slots), unless the
  owner already holds its share of the keys (``ceil((keys + 1) / replicas)``), then the next replica
  clockwise that does not. Few keys rarely split evenly on a ring (40 keys on 4 replicas fell 16, 11,
  10 and 3, so the replica of 16 missed its cache of 12 on every call); homes split them 10 each.
  Every client asks the one controller, so all send a key to the same replica. A replica added
  (``Name#k``) takes the keys the ring now gives it, up to its share, then extra keys of replicas still
  over their share, and keys that fit their ring owner again go back to it (`homes_for_added`); no other
  key moves. One drained away (the highest index) gives only its keys new homes. While a replica is down
  (being re-created) its keys keep it as their home and go to a stand-in, chosen as a new key's home
  is; once it is up again they go back, and no other key moves. Past `MAX_HOMES` keys (where a ring's
  split is even enough) new keys go to their ring owner without asking.
* ``random``: uniform; ``p2c``: the less loaded of two sampled; ``greedy``: the least loaded; ``pack``:
  the most loaded replica with a free call slot, else the least loaded. A replica's load is the
  table's (every client's report) plus this client's calls sent since.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raysched.core.ring import HashRing, RingConfig
from raysched.core.view import node_weight
from raysched.policies.base import DEFAULT_VNODES_PER_CPU

__all__ = [
    "HANDLE_POLICIES",
    "MAX_HOMES",
    "REFRESH_S",
    "KeyHomes",
    "ReplicaEntry",
    "RoutingTable",
    "TableRouter",
    "give_homes",
    "homes_for_added",
    "no_key",
]

REFRESH_S = 0.5  # how often a client refreshes its table and reports its outstanding calls
# Keys the controller gives homes (balanced); past this many a ring over the replicas splits new keys evenly
# enough (a replica's share within about 1/sqrt(keys per replica)), and clients stop asking for them.
MAX_HOMES = 4096
HANDLE_POLICIES = ("hash", "random", "p2c", "greedy", "pack")  # how a deployed service's calls can be routed


@dataclass(frozen=True)
class ReplicaEntry:
    """One replica of the table: its name, its actor, its node, and which actor of that name it is."""

    name: str
    handle: Any
    node: str
    epoch: int


@dataclass(frozen=True)
class RoutingTable:
    """What the controller publishes; ``version`` changes whenever the routable replicas (or actors) change."""

    service: str
    version: int
    routing: str
    max_concurrency: int = 1
    vnodes: int = DEFAULT_VNODES_PER_CPU
    replicas: tuple[ReplicaEntry, ...] = ()  # routable: up, not draining
    draining: tuple[str, ...] = ()  # up, no new calls; removed once every client's calls to it are done
    starting: tuple[str, ...] = ()  # being created (or re-created under its name after a loss)
    methods: tuple[str, ...] = ()  # the service's public methods (a handle's attributes)
    loads: Mapping[str, float] = field(default_factory=dict)  # calls outstanding, every client's last report
    homes: Mapping[str, str] = field(default_factory=dict)  # key -> its replica, as the controller gave it (hash)
    balancing: bool = False  # hash, under MAX_HOMES keys: a client asks the controller for a new key's home

    def entry(self, name: str) -> ReplicaEntry | None:
        return next((e for e in self.replicas if e.name == name), None)


def replica_ring(names: Sequence[str], max_concurrency: int, vnodes: int = DEFAULT_VNODES_PER_CPU) -> HashRing:
    """The ring over replica names, as the hash policy builds its ring over nodes of ``max_concurrency`` CPUs."""
    ring = HashRing(RingConfig(vnodes=vnodes))
    weight = node_weight({"CPU": float(max_concurrency)})
    for name in names:
        ring.add(name, weight)
    return ring


def give_homes(
    homes: dict[str, str],
    keys: Sequence[str],
    names: Sequence[str],
    ring: HashRing,
    away: dict[str, str] | None = None,
) -> dict[str, str]:
    """Where each key goes now; a key without a home gets one (in ``homes``).

    A new key's home is its ring owner while that holds fewer than its share of the keys
    (``ceil((keys + 1) / replicas)``), else the next replica clockwise that does. A key whose home is not among
    ``names`` (its replica is down, being re-created) keeps that home and goes to a **stand-in** meanwhile, chosen
    the same way and remembered in ``away`` (the caller drops it once the home is back). The caller drops the
    homes of replicas that left for good.
    """
    if not names:
        return {}
    away = {} if away is None else away
    routable = set(names)
    held: dict[str, int] = dict.fromkeys(names, 0)
    for key, home in homes.items():
        where = home if home in routable else away.get(key)
        if where in held:
            held[where] += 1

    def room(key: str) -> str:
        share = -(-(len(homes) + 1) // len(names))
        place = next(n for n in ring.successors(key) if held[n] < share)
        held[place] += 1
        return place

    out: dict[str, str] = {}
    for key in keys:
        known = homes.get(key)
        if known is not None and known in routable:
            out[key] = known
        elif known is not None:  # its replica is down: a stand-in until it is back, its home kept
            stand = away.get(key)
            if stand not in routable:
                stand = away[key] = room(key)
            out[key] = stand
        elif len(homes) < MAX_HOMES:  # past MAX_HOMES the ring alone: the client routes to the owner
            homes[key] = out[key] = room(key)
    return out


def homes_for_added(homes: dict[str, str], added: str, names: Sequence[str], ring: HashRing) -> dict[str, str]:
    """Replica ``added`` joined ``names`` (the routable replicas, ``ring`` over them): move keys to it; the keys moved.

    Among the keys whose home is routable, with ``share = ceil(keys / replicas)``, in the order they were given:
    (1) a key whose ring owner is now ``added`` moves to it while it holds fewer than ``share``; (2) a key away
    from its ring owner moves back to it when the owner holds fewer than ``share``; (3) a replica still over
    ``share`` gives its extra keys to ``added`` while that holds fewer than ``share``. No key moves between two
    other replicas except back to its own ring owner.
    """
    routable = set(names)
    mine = [k for k, home in homes.items() if home in routable]
    if not mine or added not in routable:
        return {}
    share = -(-len(mine) // len(names))
    held = dict.fromkeys(names, 0)
    for key in mine:
        held[homes[key]] += 1
    owner = {key: ring.lookup(key) for key in mine}
    moved: dict[str, str] = {}

    def move(key: str, to: str) -> None:
        held[homes[key]] -= 1
        held[to] += 1
        homes[key] = moved[key] = to

    for key in mine:
        if owner[key] == added and homes[key] != added and held[added] < share:
            move(key, added)
    for key in mine:
        if homes[key] != owner[key] and held[owner[key]] < share:
            move(key, owner[key])
    for key in mine:
        if held[homes[key]] > share and homes[key] != added and held[added] < share:
            move(key, added)
    return moved


class KeyHomes:
    """The homes this client knows (the table's, and those it asked for since); asks the controller for a new key."""

    def __init__(self, ask: Callable[[list[str]], Mapping[str, str]] | None = None) -> None:
        self.ask = ask
        self.homes: dict[str, str] = {}
        self.balancing = False

    def update(self, table: RoutingTable) -> None:
        self.homes = dict(table.homes)
        self.balancing = table.balancing and table.routing == "hash"

    def of(self, key: str, routable: Container[str]) -> str | None:
        """The key's home if it has a routable one (asking the controller the first time); None: the ring's."""
        home = self.homes.get(key)
        if (home is None or home not in routable) and self.balancing and self.ask is not None:
            home = self.ask([key]).get(key)  # new to this client, or its replica left: the controller's answer
            if home is not None:
                self.homes[key] = home
        return home if home in routable else None


def no_key(key: object) -> bool:
    """The project's one rule: None, or an empty or blank string, is no key."""
    return key is None or (isinstance(key, str) and not key.strip())


class TableRouter:
    """Routes a client's calls by its copy of the table; counts the calls it has outstanding per replica."""

    def __init__(
        self, table: RoutingTable, seed: int | None = None, ask: Callable[[list[str]], Mapping[str, str]] | None = None
    ) -> None:
        self.own: dict[str, int] = {}  # calls this client sent and has not seen finish, per replica
        self._rng = random.Random(seed)
        self._unkeyed = itertools.count()
        self.table = table
        self._ring = replica_ring([], 1)
        self.homes = KeyHomes(ask)
        self.update(table)

    def update(self, table: RoutingTable) -> None:
        """A newer table: the ring is rebuilt only when the routable names change."""
        names = [e.name for e in table.replicas]
        if names != [e.name for e in self.table.replicas] or len(self._ring) != len(names):
            self._ring = replica_ring(names, table.max_concurrency, table.vnodes)
        self.table = table
        self._by_name = {e.name: e for e in table.replicas}
        self.homes.update(table)

    def pick(self, key: object = None) -> ReplicaEntry:
        """The replica for one call (LookupError: none is up now)."""
        entries = self.table.replicas
        if not entries:
            raise LookupError(f"service {self.table.service} has no replica up now")
        routing = self.table.routing
        if routing == "hash":
            if no_key(key):
                return self._by_name[self._ring.lookup(f"\x00call-{next(self._unkeyed)}")]
            text = str(key)
            home = self.homes.of(text, self._by_name)
            return self._by_name[home if home is not None else self._ring.lookup(text)]
        if routing == "random" or len(entries) == 1:
            return self._rng.choice(entries)
        if routing == "p2c":
            a, b = self._rng.sample(entries, 2)
            return min((a, b), key=lambda e: self.load(e.name))
        if routing == "pack":
            free = [e for e in entries if self.load(e.name) < self.table.max_concurrency]
            if free:
                return max(free, key=lambda e: self.load(e.name))  # ties: the lowest index (the first)
        return min(entries, key=lambda e: self.load(e.name))  # greedy, and pack when all are busy

    def load(self, name: str) -> float:
        """A replica's calls outstanding as this client sees them: the table's, and its own sent since."""
        return float(self.table.loads.get(name, 0.0)) + self.own.get(name, 0)

    def sent(self, name: str) -> None:
        self.own[name] = self.own.get(name, 0) + 1

    def done(self, name: str) -> None:
        left = self.own.get(name, 0) - 1
        if left > 0:
            self.own[name] = left
        else:
            self.own.pop(name, None)
