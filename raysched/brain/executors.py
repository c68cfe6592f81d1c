"""Executors: long-lived actors, one per task slot of a demand shape on a node, shared by every submission.

A placed task of a submission that runs on executors goes to its node as a call
on an executor the brain hands out with the placement. Calls start without a
lease or a new worker process, and four drivers share one set of actors
instead of starting four sets of workers. The rules, in the order they apply
to a placement on node N of demand shape S:

1. an executor of (N, S) with no call under way is handed out (leased to the submission);
2. else a new one is created, while N has room for one more of S beside the executors it has
   (idle executors of other shapes on N retire at once to make room; when busy ones hold it, they stop
   taking calls and retire when they drain, and this placement runs as a plain pinned Ray task, which
   Ray starts once the room is back);
3. else the submission's own executor of (N, S) with the fewest calls (its calls queue there, behind
   its own: the pacing's queue per node); while another submission waits for (N, S), only one it has
   held for less than LEASE_S, so a busy executor changes hands about once a second, not once a call;
4. else the placement waits here, first come first served, for the next executor of (N, S) to drain.

So a call never queues behind another submission's call on one executor. An
executor with no call for ``idle_s`` retires (within UNUSED_IDLE_S when no
submission is on the cluster); one whose node leaves is dropped
(placements waiting for it go out without one: their task finds the node gone
and is placed again). The pool is plain Python: the actor calls (``spawn``,
``kill``) are injected, so the rules are tested without Ray.

Reads and writes nothing of the brain's state: the brain asks and applies the answers.
"""

from __future__ import annotations

import collections
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A demand as a hashable shape: sorted (resource, amount) pairs with amount > 0.
Shape = tuple[tuple[str, float], ...]
#: A placement waiting for an executor: (submission id, uid, node, spill, seconds waited, shape).
Waiting = tuple[str, int, str, str, float, Shape]

DEFAULT_IDLE_S = 30.0  # an executor with no call for this long retires (its slot's resources go back to Ray)
# With no submission on the cluster an idle executor retires after this long instead: its slot is the user's other
# Ray work's again within seconds (a plain Ray job started after a raysched run does not wait for idle_s).
UNUSED_IDLE_S = 2.0
# While another submission waits for an executor of a node, a busy one keeps taking its lessee's calls for this long
# (then it drains and goes to the first waiter). Handing it over after every call left it idle for the waiter's
# round trip to the brain at each turn: four drivers of 10 ms tasks ran at 0.5x plain Ray.
LEASE_S = 1.0
EVENTS_KEPT = 2000  # life events kept for status and the runs' sidecars


def shape_of(demand: Mapping[str, float]) -> Shape:
    """The demand's shape (zero amounts dropped): executors of one shape serve every task of that demand."""
    return tuple(sorted((str(r), float(v)) for r, v in demand.items() if v > 0))


def slots(capacity: Mapping[str, float], shape: Shape) -> int:
    """How many executors of ``shape`` a node of ``capacity`` holds (0 for a shape that demands nothing)."""
    if not shape:
        return 0
    return max(0, min(math.floor(capacity.get(r, 0.0) / v + 1e-9) for r, v in shape))


@dataclass(eq=False)
class Executor:
    """One executor: where it runs, which submission's calls it holds and how many."""

    name: str
    node: str
    shape: Shape
    handle: Any
    idle_since: float
    lessee: str | None = None
    leased_at: float = 0.0  # when its lessee took it (its calls have run back to back since)
    calls: int = 0
    draining: bool = False  # makes room for another shape: takes no call, retires when idle
    uids: set[tuple[str, int]] = field(default_factory=set)


