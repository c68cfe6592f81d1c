"""ResourceView: the brain's ledger of the cluster. Pure data: it imports nothing from Ray.

Ray has no public per-node "free resources" API, so the brain keeps its own
ledger of the work it has *assigned* to each node:

* **reserved**: tasks placed on the node (running, or queued at its raylet),
  with their resource demand (``reserve`` / ``release``);
* **parked**: tasks waiting in the brain for this node as their home
  (``park`` / ``unpark``), counted so that bounded loads see them.

``assigned(node) = tasks reserved there + tasks parked for it``; hash's bounded
loads compare it with a fair share of ``total_assigned`` (plus ``pending``,
tasks the brain holds but has not assigned yet). Per-key counts
(``key_assigned``) let hash move or keep whole keys.

**Admission.** ``overcommit`` (>= 1) lets a node hold reserved demand up to
``capacity * overcommit``: running work plus a queue at the node, so a slot
that frees starts its next task without waiting for a round trip. The brain
sets it per submission before asking that submission's policy (each driver
measures its own ideal queue depth; ``DEFAULT_OVERCOMMIT`` until it has).
``check_overcommit`` is the one validator of the setting, wherever it comes
from. A single task never fits on a node whose capacity is below its demand
(``capacity_holds``, the one feasibility rule).

Policies read the view on every decision, so the hot queries (``fits_now``,
``load``, ``assigned``) are dict lookups, and the two that need a search are
indexed: ``could_ever_fit`` is cached per demand until membership changes
(``version``), and :class:`OrderedIndex` finds "the emptiest/fullest node that
still fits" with a bisect per capacity class.

Units are Ray's: resource name -> amount ("CPU", "GPU", "memory" in bytes,
custom names). A resource a node does not list counts as 0.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from raysched.core.names import short_node
from raysched.core.numbers import EPS
from raysched.core.ring import UnknownNodeError

__all__ = [
    "DEFAULT_OVERCOMMIT",
    "MAX_RING_CPUS",
    "LedgerError",
    "OrderedIndex",
    "ResourceView",
    "UnknownNodeError",
    "capacity_holds",
    "check_demand",
    "check_overcommit",
    "dominant_share",
    "fmt_resources",
    "largest_capacity",
]

# Admission before a driver has measured its queue depth (and the brain's default): running work plus one
# queued task per slot, so a slot that frees starts its next task at once.
DEFAULT_OVERCOMMIT = 2.0
# Slack on allocated fractions when an index pre-filters (final check is exact).
KEY_EPS = 1e-6
# A node's ring weight counts at most this many CPUs (a 128-CPU node has the
# share of the ring a 128-CPU node should; bigger ones are capped so one huge
# node cannot cost millions of ring points).
MAX_RING_CPUS = 128


class LedgerError(ValueError):
    """The ledger was asked to release or unpark work it does not hold (a double release)."""


def check_amounts(what: str, amounts: Mapping[str, float]) -> dict[str, float]:
    """Validated plain copy: non-empty str names, finite non-negative numbers (the one validator)."""
    if not isinstance(amounts, Mapping):
        raise TypeError(f"{what} must be a mapping of resource name to amount, got {type(amounts).__name__}")
    out: dict[str, float] = {}
    for name, amount in amounts.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: resource names must be non-empty strings, got {name!r}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ValueError(f"{what}: {name} must be a number, got {amount!r}")
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"{what}: {name} must be a finite amount >= 0, got {amount!r}")
        out[name] = float(amount)
    return out


def check_demand(demand: Mapping[str, float]) -> dict[str, float]:
    """A validated copy of a task demand (raises ValueError/TypeError)."""
    return check_amounts("demand", demand)


def check_overcommit(value: object) -> float:
    """The one validator of an admission multiple: a finite number >= 1 (1.0 = only what runs now)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1.0 or math.isinf(value):
        raise ValueError(f"overcommit must be a finite number >= 1 (1.0 = strict), got {value!r}")
    return float(value)


