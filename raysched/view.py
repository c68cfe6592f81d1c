"""ResourceView: per-node capacity, the in-flight ledger, liveness. Pure data.

Ray has no public per-node "free resources" API, so the brain keeps its own
ledger: ``reserve`` when it dispatches a task to a node, ``release`` when the
task ends. Policies read it on every decision, so the hot queries
(``fits_now``, ``load``, ``tasks_in_flight``) are dict lookups, and the two
that need a search are indexed:

* ``could_ever_fit`` is cached per distinct demand until membership or
  capacity changes (``version``).
* :class:`OrderedIndex` keeps, for one set of demanded resources, the nodes
  sorted by how much of those resources they have allocated, grouped by their
  capacity for them. Greedy, pack and the fallbacks of random/p2c find "the
  emptiest/fullest node that still fits" with a bisect per capacity class
  instead of a scan. Indices are built on first use and then kept current by
  ``reserve``/``release`` (about a microsecond each).

Units are Ray's: resource name -> amount ("CPU", "GPU", "memory" in bytes,
custom names). A resource a node does not list counts as 0.

``overcommit`` (>= 1) lets a node take in-flight demand up to
``capacity * overcommit``: work queued on the node beyond what runs at once.
A single task never fits on a node whose capacity is below its demand.
"""
from __future__ import annotations

import math
import random
from bisect import bisect_left, insort
from collections.abc import Mapping
from types import MappingProxyType

from raysched.ring import UnknownNodeError
from raysched.scoring import dominant_share

__all__ = ["OrderedIndex", "ResourceView", "UnknownNodeError", "check_demand"]

# Absolute slack on resource sums: Ray itself works in 1e-4 units.
EPS = 1e-9
# Slack on allocated fractions when an index pre-filters (final check is exact).
KEY_EPS = 1e-6


def _check_amounts(what: str, amounts: Mapping[str, float]) -> dict[str, float]:
    """Validated plain copy: str names, finite non-negative numbers."""
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
    return _check_amounts("demand", demand)


def fmt_resources(amounts: Mapping[str, float]) -> str:
    """``{CPU: 2, memory: 1e+09}``: short and readable in error messages."""
    parts = []
    for name in sorted(amounts):
        v = amounts[name]
        parts.append(f"{name}: {int(v) if float(v).is_integer() and abs(v) < 1e15 else f'{v:g}'}")
    return "{" + ", ".join(parts) + "}"