class ExecutorPool:
    """Every executor on the cluster and the placements waiting for one."""

    def __init__(
        self,
        spawn: Callable[[str, str, Mapping[str, float]], Any],
        kill: Callable[[Any], None],
        capacity_of: Callable[[str], Mapping[str, float]],
        clock: Callable[[], float],
        idle_s: float = DEFAULT_IDLE_S,
    ) -> None:
        self.spawn = spawn
        self.kill = kill
        self.capacity_of = capacity_of
        self.clock = clock
        self.idle_s = idle_s
        self.executors: dict[str, Executor] = {}
        self._at: dict[tuple[str, Shape], list[Executor]] = {}
        self._shapes_at: dict[str, set[Shape]] = {}  # node -> the shapes it has executors of (an index of _at)
        self._by_uid: dict[tuple[str, int], Executor] = {}
        # (node, shape) -> submission -> its placements waiting there, by uid; submissions in the order they began
        # to wait (first come, first served), placements in the order they were placed.
        self._waiting: dict[tuple[str, Shape], dict[str, collections.OrderedDict[int, Waiting]]] = {}
        self._waiting_count: collections.Counter[str] = collections.Counter()
        self._names = itertools.count()
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)
        self.created = 0
        self.retired = 0

    # -- hand-out -------------------------------------------------------------------------------
    def hand_out(self, sid: str, uids: Sequence[int], node: str, demand: Mapping[str, float]) -> Executor | bool | None:
        """One executor for these placements (a batch that travels as one call); False: none can serve them
        (they run as plain pinned tasks); None: they wait here for one (`finished` hands them out later)."""
        shape = shape_of(demand)
        if slots(self.capacity_of(node), shape) < 1:
            return False
        group = (node, shape)
        found = self._free_or_new(group)
        if found is None:
            found = self._own(sid, group)
        if not isinstance(found, Executor) and found is not None:
            return False
        if found is None:
            queue = self._waiting.setdefault(group, {}).setdefault(sid, collections.OrderedDict())
            for uid in uids:
                queue[uid] = (sid, uid, node, "", 0.0, shape)
            self._waiting_count[sid] += len(uids)
            return None
        for uid in uids:
            self._lease(found, sid, uid)
        return found

    def wait(self, sid: str, uid: int, node: str, spill: str, waited: float, demand: Mapping[str, float]) -> None:
        """Record what a waiting placement carries (its spill and wait), for when it is served."""
        shape = shape_of(demand)
        queue = self._waiting.get((node, shape), {}).get(sid)
        if queue is not None and uid in queue:
            queue[uid] = (sid, uid, node, spill, waited, shape)

    def _free_or_new(self, group: tuple[str, Shape]) -> Executor | bool | None:
        """A free executor of the group, else a new one; None: every slot of the shape has one, all busy; False:
        executors of other shapes hold the room (busy ones now drain, and the placement runs as a plain task)."""
        here = self._at.get(group, [])
        if any(e.draining for e in here):
            return False  # the shape yields its room to another on this node: plain tasks until it has drained
        for e in here:
            if e.calls == 0:
                return e
        node, shape = group
        capacity = self.capacity_of(node)
        if len(here) >= slots(capacity, shape):
            return None
        if not self._make_room(node, shape, capacity):
            return False
        name = f"exec-{node[:8]}-{next(self._names)}"
        e = Executor(name, node, shape, self.spawn(name, node, dict(shape)), self.clock())
        self.executors[name] = e
        self._at.setdefault(group, []).append(e)
        self._shapes_at.setdefault(node, set()).add(shape)
        self.created += 1
        self._event(e, "created")
        return e

    def _own(self, sid: str, group: tuple[str, Shape]) -> Executor | None:
        """The submission's own busy executor with the fewest calls, to queue behind its own calls; while others
        wait for the group, only one it has held for less than LEASE_S (then it drains and is handed over)."""
        now, waiters = self.clock(), any(other != sid for other in self._waiting.get(group, ()))
        mine = [
            e
            for e in self._at.get(group, [])
            if e.lessee == sid and not e.draining and not (waiters and now - e.leased_at >= LEASE_S)
        ]
        return min(mine, key=lambda e: e.calls) if mine else None

    def _make_room(self, node: str, shape: Shape, capacity: Mapping[str, float]) -> bool:
        """Room for one more executor of ``shape`` on ``node``: idle ones of other shapes retire now, busy ones
        drain. True when the room is there now."""
        used: dict[str, float] = collections.defaultdict(float)
        others: list[Executor] = []
        for s in list(self._shapes_at.get(node, ())):
            for e in self._at.get((node, s), []):
                for r, v in s:
                    used[r] += v
                if s != shape:
                    others.append(e)
        if all(used[r] + v <= capacity.get(r, 0.0) + 1e-9 for r, v in shape):
            return True
        for e in others:
            if e.calls == 0:
                self._retire(e, "retired")
                for r, v in e.shape:
                    used[r] -= v
            else:
                e.draining = True
            if all(used[r] + v <= capacity.get(r, 0.0) + 1e-9 for r, v in shape):
                return True
        return False

    def room_for_tasks(self, node: str) -> None:
        """Plain tasks go to ``node``: its idle executors retire and its busy ones drain (they retire once their
        calls are done), so the node's room is the tasks' (an executor left holding a slot would keep a plain
        task waiting in Ray for its idle time)."""
        for e in self._on(node):
            if e.calls == 0:
                self._retire(e, "retired")
            else:
                e.draining = True

    def _lease(self, e: Executor, sid: str, uid: int) -> None:
        if e.lessee != sid:
            e.lessee, e.leased_at = sid, self.clock()
        e.calls += 1
        e.uids.add((sid, uid))
        self._by_uid[(sid, uid)] = e

    # -- calls end ------------------------------------------------------------------------------
    def finished(self, sid: str, uids: Iterable[int]) -> list[tuple[Waiting, Executor | bool]]:
        """These calls are over; placements that waited and now have an executor (or must run as tasks)."""
        nodes = set()
        for uid in uids:
            e = self._by_uid.pop((sid, uid), None)
            if e is None:
                continue
            e.uids.discard((sid, uid))
            e.calls -= 1
            if e.calls == 0:
                e.lessee = None
                e.idle_since = self.clock()
                if e.draining:
                    self._retire(e, "retired")
                nodes.add(e.node)
        return self._serve(nodes)

    def _serve(self, nodes: Iterable[str]) -> list[tuple[Waiting, Executor | bool]]:
        """Hand executors of these nodes that can take calls to the placements waiting there: submission by
        submission in the order they began to wait, each taking free (or new) executors and then queueing on its
        own (`_own`); a shape that yields its room sends its waiting placements out as plain tasks."""
        served: list[tuple[Waiting, Executor | bool]] = []
        for node in nodes:
            for group in [g for g in self._waiting if g[0] == node]:
                queues = self._waiting[group]
                for sid in list(queues):
                    queue = queues[sid]
                    while queue:
                        e = self._free_or_new(group)
                        if e is None:
                            e = self._own(sid, group)
                        if e is None:
                            break
                        uid, waiting = queue.popitem(last=False)
                        self._waiting_count[sid] -= 1
                        if isinstance(e, Executor):
                            self._lease(e, sid, uid)
                        served.append((waiting, e))
                    if not queue:
                        del queues[sid]
                if not queues:
                    del self._waiting[group]
        return served

    def lost(self, name: str) -> None:
        """A driver saw the executor's actor die: it is dropped (its calls were lost with it, and are retried)."""
        e = self.executors.get(name)
        if e is not None:
            self._retire(e, "lost")

    def node_gone(self, node: str) -> list[Waiting]:
        """A node left: its executors are dropped; the placements that waited for them go out without one."""
        for e in self._on(node):
            self._retire(e, "lost")
        released: list[Waiting] = []
        for group in [g for g in self._waiting if g[0] == node]:
            for sid, queue in self._waiting.pop(group).items():
                self._waiting_count[sid] -= len(queue)
                released.extend(queue.values())
        return released

    def drop_submission(self, sid: str) -> list[tuple[Waiting, Executor | bool]]:
        """A submission ended: its calls no longer hold executors, its waiting placements are dropped."""
        for queues in self._waiting.values():
            queues.pop(sid, None)
        self._waiting = {g: q for g, q in self._waiting.items() if q}
        self._waiting_count.pop(sid, None)
        uids = [uid for (s, uid) in self._by_uid if s == sid]
        return self.finished(sid, uids)

    def retire_idle(self, in_use: bool = True) -> int:
        """Retire executors with no call for ``idle_s`` (for UNUSED_IDLE_S when no submission is ``in_use``)."""
        now = self.clock()
        limit = self.idle_s if in_use else min(self.idle_s, UNUSED_IDLE_S)
        idle = [e for e in self.executors.values() if e.calls == 0 and now - e.idle_since >= limit]
        for e in idle:
            self._retire(e, "retired")
        return len(idle)

    def _retire(self, e: Executor, why: str) -> None:
        self.executors.pop(e.name, None)
        group = self._at.get((e.node, e.shape), [])
        if e in group:
            group.remove(e)
            if not group:
                del self._at[(e.node, e.shape)]
                shapes = self._shapes_at.get(e.node, set())
                shapes.discard(e.shape)
                if not shapes:
                    self._shapes_at.pop(e.node, None)
        for key in e.uids:
            self._by_uid.pop(key, None)
        e.uids.clear()
        self.retired += 1
        self._event(e, why)
        self.kill(e.handle)

    def _on(self, node: str) -> list[Executor]:
        return [e for shape in self._shapes_at.get(node, ()) for e in self._at.get((node, shape), [])]

    # -- reading --------------------------------------------------------------------------------
    def waiting(self, sid: str) -> int:
        """Placements of this submission waiting for an executor."""
        return self._waiting_count.get(sid, 0)

    def status(self) -> list[dict[str, Any]]:
        """Every executor: name, node, demand, calls under way, the submission it serves."""
        return [
            {"name": e.name, "node": e.node, "demand": dict(e.shape), "calls": e.calls, "submission": e.lessee}
            for e in sorted(self.executors.values(), key=lambda e: (e.node, e.name))
        ]

    def _event(self, e: Executor, what: str) -> None:
        self.events.append({"executor": e.name, "node": e.node, "event": what, "at": time.time()})
