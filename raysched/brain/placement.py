"""The placement brain: one view of the cluster, every submission's policy, and their waiting tasks.

A plain class (tested without Ray); `brain_handle` runs it as the detached
named actor ``raysched-brain`` in namespace ``raysched``, shared by every
submission on the cluster, so each sees the others' load. Drivers talk to it
only through `raysched.brain.client.BrainClient`.

**Late binding** (as Sparrow does). A driver sends each task once. The brain
places it at once if its policy finds room, and otherwise keeps it: parked
for its home node (hash, with the locality wait of delay scheduling) or for
room anywhere (the other policies). Parked tasks are asked about again only
when something they wait for changes: room on their home, room anywhere for
their demand, the end of their locality wait, a membership change. So waiting
costs no decisions, and one brain serves many drivers.

**Rounds.** Every call releases the caller's finished tasks, takes its new
tasks, then runs one round over *all* submissions, interleaving them one task
at a time, so room that one driver frees is shared fairly. Placements wait in
each submission's outbox until its driver's next call.

**Admission.** A node may hold reserved demand up to ``capacity x
overcommit`` of the submission being placed: running work plus a short queue
at the node, sized by each driver from its own round trip and task times.
"""

from __future__ import annotations

import collections
import heapq
import inspect
import itertools
import logging
import math
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raysched.brain.metrics import BrainMetrics, NoMetrics
from raysched.brain.node_health import unreachable_raylets
from raysched.cluster import NAMESPACE
from raysched.core.view import ResourceView, check_demand
from raysched.policies import Decision, InfeasibleError, Policy, TaskDemand, check_feasible

log = logging.getLogger(__name__)

BRAIN_NAME = "raysched-brain"
# A submission that has not called (or sent a heartbeat) for this long is presumed
# dead and its reservations are dropped; drivers heartbeat every HEARTBEAT_S from a thread.
SUBMISSION_EXPIRY_S = 60.0
HEARTBEAT_S = 5.0
# A node reported dead (or stuck) by a driver stays out of the view until Ray
# agrees it is dead, or for this long if Ray keeps reporting it alive (a spurious
# report must not exclude a live node forever). Ray's default health checks
# declare a dead node within about 15-18 s, well inside this.
CONDEMN_GRACE_S = 30.0
# Ray hands a node's worker to another job at least every lease turn when several jobs queue work there (its
# worker_lease_timeout_milliseconds, 500 ms by default), and a job whose queue there runs dry ends its turn early.
# While several submissions share the nodes, each keeps SHARED_QUEUE_S of its own work queued per slot. Measured
# with 4 drivers of 10 ms tasks on 4 x 2 CPUs (steady state over plain Ray): 0.5 s 0.64x, 1 s 0.76x, 2 s 0.82x.
LEASE_TURN_S = 0.5
SHARED_QUEUE_S = 4 * LEASE_TURN_S
MAX_SHARED_DEPTH = 256.0  # tasks per slot one submission may ask for on that account
# Work stealing: while a slot idles, a node's queue is too deep once its last task would wait for the node longer
# than this share of the locality wait (expected wait = tasks queued / slots x median task time). On 100,000
# Zipf-keyed tasks over 1,000 simulated nodes, hash finished 4% after random at 1.0, and 2% before it (with 1.9x
# its cache hits) at 0.25.
DEEP_QUEUE_SHARE_OF_WAIT = 0.25
KEY_SCAN = 16  # tasks looked at from the end of a deep queue for a key that has not run yet
HOT_KEYS_SHOWN = 10  # hot keys listed by status and the run's summary
_SKIPPED_RESOURCES = ("object_store_memory",)
_SKIPPED_PREFIXES = ("node:", "accelerator_type:")

Capacity = Mapping[str, float]
# (uid, resource demand, key) of a task to place
Request = tuple[int, Mapping[str, float], str]
# (uid, node id, resource demand, key) of a task already placed, for re-registration
Held = tuple[int, str, Mapping[str, float], str]
# (uid, node id, spill reason, seconds it waited in the brain) of a placement
Placed = tuple[int, str, str, float]


# Waiting tasks by uid, in arrival order (a task that stays after being taken from the head goes back there).
Queue = collections.OrderedDict


class PolicyError(ValueError):
    """A policy raised, or answered something that cannot be honoured (a dead node, a node without room)."""


class UnknownSubmission(LookupError):
    """The brain does not know this submission (it restarted, or the submission expired)."""


@dataclass
class Placement:
    """The brain's answer to one call: placements for this submission, errors for impossible tasks."""

    placed: list[Placed] = field(default_factory=list)
    infeasible: list[tuple[int, str]] = field(default_factory=list)
    waiting: int = 0
    brain_id: str = ""
    depth: float | None = None  # while nodes are shared: the queue depth kept for this submission (its window)


@dataclass(eq=False)
class _Waiting:
    """A task the brain holds for a submission until it can place it."""

    uid: int
    task: TaskDemand
    arrived: float
    since: float = 0.0  # when it started waiting for its current home (the locality wait's clock)
    home: str | None = None  # the node it waits for, if any
    counted: bool = False  # assigned to ``home`` (counted in view.parked), or only deferred for it
    last_home: str | None = None  # the node it was last assigned to (its assignment, kept on a retry)
    ticket: int = 0  # bumped whenever it moves, so its stale locality-wait timers are skipped
    overdue: bool = False  # its locality wait is over
    retry: bool = False  # taken from the head of a queue: if it stays, it goes back to the head
    seen_round: int = -1  # the last round that decided it
    queue: Queue | None = None  # the one queue that holds it now (None while being decided)
    group: Any = None  # that queue's name: a node id, or a demand signature (waiting for room anywhere)
    offer: str | None = None  # a node with a free slot offered to it (work conservation), while it is decided
    declined: bool = False  # its policy declined a free slot: it waits for its home, without a locality timer


