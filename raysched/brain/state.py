"""The data every part of the placement brain shares: its answers, its errors, the tasks it holds.

`BrainState` names the brain's shared state; each part of the brain (a class
in its own module, stacked into `raysched.brain.actor.PlacementBrain`) says
in its docstring which of it that part reads and writes.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raysched.brain.executors import ExecutorPool
from raysched.brain.metrics import BrainMetrics
from raysched.core.view import DEFAULT_OVERCOMMIT, ResourceView
from raysched.policies import Decision, Policy, TaskDemand

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
    via: dict[int, str] = field(default_factory=dict)  # uid -> the executor that runs it (absent: a pinned task)
    executors: dict[str, Any] = field(default_factory=dict)  # name -> actor handle, for executors new to the driver


@dataclass(eq=False, slots=True)
class WaitingTask:
    """A task the brain holds for a submission until it can place it (one per task held: slots keep it small)."""

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
class SubmissionState:
    """What the brain keeps for one submission: its policy, its pacing, its placed and waiting tasks."""

    policy: Policy
    info: dict[str, Any]
    overcommit: float = DEFAULT_OVERCOMMIT
    adaptive: bool = False  # its depth comes from the driver's pacing (added up with others'), not a fixed --overcommit
    task_s: float | None = None  # its tasks' median run time, as its driver measured it
    ledger: dict[int, tuple[str, Mapping[str, float], str]] = field(default_factory=dict)
    replicas: dict[str, tuple[str, Mapping[str, float]]] = field(default_factory=dict)  # name -> node, demand
    waiting: dict[int, WaitingTask] = field(default_factory=dict)
    # Every queue below holds live waiting tasks only, each task in at most one of them (uid -> task, in
    # arrival order): a task that is decided, placed, moved or withdrawn leaves it at once, in O(1).
    ready: Queue = field(default_factory=Queue)  # to decide in the next round
    at_node: dict[str, Queue] = field(default_factory=dict)  # node -> tasks assigned to it
    deferred_at: dict[str, Queue] = field(default_factory=dict)  # node -> tasks at its bound
    anywhere: dict[Any, Queue] = field(default_factory=dict)  # demand signature (or uid) -> tasks
    by_key: dict[tuple[str, str], dict[int, WaitingTask]] = field(
        default_factory=dict
    )  # (node, key) -> its tasks there
    keys_at: dict[str, dict[str, None]] = field(default_factory=dict)  # node -> the keys of ``by_key`` there
    # Locality-wait timers (due, seq, task, ticket): a task re-parked leaves a stale timer behind, skipped when
    # popped; the heap is rebuilt from live timers whenever it holds 64 more than the waiting tasks.
    expiries: list = field(default_factory=list)
    outbox: list[Placed] = field(default_factory=list)
    infeasible: list[tuple[int, str]] = field(default_factory=list)
    error: PolicyError | None = None
    overdue: dict[int, WaitingTask] = field(default_factory=dict)  # past their locality wait (also in a queue)
    deep: dict[str, None] = field(default_factory=dict)  # nodes whose queue outlasts the locality wait
    steal_waits: dict[str, int] = field(default_factory=dict)  # node -> the call whose steal from it waits a call
    ripe: dict[int, WaitingTask] = field(default_factory=dict)  # own wait over, but no slot idled yet
    placed_last: bool = True  # what the last decision did (read by the candidate feed)
    done: int = 0
    decisions: int = 0
    unknown_finishes: int = 0  # finishes of tasks this brain never placed (or reported twice)
    spills: collections.Counter = field(default_factory=collections.Counter)
    last_seen: float = 0.0
    registered_at: float = field(default_factory=time.time)  # wall clock, for the executor events of its run
    batch: int = 1  # tasks its driver sends as one call to a node (its pacing): one executor per batch
    executors_allowed: bool = False  # it registered with executors on (and this brain has them)
    on_executors: bool = False  # its tasks run as calls on the shared executors (`raysched.brain.executors`)
    via: dict[int, str] = field(default_factory=dict)  # placements handed an executor, not yet answered: uid -> name
    served: list[Placed] = field(default_factory=list)  # placements that waited for an executor and have one now
    executors_sent: set[str] = field(default_factory=set)  # executors whose handles its driver has

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
        self.takes_slot: Callable[[TaskDemand, str, ResourceView], bool] | None = getattr(
            self.policy, "takes_slot", None
        )
        self.arrived: Callable[[dict[str, int]], None] | None = getattr(self.policy, "arrived", None)
        # A policy may let the brain move a whole key that has not run yet to an idle node (`movable`), and
        # hears where it went (`key_moved`).
        self.movable: Callable[[str], bool] | None = getattr(self.policy, "movable", None)
        self.key_moved: Callable[[str, str], None] | None = getattr(self.policy, "key_moved", None)
        # ...and say how long a key's warm state has lived on its node (`warm_for`): steals take the youngest.
        self.warm_for: Callable[[str], float] | None = getattr(self.policy, "warm_for", None)

    @property
    def locality_wait_s(self) -> float | None:
        wait = getattr(self.policy, "locality_wait_s", None)
        return float(wait) if isinstance(wait, (int, float)) else None


class BrainState:
    """The state every part of the brain shares (set up by `PlacementBrain.__init__`).

    The ``_lock`` guards all of it: public methods take it, private ones run under it.
    """

    brain_id: str
    started_at: float
    view: ResourceView  # the cluster's nodes, their reservations and the tasks parked at each
    clock: Callable[[], float]
    metrics: BrainMetrics
    _lock: threading.RLock
    _subs: dict[str, SubmissionState]
    _order: list[str]  # round-robin order of submissions
    _dirty: set[str]  # nodes whose room or parked tasks changed since the last round
    _held: int  # tasks waiting in the brain, over every submission
    _idle_since: float | None  # since when some node has had a free slot (after a round)
    _shared_depth: float  # admission while several submissions share the nodes (`raysched.brain.admission`)
    executors: ExecutorPool | None  # the shared executors (None: this brain cannot create actors)
    _condemned_capacity: dict[str, dict[str, float]]  # what a node reported dead could hold, until Ray agrees
    _round_no: int
    _seq: itertools.count  # tie-breaker of the locality-wait timers
    _demands: dict[tuple, TaskDemand]  # validated demands by their memo key (`raysched.brain.rounds._demand_memo`)
    decisions: int
    calls: int  # place() calls answered
    busy_s: float  # seconds spent answering them (the brain's own work, without Ray's)