def capacity_holds(capacity: Mapping[str, float], demand: Mapping[str, float]) -> bool:
    """Could a node of this capacity ever hold ``demand``, were it empty? (the one feasibility rule)"""
    return all(a <= capacity.get(r, 0.0) + EPS for r, a in demand.items())


def largest_capacity(capacities: Mapping[str, Mapping[str, float]]) -> tuple[str, Mapping[str, float]]:
    """The node with the most CPU (then GPU, memory, id): what an infeasible demand is compared with."""
    if not capacities:
        raise LookupError("there are no nodes")
    best = max(
        capacities,
        key=lambda n: (
            capacities[n].get("CPU", 0.0),
            capacities[n].get("GPU", 0.0),
            capacities[n].get("memory", 0.0),
            n,
        ),
    )
    return best, capacities[best]


def dominant_share(capacity: Mapping[str, float], reserved: Mapping[str, float]) -> float:
    """Max over resources of reserved / capacity (DRF's dominant share).

    A positive reservation of a resource the node has 0 of gives ``inf``.
    """
    share = 0.0
    for r, used in reserved.items():
        if used > 0:
            c = capacity.get(r, 0.0)
            s = used / c if c > 0 else math.inf
            if s > share:
                share = s
    return share


def fmt_resources(amounts: Mapping[str, float]) -> str:
    """``{CPU: 2, memory: 1e+09}``: short and readable in error messages."""
    parts = []
    for name in sorted(amounts):
        v = amounts[name]
        parts.append(f"{name}: {int(v) if float(v).is_integer() and abs(v) < 1e15 else f'{v:g}'}")
    return "{" + ", ".join(parts) + "}"


def node_weight(capacity: Mapping[str, float]) -> float:
    """Ring weight of a node from its own capacity alone: its CPUs (capped), or 1 without CPUs.

    Depending only on the node keeps the ring a function of current membership:
    no join order, no history, the same after a brain restart.
    """
    cpu = capacity.get("CPU", 0.0)
    return min(cpu, float(MAX_RING_CPUS)) if cpu > 0 else 1.0


class _Levels:
    """One capacity class's nodes by sort key: its distinct keys in order, and each key's nodes in id order.

    The same order as one sorted list of (key, node id), at the cost of a
    short list per change: a cluster's nodes share few keys (whole CPUs over
    equal capacities), and one sorted list of 10,000 (key, id) pairs made
    every reservation a bisect and a copy over all of them.
    """

    __slots__ = ("at", "levels")

    def __init__(self) -> None:
        self.levels: list[float] = []
        self.at: dict[float, list[str]] = {}

    def add(self, key: float, node_id: str) -> None:
        same = self.at.get(key)
        if same is None:
            insort(self.levels, key)
            self.at[key] = [node_id]
        else:
            insort(same, node_id)

    def remove(self, key: float, node_id: str) -> None:
        same = self.at[key]
        if len(same) == 1:
            del self.at[key]
            del self.levels[bisect_left(self.levels, key)]
        else:
            del same[bisect_left(same, node_id)]

    def __bool__(self) -> bool:
        return bool(self.levels)

    def entries(self, low: float | None = None) -> Iterator[tuple[float, str]]:
        """(key, node id) in order, from the first key at or above ``low`` (None: all)."""
        levels, at = self.levels, self.at
        first = 0 if low is None else bisect_left(levels, low)
        for i in range(first, len(levels)):
            key = levels[i]
            for node_id in at[key]:
                yield key, node_id


