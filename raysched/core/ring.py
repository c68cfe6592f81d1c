"""Consistent-hash ring (Karger) with weighted virtual nodes and bounded loads.

Why this shape:

* **Stable hash.** Positions come from ``RingConfig.hasher`` (default: 64-bit
  BLAKE2b), never Python's salted built-in hash, so a key maps to the same node in
  every process and on every machine.
* **Virtual nodes** in proportion to weight: node ``n`` of weight ``w`` owns
  ``max(1, round(vnodes * w))`` points, point ``i`` at ``hasher(f"{n}#{i}")``.
  A node's points depend only on its own id, so removing a node moves only its
  keys and adding one moves only the keys that now belong to it. A key belongs
  to its *successor*: the first point at or after ``hasher(key)``, wrapping.
* **Default ``vnodes=1000``.** A node's share of the ring has a relative
  standard deviation of about ``1/sqrt(vnodes)``. With 160 points (a common
  default) 10 equal nodes show max/mean of about 1.12 over 100,000 keys; with
  1,000 it is about 1.05 (under 1.10 for 99% of node-id sets we tried).
  Lookup cost grows only with ``log(points)``; memory is 12 bytes a point
  (``array('Q')`` positions + ``array('i')`` owner slots), 12 MB at 1,000
  nodes.
* **Bounded loads** (Mirrokni, Thorup, Zadimoghaddam 2018), see
  :meth:`HashRing.lookup_bounded`.
* **Large rings hold fewer points per unit of weight** (see
  :data:`FULL_POINTS_NODES`): up to 1,024 nodes nothing differs from the rule
  above; past it a node's count halves each time the node count doubles.
* Membership changes are applied lazily: ``add``/``remove`` queue the change
  and the next lookup applies them at once, touching only the points of the
  nodes that joined or left: their digests are computed, merged into (or
  masked out of) the sorted arrays with numpy, so a join costs a few digests
  and one O(points) copy, not a rebuild. Building from empty is one sort.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from raysched.core.numbers import EPS

__all__ = [
    "DEFAULT_LOAD_FACTOR",
    "DEFAULT_VNODES",
    "FULL_POINTS_NODES",
    "EmptyRingError",
    "HashRing",
    "RingConfig",
    "UnknownNodeError",
    "blake2b_64",
    "check_load_factor",
    "first_under_bound",
    "mtz_bound",
    "takes_more",
    "under_bound",
]

DEFAULT_VNODES = 1000
DEFAULT_LOAD_FACTOR = 1.25
# Rings of up to this many nodes give every node all its points, max(1, round(vnodes * w)), as every release did:
# their keys never move on an upgrade. Past it a node gets max(1, round(vnodes * w / 2**k)) points, k the smallest
# with nodes <= FULL_POINTS_NODES * 2**k (k = 4 at 10,000 nodes): points per unit of weight halve each time the
# node count doubles, so no ring holds more points than one of this many nodes of the same sizes. Why: a point
# costs one BLAKE2b digest (about 0.3 us here, in Python) and 12 bytes, and the hash policy's ring of 10,000
# 16-CPU nodes held 16 million of them: 11 s to build, 190 MB (1 million now: 0.4 s, 12 MB). The price: a node's
# share of the ring varies more (relative spread about 1/sqrt(its points): 2.5% at 1,600, 10% at 100), which
# bounded loads absorb; and a join or leave that crosses a boundary (1,024 <-> 1,025 nodes, 2,048 <-> 2,049, ...)
# changes every node's count, so the ring is built again and about half of all keys move.
FULL_POINTS_NODES = 1024
_MASK64 = (1 << 64) - 1  # positions live in [0, 2**64); a wider hasher is truncated
_DIGITS_CACHED = 1 << 16  # point suffixes kept encoded (every node's points share them)
_digits: list[bytes] = []  # str(i).encode() for i < len; replaced whole, never extended (threads share it)
# Keys whose successor index a ring remembers between membership changes (forgotten all at once when full): a key
# is looked up at least twice per task (when the brain assigns it and when it decides it), and one BLAKE2b digest
# and a bisect over a million points cost about 1.5 us against 0.05 for a dict hit. 2**16 keys: about 8 MB.
_STARTS_CACHED = 1 << 16


def blake2b_64(data: bytes) -> int:
    """Stable 64-bit hash: the first 8 bytes of BLAKE2b, big-endian."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class UnknownNodeError(KeyError):
    """A node id that the ring (or view) does not hold; prints without quotes."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown node"


class EmptyRingError(LookupError):
    """A lookup on a ring without nodes."""


@dataclass(frozen=True)
class RingConfig:
    """Ring settings, validated once here so the ring never sees a bad one.

    vnodes: points per unit of weight; more points = better balance, more
        memory (12 bytes a point) and slower membership changes.
    hasher: bytes -> int in [0, 2**64); must be stable across processes.
    full_nodes: rings of up to this many nodes give each node all its
        points; past it, points per unit of weight halve as the node count
        doubles (None: never, at any cost; see FULL_POINTS_NODES).
    """

    vnodes: int = DEFAULT_VNODES
    hasher: Callable[[bytes], int] = blake2b_64
    full_nodes: int | None = FULL_POINTS_NODES

    def __post_init__(self) -> None:
        if isinstance(self.vnodes, bool) or not isinstance(self.vnodes, int):
            raise ValueError(f"vnodes must be an integer >= 1, got {self.vnodes!r}")
        if self.vnodes < 1:
            raise ValueError(f"vnodes must be >= 1, got {self.vnodes}")
        if self.vnodes > 1_000_000:
            raise ValueError(f"vnodes must be <= 1,000,000, got {self.vnodes}")
        if not callable(self.hasher):
            raise ValueError(f"hasher must be callable bytes -> int, got {self.hasher!r}")
        full = self.full_nodes
        if full is not None and (isinstance(full, bool) or not isinstance(full, int) or full < 1):
            raise ValueError(f"full_nodes must be an integer >= 1 or None, got {full!r}")

    def shift(self, nodes: int) -> int:
        """The smallest k >= 0 with nodes <= full_nodes * 2**k (0 when full_nodes is None): see FULL_POINTS_NODES."""
        full = self.full_nodes
        if full is None:
            return 0
        k = 0
        while nodes > full << k:
            k += 1
        return k

    def points_of(self, weight: float, nodes: int) -> int:
        """Points of a node of this weight on a ring of ``nodes`` nodes: max(1, round(vnodes * weight / 2**k))."""
        return _point_count(self.vnodes, weight, self.shift(nodes))


def _point_count(vnodes: int, weight: float, shift: int) -> int:
    """The one rule for a node's point count; ``shift`` 0 is the rule of every release up to 0.2."""
    return max(1, round(vnodes * weight / (1 << shift)))