class OrderedIndex:
    """Nodes sorted by allocated share of a fixed set of resources.

    ``key(node) = sum(reserved[r] / capacity[r] for r in resources)``. Nodes
    are grouped into classes of equal capacity for ``resources`` (clusters
    have few node shapes): within a class, "least allocated" and "most
    allocated" are the ends of one sorted list, and a node fits a demand only
    if its key is under a bound that bisect finds. Nodes lacking any of the
    resources can never host such a demand and are left out.

    ``descending=True`` stores ``(-key, node)`` so that ascending order is
    fullest first with ties by node id, the order pack wants.
    """

    def __init__(self, resources: tuple[str, ...], descending: bool) -> None:
        self.resources = resources
        self.descending = descending
        self.classes: dict[tuple[float, ...], list[tuple[float, str]]] = {}
        self.class_keys: list[tuple[float, ...]] = []  # for O(1) sampling
        self._class_pos: dict[tuple[float, ...], int] = {}
        self._entry: dict[str, tuple[tuple[float, ...], tuple[float, str]]] = {}

    def caps_of(self, capacity: Mapping[str, float]) -> tuple[float, ...] | None:
        caps = tuple(capacity.get(r, 0.0) for r in self.resources)
        return None if min(caps) <= 0.0 else caps

    def sort_key(self, caps: tuple[float, ...], reserved: Mapping[str, float]) -> float:
        k = 0.0
        for r, c in zip(self.resources, caps):
            k += reserved.get(r, 0.0) / c
        return -k if self.descending else k

    def update(self, node_id: str, capacity: Mapping[str, float] | None, reserved: Mapping[str, float]) -> None:
        """(Re)file a node; ``capacity=None`` drops it."""
        old = self._entry.pop(node_id, None)
        if old is not None:
            caps, entry = old
            lst = self.classes[caps]
            del lst[bisect_left(lst, entry)]
            if not lst:
                self._drop_class(caps)
        if capacity is None:
            return
        caps = self.caps_of(capacity)
        if caps is None:
            return
        entry = (self.sort_key(caps, reserved), node_id)
        lst = self.classes.get(caps)
        if lst is None:
            lst = self.classes[caps] = []
            self._class_pos[caps] = len(self.class_keys)
            self.class_keys.append(caps)
        insort(lst, entry)
        self._entry[node_id] = (caps, entry)

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
    """Capacities, in-flight demand and liveness of the cluster's nodes."""

    def __init__(self, overcommit: float = 1.0) -> None:
        if isinstance(overcommit, bool) or not isinstance(overcommit, (int, float)) or not overcommit >= 1.0 or math.isinf(overcommit):
            raise ValueError(f"overcommit must be a finite number >= 1 (1.0 = strict), got {overcommit!r}")
        self._overcommit = float(overcommit)
        self._cap: dict[str, dict[str, float]] = {}
        self._limit: dict[str, dict[str, float]] = {}  # capacity * overcommit
        self._res: dict[str, dict[str, float]] = {}
        self._count: dict[str, int] = {}
        self._load: dict[str, float] = {}
        self._total_count = 0
        self._version = 0
        self._nodes: tuple[str, ...] | None = ()
        self._fit_cache: dict[tuple, bool] = {}
        self._indices: dict[tuple[tuple[str, ...], bool], OrderedIndex] = {}
        self._indices_by_resource: dict[str, list[OrderedIndex]] = {}
        # Distinguishes views whose versions happen to coincide (policies sync on (uid, version)).
        self.uid = random.getrandbits(63)

    # -- membership / capacity ---------------------------------------------
    @property
    def overcommit(self) -> float:
        return self._overcommit

    @property
    def version(self) -> int:
        """Bumped on every membership or capacity change."""
        return self._version

    def set_node(self, node_id: str, capacity: Mapping[str, float]) -> None:
        """Add an alive node, or update its capacity (its reservations stay)."""
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a non-empty string, got {node_id!r}")
        cap = _check_amounts(f"capacity of node {node_id[:8]}", capacity)
        if self._cap.get(node_id) == cap:
            return
        self._cap[node_id] = cap
        o = self._overcommit
        self._limit[node_id] = {r: a * o for r, a in cap.items()}
        if node_id not in self._res:
            self._res[node_id] = {}
            self._count[node_id] = 0
            self._nodes = None
        self._load[node_id] = self._dominant_share(node_id)
        for idx in self._indices.values():
            idx.update(node_id, cap, self._res[node_id])
        self._changed()

    def remove_node(self, node_id: str) -> None:
        """Drop a node that left or died, with its reservations."""
        self._node(node_id)
        for idx in self._indices.values():
            idx.update(node_id, None, {})
        self._total_count -= self._count.pop(node_id)
        for d in (self._cap, self._limit, self._res, self._load):
            del d[node_id]
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
        """In-flight demand on the node; read-only, live."""
        self._node(node_id)
        return MappingProxyType(self._res[node_id])

    def tasks_in_flight(self, node_id: str) -> int:
        try:
            return self._count[node_id]
        except KeyError:
            self._node(node_id)
            raise

    @property
    def total_tasks_in_flight(self) -> int:
        return self._total_count

    def weight(self, node_id: str) -> float:
        """Ring weight: CPU capacity, or 1.0 for a node without CPUs."""
        cpu = self._node(node_id).get("CPU", 0.0)
        return cpu if cpu > 0 else 1.0

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

    def _dominant_share(self, node_id: str) -> float:
        return dominant_share(self._cap[node_id], self._res[node_id])

    def largest_node(self) -> tuple[str, Mapping[str, float]]:
        """The node with the most CPU (then GPU, memory, id): for error messages."""
        if not self._cap:
            raise LookupError("the view has no alive nodes")
        best = max(
            self._cap,
            key=lambda n: (self._cap[n].get("CPU", 0.0), self._cap[n].get("GPU", 0.0), self._cap[n].get("memory", 0.0), n),
        )
        return best, dict(self._cap[best])

    # -- fitting ---------------------------------------------------------------
    def fits_now(self, node_id: str, demand: Mapping[str, float]) -> bool:
        """Would ``demand`` fit on the node next to what is in flight there?"""
        try:
            cap = self._cap[node_id]
        except (KeyError, TypeError):
            self._node(node_id)
            raise
        res = self._res[node_id]
        lim = self._limit[node_id]
        for r, a in demand.items():
            if not a > 0:
                if a == 0:
                    continue
                raise ValueError(f"demand: {r} must be a finite amount >= 0, got {a!r}")
            if a > cap.get(r, 0.0) + EPS or res.get(r, 0.0) + a > lim.get(r, 0.0) + EPS:
                return False
        return True

    def could_hold(self, node_id: str, demand: Mapping[str, float]) -> bool:
        """Would ``demand`` fit on the node if it were empty (its capacity covers every resource)?"""
        cap = self._cap[node_id]
        return all(a <= cap.get(r, 0.0) + EPS for r, a in demand.items())

    def could_ever_fit(self, demand: Mapping[str, float]) -> bool:
        """Does some alive node have the capacity for ``demand`` at all?"""
        key = tuple(sorted((r, a) for r, a in demand.items() if a != 0))
        hit = self._fit_cache.get(key)
        if hit is None:
            for r, a in key:
                if not (a > 0 and math.isfinite(a)):
                    raise ValueError(f"demand: {r} must be a finite amount >= 0, got {a!r}")
            hit = any(all(a <= cap.get(r, 0.0) + EPS for r, a in key) for cap in self._cap.values())
            self._fit_cache[key] = hit
        return hit

    # -- ledger ------------------------------------------------------------------
    def reserve(self, node_id: str, demand: Mapping[str, float]) -> None:
        """Record one task of ``demand`` in flight on the node.

        Validates everything before touching state. Does not require the task
        to fit: the brain may learn of work it did not place.
        """
        self._node(node_id)
        d = _check_amounts("demand", demand)
        res = self._res[node_id]
        for r, a in d.items():
            if a:
                res[r] = res.get(r, 0.0) + a
        self._count[node_id] += 1
        self._total_count += 1
        self._after_ledger_change(node_id, d)

    def release(self, node_id: str, demand: Mapping[str, float]) -> None:
        """Record the end of one task; amounts never go below zero."""
        self._node(node_id)
        d = _check_amounts("demand", demand)
        res = self._res[node_id]
        for r, a in d.items():
            if a and r in res:
                left = res[r] - a
                if left <= EPS:
                    del res[r]
                else:
                    res[r] = left
        if self._count[node_id] > 0:
            self._count[node_id] -= 1
            self._total_count -= 1
        self._after_ledger_change(node_id, d)

    def _after_ledger_change(self, node_id: str, demand: Mapping[str, float]) -> None:
        self._load[node_id] = self._dominant_share(node_id)
        if self._indices_by_resource:
            touched: list[OrderedIndex] = []
            for r in demand:
                for idx in self._indices_by_resource.get(r, ()):
                    if idx not in touched:
                        touched.append(idx)
            cap, res = self._cap[node_id], self._res[node_id]
            for idx in touched:
                idx.update(node_id, cap, res)

    # -- indexed queries -----------------------------------------------------------
    def ordered_index(self, resources: tuple[str, ...], descending: bool = False) -> OrderedIndex:
        """The (lazily built, then maintained) index for a sorted resource tuple."""
        key = (resources, descending)
        idx = self._indices.get(key)
        if idx is None:
            idx = OrderedIndex(resources, descending)
            for node_id, cap in self._cap.items():
                idx.update(node_id, cap, self._res[node_id])
            self._indices[key] = idx
            for r in resources:
                self._indices_by_resource.setdefault(r, []).append(idx)
        return idx

    def class_candidates(self, idx: OrderedIndex, caps: tuple[float, ...], amounts: tuple[float, ...]) -> tuple[int, float] | None:
        """Where to start walking a class for a demand, and the key bound.

        Returns None when no node of the class could hold the demand at all.
        Nodes past the bound (allocated share too high) cannot fit it now.
        """
        bound = 0.0
        o = self._overcommit
        for a, c in zip(amounts, caps):
            if a > c + EPS:
                return None
            bound += o - a / c
        if idx.descending:
            return bisect_left(idx.classes[caps], (-(bound + KEY_EPS),)), bound
        return 0, bound

    def fitting_nodes(self, demand: Mapping[str, float], limit: int | None = None) -> list[str]:
        """Nodes where ``demand`` fits now (up to ``limit``), found via an index.

        Cheap when few fit (a saturated cluster): the walk stops at the bound.
        Order is deterministic (class order, then least allocated first).
        """
        items = sorted((r, a) for r, a in demand.items() if a > 0)
        if not items:
            nodes = list(self.nodes)
            return nodes if limit is None else nodes[:limit]
        resources = tuple(r for r, _ in items)
        amounts = tuple(a for _, a in items)
        idx = self.ordered_index(resources)
        out: list[str] = []
        fits = self.fits_now
        for caps, entries in idx.classes.items():
            start = self.class_candidates(idx, caps, amounts)
            if start is None:
                continue
            bound = start[1] + KEY_EPS
            for key, node_id in entries:
                if key > bound:
                    break
                if fits(node_id, demand):
                    out.append(node_id)
                    if limit is not None and len(out) >= limit:
                        return out
        return out

    def any_fits_now(self, demand: Mapping[str, float]) -> bool:
        """Is there any node where ``demand`` fits now? (indexed)"""
        return bool(self.fitting_nodes(demand, limit=1))

    def __repr__(self) -> str:
        return f"ResourceView(nodes={len(self)}, in_flight={self._total_count}, overcommit={self._overcommit})"