class OrderedIndex:
    """Nodes sorted by allocated share of a fixed set of resources.

    ``key(node) = sum(reserved[r] / capacity[r] for r in resources)``. Nodes
    are grouped into classes of equal capacity for ``resources`` (clusters
    have few node shapes): within a class, "least allocated" and "most
    allocated" are the ends of one order (`_Levels`), and a node fits a demand
    only if its key is under a bound that bisect finds. Nodes lacking any of
    the resources can never host such a demand and are left out.

    ``descending=True`` files nodes under ``-key``, so that ascending order is
    fullest first with ties by node id, the order pack wants.
    """

    def __init__(self, resources: tuple[str, ...], descending: bool) -> None:
        self.resources = resources
        self.descending = descending
        self.classes: dict[tuple[float, ...], _Levels] = {}
        self.class_keys: list[tuple[float, ...]] = []  # for O(1) sampling
        self._class_pos: dict[tuple[float, ...], int] = {}
        self._entry: dict[str, tuple[tuple[float, ...], float]] = {}

    def caps_of(self, capacity: Mapping[str, float]) -> tuple[float, ...] | None:
        caps = tuple(capacity.get(r, 0.0) for r in self.resources)
        return None if min(caps) <= 0.0 else caps

    def sort_key(self, caps: tuple[float, ...], reserved: Mapping[str, float]) -> float:
        k = 0.0
        for r, c in zip(self.resources, caps, strict=True):
            k += reserved.get(r, 0.0) / c
        return -k if self.descending else k

    def update(self, node_id: str, capacity: Mapping[str, float] | None, reserved: Mapping[str, float]) -> None:
        """(Re)file a node; ``capacity=None`` drops it."""
        old = self._entry.pop(node_id, None)
        if old is not None:
            old_caps, old_key = old
            levels = self.classes[old_caps]
            levels.remove(old_key, node_id)
            if not levels:
                self._drop_class(old_caps)
        if capacity is None:
            return
        caps = self.caps_of(capacity)
        if caps is None:
            return
        key = self.sort_key(caps, reserved)
        filed = self.classes.get(caps)
        if filed is None:
            filed = self.classes[caps] = _Levels()
            self._class_pos[caps] = len(self.class_keys)
            self.class_keys.append(caps)
        filed.add(key, node_id)
        self._entry[node_id] = (caps, key)

    def _drop_class(self, caps: tuple[float, ...]) -> None:
        del self.classes[caps]
        pos = self._class_pos.pop(caps)
        last = self.class_keys.pop()
        if pos < len(self.class_keys):
            self.class_keys[pos] = last
            self._class_pos[last] = pos

    def __len__(self) -> int:
        return len(self._entry)