def check_load_factor(load_factor: object) -> float:
    """The one validator of a bounded-load factor ``c``: a number >= 1 (raises ValueError)."""
    if isinstance(load_factor, bool) or not isinstance(load_factor, (int, float, str)):
        raise ValueError(f"load factor must be a number >= 1 (e.g. {DEFAULT_LOAD_FACTOR}), got {load_factor!r}")
    try:
        c = float(load_factor)
    except ValueError:
        raise ValueError(
            f"load factor must be a number >= 1 (e.g. {DEFAULT_LOAD_FACTOR}), got {load_factor!r}"
        ) from None
    if math.isnan(c) or c < 1.0:
        raise ValueError(f"load factor must be >= 1 ({DEFAULT_LOAD_FACTOR} is typical), got {load_factor!r}")
    return c


def mtz_bound(load_factor: float, total: float, weight: float, total_weight: float) -> float:
    """Bounded-load capacity of one node: ceil(c * (total + 1) * w / W), float-safe.

    The one definition of the rule (Mirrokni, Thorup, Zadimoghaddam): ``total``
    is the load already placed, the ``+ 1`` the item being placed.
    """
    x = load_factor * (total + 1.0) * weight / total_weight
    if math.isinf(x):
        return math.inf
    return float(math.ceil(x - EPS))


def under_bound(load: float, count: float, bound: float) -> bool:
    """Can a node holding ``load`` take ``count`` more items without passing ``bound``? (float-safe: loads may
    be float sums, and the bound is only a float.)"""
    return load + count <= bound + EPS


