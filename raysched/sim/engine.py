"""The driver loop of `raysched submit` on a virtual clock, around a real `PlacementBrain`.

What is modelled, and how it mirrors raysched.driver.loop and raysched.brain.client (the rules both
follow, the window, the poll and the retries of lost attempts, are `raysched.driver.rules` itself):

* **Window.** Tasks are drawn in task_id order while fewer than the window are
  held (``--max-inflight`` of the recorded run, else ``2 x cluster CPUs x
  overcommit``, 64 to 100,000).
* **Brain calls.** One ``place(sid, finished, requests, pacing)`` in flight at a
  time, carrying the finishes and new tasks gathered since the last; the brain
  decides at the call's virtual time. The answer is back one dispatch time
  later, and the tasks it placed reach their nodes then ("a task never starts
  before its placement plus the dispatch time"). As the runner does, the
  driver calls when it has news, polls every 50 ms while tasks wait at the
  brain, and while every slot has work calls at most every
  ``Pacer.call_interval()``.
* **Pacing.** A real `Pacer` sees every task's run time and every round trip,
  and sets the brain's admission (``overcommit``), the batch size and the window.
  The round trip it hears is the mean one the recorded runner's pacer heard
  (``DriverModel.pacing_gap_s``: time between calls, the brain's answer, a
  finish noticed; the sidecar's ``pacing``); for a run recorded without it, the
  simulated time between calls plus the dispatch time.
* **Notice.** The driver notices a finish ``notice_s`` after it (recorded: its
  wait on Ray's results); only then does the pacer hear the task's time and
  the next brain call carry the finish. The node's room is free at once.
* **Nodes.** Each node runs what fits its capacity; work placed beyond that
  (admitted by the brain's overcommit) waits in the node's queue, one FIFO per
  demand, and starts the instant room frees (as Ray's raylet starts a queued
  task). A batch of tiny tasks takes one slot and runs its tasks one after another.
* **Workers.** A node runs each Ray task in one of its worker processes: a
  worker that finishes takes the next task queued at its node, a task that
  finds several idle workers gets the one that went idle last (as Ray reuses
  leases and idle workers; raysched.sim.workers reads the same from a trace).
  A worker's first task starts no earlier than the worker is up (the recorded
  start-up at the beginning of a run, ``DriverModel.startup``, counted from the
  simulated run's first start as the recording counts it from its own; a
  worker the recording did not show on a node it did is up when that node's
  last recorded worker was).
* **Dispatch capacity.** Ray pays for every Ray task it starts and finishes
  (submission, lease, reply): a worker takes its next queued task
  ``turnaround_s`` after its previous one finished (per node: each worker), and
  the driver starts at most one Ray task every ``start_gap_s`` (per driver: the
  cluster's rate of starts). Both are per Ray task, so a batch of tiny tasks
  pays them once (``--batch``).
* **Cache** (optional): see raysched.sim.cache; one per node, or one per
  worker process (``CacheModel.scope``).
* **Churn.** A killed node loses what runs or waits there: each attempt gets a
  ``retried`` row and goes back to the brain as attempt + 1 (as often as the
  runner allows, `raysched.driver.rules.retry_lost`); the brain learns of the
  change as Ray's membership would tell it.

Time is virtual: nothing sleeps, and the run is a pure function of its inputs.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raysched.brain.actor import PlacementBrain
from raysched.brain.state import Placement, PolicyError
from raysched.core.numbers import EPS
from raysched.core.view import DEFAULT_OVERCOMMIT
from raysched.driver import rules
from raysched.driver.pacing import Pacer
from raysched.policies import Policy
from raysched.results.schema import Status
from raysched.sim import SimInputError
from raysched.sim.cache import NodeCache
from raysched.sim.record import SPILL_CODE, Recorder

__all__ = ["AddAt", "CacheModel", "DriverModel", "KillAt", "Simulation", "SimulationStats"]

# With nothing running and nothing about to change, tasks still waiting after this long never will.
STUCK_S = 60.0
SUBMISSION = "simulation"
_FINISH, _ANSWER, _KILL, _ADD, _WAKE, _NOTICE = range(6)

Capacity = Mapping[str, float]


@dataclass(frozen=True)
class DriverModel:
    """How the simulated driver talks to the brain and Ray."""

    dispatch_s: float  # placement to start, for a task whose node has room; also the brain call's round trip
    overcommit: float | None = None  # fixed admission (the recorded --overcommit); None: the Pacer's
    batch: int | None = None  # fixed batch size (the recorded --batch); None: the Pacer's
    max_inflight: int | None = None  # fixed window (the recorded --max-inflight); None: as the runner sizes it
    turnaround_s: float = 0.0  # a worker's finish to the start of the next task waiting for it
    start_gap_s: float = 0.0  # the driver starts at most one Ray task per this many seconds (0: no limit)
    startup: Mapping[str, Sequence[float]] = field(default_factory=dict)  # node -> when each worker is up
    startup_default: float = 0.0  # when a worker the startup map does not list is up
    notice_s: float = 0.0  # a finish to the driver noticing it (recorded; the brain hears of it at the next call)
    pacing_gap_s: float | None = None  # the mean round trip the recorded runner's Pacer heard; None: the
    #   simulated time between calls plus the dispatch time


@dataclass(frozen=True)
class CacheModel:
    """Each node keeps its last ``keys`` keys; a task whose key is not there takes ``miss_s`` longer."""

    keys: int
    miss_s: float
    scope: str = "node"  # "node": one cache per node; "worker": one per worker process


@dataclass(frozen=True)
class KillAt:
    at: float
    node: str | None  # None: the busiest live node at that moment


@dataclass(frozen=True)
class AddAt:
    at: float
    nodes: tuple[tuple[str, Capacity], ...]


@dataclass
class SimulationStats:
    """What the run cost the brain, and the simulator's own speed."""

    decisions: int = 0
    calls: int = 0
    wall_s: float = 0.0
    virtual_s: float = 0.0
    keys_moved: int | None = None
    killed: list[tuple[float, str]] = field(default_factory=list)  # (virtual second, node)

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.wall_s if self.wall_s > 0 else math.nan