class ResourceView:
    """Capacities, assigned work and liveness of the cluster's nodes."""

    def __init__(self, overcommit: float = 1.0) -> None:
        self._overcommit = check_overcommit(overcommit)
        self._cap: dict[str, dict[str, float]] = {}
        self._res: dict[str, dict[str, float]] = {}
        self._count: dict[str, int] = {}  # tasks reserved (placed) per node
        self._parked: dict[str, int] = {}  # tasks waiting in the brain for this node
        self._load: dict[str, float] = {}
        self._key_reserved: dict[tuple[str, str], int] = {}
        self._key_parked: dict[tuple[str, str], int] = {}
        self._keys_on: dict[str, int] = {}  # distinct keys with work assigned to each node
        self._with_free_slot: set[str] = set()
        self._total_keys = 0
        self._total_count = 0
        self._total_parked = 0
        self.pending = 0  # tasks the brain holds but has not assigned to a node yet
        self._version = 0
        self._freed = 0  # bumped whenever room may have appeared on a node (a release, a higher overcommit)
        self._nodes: tuple[str, ...] | None = ()
        self._fit_cache: dict[tuple, bool] = {}
        self._indices: dict[tuple[tuple[str, ...], bool], OrderedIndex] = {}
        # Nodes whose reservations changed since the indexes last filed them: filed again when an index is next
        # asked for (a node reserved and released between two questions is filed once; most brain calls ask few).
        self._stale: dict[str, None] = {}
        # Distinguishes views whose versions happen to coincide (policies sync on (uid, version)).
        self.uid = random.getrandbits(63)

    # -- membership / capacity ---------------------------------------------
    @property
    def overcommit(self) -> float:
        """Admission: a node may hold reserved demand up to capacity x this (running + queued)."""
        return self._overcommit

    @overcommit.setter
    def overcommit(self, value: float) -> None:
        if type(value) is float and value == self._overcommit:  # the brain sets it before every decision
            return
        value = check_overcommit(value)
        if value > self._overcommit:
            self._freed += 1
        self._overcommit = value

    @property
    def version(self) -> int:
        """Bumped on every membership or capacity change."""
        return self._version

    @property
    def room_epoch(self) -> tuple[int, int, int]:
        """Changes whenever a demand may fit on a node where it did not (a release, a node joining or changing,
        a higher overcommit); between two changes the nodes that fit a demand only shrink, as tasks are placed."""
        return self.uid, self._version, self._freed

    def set_node(self, node_id: str, capacity: Mapping[str, float]) -> None:
        """Add an alive node, or update its capacity (its reservations stay)."""
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a non-empty string, got {node_id!r}")
        cap = check_amounts(f"capacity of node {short_node(node_id)}", capacity)
        if self._cap.get(node_id) == cap:
            return
        self._cap[node_id] = cap
        if node_id not in self._res:
            self._res[node_id] = {}
            self._count[node_id] = 0
            self._parked[node_id] = 0
            self._keys_on[node_id] = 0
            self._nodes = None
        self._after_ledger_change(node_id, {})  # its load and free slot; every index, below
        for idx in self._indices.values():
            idx.update(node_id, cap, self._res[node_id])
        self._changed()

    def remove_node(self, node_id: str) -> None:
        """Drop a node that left or died, with its reservations and parked counts.

        The caller (the brain) re-homes the tasks that were parked for it.
        """
        self._node(node_id)
        for idx in self._indices.values():
            idx.update(node_id, None, {})
        self._total_count -= self._count.pop(node_id)
        self._total_parked -= self._parked.pop(node_id)
        self._total_keys -= self._keys_on.pop(node_id)
        for d in (self._cap, self._res, self._load):
            del d[node_id]
        self._with_free_slot.discard(node_id)
        for counts in (self._key_reserved, self._key_parked):
            for pair in [p for p in counts if p[1] == node_id]:
                del counts[pair]
        self._nodes = None
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._fit_cache.clear()

    def _node(self, node_id: str) -> dict[str, float]:
        try:
            return self._cap[node_id]
        except (KeyError, TypeError):
            raise UnknownNodeError(f"unknown node {node_id!r}: not in the view (never added, or removed)") from None

    @property
    def nodes(self) -> tuple[str, ...]:
        """Alive node ids, sorted."""
        if self._nodes is None:
            self._nodes = tuple(sorted(self._cap))
        return self._nodes

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._cap

    def __len__(self) -> int:
        return len(self._cap)

    def capacity(self, node_id: str) -> Mapping[str, float]:
        """Read-only, live: copy it with ``dict()`` to keep a snapshot."""
        return MappingProxyType(self._node(node_id))

    def reserved(self, node_id: str) -> Mapping[str, float]:
        """Reserved demand on the node (running + queued there); read-only, live."""
        self._node(node_id)
        return MappingProxyType(self._res[node_id])

    def tasks_in_flight(self, node_id: str) -> int:
        """Tasks placed on the node (running or queued at it)."""
        try:
            return self._count[node_id]
        except KeyError:
            self._node(node_id)
            raise

    def parked(self, node_id: str) -> int:
        """Tasks waiting in the brain for this node as their home."""
        try:
            return self._parked[node_id]
        except KeyError:
            self._node(node_id)
            raise

    def assigned(self, node_id: str) -> int:
        """All work assigned to the node: placed there, or waiting for it."""
        try:
            return self._count[node_id] + self._parked[node_id]
        except KeyError:
            self._node(node_id)
            raise

    @property
    def total_tasks_in_flight(self) -> int:
        return self._total_count

    @property
    def total_parked(self) -> int:
        """Tasks waiting in the brain for a node, over every node."""
        return self._total_parked

    @property
    def total_assigned(self) -> int:
        """Placed plus parked tasks over every node (``pending`` not included)."""
        return self._total_count + self._total_parked

    def key_assigned(self, key: str, node_id: str) -> int:
        """Tasks of ``key`` assigned to the node (placed or parked), as the brain reported keys."""
        pair = (key, node_id)
        return self._key_reserved.get(pair, 0) + self._key_parked.get(pair, 0)

    def keys_on(self, node_id: str) -> int:
        """Distinct keys with work assigned to the node."""
        return self._keys_on[node_id]

    @property
    def total_keys(self) -> int:
        """Distinct (key, node) pairs with work assigned, over every node."""
        return self._total_keys

    def keys_only_waiting(self, node_id: str) -> list[str]:
        """Keys whose every task assigned to the node still waits for it (none placed there): the keys a node
        gives up for free. Costs a scan of the parked keys (for rare decisions)."""
        reserved = self._key_reserved
        return [k for (k, n) in self._key_parked if n == node_id and (k, n) not in reserved]

    def key_parked(self, key: str, node_id: str) -> int:
        """Tasks of ``key`` waiting in the brain for the node (they move if the key moves)."""
        return self._key_parked.get((key, node_id), 0)

    def weight(self, node_id: str) -> float:
        """Ring weight: CPU capacity (at most MAX_RING_CPUS), or 1.0 for a node without CPUs."""
        return node_weight(self._node(node_id))

    def load(self, node_id: str) -> float:
        """Dominant share: max over resources of reserved / capacity.

        A resource reserved on a node whose capacity for it is 0 makes the load
        ``inf`` (it can only have come from an explicit reservation).
        """
        try:
            return self._load[node_id]
        except KeyError:
            self._node(node_id)
            raise

    def largest_node(self) -> tuple[str, Mapping[str, float]]:
        """The node with the most CPU (then GPU, memory, id): for error messages."""
        if not self._cap:
            raise LookupError("the view has no alive nodes")
        best, capacity = largest_capacity(self._cap)
        return best, dict(capacity)

    # -- fitting ---------------------------------------------------------------
    def fits_now(self, node_id: str, demand: Mapping[str, float]) -> bool:
        """Would ``demand`` fit on the node next to what is reserved there, under the admission limit?"""
        try:
            cap = self._cap[node_id]
        except (KeyError, TypeError):
            self._node(node_id)
            raise
        res = self._res[node_id]
        o = self._overcommit
        for r, a in demand.items():
            if not a > 0:
                if a == 0:
                    continue
                raise ValueError(f"demand: {r} must be a finite amount >= 0, got {a!r}")
            c = cap.get(r, 0.0)
            if a > c + EPS or res.get(r, 0.0) + a > c * o + EPS:
                return False
        return True

    def could_hold(self, node_id: str, demand: Mapping[str, float]) -> bool:
        """Would ``demand`` fit on the node if it were empty (its capacity covers every resource)?"""
        return capacity_holds(self._cap[node_id], demand)

    def could_ever_fit(
        self, demand: Mapping[str, float], signature: tuple[tuple[str, ...], tuple[float, ...]] | None = None
    ) -> bool:
        """Does some alive node have the capacity for ``demand`` at all?

        ``signature``, when given, is the validated demand's positive (names, amounts), sorted by name (a
        `TaskDemand`'s ``signature``): the cache key, so a hit costs one lookup.
        """
        key = signature
        if key is None:
            items = sorted((r, a) for r, a in demand.items() if a != 0)
            key = (tuple(r for r, _ in items), tuple(a for _, a in items))
        hit = self._fit_cache.get(key)
        if hit is None:
            for r, a in zip(*key, strict=True):
                if not (a > 0 and math.isfinite(a)):
                    raise ValueError(f"demand: {r} must be a finite amount >= 0, got {a!r}")
            hit = any(capacity_holds(cap, demand) for cap in self._cap.values())
            self._fit_cache[key] = hit
        return hit

    # -- ledger ------------------------------------------------------------------
    def reserve(self, node_id: str, demand: Mapping[str, float], key: str | None = None) -> None:
        """Record one task of ``demand`` placed on the node (running or queued there).

        Validates everything before touching state. Does not require the task
        to fit: the brain may learn of work it did not place.
        """
        self._node(node_id)
        self.reserve_checked(node_id, check_amounts("demand", demand), key)

    def reserve_checked(self, node_id: str, demand: Mapping[str, float], key: str | None = None) -> None:
        """`reserve` for a demand already validated by `check_demand` on a live node (the brain's ledger
        holds only such demands: a `TaskDemand`'s resources), without validating it again per task."""
        res = self._res[node_id]
        for r, a in demand.items():
            if a:
                res[r] = res.get(r, 0.0) + a
        self._count[node_id] += 1
        self._total_count += 1
        self._count_key(self._key_reserved, key, node_id, +1)
        self._after_ledger_change(node_id, demand)

    def release(self, node_id: str, demand: Mapping[str, float], key: str | None = None) -> None:
        """Record the end of one task placed on the node.

        Releasing a task the node does not hold (a second release of the same
        task, or more of a resource than is reserved) raises LedgerError and
        changes nothing: the ledger never hides a double release.
        """
        self._node(node_id)
        self.release_checked(node_id, check_amounts("demand", demand), key)

    def release_checked(self, node_id: str, demand: Mapping[str, float], key: str | None = None) -> None:
        """`release` for a demand already validated by `check_demand` on a live node (as `reserve_checked`);
        a double release still raises LedgerError and changes nothing."""
        res = self._res[node_id]
        if self._count[node_id] <= 0:
            raise LedgerError(f"release on node {short_node(node_id)} which holds no task (a double release?)")
        for r, a in demand.items():
            if a and res.get(r, 0.0) + EPS < a:
                raise LedgerError(
                    f"release of {fmt_resources(demand)} on node {short_node(node_id)} which holds only "
                    f"{fmt_resources(res)} (a double release?)"
                )
        if key is not None and self._key_reserved.get((key, node_id), 0) <= 0:
            raise LedgerError(f"release of key {key!r} on node {short_node(node_id)} which holds none of its tasks")
        for r, a in demand.items():
            if a:
                left = res[r] - a
                if left <= EPS:
                    del res[r]
                else:
                    res[r] = left
        self._count[node_id] -= 1
        self._total_count -= 1
        self._freed += 1
        self._count_key(self._key_reserved, key, node_id, -1)
        self._after_ledger_change(node_id, demand)

    def park(self, node_id: str, key: str | None = None, count: int = 1) -> None:
        """Count one task (or ``count`` tasks of one key) waiting in the brain for this node as its home."""
        self._node(node_id)
        if count < 1:
            raise ValueError(f"park: count must be at least 1, got {count!r}")
        self._parked[node_id] += count
        self._total_parked += count
        self._count_key(self._key_parked, key, node_id, count)

    def unpark(self, node_id: str, key: str | None = None) -> None:
        """The task waiting for this node was placed, re-homed or dropped."""
        self._node(node_id)
        if self._parked[node_id] <= 0:
            raise LedgerError(f"unpark on node {short_node(node_id)} for which no task waits")
        self._parked[node_id] -= 1
        self._total_parked -= 1
        self._count_key(self._key_parked, key, node_id, -1)

    def _count_key(self, counts: dict[tuple[str, str], int], key: str | None, node_id: str, delta: int) -> None:
        """Per-key counts, and how many distinct keys have work on each node."""
        if key is None:
            return
        pair = (key, node_id)
        before = counts.get(pair, 0)
        left = before + delta
        if left > 0:
            counts[pair] = left
        else:
            counts.pop(pair, None)
        if (before > 0) != (left > 0):  # the pair's count in ``counts`` started or ended: and in the other?
            other = self._key_parked if counts is self._key_reserved else self._key_reserved
            if pair not in other:
                change = 1 if left > 0 else -1
                self._keys_on[node_id] += change
                self._total_keys += change

    @property
    def idle_somewhere(self) -> bool:
        """Does some node run less than it could (a CPU with nothing placed on it)?"""
        return bool(self._with_free_slot)

    def _after_ledger_change(self, node_id: str, demand: Mapping[str, float]) -> None:
        """The node's dominant share and whether it has a free CPU slot, from its capacity and reservations; the
        indexes file it again when next asked (`_refile`). Once per ledger change of ``demand``."""
        cap, res = self._cap[node_id], self._res[node_id]
        self._load[node_id] = dominant_share(cap, res)
        cpus = cap.get("CPU", 0.0)
        if cpus > 0 and res.get("CPU", 0.0) < cpus - EPS:
            self._with_free_slot.add(node_id)
        else:
            self._with_free_slot.discard(node_id)
        if self._indices and demand:
            self._stale[node_id] = None

    # -- indexed queries -----------------------------------------------------------
    def ordered_index(self, resources: tuple[str, ...], descending: bool = False) -> OrderedIndex:
        """The (lazily built, then maintained) index for a sorted resource tuple."""
        if self._stale:
            self._refile()
        key = (resources, descending)
        idx = self._indices.get(key)
        if idx is None:
            idx = OrderedIndex(resources, descending)
            for node_id, cap in self._cap.items():
                idx.update(node_id, cap, self._res[node_id])
            self._indices[key] = idx
        return idx

    def _refile(self) -> None:
        """File the nodes whose reservations changed in every index again (a node that left is out of them)."""
        caps, res, indices = self._cap, self._res, self._indices.values()
        for node_id in self._stale:
            cap = caps.get(node_id)
            if cap is not None:
                for idx in indices:
                    idx.update(node_id, cap, res[node_id])
        self._stale.clear()

    def class_candidates(
        self, idx: OrderedIndex, caps: tuple[float, ...], amounts: tuple[float, ...]
    ) -> tuple[float | None, float] | None:
        """Where to start walking a class for a demand (the lowest key worth looking at), and the key bound.

        Returns None when no node of the class could hold the demand at all.
        Nodes past the bound (allocated share too high) cannot fit it now.
        """
        bound = 0.0
        o = self._overcommit
        for a, c in zip(amounts, caps, strict=True):
            if a > c + EPS:
                return None
            bound += o - a / c
        if idx.descending:
            return -(bound + KEY_EPS), bound
        return None, bound

    def fitting_in_class(
        self, idx: OrderedIndex, caps: tuple[float, ...], demand: Mapping[str, float], amounts: tuple[float, ...]
    ) -> Iterator[str]:
        """The nodes of one capacity class where ``demand`` fits now, in the index's order (the one walk).

        ``amounts`` are the demand's positive amounts of ``idx.resources``, in
        that order. The walk skips the nodes whose allocated share is past the
        bound: least allocated first, it stops at the first of them; fullest
        first, it starts after the last of them.
        """
        start = self.class_candidates(idx, caps, amounts)
        if start is None:
            return
        entries = idx.classes[caps].entries(start[0])
        fits = self.fits_now
        if idx.descending:
            for _, node_id in entries:
                if fits(node_id, demand):
                    yield node_id
            return
        bound = start[1] + KEY_EPS
        for key, node_id in entries:
            if key > bound:
                return
            if fits(node_id, demand):
                yield node_id

    def fitting_nodes(self, demand: Mapping[str, float], limit: int | None = None) -> list[str]:
        """Nodes where ``demand`` fits now (up to ``limit``), found via an index.

        Cheap when few fit (a saturated cluster): the walk stops at the bound.
        Order is deterministic (class order, then least allocated first).
        """
        items = sorted((r, a) for r, a in demand.items() if a > 0)
        if not items:
            nodes = list(self.nodes)
            return nodes if limit is None else nodes[:limit]
        idx = self.ordered_index(tuple(r for r, _ in items))
        amounts = tuple(a for _, a in items)
        out: list[str] = []
        for caps in idx.classes:
            for node_id in self.fitting_in_class(idx, caps, demand, amounts):
                out.append(node_id)
                if limit is not None and len(out) >= limit:
                    return out
        return out

    def any_fits_now(self, demand: Mapping[str, float]) -> bool:
        """Is there any node where ``demand`` fits now? (indexed)"""
        return bool(self.fitting_nodes(demand, limit=1))

    def __repr__(self) -> str:
        return (
            f"ResourceView(nodes={len(self)}, in_flight={self._total_count}, parked={self._total_parked}, "
            f"overcommit={self._overcommit})"
        )