@dataclass(eq=False)
class _Submission:
    policy: Policy
    info: dict[str, Any]
    overcommit: float = 2.0
    adaptive: bool = False  # its depth comes from the driver's pacing (added up with others'), not a fixed --overcommit
    task_s: float | None = None  # its tasks' median run time, as its driver measured it
    ledger: dict[int, tuple[str, Mapping[str, float], str]] = field(default_factory=dict)
    waiting: dict[int, _Waiting] = field(default_factory=dict)
    # Every queue below holds live waiting tasks only, each task in at most one of them (uid -> task, in
    # arrival order): a task that is decided, placed, moved or withdrawn leaves it at once, in O(1).
    ready: Queue = field(default_factory=Queue)  # to decide in the next round
    at_node: dict[str, Queue] = field(default_factory=dict)  # node -> tasks assigned to it
    deferred_at: dict[str, Queue] = field(default_factory=dict)  # node -> tasks at its bound
    anywhere: dict[Any, Queue] = field(default_factory=dict)  # demand signature (or uid) -> tasks
    by_key: dict[tuple[str, str], dict[int, _Waiting]] = field(default_factory=dict)  # (node, key) -> its tasks there
    # Locality-wait timers (due, seq, task, ticket): a task re-parked leaves a stale timer behind, skipped when
    # popped; the heap is rebuilt from live timers whenever it holds 64 more than the waiting tasks.
    expiries: list = field(default_factory=list)
    outbox: list[Placed] = field(default_factory=list)
    infeasible: list[tuple[int, str]] = field(default_factory=list)
    error: PolicyError | None = None
    overdue: dict[int, _Waiting] = field(default_factory=dict)  # past their locality wait (also in a queue)
    deep: dict[str, None] = field(default_factory=dict)  # nodes whose queue outlasts the locality wait
    ripe: dict[int, _Waiting] = field(default_factory=dict)  # own wait over, but no slot idled yet
    placed_last: bool = True  # what the last decision did (read by the candidate feed)
    done: int = 0
    decisions: int = 0
    unknown_finishes: int = 0  # finishes of tasks this brain never placed (or reported twice)
    spills: collections.Counter = field(default_factory=collections.Counter)
    last_seen: float = 0.0

    def __post_init__(self) -> None:
        self.decide: Callable[[TaskDemand, ResourceView], Decision] | None = getattr(self.policy, "decide", None)
        self.assign: Callable[..., Decision | None] | None = getattr(self.policy, "assign", None)
        self.assign_groups = self.assign is not None and "count" in inspect.signature(self.assign).parameters
        self.no_room_means_none = bool(getattr(self.policy, "none_means_no_room", False))
        # A policy that lets a task past its locality wait run on any free slot (work conservation), and
        # hears where it went; a policy without the flag is asked again and decides itself.
        self.work_conserving = bool(getattr(self.policy, "work_conserving", False))
        # ...and one that says it is not (hash's pure ring) never leaves its home: no locality timers at all.
        self.stays_home = getattr(self.policy, "work_conserving", None) is False
        self.spilled: Callable[[TaskDemand, str, ResourceView], bool] | None = getattr(self.policy, "spilled", None)
        self.arrived: Callable[[dict[str, int]], None] | None = getattr(self.policy, "arrived", None)
        # A policy may let the brain move a whole key that has not run yet to an idle node (`movable`), and
        # hears where it went (`key_moved`).
        self.movable: Callable[[str], bool] | None = getattr(self.policy, "movable", None)
        self.key_moved: Callable[[str, str], None] | None = getattr(self.policy, "key_moved", None)

    @property
    def locality_wait_s(self) -> float | None:
        wait = getattr(self.policy, "locality_wait_s", None)
        return float(wait) if isinstance(wait, (int, float)) else None


def schedulable_capacity(resources: Mapping[str, float]) -> dict[str, float]:
    """The resources a task can demand, from a node's Ray resource totals."""
    return {
        name: float(amount)
        for name, amount in resources.items()
        if name not in _SKIPPED_RESOURCES and not name.startswith(_SKIPPED_PREFIXES)
    }


def dead_drivers_from_ray() -> set[str]:
    """Job ids of drivers that have ended (Ray's job table), to release their work at once."""
    from ray._private import state

    return {job["JobID"] for job in state.jobs() if job.get("IsDead")}