class _Worker:
    """One worker process of a node: when it can start its next task, and its own cache (worker scope)."""

    __slots__ = ("cache", "ready_at")

    def __init__(self, ready_at: float, cache: NodeCache | None) -> None:
        self.ready_at = ready_at
        self.cache = cache


class _Node:
    __slots__ = (
        "alive",
        "cache",
        "cache_model",
        "capacity",
        "free",
        "idle",
        "index",
        "node_id",
        "queues",
        "running",
        "startup",
        "startup_default",
        "workers",
    )

    def __init__(
        self,
        index: int,
        node_id: str,
        capacity: Capacity,
        cache: CacheModel | None,
        startup: Sequence[float] = (),
        startup_default: float = 0.0,
    ) -> None:
        self.index = index
        self.node_id = node_id
        self.capacity = dict(capacity)
        self.free = dict(capacity)
        self.queues: dict[int, deque[_Unit]] = {}  # demand code -> units waiting for room, in arrival order
        self.running: dict[_Unit, None] = {}  # insertion-ordered (a set's order would vary between runs)
        self.alive = True
        self.cache_model = cache
        self.cache = NodeCache(cache.keys) if cache is not None and cache.scope == "node" else None
        self.startup, self.startup_default = startup, startup_default
        self.workers = 0
        self.idle: list[_Worker] = []  # the worker that went idle last on top

    def take_worker(self, origin: float) -> _Worker:
        """The idle worker that went idle last, else a new one (up when the start-up says, after ``origin``)."""
        if self.idle:
            return self.idle.pop()
        k, self.workers = self.workers, self.workers + 1
        startup = self.startup
        ready = origin + (startup[min(k, len(startup) - 1)] if startup else self.startup_default)
        model = self.cache_model
        own = NodeCache(model.keys) if model is not None and model.scope == "worker" else None
        return _Worker(ready, own)

    @property
    def work(self) -> int:
        return len(self.running) + sum(len(q) for q in self.queues.values())


class _Unit:
    """What one Ray task carries: one task, or a batch of tiny ones for the same node and demand."""

    __slots__ = ("alive", "code", "node", "positions", "worker")

    def __init__(self, node: _Node, code: int, positions: list[int]) -> None:
        self.node = node
        self.code = code
        self.positions = positions
        self.alive = True
        self.worker: _Worker | None = None


