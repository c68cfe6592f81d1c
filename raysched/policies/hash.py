"""hash: consistent hashing with bounded loads over the work really assigned, whole keys, delay scheduling.

A key's **owner** is its ring successor among the nodes that could ever hold
the task (Karger; stable BLAKE2b hash, ring points in proportion to a node's
own CPUs, so the ring depends only on current membership).

**Bounded loads** (Mirrokni, Thorup, Zadimoghaddam) count everything assigned
to a node: tasks running or queued there and tasks waiting in the brain for it
as their home (``view.assigned``). With ``T`` the assigned work over the nodes
that could hold the task (plus tasks the brain holds but has not assigned yet)
and ``W`` their total weight, a node of weight ``w`` takes one more task only
while ``assigned + 1 <= ceil(c * (T + 1) * w / W)``.

**Whole keys.** When a key's home is over its bound the *key* moves, not just
this task: it lives on the first node clockwise under its bound until the
pressure ends (its tasks there are done and its owner is under its fair share
again), and its other waiting tasks move with it.

**Hot keys spread in proportion to their work** (`key_demand`: D-Choices,
LBLCR, Slicer). A key whose recent share of the tasks ``p`` needs more than
one node (``1.25 * p * W / w > 1``) may use ``d`` nodes: its owner, then the
owners of ``f"{key}\\x00{i}"`` for i = 1, 2... on the ring (stable as ``d`` changes and as
nodes come and go); each task goes to the least loaded of them (of two
sampled, when ``d`` is large). A cold key (``d = 1``) keeps exact affinity.

**Delay scheduling** (Zaharia et al., EuroSys 2010), work-conserving. When the
home has no room the task waits for it. Its locality wait counts only while
some slot idles (the time since a free slot was declined, Spark's fix for
SPARK-18886); after it, the task takes the next node clockwise with room, or
else the brain gives it the first free slot that fits it. The wait is
``--locality-wait`` seconds, or adaptive: one median task time, between 0.2 s
and 10 s. While a slot idles, the brain also takes the last tasks of a queue
that would wait for their home longer than a quarter of the wait.

``load_factor=None`` (``off``) is the pure ring: a key never leaves its owner
while the owner lives; its tasks wait for it, however long.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping

from raysched.core.numbers import EPS
from raysched.core.ring import HashRing, RingConfig, takes_more
from raysched.core.view import ResourceView
from raysched.policies.base import Decision, PolicyOptions, TaskDemand
from raysched.policies.key_capacity import KeyCapacity, read_hits
from raysched.policies.key_demand import KeyDemand
from raysched.policies.node_speed import NodeSpeed, read_run_times

__all__ = ["AUTO_WAIT_MAX_S", "AUTO_WAIT_MIN_S", "AUTO_WAIT_TASKS", "HashPolicy"]

AUTO_WAIT_MIN_S = 0.2
AUTO_WAIT_MAX_S = 10.0
AUTO_WAIT_TASKS = 1.0  # adaptive wait = this many median task times (work conservation: about one task)
# Keys remembered as having run (least recently placed forgotten first), and so the bound of ``homes``: a run
# with a million distinct keys (unkeyed tasks) kept a home for every key that ever moved (the brain grew 200 MB).
ROOTED_KEYS = 200_000
# A key that must move looks this many nodes clockwise for one that takes it whole; past them it splits
# (tasks one by one to the first nodes under the bound). Uncapped, a key hotter than any node's bound, or a
# new key looking for a node within its share of keys (linear probing at a load of 1), walked thousands of
# nodes per decision on a 10,000-node ring. Nothing changes on clusters of up to this many nodes.
MOVE_PROBES = 64
RETURN_AFTER_DECISIONS = 10_000  # a moved key idle this long comes back to its owner once it is calm
# A node that dies is noticed only later (a driver's report and a probe: about 2 s here; Ray's own health checks:
# 15-20 s); meanwhile work conservation takes its keys' tasks to whichever slot is free. Keys that left a node
# within this many decisions before it left count as its keys (`_rehome`), wherever they went.
STRAY_DECISIONS = 10_000
DEMAND_HORIZON_TASKS = 10_000  # the key-share estimate forgets tasks older than about this many (or 4 x CPUs)
HOT_HEADROOM = 1.25  # a hot key's nodes can do this many times its share of the work
HOT_SCAN = 4  # a hot key spread over at most this many nodes compares all of them; over more, two sampled and its owner

Signature = tuple[tuple[str, ...], tuple[float, ...]]


def _anywhere(node: str) -> bool:
    return True


class _Walk:
    """A key's clockwise walk over the nodes that could hold its task, consumed lazily, replayable."""

    __slots__ = ("_eligible", "_key", "_rest", "_ring", "_seen", "_source")

    def __init__(
        self, nodes: Iterator[str], eligible: Callable[[str], bool], ring: HashRing | None = None, key: str = ""
    ) -> None:
        self._source = nodes if eligible is _anywhere else (n for n in nodes if eligible(n))
        self._seen: list[str] = []
        self._eligible, self._ring, self._key = eligible, ring, key
        self._rest: dict[str, _Walk] = {}  # node -> the walk after it, when found without walking to it

    def __iter__(self) -> Iterator[str]:
        return self._from(0)

    def _from(self, i: int) -> Iterator[str]:
        """The walk from its ``i``-th node on (shared with other iterators: each node is found once)."""
        seen = self._seen
        while True:
            if i < len(seen):
                yield seen[i]
                i += 1
                continue
            node = next(self._source, None)
            if node is None:
                return
            seen.append(node)

    def after(self, node: str) -> Iterator[str]:
        """The rest of the walk, after ``node`` (from the start when ``node`` is not on it)."""
        seen = self._seen
        if not seen:  # most often asked after the key's owner: the walk's first node, one step away
            first = next(self._source, None)
            if first is None:
                return iter(())
            seen.append(first)
        try:
            return self._from(seen.index(node) + 1)
        except ValueError:
            pass
        rest = self._rest.get(node)
        if rest is None and self._ring is not None and self._eligible(node):
            # A node not yet reached (a key's home far from its owner): the ring finds where the walk goes on
            # after it without walking there.
            after = self._ring.successors_after(self._key, node)
            if after is not None:
                rest = self._rest[node] = _Walk(after, self._eligible)
        if rest is not None:
            return iter(rest)
        for n in self._source:
            seen.append(n)
            if n == node:
                return self._from(len(seen))
        return self._from(0)