def live_nodes_from_ray() -> dict[str, dict[str, float]]:
    """Alive nodes and their capacities, as Ray's GCS reports them."""
    import ray

    return {
        node["NodeID"]: schedulable_capacity(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")
    }


class PlacementBrain:
    """Holds the resource view, each submission's policy, ledger and waiting tasks; answers placements."""

    def __init__(
        self,
        nodes_source: Callable[[], Mapping[str, Capacity]] | None = None,
        *,
        dead_drivers: Callable[[], set[str]] | None = None,
        node_probe: Callable[[Iterable[str]], set[str]] | None = None,
        refresh_s: float = 1.0,
        expiry_s: float = SUBMISSION_EXPIRY_S,
        condemn_grace_s: float = CONDEMN_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        metrics: BrainMetrics | None = None,
        export_metrics: bool = False,
    ) -> None:
        self.brain_id = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.view = ResourceView()
        self.clock = clock
        self.expiry_s = expiry_s
        self.condemn_grace_s = condemn_grace_s
        if metrics is None and export_metrics:
            from raysched.brain.metrics import RayMetrics

            metrics = RayMetrics()
        self.metrics: BrainMetrics = metrics or NoMetrics()
        self._subs: dict[str, _Submission] = {}
        self._order: list[str] = []  # round-robin order of submissions
        self._condemned: dict[str, tuple[float, str]] = {}  # node -> (since, reason), before Ray agrees
        self._condemned_capacity: dict[str, dict[str, float]] = {}  # what a condemned node could hold
        self._suspects: dict[str, str] = {}  # node -> reason: reported, waiting for the probe
        self._node_probe = node_probe
        self._wake = threading.Event()
        self._lock = threading.RLock()
        self._nodes_source = nodes_source
        self._dead_drivers = dead_drivers
        self._dirty: set[str] = set()  # nodes whose room or parked tasks changed since the last round
        self._held = 0  # tasks waiting in the brain, over every submission
        self._idle_since: float | None = None  # since when some node has had a free slot (after a round)
        self._shared_depth = 1.0  # admission while several submissions share the nodes (see _admission)
        self._round_no = 0
        self._seq = itertools.count()
        self.decisions = 0
        self.calls = 0  # place() calls answered
        self.busy_s = 0.0  # seconds spent answering them (the brain's own work, without Ray's)
        self.membership_changes: list[tuple[float, str, str]] = []  # (time, "join"|"leave"|"rejoin", node)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if nodes_source is not None:
            self.refresh_nodes()
            self._watcher = threading.Thread(
                target=self._watch, args=(refresh_s,), daemon=True, name="raysched-membership"
            )
            self._watcher.start()

    # -- membership -------------------------------------------------------------------------
    def _watch(self, period_s: float) -> None:
        """Follow Ray's membership until close(); a failing GCS read is logged once per streak."""
        failing = False
        while not self._stop.is_set():
            self._wake.wait(period_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.check_suspects()
                self.refresh_nodes()
                if self._dead_drivers is not None and self._subs:
                    self.release_dead_drivers(self._dead_drivers())
            except Exception as err:  # a GCS hiccup must not kill the watcher; the next round retries
                if not failing:
                    log.warning(
                        "raysched brain: reading cluster membership failed (%s: %s); retrying", type(err).__name__, err
                    )
                failing = True
                continue
            if failing:
                log.warning("raysched brain: reading cluster membership works again")
            failing = False

    def close(self) -> None:
        """Stop the membership watcher (the brain keeps answering calls)."""
        self._stop.set()
        self._wake.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)

    def refresh_nodes(self) -> None:
        """Re-read live nodes from the source and apply the difference."""
        assert self._nodes_source is not None
        self.sync_nodes(self._nodes_source())

    def sync_nodes(self, live: Mapping[str, Capacity]) -> None:
        """Make the view hold exactly the live nodes (minus those reported dead), with their capacities.

        A reported node that Ray still lists as alive after the grace period
        comes back (a spurious report must not exclude a live node forever).
        """
        with self._lock:
            now = self.clock()
            confirmed = [n for n in self._condemned if n not in live]
            for node in confirmed:
                del self._condemned[node]  # Ray agrees: forget the report
                self._condemned_capacity.pop(node, None)
            rejoined = [n for n, (since, _) in self._condemned.items() if now - since >= self.condemn_grace_s]
            for node in rejoined:
                del self._condemned[node]
                self._condemned_capacity.pop(node, None)
            wanted = {node: dict(cap) for node, cap in live.items() if node not in self._condemned}
            changed = bool(confirmed)  # tasks that waited for a reported node learn it is gone for good
            for node in [n for n in self.view.nodes if n not in wanted]:
                self._drop(node, "leave")
                changed = True
            for node, capacity in wanted.items():
                if node not in self.view:
                    self._note_membership("rejoin" if node in rejoined else "join", node)
                    self.view.set_node(node, capacity)
                    self._dirty.add(node)
                    changed = True
                elif dict(self.view.capacity(node)) != capacity:
                    self.view.set_node(node, capacity)
                    self._dirty.add(node)
                    changed = True
            if changed:
                self._membership_changed()

    def release_dead_drivers(self, dead_jobs: set[str]) -> list[str]:
        """End submissions whose driver's Ray job is dead (killed hard: it will never unregister).

        Without this, a killed driver's reservations would hold its nodes until
        the submission expires (a minute), blocking a `--resume` of the same job.
        """
        with self._lock:
            gone = [sid for sid, sub in self._subs.items() if sub.info.get("driver_job") in dead_jobs]
            for sid in gone:
                log.warning("raysched brain: the driver of submission %s is gone; releasing its work", sid)
                self._end(sid)
            return gone

    def report_node_failure(self, node_id: str, reason: str = "lost") -> bool:
        """A driver saw a node lose a task, or make no progress: drop it before health checks agree.

        With a probe (the actor has one: `raysched.brain.node_health`), the report is
        a suspicion: the node is dropped only if its raylet fails its health
        check, within a fraction of a second. Without one it is dropped at once.
        Either way a dropped node that Ray still lists as alive comes back
        after the grace period. True when the report was taken.
        """
        with self._lock:
            if node_id not in self.view:
                return False
            if self._node_probe is None:
                self._condemn(node_id, reason)
                return True
            self._suspects[node_id] = str(reason)[:40]
        self._wake.set()
        return True

    def check_suspects(self) -> list[str]:
        """Probe the reported nodes (outside the lock: a probe may take a second) and drop the dead ones."""
        with self._lock:
            suspects, self._suspects = self._suspects, {}
        if not suspects or self._node_probe is None:
            return []
        try:
            gone = self._node_probe(list(suspects))
        except Exception as err:  # cannot tell: leave the nodes to Ray's own health checks
            log.warning("raysched brain: probing %d reported node(s) failed (%s)", len(suspects), err)
            return []
        dropped = []
        with self._lock:
            for node in sorted(gone):
                if node in suspects and node in self.view:
                    self._condemn(node, suspects[node])
                    dropped.append(node)
        return dropped

    def _condemn(self, node_id: str, reason: str) -> None:
        self._condemned[node_id] = (self.clock(), str(reason)[:40])
        self._condemned_capacity[node_id] = dict(self.view.capacity(node_id))
        self._drop(node_id, "leave")
        self._membership_changed()

    def _drop(self, node: str, kind: str) -> None:
        self.view.remove_node(node)  # its parked counts go with it; the tasks are re-decided
        self._dirty.discard(node)
        self._note_membership(kind, node)

    def _note_membership(self, kind: str, node: str) -> None:
        self.membership_changes.append((time.time(), kind, node))
        del self.membership_changes[:-1000]
        self.metrics.membership(kind)

    def _membership_changed(self) -> None:
        """Nodes came or went: every parked task is asked again (homes may have moved; rare)."""
        for sub in self._subs.values():
            for w in sub.waiting.values():
                if w.counted and w.home is not None and w.home in self.view:
                    self.view.unpark(w.home, w.task.key)
                w.home = w.last_home = w.queue = w.group = None
                w.counted = False
                w.ticket += 1
            sub.ready = Queue()
            for w in sub.waiting.values():
                self._link(sub, w, sub.ready, None)
            sub.at_node.clear()
            sub.deferred_at.clear()
            sub.anywhere.clear()
            sub.by_key.clear()
            sub.expiries.clear()
            sub.overdue.clear()
            sub.ripe.clear()
            sub.deep.clear()

    # -- submissions ------------------------------------------------------------------------
    def register(
        self,
        submission_id: str,
        policy: Policy,
        info: Mapping[str, Any],
        held: Sequence[Held] = (),
        waiting: Sequence[Request] = (),
        overcommit: float = 2.0,
    ) -> dict[str, Any]:
        """Start (or resume after a brain restart) a submission: reserve what it runs, take what it waits for.

        Registering an id that exists first releases everything the old one held.
        """
        if not callable(getattr(policy, "choose", None)):
            raise TypeError("policy must have a choose(task, view) method")
        held_tasks = [(int(uid), str(node), check_demand(demand), str(key)) for uid, node, demand, key in held]
        new = [self._to_waiting(uid, demand, key, 0.0) for uid, demand, key in waiting]
        with self._lock:
            self._end(submission_id)
            now = self.clock()
            sub = _Submission(policy=policy, info=dict(info), overcommit=_check_overcommit(overcommit), last_seen=now)
            for uid, node, demand, key in held_tasks:
                if node in self.view:
                    self.view.reserve(node, demand, key)
                    sub.ledger[uid] = (node, demand, key)
            self._subs[submission_id] = sub
            self._order.append(submission_id)
            self._shared_depth = _shared_depth(self._subs.values())
            self._take(sub, new, now)
            return {"brain_id": self.brain_id}

    def heartbeat(self, submission_id: str) -> bool:
        """Keep a submission alive between calls (sent by its driver's heartbeat thread)."""
        with self._lock:
            sub = self._subs.get(submission_id)
            if sub is None:
                return False
            sub.last_seen = self.clock()
            return True

    def unregister(self, submission_id: str) -> dict[str, Any]:
        """End a submission, releasing whatever it still holds; its final counters."""
        with self._lock:
            sub = self._subs.get(submission_id)
            final = (
                {}
                if sub is None
                else {
                    "decisions": sub.decisions,
                    "done": sub.done,
                    "spills": dict(sub.spills),
                    **_ring_summary(sub.policy),
                }
            )
            self._end(submission_id)
            self.metrics.publish(self, force=True)  # a run's last figures are not left unpublished
            return final

    def _end(self, submission_id: str) -> None:
        sub = self._subs.pop(submission_id, None)
        if sub is None:
            return
        self._order.remove(submission_id)
        self._shared_depth = _shared_depth(self._subs.values())
        for node, demand, key in sub.ledger.values():
            if node in self.view:
                self.view.release(node, demand, key)
                self._dirty.add(node)
        for w in sub.waiting.values():
            if w.counted and w.home is not None and w.home in self.view:
                self.view.unpark(w.home, w.task.key)
        self._held -= len(sub.waiting)

    def _expire_idle(self, now: float) -> None:
        for sid in [s for s, sub in self._subs.items() if now - sub.last_seen > self.expiry_s]:
            log.warning("raysched brain: submission %s sent nothing for %.0f s; releasing its work", sid, self.expiry_s)
            self._end(sid)

    # -- the hot path -----------------------------------------------------------------------
    def place(
        self,
        submission_id: str,
        finished: Iterable[int],
        requests: Sequence[Request],
        pacing: Mapping[str, float] | None = None,
    ) -> Placement:
        """Release finished tasks, take new ones, run a round; answer what this submission can run now.

        Requests are validated before anything changes (a bad one changes
        nothing). A policy that raises or misbehaves marks its own submission
        broken (PolicyError on its calls); other submissions go on.
        """
        new = [self._to_waiting(uid, demand, key, 0.0) for uid, demand, key in requests]
        overcommit = None if not pacing or "overcommit" not in pacing else _check_overcommit(pacing["overcommit"])
        with self._lock:
            started = time.perf_counter()
            now = self.clock()
            self._expire_idle(now)
            sub = self._subs.get(submission_id)
            if sub is None:
                raise UnknownSubmission(submission_id)
            finished = list(finished)
            finishing = set(finished)
            seen: set[int] = set()
            for w in new:
                if (w.uid in sub.ledger and w.uid not in finishing) or w.uid in sub.waiting or w.uid in seen:
                    raise ValueError(f"task {w.uid} is already held by the brain for this submission")
                seen.add(w.uid)
            sub.last_seen = now
            if overcommit is not None:
                if overcommit > sub.overcommit:
                    self._dirty.update(self.view.nodes)  # a deeper queue: room may have appeared everywhere
                sub.overcommit = overcommit
            if pacing and "adaptive" in pacing:
                sub.adaptive = bool(pacing["adaptive"])
            if pacing and "task_p50_s" in pacing:
                sub.task_s = _positive_or_none(pacing["task_p50_s"])
            self._shared_depth = _shared_depth(self._subs.values())
            pace = getattr(sub.policy, "pace", None)
            if pacing and callable(pace):
                try:
                    pace(dict(pacing))
                except Exception as err:
                    self._broken(sub, err)
            self._release(sub, finished)
            if sub.error is None:
                self._take(sub, new, now)
            decisions_before = self.decisions
            self._round(now, first=submission_id)
            if sub.error is not None:
                self._withdraw(sub)  # all or nothing: no placement this driver never hears of stays reserved
                raise sub.error
            answer = Placement(
                placed=sub.outbox,
                infeasible=sub.infeasible,
                waiting=len(sub.waiting),
                brain_id=self.brain_id,
                depth=_shared_share(sub) if len(self._subs) > 1 and sub.adaptive else None,
            )
            sub.outbox, sub.infeasible = [], []
            spent = time.perf_counter() - started
            self.calls += 1
            self.busy_s += spent
            self.metrics.decided(self.decisions - decisions_before, spent)
            self.metrics.publish(self)
            return answer

    def place_packed(self, submission_id: str, payload: bytes) -> Placement:
        """`place` with its arguments pickled by the driver into one blob (cheaper to ship through Ray)."""
        finished, requests, pacing = pickle.loads(payload)
        return self.place(submission_id, finished, requests, pacing)

    def _to_waiting(self, uid: int, demand: Mapping[str, float], key: str, now: float) -> _Waiting:
        """Validate one request (before the lock: a bad request changes nothing)."""
        if isinstance(uid, bool) or not isinstance(uid, int):
            raise ValueError(f"task id must be an integer, got {uid!r}")
        try:
            task = TaskDemand(demand, key)
        except (TypeError, ValueError) as err:
            raise ValueError(f"bad resource demand for task {uid}: {err}") from None
        return _Waiting(uid, task, now)

    def _withdraw(self, sub: _Submission) -> None:
        """Release placements made for ``sub`` that were never delivered to its driver."""
        for uid, node, _spill, _wait in sub.outbox:
            entry = sub.ledger.pop(uid, None)
            if entry is not None and node in self.view:
                self.view.release(node, entry[1], entry[2])
                self._dirty.add(node)
        sub.outbox = []

    def _release(self, sub: _Submission, finished: Iterable[int]) -> None:
        view = self.view
        for uid in finished:
            entry = sub.ledger.pop(uid, None)
            if entry is None:
                sub.unknown_finishes += 1  # never placed by this brain (or reported twice): nothing to release
                continue
            sub.done += 1
            node, demand, key = entry
            if node in view:
                view.release(node, demand, key)
                self._dirty.add(node)

    def _take(self, sub: _Submission, new: list[_Waiting], now: float) -> None:
        """New tasks: infeasible ones answered at once; with a homing policy, each assigned a home.

        The whole batch counts as held work from the start, so the first
        batch of a run sees bounds as generous as the steady state's.
        """
        view = self.view
        feasible = []
        for w in new:
            w.arrived = w.since = now
            try:
                check_feasible(view, w.task.resources)
            except InfeasibleError as err:
                sub.infeasible.append((w.uid, str(err)))
                continue
            sub.waiting[w.uid] = w
            self._held += 1
            feasible.append(w)
        if sub.assign is None or sub.error is not None:
            for w in feasible:
                self._link(sub, w, sub.ready, None)
            return
        groups: dict[str, list[_Waiting]] = {}
        for w in feasible:  # tasks of one key arriving together are assigned as one (the key stays whole)
            groups.setdefault(w.task.key, []).append(w)
        if sub.arrived is not None:
            try:
                sub.arrived({key: len(group) for key, group in groups.items()})
            except Exception as err:
                self._broken(sub, err)
                return
        for group in groups.values():
            first = group[0]
            if len(group) > 1 and sub.assign_groups:
                decision = self._assign(sub, first, len(group))
                if decision is not None:
                    if decision.moved_from is not None:
                        self._move_key(sub, first.task.key, decision.moved_from, decision.waits_for, now)
                    for w in group:
                        self._park(sub, w, decision, now)
                    continue
            for w in group:
                decision = self._assign(sub, w, 1)
                if decision is None:
                    self._link(sub, w, sub.ready, None)
                    continue
                if decision.moved_from is not None:
                    self._move_key(sub, w.task.key, decision.moved_from, decision.waits_for, now)
                self._park(sub, w, decision, now)

    def _assign(self, sub: _Submission, w: _Waiting, count: int) -> Decision | None:
        """The policy's assignment of a new task (or ``count`` of one key); None if it cannot or broke."""
        if sub.error is not None:
            return None
        self._before_policy(sub)
        try:
            assign = sub.assign
            assert assign is not None
            return assign(w.task, self.view, count) if sub.assign_groups else assign(w.task, self.view)
        except Exception as err:
            self._broken(sub, err)
            return None

    def _admission(self, sub: _Submission) -> float:
        """How much a node may hold while placing for ``sub``: with one submission, the depth it asked for.

        With several, the sum of the depths their pacing asked for, each at
        least SHARED_QUEUE_S of its own tasks (see `_shared_share`; fixed
        ``--overcommit`` depths are not added), counted over every
        submission's work: each keeps about the queue its own round trip
        needs at each node. A shallower shared queue lets a driver's queue at a
        node run dry between its brain calls; Ray then hands the node's worker
        lease to another driver's job, whose worker it may first have to start
        (Ray keeps idle workers of other jobs only about a second), and four
        drivers spent most of the machine starting workers (17 tasks/s
        together against plain Ray's 300 on 4 x 2 CPUs).
        """
        return self._shared_depth if len(self._subs) > 1 else sub.overcommit

    def _before_policy(self, sub: _Submission) -> None:
        """The view as this submission's policy must see it: its admission, and the work held unassigned."""
        view = self.view
        view.overcommit = self._admission(sub)
        view.pending = max(0, self._held - view.total_parked - 1)  # minus the task being decided

    # -- rounds ------------------------------------------------------------------------------
    def _delay_clock(self, w: _Waiting, now: float) -> float:
        """How long a task has waited in delay scheduling's sense: only while some node had a free slot."""
        if self._idle_since is None:
            return 0.0
        return max(0.0, now - max(w.since, self._idle_since))

    def _track_idle(self, now: float) -> None:
        """Start (or stop) delay scheduling's clock: while some node has a free slot, waits cost."""
        if self.view.idle_somewhere:
            if self._idle_since is None:
                self._idle_since = now
        else:
            self._idle_since = None

    def _round(self, now: float, first: str | None = None) -> None:
        """Decide what can be placed now, interleaving submissions one task at a time, the caller's first.

        The caller hears of its placements in this very answer; another
        submission only at its next call (a poll, up to 50 ms later). Starting
        with the caller gives the slot its own release freed back to it at
        once; every driver calls as its tasks finish, so over a run the
        submissions still take turns. Work a round creates for itself (a key
        moved to a node with room) gets one more round at once, so it never
        waits for the next call.
        """
        order = self._order
        if first is not None and first in self._subs and len(order) > 1:
            order = [first, *(sid for sid in order if sid != first)]
        for _ in range(3):
            self._round_no += 1
            dirty, self._dirty = self._dirty, set()
            feeds = {sid: self._candidates(self._subs[sid], now, dirty) for sid in order}
            while feeds:
                for sid in list(feeds):
                    sub = self._subs[sid]
                    w = next(feeds[sid], None)
                    if w is None or sub.error is not None:
                        del feeds[sid]
                        continue
                    w.seen_round = self._round_no
                    sub.placed_last = self._decide(sub, w, now)
            if not self._dirty and not any(sub.ready for sub in self._subs.values()):
                break
        for sub in self._subs.values():
            if len(sub.expiries) > len(sub.waiting) + 64:  # stale timers: keep the heap within its live size
                sub.expiries = [e for e in sub.expiries if e[2].ticket == e[3] and e[2].uid in sub.waiting]
                heapq.heapify(sub.expiries)
        self._track_idle(now)

    def _candidates(self, sub: _Submission, now: float, dirty: set[str]) -> Iterator[_Waiting]:
        """The tasks of one submission worth deciding now; a queue stops at its first task that stays.

        Room can only have appeared on ``dirty`` nodes (releases, joins, new
        parks), so a task waiting for room anywhere is asked about again only
        when one of them fits it now. A task past its locality wait is asked
        again only when a node with a free slot could take it (work
        conservation), and then it runs: there or where its policy prefers.
        """
        view = self.view
        roomy = sorted(dirty)

        def room_for(task: TaskDemand) -> bool:
            view.overcommit = self._admission(sub)
            return any(node in view and view.fits_now(node, task.resources) for node in roomy)

        self._expire(sub, now)
        no_room: set[tuple] = set()  # demands that found no room in this round (policies that promise it)
        while sub.ready:  # new tasks, and tasks whose node left
            w = next(iter(sub.ready.values()))
            self._unlink(sub, w)
            if w.task.signature in no_room:
                self._park(sub, w, Decision(None), now)  # an equal demand just found no room: wait unasked
                continue
            yield w
            if not sub.placed_last and sub.no_room_means_none:
                no_room.add(w.task.signature)
        view.overcommit = self._admission(sub)
        for node in roomy:  # homes that may have room: first their assigned tasks, then those deferred
            for queues in (sub.at_node, sub.deferred_at):
                queue = queues.get(node)
                while queue:
                    w = next(iter(queue.values()))
                    if w.seen_round == self._round_no or not view.fits_now(node, w.task.resources):
                        break
                    yield self._unpark(sub, w)
                    if not sub.placed_last:
                        break
                    queue = queues.get(node)
        if roomy:  # tasks waiting for room anywhere
            for group in list(sub.anywhere):
                queue = sub.anywhere.get(group)
                while queue:
                    w = next(iter(queue.values()))
                    if w.seen_round == self._round_no or not room_for(w.task):
                        break
                    self._unlink(sub, w)
                    w.retry = True
                    yield w
                    if not sub.placed_last and sub.no_room_means_none:
                        break
                    queue = sub.anywhere.get(group)
        if (sub.overdue or sub.deep) and view.idle_somewhere:
            yield from self._offers(sub, now)

    def _offers(self, sub: _Submission, now: float) -> Iterator[_Waiting]:
        """Free slots for work waiting at busy nodes (work conservation), cheapest loss of locality first.

        1. A node whose queue holds more than a round of tasks gives a whole
           key that has not run yet to a node with a free slot: no warm state
           is lost, the key keeps one node (the policy agrees, ``movable``).
        2. Overdue tasks, oldest first: once a task's wait is over (counted
           while some slot idled), the first free slot that fits it takes it.
        3. The last tasks of a queue that would wait past a share of the
           locality wait go to free slots at once.
        A demand that finds no free slot stops the search for equal demands in
        this round.
        """
        view = self.view
        full: set[tuple] = set()
        if sub.movable is not None:
            for node in list(sub.deep):
                if not view.idle_somewhere:
                    return
                if self._depth(sub, node) > self._slots(node):  # more than a round queued there
                    self._give_away_a_key(sub, node, now)
        for w in list(sub.overdue.values()):
            if w.seen_round == self._round_no or w.task.signature in full or w.uid not in sub.waiting:
                continue
            free = self._free_slot(sub, w)
            if free is None:
                full.add(w.task.signature)
                if not view.idle_somewhere:
                    return
                continue
            self._unpark(sub, w)
            w.offer = free
            yield w
        for node in list(sub.deep):  # the last tasks of queues deeper than the wait: stolen at once
            queue = sub.deferred_at.get(node) or sub.at_node.get(node)
            while queue and self._depth(sub, node) > self._steal_above(sub, node) and view.idle_somewhere:
                w = next(reversed(queue.values()))
                if w.seen_round == self._round_no or w.task.signature in full:
                    break
                free = self._free_slot(sub, w)
                if free is None:
                    full.add(w.task.signature)
                    break
                if free == node:  # its own node has a free slot: it serves its queue itself
                    break
                self._unpark(sub, w)
                w.offer = free
                yield w
                queue = sub.deferred_at.get(node) or sub.at_node.get(node)

    def _give_away_a_key(self, sub: _Submission, node: str, now: float) -> None:
        """Move one key that has not run yet, whole, from ``node``'s queue to a node with a free slot."""
        assert sub.movable is not None
        depth = self._depth(sub, node)
        for queue in (sub.deferred_at.get(node, Queue()), sub.at_node.get(node, Queue())):
            for w in itertools.islice(reversed(queue.values()), KEY_SCAN):
                key = w.task.key
                tasks = len(sub.by_key.get((node, key), ()))
                if tasks >= depth or not sub.movable(key):
                    continue
                free = self._free_slot(sub, w)
                if free is None or free == node:
                    return
                self._move_key(sub, key, node, free, now)
                if sub.key_moved is not None:
                    sub.key_moved(key, free)
                return

    def _free_slot(self, sub: _Submission, w: _Waiting) -> str | None:
        """A node with a free slot (not just room in its queue) that fits the task now, if any."""
        view = self.view
        view.overcommit = 1.0
        free = view.fitting_nodes(w.task.resources, limit=1)
        view.overcommit = self._admission(sub)
        return free[0] if free else None

    def _expire(self, sub: _Submission, now: float) -> None:
        """Tasks whose locality wait just ended become overdue (delay scheduling's clock runs only while a
        slot idles). They stay queued at their home; `_offers` hands them free slots elsewhere.

        A task waits for its home; the wait counts only from the moment some
        node has a free slot it could have used (waiting while every node is
        busy costs nothing). Tasks whose own wait is over but found no idle node
        yet are kept "ripe" until one appears.
        """
        idle_since = self._idle_since
        wait = sub.locality_wait_s or 0.0
        while sub.expiries and sub.expiries[0][0] <= now:
            _, _, w, ticket = heapq.heappop(sub.expiries)
            if w.ticket != ticket or w.uid not in sub.waiting:
                continue
            if idle_since is None:
                sub.ripe[w.uid] = w
                continue
            due = max(w.since, idle_since) + wait
            if due > now:
                heapq.heappush(sub.expiries, (due, next(self._seq), w, ticket))
                continue
            w.overdue = True
            sub.overdue[w.uid] = w
        if idle_since is not None and sub.ripe and idle_since + wait <= now:
            for w in sub.ripe.values():
                if w.uid in sub.waiting and not w.overdue:
                    w.overdue = True
                    sub.overdue[w.uid] = w
            sub.ripe.clear()

    def _decide(self, sub: _Submission, w: _Waiting, now: float) -> bool:
        """Ask the policy about one task: place it, or park it again. True when placed."""
        view = self.view
        offer, w.offer = w.offer, None
        if not view.could_ever_fit(w.task.resources):  # its nodes left after it arrived
            return self._no_node_left(sub, w, now)
        self._before_policy(sub)
        task = w.task.waited(self._delay_clock(w, now), w.last_home)
        try:
            decision = sub.decide(task, view) if sub.decide is not None else Decision(sub.policy.choose(task, view))
        except Exception as err:
            self._broken(sub, err)
            return False
        self.decisions += 1
        sub.decisions += 1
        node = decision.node
        if decision.moved_from is not None:
            self._move_key(sub, w.task.key, decision.moved_from, node or decision.waits_for, now)
            if offer is None:
                w.since, w.overdue = now, False
                sub.overdue.pop(w.uid, None)
        if node is None and offer is not None:
            if sub.work_conserving and view.fits_now(offer, w.task.resources):
                node, decision = offer, Decision(offer, spill="wait")
            else:  # the policy declined a free slot: the task waits for its home, offered nothing more
                w.overdue, w.declined = False, True
                sub.overdue.pop(w.uid, None)
        if node is None:
            self._park(sub, w, decision, now)
            return False
        if node not in view or not view.fits_now(node, w.task.resources):
            self._broken(
                sub,
                None,
                f"chose {str(node)[:16]!r} for task {w.uid}, which is no live node with room "
                "for it; a policy must return a node where view.fits_now(node, demand) holds, "
                "or None to wait",
            )
            return False
        self._forget(sub, w)
        view.reserve(node, w.task.resources, w.task.key)
        sub.ledger[w.uid] = (node, w.task.resources, w.task.key)
        sub.outbox.append((w.uid, node, decision.spill, now - w.arrived))
        if decision.spill:
            sub.spills[decision.spill] += 1
            home = w.last_home
            if decision.spill == "wait" and sub.spilled is not None and sub.spilled(w.task, node, view) and home:
                self._move_key(sub, w.task.key, home, node, now)  # the key lives there now: its tasks follow
        self.metrics.placed(node)
        return True

    def _forget(self, sub: _Submission, w: _Waiting) -> None:
        """The task leaves the brain's waiting structures (placed, or answered infeasible)."""
        del sub.waiting[w.uid]
        self._held -= 1
        self._unlink(sub, w)
        w.ticket += 1
        sub.overdue.pop(w.uid, None)
        sub.ripe.pop(w.uid, None)

    def _no_node_left(self, sub: _Submission, w: _Waiting, now: float) -> bool:
        """No live node could hold this task any more: wait while a dropped node that could may come back
        (reported, not yet confirmed dead by Ray), else it is infeasible. Never placed: returns False."""
        demand = w.task.resources
        if any(
            all(cap.get(r, 0.0) >= a for r, a in demand.items() if a > 0) for cap in self._condemned_capacity.values()
        ):
            self._park(sub, w, Decision(None), now)  # asked again on the next membership change
            return False
        try:
            check_feasible(self.view, demand)
        except InfeasibleError as err:
            self._forget(sub, w)
            sub.infeasible.append((w.uid, str(err)))
        return False

    def _link(self, sub: _Submission, w: _Waiting, queue: Queue, group: Any, front: bool = False) -> None:
        """Put a task in one queue (at its head when it was taken from there and stays)."""
        queue[w.uid] = w
        if front:
            queue.move_to_end(w.uid, last=False)
        w.queue, w.group = queue, group
        if w.home is not None and queue is not sub.ready:
            sub.by_key.setdefault((w.home, w.task.key), {})[w.uid] = w
            self._depth_changed(sub, w.home)

    def _unlink(self, sub: _Submission, w: _Waiting) -> None:
        """Take a task out of the queue that holds it (and drop the queue once empty)."""
        queue = w.queue
        if queue is None:
            return
        queue.pop(w.uid, None)
        if not queue and w.group is not None:
            for queues in (sub.at_node, sub.deferred_at, sub.anywhere):
                if queues.get(w.group) is queue:
                    del queues[w.group]
        if w.home is not None:
            pair = (w.home, w.task.key)
            same = sub.by_key.get(pair)
            if same is not None:
                same.pop(w.uid, None)
                if not same:
                    del sub.by_key[pair]
            self._depth_changed(sub, w.home)
        w.queue = w.group = None

    def _depth(self, sub: _Submission, node: str) -> int:
        return len(sub.at_node.get(node, ())) + len(sub.deferred_at.get(node, ()))

    def _depth_changed(self, sub: _Submission, node: str) -> None:
        """Track the nodes whose queues for ``sub`` hold more than one round of tasks (one per slot), or more
        than their last task should wait (`_steal_above`): while a slot idles elsewhere, work waits there
        that could run now (`_offers`)."""
        if (
            sub.work_conserving
            and node in self.view
            and self._depth(sub, node) > min(self._slots(node), self._steal_above(sub, node))
        ):
            sub.deep[node] = None
        else:
            sub.deep.pop(node, None)

    def _slots(self, node: str) -> float:
        return max(1.0, self.view.capacity(node).get("CPU", 1.0))

    def _steal_above(self, sub: _Submission, node: str) -> float:
        """Tasks a node's queue may hold before its last one expects to wait past its share of the locality
        wait (expected wait = tasks queued / slots x median task time): beyond, they are stolen."""
        wait, task_s = sub.locality_wait_s, sub.task_s
        if wait is None or not task_s:
            return math.inf
        return max(1.0, self._slots(node) * DEEP_QUEUE_SHARE_OF_WAIT * wait / task_s)

    def _park(self, sub: _Submission, w: _Waiting, decision: Decision, now: float) -> None:
        """Keep a task that cannot run yet, where the next chance to place it will find it."""
        self._unlink(sub, w)
        w.ticket += 1
        front, w.retry = w.retry, False
        home = decision.waits_for if sub.decide is not None or sub.assign is not None else None
        if home is not None and home in self.view:
            w.home, w.counted = home, decision.assigned
            if w.counted:
                self.view.park(home, w.task.key)
            queues = sub.at_node if w.counted else sub.deferred_at
            self._link(sub, w, queues.setdefault(home, Queue()), home, front)
            if not front:
                self._dirty.add(home)
            wait = sub.locality_wait_s
            if wait is not None and not w.overdue and not w.declined and not sub.stays_home:
                heapq.heappush(sub.expiries, (w.since + wait, next(self._seq), w, w.ticket))
            return
        group = w.task.signature if sub.no_room_means_none else w.uid
        self._link(sub, w, sub.anywhere.setdefault(group, Queue()), group, front)

    def _unpark(self, sub: _Submission, w: _Waiting) -> _Waiting:
        """Take a waiting task off its node (to decide it again; it goes back to the head if it stays)."""
        self._unlink(sub, w)
        if w.home is not None:
            if w.counted and w.home in self.view:
                self.view.unpark(w.home, w.task.key)
            w.last_home = w.home if w.counted else None
            w.home, w.counted = None, False
        w.retry = True
        return w

    def _move_key(self, sub: _Submission, key: str, old: str, new: str | None, now: float) -> None:
        """A policy moved a whole key off ``old`` to ``new``: its tasks waiting at ``old`` follow it.

        The policy chose ``new`` with room under its bound for them, so they are
        parked there directly (not decided again), and wait for it afresh.
        Costs the key's tasks at ``old``, nothing else (an index by node and key).
        """
        if new is None or new not in self.view:
            return
        for w in list(sub.by_key.get((old, key), {}).values()):
            counted = w.counted
            self._unpark(sub, w)
            w.retry, w.overdue, w.since = False, False, now
            sub.overdue.pop(w.uid, None)
            sub.ripe.pop(w.uid, None)
            self._park(sub, w, Decision(None, waits_for=new, assigned=counted), now)

    def _broken(self, sub: _Submission, err: BaseException | None, what: str = "") -> None:
        name = sub.info.get("policy", getattr(sub.policy, "name", "?"))
        if err is not None:
            what = f"raised {type(err).__name__}: {err}"
        if sub.error is None:
            sub.error = PolicyError(f"policy {name} {what}")

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A snapshot for `raysched status`: nodes, assigned work, submissions, membership."""
        with self._lock:
            view = self.view
            nodes = [
                {
                    "node_id": node,
                    "alive": True,
                    "capacity": dict(view.capacity(node)),
                    "reserved": dict(view.reserved(node)),
                    "tasks_in_flight": view.tasks_in_flight(node),
                    "tasks_waiting": view.parked(node),
                    "weight": view.weight(node),
                }
                for node in view.nodes
            ]
            now = self.clock()
            submissions = [
                {
                    "submission_id": sid,
                    **sub.info,
                    "in_flight": len(sub.ledger),
                    "waiting": len(sub.waiting),
                    "done": sub.done,
                    "decisions": sub.decisions,
                    "unknown_finishes": sub.unknown_finishes,
                    "overcommit": sub.overcommit,
                    "spills": dict(sub.spills),
                    "idle_s": round(now - sub.last_seen, 1),
                    **_ring_summary(sub.policy),
                }
                for sid, sub in self._subs.items()
            ]
            return {
                "brain_id": self.brain_id,
                "started_at": self.started_at,
                "rss_bytes": _rss_bytes(),
                "decisions": self.decisions,
                "calls": self.calls,
                "busy_s": round(self.busy_s, 3),
                "nodes": nodes,
                "condemned": sorted(self._condemned),
                "suspected": sorted(self._suspects),
                "reported_dead": [
                    {"node_id": n, "reason": reason, "for_s": round(now - since, 1)}
                    for n, (since, reason) in sorted(self._condemned.items())
                ],
                "submissions": submissions,
                "membership_changes": list(self.membership_changes[-20:]),
            }

    def queue_entries(self) -> int:
        """Entries in the brain's queues and timers: within about twice the waiting tasks, however long the run.

        (The indexes beside them, ``by_key``, ``overdue`` and ``ripe``, hold
        only tasks that are waiting: `check_structures` proves it.)
        """
        with self._lock:
            total = 0
            for sub in self._subs.values():
                total += len(sub.ready) + len(sub.expiries)
                for queues in (sub.at_node, sub.deferred_at, sub.anywhere):
                    total += sum(len(q) for q in queues.values())
            return total

    def check_structures(self) -> None:
        """Raise AssertionError unless every waiting structure holds exactly the live waiting tasks (for tests)."""
        with self._lock:
            for sub in self._subs.values():
                queued = [sub.ready, *sub.at_node.values(), *sub.deferred_at.values(), *sub.anywhere.values()]
                uids = [uid for q in queued for uid in q]
                assert sorted(uids) == sorted(sub.waiting), "a waiting task is in no queue, or in two"
                assert all(q for q in queued[1:]), "an empty queue was kept"
                for (node, key), tasks in sub.by_key.items():
                    assert tasks and all(w.home == node and w.task.key == key for w in tasks.values())
                assert sum(len(t) for t in sub.by_key.values()) == sum(
                    len(q) for q in [*sub.at_node.values(), *sub.deferred_at.values()]
                ), "the key index differs from the node queues"
                assert set(sub.overdue) <= set(sub.waiting) and set(sub.ripe) <= set(sub.waiting)
                counted = collections.Counter(w.home for w in sub.waiting.values() if w.counted and w.home)
                assert all(len(sub.at_node.get(n, ())) == c for n, c in counted.items())
                assert len(sub.expiries) <= len(sub.waiting) + 64 + 1

    def waiting_per_submission(self) -> dict[str, int]:
        """Tasks held for each submission (for metrics)."""
        return {sid: len(sub.waiting) for sid, sub in self._subs.items()}

    def ping(self) -> str:
        return self.brain_id


def _shared_depth(subs: Iterable[_Submission]) -> float:
    """The admission several submissions share (see `_admission`): the sum of the depths their pacing asked
    for, and never less than the deepest fixed ``--overcommit`` (a fixed depth is a limit on the node's whole
    queue, so fixed depths are not added up)."""
    subs = list(subs)
    adaptive = sum(_shared_share(s) for s in subs if s.adaptive)
    fixed = max((s.overcommit for s in subs if not s.adaptive), default=1.0)
    return max(1.0, adaptive, fixed)


def _shared_share(sub: _Submission) -> float:
    """What one paced submission adds to the shared depth: its own depth, and at least SHARED_QUEUE_S of its work.

    Ray lets a job keep a node's worker for up to a lease turn while it has
    tasks queued there. A queue that runs dry ends the turn early, and the next
    job may have to start a worker first; four drivers on 4 x 2 CPUs spent most
    of the machine doing that.
    """
    if sub.task_s is None:
        return sub.overcommit
    return max(sub.overcommit, min(MAX_SHARED_DEPTH, 1.0 + SHARED_QUEUE_S / sub.task_s))


def _positive_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and math.isfinite(number) else None


def _check_overcommit(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1 or math.isinf(value):
        raise ValueError(f"overcommit must be a finite number >= 1, got {value!r}")
    return float(value)


def _rss_bytes() -> int:
    """This process's resident memory (the brain's, when run as an actor)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _ring_summary(policy: Policy) -> dict[str, Any]:
    """Ring size of a hash-style policy (nodes and virtual nodes), keys moved, and the hot keys that spread over
    several nodes with their share of the recent work, hottest first (for status and the run's summary)."""
    ring = getattr(policy, "ring", None)
    if ring is None:
        return {}
    summary: dict[str, Any] = {"ring_nodes": len(ring), "ring_vnodes": int(getattr(ring, "points", 0))}
    if hasattr(policy, "keys_moved"):
        summary["keys_moved"] = int(policy.keys_moved)
    hot_keys = getattr(policy, "hot_keys", None)
    if callable(hot_keys):
        summary["keys_spread"] = int(getattr(policy, "keys_spread", 0))
        summary["hot_keys"] = [
            {"key": key, "nodes": nodes, "share": round(share, 4)} for key, nodes, share in hot_keys(HOT_KEYS_SHOWN)
        ]
    return summary


def brain_home() -> str:
    """The node the brain should live on: the head (where the GCS lives: if it dies the cluster is gone
    anyway), else the driver's own node. A brain on a worker would die with that worker and stall every
    submission until Ray restarts it, 15 s or more with its default health checks."""
    import ray

    for node in ray.nodes():
        if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
            return str(node["NodeID"])
    return ray.get_runtime_context().get_node_id()


def brain_handle() -> Any:
    """Get or create the named brain actor on the connected cluster (creation is asynchronous)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_cls = ray.remote(PlacementBrain)
    here = brain_home()
    return actor_cls.options(
        name=BRAIN_NAME,
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        max_restarts=-1,
        max_task_retries=0,
        num_cpus=0,
        # Hard: Ray's soft affinity may start it on a worker, which would take the brain down with it.
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(
        nodes_source=live_nodes_from_ray,
        dead_drivers=dead_drivers_from_ray,
        node_probe=unreachable_raylets,
        export_metrics=True,
    )


def find_brain() -> Any | None:
    """The running brain actor, or None when there is none."""
    import ray

    try:
        return ray.get_actor(BRAIN_NAME, namespace=NAMESPACE)
    except ValueError:
        return None