class Simulation:
    """One policy over one trace on one simulated cluster."""

    def __init__(
        self,
        *,
        keys: np.ndarray,
        demand_codes: np.ndarray,
        demands: Sequence[Mapping[str, float]],
        base_s: np.ndarray,
        policy: Policy,
        policy_name: str,
        nodes: Mapping[str, Capacity],
        driver: DriverModel,
        cache: CacheModel | None,
        recorder: Recorder,
        kills: Sequence[KillAt] = (),
        adds: Sequence[AddAt] = (),
    ) -> None:
        self.keys = keys.tolist()
        self.codes = demand_codes.tolist()
        self.demands = [dict(d) for d in demands]
        self.needs = [[(r, a) for r, a in d.items() if a > 0] for d in self.demands]
        self.base_s = base_s.tolist()
        self.policy = policy
        self.policy_name = policy_name
        self.driver = driver
        self.cache = cache
        self.rec = recorder
        self.pacer = Pacer(driver.overcommit, driver.batch)
        self.nodes: dict[str, _Node] = {}
        for node_id, capacity in nodes.items():
            self._new_node(node_id, capacity)
        self.cluster_cpus = sum(n.capacity.get("CPU", 0.0) for n in self.nodes.values())
        self.now = 0.0
        self.next_start = 0.0  # the driver's next turn to start a Ray task (dispatch capacity)
        self.origin: float | None = None  # the first start: worker start-up counts from it
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = itertools.count()
        for kill in kills:
            self._push(kill.at, _KILL, kill)
        for add in adds:
            self._push(add.at, _ADD, add)
        self.membership_pending = len(kills) + len(adds)
        self.brain = PlacementBrain(clock=lambda: self.now, expiry_s=math.inf)
        self.total = len(self.keys)
        self.next_pos = 0
        self.held = 0
        self.to_send: list[int] = []
        self.finished: list[int] = []
        self.at_brain = 0
        self.units_out = 0  # units dispatched and not finished (the runner's Ray refs in flight)
        self.in_flight = False
        self.calls = 0
        self.noticed_a_finish = False
        self.calls_after_first_finish = 0  # as the runner counts them (rules.paces)
        self.last_sent = 0.0
        self.wakes: set[float] = set()
        self.last_progress = 0.0
        self.stuck_s = STUCK_S + 2 * float(getattr(policy, "locality_wait_s", 0.0) or 0.0)
        self.lost_attempts: dict[int, int] = {}  # task -> attempts lost with their nodes (few tasks)
        self.stats = SimulationStats()

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> SimulationStats:
        """Run to the last task; the brain's counters and the simulator's speed."""
        started = time.perf_counter()
        brain = self.brain
        brain.sync_nodes(self._live_capacities())
        brain.register(
            SUBMISSION,
            self.policy,
            {"run_id": self.rec.run_id, "policy": self.policy_name},
            (),
            (),
            self.driver.overcommit or DEFAULT_OVERCOMMIT,
        )
        handlers: dict[int, Callable[[Any], None]] = {
            _FINISH: self._on_finish,
            _ANSWER: self._on_answer,
            _KILL: self._on_kill,
            _ADD: self._on_add,
            _WAKE: self._on_wake,
            _NOTICE: self._on_notice,
        }
        heap = self.heap
        self._fill()
        self._maybe_send()
        while not self._done():
            if not heap:
                self._cancel_waiting()
                break
            now = heap[0][0]
            self.now = now
            while heap and heap[0][0] <= now:
                _, _, kind, payload = heapq.heappop(heap)
                handlers[kind](payload)
            self._fill()
            if self.units_out == 0 and self._stuck():
                self._cancel_waiting()
                break
            self._maybe_send()
        final = brain.unregister(SUBMISSION)
        self.stats.decisions = brain.decisions
        self.stats.calls = self.calls
        self.stats.keys_moved = final.get("keys_moved")
        self.stats.virtual_s = self.now
        self.stats.wall_s = time.perf_counter() - started
        return self.stats

    def _done(self) -> bool:
        return self.next_pos >= self.total and self.held == 0 and not self.in_flight

    def _stuck(self) -> bool:
        """Tasks wait at the brain, nothing runs, and nothing can change: no live node can ever take them."""
        return (
            self.units_out == 0
            and not self.in_flight
            and self.membership_pending == 0
            and not self.to_send
            and self.now - self.last_progress > self.stuck_s
        )

    def _push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.heap, (at, next(self.seq), kind, payload))

    def _window(self) -> int:
        return rules.window(self.cluster_cpus, self.pacer.overcommit(), self.driver.max_inflight)

    def _fill(self) -> None:
        """Draw tasks while fewer than the window are held (each is submitted now)."""
        if self.next_pos >= self.total:
            return
        room = min(self._window() - self.held, self.total - self.next_pos)
        if room <= 0:
            return
        first = self.next_pos
        self.next_pos += room
        self.held += room
        self.rec.drawn(first, self.next_pos, self.now)
        self.to_send.extend(range(first, self.next_pos))

    # -- the brain ------------------------------------------------------------------------------
    def _maybe_send(self) -> None:
        """The runner's rule: call when there is news (or to poll), not more often than the pacing allows.

        Times are compared as ``now >= last_sent + wait`` (the very sum a wake-up is scheduled at), never as
        ``now - last_sent >= wait``, which rounding could keep false at the wake-up itself.
        """
        if self.in_flight:
            return
        poll_at = self.last_sent + rules.POLL_S
        polling = self.at_brain > 0 and self.now >= poll_at
        if not (self.to_send or self.finished or polling):
            if self.at_brain > 0:
                self._wake(poll_at)
            return
        call_at = self.last_sent + self.pacer.call_interval()
        if self.now < call_at and self.units_out >= self.cluster_cpus:
            self._wake(call_at)
            return
        demands, codes, keys = self.demands, self.codes, self.keys
        requests = [(pos, demands[codes[pos]], keys[pos]) for pos in self.to_send]
        try:
            answer = self.brain.place(SUBMISSION, self.finished, requests, self.pacer.stats())
        except PolicyError as err:
            raise SimInputError(f"policy error: {err}") from None
        cycle = self.now - self.last_sent if self.calls else 0.0
        self.calls += 1
        if self.noticed_a_finish:
            self.calls_after_first_finish += 1
        self.last_sent = self.now
        self.in_flight = True
        self.at_brain += len(requests)
        self.to_send, self.finished = [], []
        self._push(self.now + self.driver.dispatch_s, _ANSWER, (answer, cycle))

    def _wake(self, at: float) -> None:
        if at not in self.wakes:
            self.wakes.add(at)
            self._push(at, _WAKE, at)

    def _on_wake(self, at: float) -> None:
        self.wakes.discard(at)

    def _on_answer(self, payload: tuple[Placement, float]) -> None:
        """Dispatch what the brain placed (batched per node and demand); record what it found infeasible."""
        answer, cycle = payload
        self.in_flight = False
        if rules.paces(self.calls_after_first_finish):
            recorded = self.driver.pacing_gap_s
            self.pacer.gap(min(cycle, 1.0) + self.driver.dispatch_s if recorded is None else recorded)
        rec = self.rec
        for pos, message in answer.infeasible:
            rec.closed(pos, Status.INFEASIBLE, f"InfeasibleError: {message}")
            self.held -= 1
        self.at_brain -= len(answer.infeasible) + len(answer.placed)
        groups: dict[tuple[str, int], list[int]] = {}
        codes = self.codes
        spill_code, spills, waits = SPILL_CODE, rec.spill, rec.brain_wait
        for pos, node_id, spill, waited in answer.placed:  # the hot loop: plain array writes
            if spill:
                spills[pos] = spill_code[spill]
            waits[pos] = waited
            group = (node_id, codes[pos])
            if group in groups:
                groups[group].append(pos)
            else:
                groups[group] = [pos]
        size = max(1, self.pacer.batch())
        touched: dict[_Node, None] = {}
        for (node_id, code), positions in groups.items():
            node = self.nodes[node_id]
            if not node.alive:  # placed on a node that died before the task reached it
                self._lose(node, positions, "TaskUnschedulableError: the node died before the task reached it")
                continue
            queue = node.queues.get(code)
            if queue is None:
                queue = node.queues[code] = deque()
            if size == 1:
                queue.extend(_Unit(node, code, [pos]) for pos in positions)
            else:
                queue.extend(_Unit(node, code, positions[i : i + size]) for i in range(0, len(positions), size))
            self.units_out += -(-len(positions) // size)
            touched[node] = None
        for node in touched:
            self._start_queued(node)

    # -- nodes ------------------------------------------------------------------------------------
    def _start_queued(self, node: _Node) -> None:
        """Start every queued unit that fits the node's free capacity, FIFO per demand."""
        free = node.free
        for code, queue in node.queues.items():
            need = self.needs[code]
            while queue:
                for r, a in need:
                    if free.get(r, 0.0) + EPS < a:
                        break
                else:
                    unit = queue.popleft()
                    for r, a in need:
                        free[r] -= a
                    self._start(unit)
                    continue
                break

    def _start(self, unit: _Unit) -> None:
        node = unit.node
        if self.origin is None:
            self.origin = self.now
        worker = unit.worker = node.take_worker(self.origin)
        t = max(self.now, worker.ready_at, self.next_start)
        if self.driver.start_gap_s > 0:
            self.next_start = t + self.driver.start_gap_s
        cache = node.cache if worker.cache is None else worker.cache
        rec, base, keys = self.rec, self.base_s, self.keys
        miss_s = self.cache.miss_s if self.cache is not None else 0.0
        for pos in unit.positions:
            run = base[pos]
            if cache is not None:
                hit = cache.lookup(keys[pos], t, miss_s)
                rec.hit[pos] = hit
                if not hit:
                    run += miss_s
            rec.started[pos] = t
            t += run
            rec.finished[pos] = t
        node.running[unit] = None
        self.last_progress = self.now
        self._push(t, _FINISH, unit)

    def _on_finish(self, unit: _Unit) -> None:
        if not unit.alive:
            return  # its node died first
        node = unit.node
        free = node.free
        for r, a in self.needs[unit.code]:
            free[r] += a
        del node.running[unit]
        worker = unit.worker
        if worker is not None:
            worker.ready_at = self.now + self.driver.turnaround_s
            node.idle.append(worker)
        nodes, index = self.rec.node, node.index
        for pos in unit.positions:  # ended ok: where it ran
            nodes[pos] = index
        if self.driver.notice_s > 0:
            self._push(self.now + self.driver.notice_s, _NOTICE, unit)
        else:
            self._on_notice(unit)
        self._start_queued(node)

    def _on_notice(self, unit: _Unit) -> None:
        """The driver notices a finish (``notice_s`` after it): the pacer hears its time, the brain is told next."""
        self.units_out -= 1
        self.noticed_a_finish = True
        rec, task_ran = self.rec, self.pacer.task_ran
        started, finished = rec.started, rec.finished
        for pos in unit.positions:
            task_ran(finished[pos] - started[pos])
        self.finished.extend(unit.positions)
        self.held -= len(unit.positions)

    # -- churn ------------------------------------------------------------------------------------
    def _new_node(self, node_id: str, capacity: Capacity) -> _Node:
        startup = self.driver.startup.get(node_id, ())
        node = _Node(self.rec.node_index(node_id), node_id, capacity, self.cache, startup, self.driver.startup_default)
        self.nodes[node_id] = node
        return node

    def _live_capacities(self) -> dict[str, dict[str, float]]:
        return {n.node_id: n.capacity for n in self.nodes.values() if n.alive}

    def _on_kill(self, kill: KillAt) -> None:
        self.membership_pending -= 1
        live = [n for n in self.nodes.values() if n.alive]
        if kill.node is not None:
            node = self.nodes.get(kill.node)
            if node is None or not node.alive:
                return  # already gone (killed twice, or added later than this kill)
        elif live:
            node = min(live, key=lambda n: (-n.work, n.node_id))
        else:
            return
        node.alive = False
        self.stats.killed.append((self.now, node.node_id))
        lost = list(node.running) + [u for q in node.queues.values() for u in q]
        node.running.clear()
        node.queues.clear()
        for unit in lost:
            unit.alive = False
            self.units_out -= 1
            self._lose(
                node,
                unit.positions,
                f"NodeDiedError: node {node.node_id} was removed at virtual second {self.now:g} (--kill-node)",
            )
        self.brain.sync_nodes(self._live_capacities())
        self.last_progress = self.now

    def _lose(self, node: _Node, positions: list[int], error: str) -> None:
        """Attempts lost with a node: a retried row each, and a new attempt through the brain (as the runner)."""
        rec, lost = self.rec, self.lost_attempts
        for pos in positions:
            lost[pos] = lost.get(pos, 0) + 1
            retry = rules.retry_lost(lost[pos])
            rec.lost(pos, node.index, error, retry, self.now)
            if retry:
                self.to_send.append(pos)
            else:
                self.held -= 1
        self.finished.extend(positions)  # releases the brain's ledger entries (the node is gone from its view)

    def _on_add(self, add: AddAt) -> None:
        self.membership_pending -= 1
        for node_id, capacity in add.nodes:
            self._new_node(node_id, capacity)
        self.brain.sync_nodes(self._live_capacities())
        self.last_progress = self.now

    def _cancel_waiting(self) -> None:
        for pos in self.rec.unfinished(self.next_pos):  # nothing runs: all of them wait at the brain
            self.rec.closed(pos, Status.CANCELLED, "Cancelled: no live node could hold it when the simulation ended")
            self.held -= 1
        self.at_brain = 0