class _Bound:
    """Bounded loads for one decision: ceil(c * (T + 1) * w / W), but never below what a node admits at once."""

    __slots__ = ("demand", "load", "total", "view", "weight_sum", "weights")

    def __init__(
        self,
        view: ResourceView,
        weights: Mapping[str, float],
        total: float,
        weight_sum: float,
        demand: TaskDemand,
    ) -> None:
        self.view = view
        self.load = view.assigned
        self.weights = weights
        self.total = total
        self.weight_sum = weight_sum
        self.demand = demand  # its positive amounts by name (``names``, ``amounts``): read only at a node's bound

    def fits(self, node: str, factor: float, count: int = 1, extra: int = 0) -> bool:
        """Can ``node`` take ``count`` more tasks (plus ``extra`` moving with them) under the bound?"""
        held = self.load(node) + extra
        if takes_more(held, count, factor, self.total, self.weights[node], self.weight_sum):
            return True
        # A node is never over its bound while it could still run or queue the task: a lull (the first
        # batch of a run, a burst of releases) never pushes keys off nodes with free slots.
        return held + count <= _admits(self.view, self.demand, node)


def _admits(view: ResourceView, demand: TaskDemand, node: str) -> int:
    """Tasks of this demand the node admits at once (running or queued), under the current overcommit."""
    names, amounts = demand.names, demand.amounts
    if not names:
        return 0
    o = view.overcommit
    cap = view.capacity(node).get
    if len(names) == 1:  # most demands name one resource: the same figure without a generator
        return int((cap(names[0], 0.0) * o + EPS) // amounts[0])
    return int(min((cap(r, 0.0) * o + EPS) // a for r, a in zip(names, amounts, strict=True)))


class _Members:
    """A hot key's nodes in their stable order, and how many ring lookups found them."""

    __slots__ = ("nodes", "seen", "tried")

    def __init__(self, owner: str) -> None:
        self.nodes = [owner]
        self.seen = {owner}
        self.tried = 0


class _Plan:
    """Where a task belongs under bounded loads, and what deciding it needs (the walk, built lazily)."""

    __slots__ = (
        "_walk",
        "bound",
        "deferred",
        "factor",
        "holds",
        "home",
        "key",
        "moved_from",
        "owner",
        "ring",
        "spread",
        "whole",
    )

    def __init__(
        self,
        home: str,
        owner: str,
        ring: HashRing,
        key: str,
        holds: Callable[[str], bool],
        bound: _Bound | None,
        factor: float,
        walk: _Walk | None = None,
    ) -> None:
        self.home, self.owner, self.ring, self.key, self.holds = home, owner, ring, key, holds
        self.bound, self.factor, self._walk = bound, factor, walk
        self.moved_from: str | None = None
        self.deferred = False  # the home is at its bound: wait (unassigned) for it to drain
        self.whole = True  # False: no node could take all the tasks of the key together
        self.spread = 1  # nodes the key may use (over 1: a hot key, its home the least loaded of them)

    @property
    def walk(self) -> _Walk:
        if self._walk is None:
            self._walk = _Walk(self.ring.successors(self.key), self.holds, self.ring, self.key)
        return self._walk

    def under_bound(self, node: str) -> bool:
        return self.bound is None or self.bound.fits(node, self.factor)


class HashPolicy:
    """Key-affine placement with bounded loads over assigned work."""

    name = "hash"
    # Decide the commonest cases without building a plan (`_settled_home`); False: always the full plan, the
    # reference the tests hold the shortcut to (the same decisions under the same seed).
    settled_shortcut = True

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options if options is not None else PolicyOptions()
        self.ring = HashRing(RingConfig(vnodes=self.options.vnodes))
        self.homes: dict[str, str] = {}  # key -> node it lives on while its owner is under pressure
        # keys that have run -> (decision count when last placed, the node, decision count when it came there),
        # least recently placed forgotten first
        self._rooted: collections.OrderedDict[str, tuple[int, str, int]] = collections.OrderedDict()
        self._decisions = 0  # a logical clock, so that the policy stays deterministic
        self.keys_moved = 0
        self._weights: dict[str, float] = {}  # ring weights: a node's CPUs (its points on the ring)
        self.speed = NodeSpeed()  # how fast each node gets through its tasks, from the drivers' reports
        # Bounds weights: a node's CPUs x its speed factor (the very ring weights while no node is off the median)
        self._share: dict[str, float] = self._weights
        self._share_total = 0.0
        self._eligible: dict[Signature, tuple[frozenset[str] | None, float]] = {}
        # the last signature asked about and its answer (emptied with ``_eligible``)
        self._last_eligible: tuple[Signature, tuple[frozenset[str] | None, float]] | None = None
        self._synced: tuple[int, int] | None = None  # (view.uid, view.version)
        wait = self.options.locality_wait
        self._locality_wait_s = AUTO_WAIT_MIN_S if wait is None else float(wait)
        self._task_s: float | None = None  # the job's median task time, once the drivers report it
        self.demand = KeyDemand(DEMAND_HORIZON_TASKS)
        self._sets: dict[str, _Members] = {}  # hot key -> its nodes found so far (owner first)
        self._rng = random.Random(self.options.seed)
        self.capacity = KeyCapacity(self.options.keys_per_node)  # distinct keys a node keeps warm
        self._rooted_on: collections.Counter[str] | None = None  # keys whose warm state is on each node (caps)
        self._fresh: dict[str, str] = {}  # key that has not run yet -> the node it was given (caps only)
        self._fresh_on: collections.Counter[str] = collections.Counter()
        self._evict: dict[str, str] = {}  # key -> the thrashing node it must leave whole (at its next decision)
        # The two answers most decisions give, one immutable Decision per node (a frozen dataclass costs about
        # 1 us to build, twice per task): placed at the home, nothing moved; waiting for it, assigned there.
        self._placed_at: dict[str, Decision] = {}
        self._waits_at: dict[str, Decision] = {}
        # A node that leaves: its keys spread by key counts (`_rehome`), so no survivor falls behind and has
        # its own keys' tasks taken by work conservation. A router whose calls wait for their replica (no work
        # conservation) turns it off: a drained replica's keys go back to their ring successors, where they were.
        self.spreads_lost_keys = True
        self._left: dict[str, tuple[str, int]] = {}  # key -> (the node it last moved off, decision count then)
        self._owner = ""  # the owner `_settled_home` found for the task it was last asked about

    @property
    def work_conserving(self) -> bool:
        """Past its locality wait a task takes any free slot (pure ring: never, a key stays on its owner)."""
        return self.options.load_factor is not None

    def movable(self, key: str) -> bool:
        """May the brain move this key whole to an idle node? Only if none of its tasks has run (no warm state
        to lose) and it is a cold key (a hot key's tasks already spread over its nodes)."""
        return key not in self._rooted and not self.demand.is_hot(key) and self.options.load_factor is not None

    def key_moved(self, key: str, node: str) -> None:
        """The brain moved a key that had not run to ``node``: it lives there now."""
        if node == self.ring.lookup(key):
            self.homes.pop(key, None)
        else:
            self.homes[key] = node
        self.keys_moved += 1

    def warm_for(self, key: str) -> float:
        """How long the key's warm state has lived on its node (decisions since it came there; 0 for a key that
        has not run). Work conservation takes the youngest first: a key that came to a busy node lately (from a
        node that died, or by an earlier steal) has the least to lose, so the node's old keys stay home. A hot
        key counts as oldest: it lives on several nodes already, and a task taken from it moves nothing."""
        if self.demand.is_hot(key):
            return math.inf
        rooted = self._rooted.get(key)
        return 0 if rooted is None else self._decisions - rooted[2]

    def spilled(self, task: TaskDemand, node: str, view: ResourceView) -> bool:
        """The brain ran a task past its locality wait on a free slot: its warm state lives there now, and a
        cold key moves there whole (True: its waiting tasks follow), so it splits once, not task by task."""
        self._root(task.key, node)
        if self.demand.is_hot(task.key):
            return False
        self.key_moved(task.key, node)
        return True

    # -- membership -----------------------------------------------------------------
    def sync(self, view: ResourceView) -> None:
        """Bring the ring to the view's membership: only nodes that joined, left or changed move keys."""
        ring, weights = self.ring, self._weights
        alive = set(view.nodes)
        gone = [n for n in weights if n not in alive]
        last = self._last_eligible  # the nodes that could hold the last demand decided (None: every node)
        able = None if last is None else last[1][0]
        for n in gone:
            ring.remove(n)
            del weights[n]
        if gone:  # keys that ran on a node that left lost their warm state: they are new again
            lost = set(gone)
            self.capacity.forget(lost)
            self.speed.forget(lost)
            self._evict = {k: n for k, n in self._evict.items() if n not in lost}
            orphans = [k for k, (_, node, _) in self._rooted.items() if node in lost]
            for key in orphans:
                del self._rooted[key]
            self._rooted_on = None  # counted again when next needed
        for n in view.nodes:
            w = view.weight(n)
            old = weights.get(n)
            if old == w:
                continue
            if old is not None:
                ring.remove(n)
            ring.add(n, w)
            weights[n] = w
        self._sets.clear()
        cpus = sum(view.capacity(n).get("CPU", 0.0) for n in view.nodes)
        self.demand.horizon = max(float(DEMAND_HORIZON_TASKS), 4.0 * cpus)
        for key in [k for k, n in self.homes.items() if n not in alive]:
            del self.homes[key]
        if gone:
            self._placed_at.clear()
            self._waits_at.clear()
        self._reshare()
        if gone and self.spreads_lost_keys and self.options.load_factor is not None:
            recent = self._decisions - STRAY_DECISIONS
            strays = [k for k, (n, at) in self._left.items() if n in lost and at >= recent and k in self._rooted]
            if orphans or strays:
                self._rehome(orphans, strays, able)
        self._synced = (view.uid, view.version)

    def _rehome(self, orphans: list[str], strays: list[str], able: frozenset[str] | None) -> None:
        """Give the keys of nodes that left new homes at once, whole, evening out keys per unit of weight.

        The ring's successors alone took a dead node's keys unevenly (4, 5 and 6
        of 15 on three equal nodes), and the survivor with the most fell behind:
        work conservation then took its own keys' tasks. Their warm state is
        gone, so the successors have no claim. ``strays`` left a lost node
        shortly before it left (work conservation took its tasks to free slots
        while it was dead but not yet noticed): each stays where it went unless
        another node would be less loaded with it than that node is. Then each
        of ``orphans`` goes to the least loaded node (keys warm there or given
        it now, per unit of weight, after taking it): the first such node
        clockwise from the key's new owner, within `MOVE_PROBES`, else the
        least loaded of all. Only nodes that could hold the last demand decided
        count and take keys (``able``; None: every node): a head without CPUs,
        on the ring with a weight of 1, took a sixth of a dead node's keys that
        then scattered.
        """
        weights = {n: w for n, w in self._share.items() if w > 0 and (able is None or n in able)}
        if not weights:
            return
        counts = collections.Counter({n: c for n, c in self._warm_keys().items() if n in weights})  # a copy
        after = [((counts[n] + 1) / w, n) for n, w in weights.items()]  # load after taking one more key
        heapq.heapify(after)

        def least() -> tuple[float, str]:  # the least load after one more key, and its node
            while True:
                load, node = after[0]
                if load == (counts[node] + 1) / weights[node]:
                    return load, node
                heapq.heapreplace(after, ((counts[node] + 1) / weights[node], node))

        def place(key: str) -> str:
            level, fallback = least()
            ahead = itertools.islice(self.ring.successors(key), MOVE_PROBES)
            return next((n for n in ahead if n in weights and (counts[n] + 1) / weights[n] <= level + EPS), fallback)

        for key in sorted(strays):  # a fixed order: the same homes whatever order the keys ran in
            on = self._rooted[key][1]
            counts[on] -= 1
            if on in weights and (counts[on] + 1) / weights[on] <= least()[0] + EPS:
                counts[on] += 1  # no node would be less loaded with it: it stays
                continue
            if on in weights:
                heapq.heappush(after, ((counts[on] + 1) / weights[on], on))  # lighter now
            self._give_home(key, place(key), counts)
        for key in sorted(orphans):
            self._give_home(key, place(key), counts)

    def _give_home(self, key: str, home: str, counts: collections.Counter[str]) -> None:
        """``key`` lives on ``home`` from now on (counted in ``counts``), the youngest key there."""
        counts[home] += 1
        if home != self.ring.lookup(key):
            self.homes[key] = home
            self.keys_moved += 1
        else:
            self.homes.pop(key, None)
        self._root(key, home)

    def _reshare(self) -> None:
        """Bounds weigh each node by its CPUs x its speed factor (`node_speed`); the ring keeps CPUs alone, so
        a node's speed moves work and keys by their bounds, never the owners of keys."""
        if self.speed.factors:
            self._share = {n: w * self.speed.factor(n) for n, w in self._weights.items()}
            self._share_total = sum(self._share.values())
        else:
            self._share = self._weights
        self._eligible.clear()
        self._last_eligible = None

    @property
    def locality_wait_s(self) -> float:
        """Seconds a task waits for its busy home before it may take another node."""
        return self._locality_wait_s

    def pace(self, stats: Mapping[str, float]) -> None:
        """Adapt the locality wait to the job's task times (unless --locality-wait fixed it)."""
        p50 = stats.get("task_p50_s")
        if p50 is not None and p50 >= 0:
            self._task_s = float(p50)
            if self.options.locality_wait is None:
                self._locality_wait_s = min(AUTO_WAIT_MAX_S, max(AUTO_WAIT_MIN_S, AUTO_WAIT_TASKS * p50))
        hits = read_hits(stats)
        if hits:
            self.capacity.observe(hits)
        runs = read_run_times(stats)
        if runs and self.speed.observe(runs):
            self._reshare()

    def _given(self, key: str, node: str) -> None:
        """A key that has not run yet was given ``node``: it counts against the node's key capacity."""
        fresh = self._fresh
        was = fresh.get(key)
        if was == node:
            return
        if was is not None:
            self._fresh_on[was] -= 1
        fresh[key] = node
        self._fresh_on[node] += 1
        if len(fresh) > ROOTED_KEYS:  # keys given a node that never ran there (their run ended): forgotten
            for stale in list(itertools.islice(fresh, len(fresh) // 2)):
                self._fresh_on[fresh.pop(stale)] -= 1

    def _warm_keys(self) -> collections.Counter[str]:
        """Keys whose warm state lives on each node (they ran there last): what a node's cache must hold.
        Counted only once key capacities matter, then kept up to date."""
        if self._rooted_on is None:
            self._rooted_on = collections.Counter(node for _, node, _ in self._rooted.values())
        return self._rooted_on

    def _shed(self, view: ResourceView) -> None:
        """Thrashing nodes keep fewer keys: keys that never ran there leave first, then the least recently
        placed; each leaves whole at its next decision."""
        for node in list(self.capacity.thrashing):
            if node not in view:
                self.capacity.forget([node])
                continue
            leaving = self.capacity.shed(node, self._warm_keys()[node])
            cold = [k for k in view.keys_only_waiting(node) if k not in self._rooted]  # leave first: nothing lost
            warm = [k for k, (_, on, _) in self._rooted.items() if on == node]  # least recently placed first
            for key in itertools.islice((k for k in (*cold, *warm) if k not in self._evict), leaving):
                self._evict[key] = node

    # -- deciding -------------------------------------------------------------------
    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        self.demand.add(task.key)
        return self.decide(task, view).node

    def arrived(self, keys: Mapping[str, int]) -> None:
        """New tasks per key, counted before any of them is assigned (so the first batch of a run does not
        look like one hot key when its tasks arrive grouped by key)."""
        for key, count in keys.items():
            self.demand.add(key, count)

    def assign(self, task: TaskDemand, view: ResourceView, count: int = 1) -> Decision | None:
        """Where new tasks of one key wait: their home (counted there), or deferred when it is at its bound.

        ``count`` tasks of the key arriving together are assigned as one, so a
        key moves whole before any of its tasks runs; None when no node can
        take them all (assign them one by one then).
        """
        plan = self._plan(task, view, count)
        if not plan.whole:
            return None
        home = plan.home
        if self.capacity.active and task.key not in self._rooted:
            self._given(task.key, home)
        if plan.moved_from is None and not plan.deferred:
            waits = self._waits_at.get(home)
            if waits is None:
                waits = self._waits_at[home] = Decision(None, waits_for=home)
            return waits
        return Decision(None, waits_for=home, moved_from=plan.moved_from, assigned=not plan.deferred)

    def decide(self, task: TaskDemand, view: ResourceView) -> Decision:
        """Place at the home if it has room; after the locality wait, at the next node clockwise with room."""
        self._begin(view)
        home = self._settled_home(task, view) if self.settled_shortcut else None
        if home is not None and view.fits_now(home, task.resources):
            self._root(task.key, home)
            if home == self._owner:
                placed = self._placed_at.get(home)
                if placed is None:
                    placed = self._placed_at[home] = Decision(home)
                return placed
            return Decision(home, spill="spread" if self.demand.is_hot(task.key) else "bound")
        plan = self._plan_begun(task, view)
        home = plan.home
        if self.capacity.active and task.key not in self._rooted:
            self._given(task.key, home)
        if plan.deferred:
            return Decision(None, waits_for=home, assigned=False)
        demand = task.resources
        if view.fits_now(home, demand):
            self._root(task.key, home)
            if home == plan.owner and plan.moved_from is None:
                placed = self._placed_at.get(home)
                if placed is None:
                    placed = self._placed_at[home] = Decision(home)
                return placed
            spill = (
                "" if home == plan.owner else "spread" if plan.spread > 1 or self.demand.is_hot(task.key) else "bound"
            )
            return Decision(home, spill=spill, moved_from=plan.moved_from)
        stay = plan.moved_from is None and self._home_soon(task.key, home, view, plan.bound)
        if (
            self.options.load_factor is not None
            and plan.moved_from is None
            and not stay
            and task.waited_s >= self._locality_wait_s
        ):
            capped = self.capacity.active
            for node in itertools.islice(plan.walk.after(home), MOVE_PROBES):
                if (
                    view.fits_now(node, demand)
                    and plan.under_bound(node)
                    and (not capped or self._key_room(task.key, node, view))
                ):
                    self._root(task.key, node)
                    return Decision(node, spill="wait", moved_from=plan.moved_from)
        return Decision(None, waits_for=home, moved_from=plan.moved_from, stay=stay)

    def takes_slot(self, task: TaskDemand, node: str, view: ResourceView) -> bool:
        """May work conservation run this task on a free slot of ``node``? Not under a key capacity when the
        node's cache is full of other keys: the task would evict a warm key there (and be evicted in turn)."""
        return not self.capacity.active or self._key_room(task.key, node, view)

    def _key_room(self, key: str, node: str, view: ResourceView) -> bool:
        """Has ``node`` room for ``key`` under its key capacity (the key is warm there, or given it, or the node
        holds fewer keys than it may)? A node the key is leaving never has."""
        if node == self._evict.get(key):
            return False
        mine = self._rooted[key][1] if key in self._rooted else self._fresh.get(key)
        if node == mine or view.key_assigned(key, node) > 0:
            return True
        return self._warm_keys()[node] + self._fresh_on[node] < self.capacity.of(node)

    def _home_soon(self, key: str, home: str, view: ResourceView, bound: _Bound | None) -> bool:
        """Bounds in time, for jobs whose keys keep warm state (a key capacity hint, or tasks that report
        ``cache_hit``): is ``key`` warm on ``home`` (it ran there last), and is ``home`` behind the cluster by
        less than the locality wait? Behind = the time its assigned work takes per slot, over the time the
        cluster's assigned work takes per slot (tasks x the median task time; a node's CPUs are its slots).
        Then the key's tasks wait there, even over its bound in tasks: a cold start elsewhere would cost a miss
        to save less than the wait a task may spend for its locality anyway. Without such a job, or until the
        drivers report task times, no (the bounds in tasks and the brain's steals decide, as before)."""
        task_s = self._task_s
        if task_s is None or bound is None or not self.capacity.informed:
            return False
        rooted = self._rooted.get(key)
        if rooted is None or rooted[1] != home or self._evict.get(key) == home:
            return False
        behind = view.assigned(home) / self._weights[home] - bound.total / bound.weight_sum
        return behind * task_s <= self._locality_wait_s

    def _root(self, key: str, node: str) -> None:
        """The key runs on ``node`` (its warm state lives there now): moving it costs; remember when (LRU)."""
        rooted = self._rooted
        counts = self._rooted_on
        if self._fresh:
            was = self._fresh.pop(key, None)
            if was is not None:
                self._fresh_on[was] -= 1
        before = rooted.get(key)
        moved = before is None or before[1] != node
        if counts is not None and moved:
            counts[node] += 1
            if before is not None:
                counts[before[1]] -= 1
        now = self._decisions
        rooted[key] = (now, node, now if before is None or moved else before[2])
        rooted.move_to_end(key)
        if moved and before is not None:
            left = self._left
            left.pop(key, None)
            left[key] = (before[1], now)  # oldest first
            if len(left) > ROOTED_KEYS:
                for stale in list(itertools.islice(left, len(left) // 2)):
                    del left[stale]
        if before is None and len(rooted) > ROOTED_KEYS:  # (only a new key makes it longer)
            forgotten, (_, was_on, _) = rooted.popitem(last=False)
            self.homes.pop(forgotten, None)  # a key forgotten as having run is a new key again, at its owner
            if counts is not None:
                counts[was_on] -= 1
        if len(self.homes) > 2 * ROOTED_KEYS:  # homes of keys moved before they ever ran, and never ran
            self.homes = {k: n for k, n in self.homes.items() if k in rooted}

    def _plan(self, task: TaskDemand, view: ResourceView, count: int = 1) -> _Plan:
        """Where ``count`` tasks of the task's key (arriving together) belong under bounded loads.

        Kept on the key's home, deferred (waiting for the home to drain), moved
        with the whole key, or (one task) split off clockwise. A key that has
        never run may go anywhere for free: it first looks for a node within its
        fair share of distinct keys (c = 1), so keys spread in proportion to
        capacity before any of them runs; a key that has run keeps its node up
        to c times the fair share, and waits the locality wait before it moves.
        """
        self._begin(view)
        return self._plan_begun(task, view, count)

    def _begin(self, view: ResourceView) -> None:
        """What every decision starts with: the ring in step with the view, thrashing nodes shed, the clock."""
        if self._synced != (view.uid, view.version):
            self.sync(view)
        if self.capacity.thrashing:
            self._shed(view)
        self._decisions += 1

    def _settled_home(self, task: TaskDemand, view: ResourceView) -> str | None:
        """The home `_plan` would give the task in the two commonest cases, found without building a plan; None:
        ask `_plan`.

        Most decisions are a task sticking to the node it was assigned to, or a
        settled cold key (it has run, or has work at its owner) whose owner is
        under its bound. Building the plan and its bound took about half of
        hash's decision (placement core: 7.4 us at 1,000 nodes). The checks are
        `_plan`'s own, in its order, and change nothing `_plan` would not change
        the same way (caches, the key's spread), so a None costs only their
        repetition. ``self._owner`` is left as the key's owner.
        """
        if self.capacity.active:
            return None
        key = task.key
        last = self._last_eligible
        last_answer = last[1] if last is not None and last[0] is task.signature else self._eligible_nodes(task, view)
        if last_answer[0] is not None:  # some nodes could never hold it: the plan walks the ring for its owner
            return None
        owner = self._owner = self.ring.lookup(key)
        c = self.options.load_factor
        if c is None:
            return owner
        leaving = self._evict.get(key) if self._evict else None
        assigned = task.waiting_for
        if assigned is not None:
            if assigned != leaving and assigned in view and view.could_hold(assigned, task.resources):
                return assigned
            return None
        weight_sum = last_answer[1]
        share = self._share
        demand = self.demand
        need = HOT_HEADROOM * demand.share(key) * weight_sum / share[owner]  # `_plan`'s, before its cap
        # The spread `_plan` would ask for too (asked again, the same answer: its hysteresis is settled by the first)
        if ((need > 1.0 and len(view) > 1) or demand.is_hot(key)) and demand.spread(key, min(len(view), need)) > 1:
            return None
        if key in self.homes or owner == leaving:
            return None
        if key not in self._rooted and view.key_assigned(key, owner) <= 0:
            return None  # a new key first looks for a node within its fair share of keys
        held = view.assigned(owner)
        total = float(view.total_assigned + view.pending)
        if takes_more(held, 1, c, total, share[owner], weight_sum) or held + 1 <= _admits(view, task, owner):
            return owner
        return None

    def _plan_begun(self, task: TaskDemand, view: ResourceView, count: int = 1) -> _Plan:
        """`_plan` after `_begin`."""
        capacity = self.capacity
        demand = task.resources
        key = task.key
        leaving = self._evict.get(key)  # a thrashing node this key must leave
        eligible, weight_sum = self._eligible_nodes(task, view)
        if eligible is None:
            holds: Callable[[str], bool] = _anywhere
            walk = None
            owner = self.ring.lookup(key)  # the fast path: one bisect
        else:
            holds = eligible.__contains__
            walk = _Walk(self.ring.successors(key), holds, self.ring, key)
            owner = next(iter(walk))
        c = self.options.load_factor
        if c is None:  # pure ring: the owner, always
            return _Plan(owner, owner, self.ring, key, holds, None, 1.0, walk)
        if eligible is None:
            total = float(view.total_assigned + view.pending)
        else:
            total = float(sum(view.assigned(n) for n in eligible) + view.pending)
        bound = _Bound(view, self._share, total, weight_sum, task)
        assigned = task.waiting_for
        if (
            assigned is not None
            and assigned != leaving
            and assigned in view
            and holds(assigned)
            and view.could_hold(assigned, demand)
        ):
            return _Plan(assigned, owner, self.ring, key, holds, bound, c, walk)  # an assignment sticks
        if eligible is None:
            need = min(len(view), HOT_HEADROOM * self.demand.share(key) * weight_sum / self._share[owner])
            spread = self.demand.spread(key, need) if need > 1.0 or self.demand.is_hot(key) else 1
            if spread > 1:
                hot = self._hot_home(key, owner, spread, view, bound, c, count)
                if hot is not None:
                    plan = _Plan(hot, owner, self.ring, key, holds, bound, c, walk)
                    plan.spread = spread
                    return plan
        home = self.homes.get(key)
        if home is not None and (home not in view or not view.could_hold(home, demand)):
            del self.homes[key]
            home = None
        if (
            home is not None
            and view.key_assigned(key, home) == 0
            and self._decisions - self._rooted.get(key, (0, "", 0))[0] > RETURN_AFTER_DECISIONS
            and view.assigned(owner) + 1 <= (total + 1) * self._share[owner] / weight_sum
        ):
            del self.homes[key]  # the pressure ended and the key has rested: it comes home
            home = None
        home = home or owner
        plan = _Plan(home, owner, self.ring, key, holds, bound, c, walk)
        # A key that has run, or has tasks assigned to its home already, is settled there: it moves only
        # under pressure, whole, and not again for each batch of its tasks (a key bouncing between nodes
        # while the first window is assigned warms several caches).
        rooted = key in self._rooted or key in self.homes or view.key_assigned(key, home) > 0
        spaces: tuple[Callable[[str], bool], ...] = (lambda n: self._key_room(key, n, view),) if capacity.active else ()
        if rooted:
            if home != leaving:
                if bound.fits(home, c, count):
                    return plan
                if self._home_soon(key, home, view, bound):
                    return plan  # over its bound in tasks, not in time: the key stays warm where it is
                if task.waited_s < self._locality_wait_s:
                    plan.deferred = True  # wait for the home to drain
                    return plan
            # Under a key capacity a key that has run moves only to a node with room for one more key: taken in
            # over capacity, it would evict a warm key there (and itself be evicted), two misses for one.
            tiers: tuple[Callable[[str], bool], ...] = spaces or (_anywhere,)
            strict = 1.0  # a key that has run moves only to a node within its fair share: no bouncing
        else:
            # A new key first looks for a node within its fair share of distinct keys (c = 1).
            keys = view.total_keys + (0 if view.key_assigned(key, home) else 1)

            def key_share(n: str) -> bool:
                new = 0 if view.key_assigned(key, n) else 1
                fair = takes_more(view.keys_on(n), new, 1.0, keys - 1, self._share[n], weight_sum)
                return fair and all(space(n) for space in spaces)

            tiers = (key_share, *spaces, _anywhere)
            strict = c
        # The key moves whole: its tasks waiting at the home come along, so the new home must take them too.
        moving = view.key_parked(key, home)
        for fits_keys in tiers:
            # Under a key capacity, a new key (or one leaving a thrashing node) goes to a node with room for it
            # even over that node's bound, before any node at all: a cache cycled by more keys than it holds
            # keeps none of them warm. (A key that has run moves only within bounds: that is why it moves.)
            bounded = not (spaces and fits_keys is spaces[-1] and (not rooted or leaving is not None))
            if fits_keys(home) and bound.fits(home, c, count):
                return plan
            ahead = itertools.islice(plan.walk.after(home), MOVE_PROBES)
            if bounded:
                target = next((n for n in ahead if fits_keys(n) and bound.fits(n, strict, count, moving)), None)
            else:  # past every bound, by room for keys: the node with the fewest keys per unit of weight
                target = self._fewest_keys([home, *ahead], fits_keys)
                if target == home:
                    return plan
            if target is not None:
                self._evict.pop(key, None)
                if target == owner:
                    self.homes.pop(key, None)
                else:
                    self.homes[key] = target
                self.keys_moved += 1
                plan.home, plan.moved_from = target, home
                return plan
        if rooted and spaces and home != leaving:
            return plan  # no node has room for one more key: the key stays where it is warm
        if count > 1:
            plan.whole = False  # the caller assigns them one by one
            return plan
        # No node can take the whole key (a key hotter than a node's bound): this task splits off clockwise.
        split = next((n for n in plan.walk.after(home) if bound.fits(n, c)), None)
        if split is None:  # only with fractional loads: the least loaded per unit of weight
            split = min(plan.walk, key=lambda n: view.assigned(n) / self._share[n])
        plan.home = split
        return plan

    def _fewest_keys(self, nodes: list[str], room: Callable[[str], bool]) -> str | None:
        """Of ``nodes`` with room for one more key, the one holding the fewest keys (warm there, or given it) per
        unit of weight, the first of equals. Keys a full node cannot take then spread over the others in
        proportion to their size (taking the first with room piled them on the nodes after it on the ring)."""
        warm, fresh, weights = self._warm_keys(), self._fresh_on, self._share
        best, least = None, math.inf
        for n in nodes:
            if room(n):
                held = (warm[n] + fresh[n]) / weights[n]
                if held < least:
                    best, least = n, held
        return best

    def _hot_home(
        self, key: str, owner: str, spread: int, view: ResourceView, bound: _Bound, c: float, count: int
    ) -> str | None:
        """The home of a hot key's next tasks: the least loaded of its nodes (of two sampled and the owner when it
        has many).

        A key's nodes are its owner, then the owners of ``f"{key}\\x00{i}"`` for i = 1, 2...
        on the ring (D-Choices' d hash functions): growing the spread only adds
        nodes, and a node joining or leaving changes only the members it owns.
        None when the choice is over its bound (the key then moves or splits as
        a cold key does).
        """
        if len(self._sets) > 2 * self.demand.hot_count() + 64:  # keys that cooled down: forget their nodes
            self._sets = {k: m for k, m in self._sets.items() if self.demand.is_hot(k)}
        members = self._members(key, owner, spread, len(view))[:spread]
        weights = self._share
        if len(members) <= HOT_SCAN:
            pool = members
        else:
            pool = self._rng.sample(members, 2)
            if owner not in pool:
                # The owner always competes: a task deferred there (the choice was over its bound) is asked again
                # when the owner frees a slot, and without the owner in the pool it was re-homed to a busy sampled
                # node and decided twice (0.5% of all decisions at 1,000 nodes).
                pool.append(owner)
        best = min(pool, key=lambda n: view.assigned(n) / weights[n])  # ties: the first in the pool's order
        return best if bound.fits(best, c, count) else None

    def _members(self, key: str, owner: str, spread: int, nodes: int) -> list[str]:
        """At least ``spread`` distinct nodes for a hot key when it can find them, owner first, in a stable order.

        Found once and extended as the spread grows (each member one ring
        lookup; at most 8 lookups per member sought, as nodes repeat).
        """
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = _Members(owner)
        want = min(spread, nodes)
        ring, members, seen = self.ring, found.nodes, found.seen
        while len(members) < want and found.tried < 8 * want + 64:
            found.tried += 1
            node = ring.lookup(f"{key}\x00{found.tried}")
            if node not in seen:
                seen.add(node)
                members.append(node)
        return members

    @property
    def keys_spread(self) -> int:
        """Keys that spread over more than one node now."""
        return len(self.demand.hot())

    def hot_keys(self, top: int = 10) -> list[tuple[str, int, float]]:
        """The hottest keys that spread: (key, nodes it may use, its share of recent work), hottest first."""
        hot = sorted(self.demand.hot().items(), key=lambda kv: self.demand.share(kv[0]), reverse=True)
        return [(k, d, self.demand.share(k)) for k, d in hot[:top]]

    def _eligible_nodes(self, task: TaskDemand, view: ResourceView) -> tuple[frozenset[str] | None, float]:
        """Nodes that could ever hold this demand (None = every node) and their total ring weight."""
        sig = task.signature
        last = self._last_eligible  # tasks made from one validated demand share its signature object
        if last is not None and (last[0] is sig or last[0] == sig):  # (an equal one: cheaper than hashing it)
            return last[1]
        hit = self._eligible.get(sig)
        if hit is None:
            demand = task.resources
            able = [n for n in view.nodes if view.could_hold(n, demand)]
            if len(able) == len(view):
                hit = (None, self.ring.total_weight if self._share is self._weights else self._share_total)
            else:
                hit = (frozenset(able), sum(self._share[n] for n in able))
            self._eligible[sig] = hit
        self._last_eligible = (sig, hit)
        return hit