def takes_more(load: float, count: float, load_factor: float, total: float, weight: float, total_weight: float) -> bool:
    """The bounded-load rule in one place: ``load + count <= ceil(c * (total + 1) * w / W)`` (see `mtz_bound`).

    `under_bound` of `mtz_bound`, written out (hash asks it several times per decision): the same float
    operations in the same order, so the same answer (a test holds them equal).
    """
    x = load_factor * (total + 1.0) * weight / total_weight
    bound = math.inf if math.isinf(x) else float(math.ceil(x - EPS))
    return load + count <= bound + EPS


def first_under_bound(walk: Iterable[str], load: Callable[[str], float], bound: Callable[[str], float]) -> str | None:
    """The first node of ``walk`` that can take one more item: ``load + 1 <= bound``."""
    for node_id in walk:
        if under_bound(load(node_id), 1.0, bound(node_id)):
            return node_id
    return None


class HashRing:
    """Weighted consistent-hash ring; see the module docstring for the rules."""

    def __init__(self, config: RingConfig | None = None) -> None:
        self._config = config if config is not None else RingConfig()
        self._weights: dict[str, float] = {}
        self._slot_of: dict[str, int] = {}  # node id -> owner slot in _names
        self._names: list[str | None] = []  # slot -> node id (None = free)
        self._free_slots: list[int] = []
        self._points = array("Q")  # sorted positions
        self._owners = array("i")  # slot owning each position
        self._pending_add: list[str] = []
        self._pending_remove: set[int] = set()
        self._nodes_cache: tuple[str, ...] | None = ()
        self._total_weight = 0.0
        self._shift = 0  # RingConfig.shift of the node count the arrays were built for
        # key -> index of its successor point: valid only for the arrays as they are, so every membership change
        # (add, remove, and the rebuild that applies them) empties it
        self._starts: dict[str, int] = {}

    # -- membership ---------------------------------------------------------
    @property
    def config(self) -> RingConfig:
        return self._config

    def add(self, node_id: str, weight: float = 1.0) -> None:
        """Add a node with ``max(1, round(vnodes * weight))`` points (fewer on a ring past ``full_nodes`` nodes)."""
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a non-empty string, got {node_id!r}")
        if node_id in self._weights:
            raise ValueError(f"node {node_id!r} is already on the ring; remove it first")
        w = self._check_weight(node_id, weight)
        slot = self._free_slots.pop() if self._free_slots else len(self._names)
        if slot == len(self._names):
            self._names.append(node_id)
        else:
            self._names[slot] = node_id
        self._slot_of[node_id] = slot
        self._weights[node_id] = w
        self._total_weight += w
        self._pending_add.append(node_id)
        self._nodes_cache = None
        self._starts = {}

    def remove(self, node_id: str) -> None:
        """Remove a node; only the keys it owned move (to their next successor)."""
        if node_id not in self._weights:
            raise UnknownNodeError(f"node {node_id!r} is not on the ring")
        slot = self._slot_of.pop(node_id)
        self._total_weight -= self._weights.pop(node_id)
        if not self._weights:
            self._total_weight = 0.0
        if node_id in self._pending_add:
            self._pending_add.remove(node_id)
            self._names[slot] = None
            self._free_slots.append(slot)
        else:
            # Its points are still in the arrays until the next rebuild; the slot
            # is freed then, so a re-added node can never inherit stale points.
            self._pending_remove.add(slot)
        self._nodes_cache = None
        self._starts = {}

    def _check_weight(self, node_id: str, weight: float) -> float:
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"weight of {node_id!r} must be a number > 0, got {weight!r}") from None
        if not (w > 0) or math.isinf(w):
            raise ValueError(f"weight of {node_id!r} must be a finite number > 0, got {weight!r}")
        return w

    def weight(self, node_id: str) -> float:
        try:
            return self._weights[node_id]
        except KeyError:
            raise UnknownNodeError(f"node {node_id!r} is not on the ring") from None

    def vnode_count(self, node_id: str) -> int:
        """Points this node owns on the ring (fewer per unit of weight past ``config.full_nodes`` nodes)."""
        return self._config.points_of(self.weight(node_id), len(self._weights))

    @property
    def total_weight(self) -> float:
        return self._total_weight

    @property
    def nodes(self) -> tuple[str, ...]:
        """Node ids, sorted (stable across processes)."""
        if self._nodes_cache is None:
            self._nodes_cache = tuple(sorted(self._weights))
        return self._nodes_cache

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._weights

    @property
    def points(self) -> int:
        """Number of virtual-node points on the ring."""
        self._build()
        return len(self._points)

    # -- rebuild ------------------------------------------------------------
    def _new_points(self, node_ids: list[str], shift: int) -> tuple[Any, Any]:
        """(positions, owner slots) of these nodes' points, unsorted: hasher(f"{node_id}#{i}") for i < count."""
        import numpy as np

        config = self._config
        counts = [_point_count(config.vnodes, self._weights[n], shift) for n in node_ids]
        owners = np.repeat(np.array([self._slot_of[n] for n in node_ids], dtype=np.int32), counts)
        h = config.hasher
        if h is not blake2b_64:
            points = ((n, i) for n, count in zip(node_ids, counts, strict=True) for i in range(count))
            positions = np.fromiter(
                (h(f"{n}#{i}".encode("utf-8", "surrogatepass")) & _MASK64 for n, i in points),
                dtype=np.uint64,
                count=sum(counts),
            )
            return positions, owners
        raw = b"".join(
            _blake2b_points(f"{n}#".encode("utf-8", "surrogatepass"), count)
            for n, count in zip(node_ids, counts, strict=True)
        )
        return np.frombuffer(raw, dtype=">u8").astype(np.uint64), owners

    def _build(self) -> None:
        """Apply queued adds/removes, touching only the points of the nodes that joined or left.

        Leaving nodes' points are masked out and joining nodes' points merged
        into the sorted arrays: no other node's digests are computed and
        nothing is sorted but the new points. Only when the node count crossed
        a FULL_POINTS_NODES boundary (every node's count changed) are all
        points computed again.
        """
        if not self._pending_add and not self._pending_remove:
            return
        import numpy as np  # a dependency of ray and pandas; used only here

        self._starts = {}

        shift = self._config.shift(len(self._weights))
        if shift != self._shift or not self._points:
            pos, own = np.empty(0, np.uint64), np.empty(0, np.int32)
            adding = list(self._weights)  # every node on the ring now
            self._shift = shift
        else:
            pos, own = np.frombuffer(self._points, dtype=np.uint64), np.frombuffer(self._owners, dtype=np.int32)
            if self._pending_remove:
                if len(self._pending_remove) == 1:
                    keep = own != next(iter(self._pending_remove))
                else:
                    keep = ~np.isin(own, np.fromiter(self._pending_remove, dtype=np.int32))
                pos, own = pos[keep], own[keep]
            adding = self._pending_add
        for slot in self._pending_remove:
            self._names[slot] = None
            self._free_slots.append(slot)
        self._pending_remove = set()
        self._pending_add = []
        if adding:
            new_pos, new_own = self._new_points(adding, shift)
            order = np.argsort(new_pos)
            new_pos, new_own = new_pos[order], new_own[order]
            if len(pos):  # merge: each new point goes before the first old one at or after it
                at = np.searchsorted(pos, new_pos)
                pos, own = np.insert(pos, at, new_pos), np.insert(own, at, new_own)
            else:
                pos, own = new_pos, new_own
            # Equal 64-bit positions (astronomically rare) are ordered by owner id, so that the ring does not
            # depend on the order in which nodes joined.
            if len(pos) > 1 and bool(np.any(pos[1:] == pos[:-1])):
                owner_ids = np.array([self._names[s] for s in own.tolist()], dtype=object)
                order = np.lexsort((owner_ids.astype(str), pos))
                pos, own = pos[order], own[order]
        self._points = _to_array("Q", pos.astype(np.uint64, copy=False))
        self._owners = _to_array("i", own.astype(np.int32, copy=False))

    # -- lookups --------------------------------------------------------------
    def _start(self, key: str) -> int:
        """Index of the key's successor point (remembered until the next membership change)."""
        if type(key) is str:
            hit = self._starts.get(key)  # emptied by every add and remove: a hit is for the arrays as they are
            if hit is not None:
                return hit
        if not self._weights:
            raise EmptyRingError("the ring has no nodes: add a node before looking up keys")
        if self._pending_add or self._pending_remove:
            self._build()
        if not isinstance(key, str):
            raise TypeError(f"key must be a string, got {type(key).__name__}")
        i = bisect_left(self._points, self._config.hasher(key.encode("utf-8", "surrogatepass")) & _MASK64)
        if i == len(self._points):
            i = 0
        starts = self._starts
        if len(starts) >= _STARTS_CACHED:
            starts = self._starts = {}
        starts[key] = i
        return i

    def lookup(self, key: str) -> str:
        """The key's owner: the node of the first point at or after the key's stable hash."""
        i = self._start(key)  # builds first: read the arrays only after it
        return self._names[self._owners[i]]  # type: ignore[return-value]

    def successors(self, key: str) -> Iterator[str]:
        """Distinct nodes clockwise from the key's successor (each node once).

        The fast path for policies that skip nodes (full, over their bound)
        without a second hash or bisect. Errors raise here, not on iteration.
        """
        return self._walk_from(self._start(key))

    def successors_after(self, key: str, node_id: str) -> Iterator[str] | None:
        """The rest of ``successors(key)`` after ``node_id``; None when that node is not on the ring.

        Equal to dropping the walk's nodes up to and including ``node_id``, but
        found with numpy: ``node_id``'s first point clockwise from the key, then
        the nodes that own points before it (skipped), then the walk goes on
        from there. A key whose home is far from its owner (moved by the brain)
        otherwise walked hundreds of nodes, one point at a time, per decision.
        """
        i = self._start(key)  # builds first: read the arrays only after it
        if node_id not in self._weights:
            return None
        import numpy as np

        slot = self._slot_of[node_id]
        owners = np.frombuffer(self._owners, dtype=np.int32)
        n_points = len(owners)
        offset, span = 0, 1024  # points searched clockwise from i; the next chunk's length
        while True:
            a = i + offset if i + offset < n_points else i + offset - n_points
            b = min(a + span, n_points, a + n_points - offset)
            hits = np.flatnonzero(owners[a:b] == slot)
            if hits.size:
                offset += int(hits[0])
                break
            offset += b - a
            span *= 2
        end = i + offset
        before = owners[i:end] if end <= n_points else np.concatenate((owners[i:], owners[: end - n_points]))
        # The slots walked past, marked in one vectorised step (a set of them, through np.unique, was 13% of the
        # brain's time under hash on 1,000 nodes: a node's first point is about a thousand points away).
        passed = np.zeros(len(self._names), dtype=np.uint8)
        passed[before] = 1
        passed[slot] = 1
        return self._walk_unpassed(end + 1, bytearray(passed.tobytes()), int(np.count_nonzero(passed)))

    def _walk_on(self, start: int, seen: set[int]) -> Iterator[str]:
        """Distinct nodes clockwise from point ``start`` (any index, wrapped) that are not in ``seen`` (a few)."""
        owners, names = self._owners, self._names
        n_points, n_nodes = len(owners), len(self._weights)
        if len(seen) >= n_nodes:
            return
        start %= n_points
        for j in range(start, start + n_points):
            slot = owners[j if j < n_points else j - n_points]
            if slot not in seen:
                seen.add(slot)
                yield names[slot]  # type: ignore[misc]
                if len(seen) == n_nodes:
                    return

    def _walk_unpassed(self, start: int, passed: bytearray, count: int) -> Iterator[str]:
        """`_walk_on` for many nodes passed already: marked 1 by slot in ``passed`` (``count`` of them; a set of
        hundreds cost more to build than the walk saved, and a bytearray per walk of a few nodes more than a set)."""
        owners, names = self._owners, self._names
        n_points, n_nodes = len(owners), len(self._weights)
        if count >= n_nodes:
            return
        start %= n_points
        for j in range(start, start + n_points):
            slot = owners[j if j < n_points else j - n_points]
            if not passed[slot]:
                passed[slot] = 1
                count += 1
                yield names[slot]  # type: ignore[misc]
                if count == n_nodes:
                    return

    def lookup_bounded(self, key: str, loads: Mapping[str, float], load_factor: float) -> str:
        """Successor with bounded loads (Mirrokni–Thorup–Zadimoghaddam).

        Rule: let ``T`` be the sum of ``loads`` over ring nodes (missing ids
        count 0, ids not on the ring are ignored), ``W`` the total weight and
        ``bound(n) = ceil(c * (T + 1) * w(n) / W)``. Walk clockwise from the
        key's successor over distinct nodes and return the first one with
        ``load + 1 <= bound``.

        Invariant: for integer loads such a node always exists (if every node
        had ``load >= bound >= c*(T+1)*w/W`` the loads would sum to at least
        ``c*(T+1) > T``), so placing M tasks one by one with loads updated never
        takes a node above ``ceil(c * M * w / W)`` — ``ceil(c*M/n)`` for equal
        weights. For fractional loads, if no node qualifies the least loaded
        per unit weight (first clockwise among ties) is returned.
        """
        c = check_load_factor(load_factor)
        i = self._start(key)  # raises on an empty ring
        weights = self._weights
        total = 0.0
        for node_id, load in loads.items():
            if node_id in weights:
                if load < 0:
                    raise ValueError(f"load of {node_id!r} must be >= 0, got {load!r}")
                total += load
        W = self._total_weight
        found = first_under_bound(
            self._walk_from(i),
            lambda n: loads.get(n, 0.0),
            lambda n: mtz_bound(c, total, weights[n], W),
        )
        if found is not None:
            return found
        # Only fractional loads get here: the least loaded per unit weight, first clockwise among ties.
        return min(self._walk_from(i), key=lambda n: loads.get(n, 0.0) / weights[n])

    def _walk_from(self, i: int) -> Iterator[str]:
        first = self._owners[i]
        yield self._names[first]  # type: ignore[misc]
        yield from self._walk_on(i + 1, {first})

    def share(self, node_id: str) -> float:
        """Exact fraction of the hash space this node owns (for analysis)."""
        slot = self._slot_of.get(node_id)
        if slot is None:
            raise UnknownNodeError(f"node {node_id!r} is not on the ring")
        self._build()
        import numpy as np

        pos = np.frombuffer(self._points, dtype=np.uint64).astype(np.float64) / 2.0**64
        own = np.frombuffer(self._owners, dtype=np.int32)
        arcs = np.diff(pos, prepend=pos[-1] - 1.0)  # arc ending at each point
        return float(arcs[own == slot].sum())

    # -- pickling: drop nothing, but make sure queued changes are applied -----
    def __getstate__(self) -> dict:
        self._build()
        state = self.__dict__.copy()
        state["_nodes_cache"] = None
        state["_starts"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_shift", 0)  # pickled by a release that gave every ring all its points
        self.__dict__.setdefault("_starts", {})  # pickled by a release without the lookup cache

    def __repr__(self) -> str:
        return f"HashRing(nodes={len(self)}, vnodes={self._config.vnodes})"


def _to_array(typecode: str, values: Any) -> array:
    out = array(typecode)
    out.frombytes(memoryview(values).cast("B"))  # C-contiguous numpy: one copy
    return out


def _blake2b_points(prefix: bytes, count: int) -> bytes:
    """BLAKE2b-64 of prefix + b"0" ... prefix + str(count - 1), 8 big-endian bytes each, concatenated.

    The hasher's state after the prefix is copied per point and the suffixes
    are encoded once for every node: about 0.3 us a point, against 0.7 us
    for hashing each string whole.
    """
    global _digits
    digits = _digits
    if len(digits) < min(count, _DIGITS_CACHED):
        digits = _digits = [str(i).encode() for i in range(min(max(count, 2 * len(digits)), _DIGITS_CACHED))]
    suffixes: Iterable[bytes] = itertools.islice(digits, count)
    if count > len(digits):
        suffixes = itertools.chain(digits, (str(i).encode() for i in range(len(digits), count)))
    copy = hashlib.blake2b(prefix, digest_size=8).copy
    out: list[bytes] = []
    append = out.append
    for suffix in suffixes:
        point = copy()
        point.update(suffix)
        append(point.digest())
    return b"".join(out)
