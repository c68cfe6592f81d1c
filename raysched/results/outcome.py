"""What a run produced: counts for the summary, and the exit code (named once, here)."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from raysched.results.figures import keyed, makespan, start_up, tasks_per_s
from raysched.results.samples import Samples
from raysched.results.schema import Status

__all__ = ["KEYS_TRACKED", "ExitCode", "KeyHomes", "RunOutcome", "tasks_per_s"]


class ExitCode(IntEnum):
    """`raysched` exit codes."""

    OK = 0  # every task ended ok
    FAILED = 1  # some task failed for good
    BAD_INPUT = 2  # job file, config, flags, infeasible demand, unreachable cluster
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


KEYS_TRACKED = 100_000


@dataclass
class KeyHomes:
    """Where the ok work of each key ran (a node for tasks, a replica for calls), in bounded memory: key affinity,
    and the keys placed off their owner (spills) and whether they moved whole, for the summary."""

    home: dict[str, str] = field(default_factory=dict)  # key -> the place its first ok task or call ran
    split: set[str] = field(default_factory=set)  # keys whose ok work ran in more than one place
    spilled_keys: set[str] = field(default_factory=set)  # keys with work placed off their owner (tracked as home is)
    spills: collections.Counter = field(default_factory=collections.Counter)  # "bound" / "wait" / "spread" -> count
    unkeyed: int = 0  # ok work without a key of its own (keyed by its task id): no key figures
    untracked: bool = False  # more than KEYS_TRACKED keys: affinity is left to `raysched analyze`
    at: dict[str, set[str]] = field(default_factory=dict)  # place -> distinct keys whose ok work ran there

    def ran(self, key: str, place: str, task_id: int | None = None) -> None:
        """Ok work of ``key`` ran at ``place``. With its ``task_id``, work whose key is only its task id (it has
        none, `figures.keyed`) counts in ``unkeyed`` instead: it has no affinity to keep."""
        if task_id is not None and not keyed(key, task_id):
            self.unkeyed += 1
            return
        if self.untracked:
            return
        if self.home.setdefault(key, place) != place:
            self.split.add(key)
        self.at.setdefault(place, set()).add(key)
        if len(self.home) > KEYS_TRACKED:
            self.untracked = True
            self.home.clear()
            self.split.clear()
            self.spilled_keys.clear()
            self.at.clear()

    def spilled(self, key: str, task_id: int, reason: str) -> None:
        """Ok work of ``key`` was placed off its key's owner for ``reason``; work without a key is not counted
        (off the owner of its own task id means nothing)."""
        if not keyed(key, task_id):
            return
        self.spills[reason] += 1
        if not self.untracked:
            self.spilled_keys.add(key)

    @property
    def keys(self) -> int:
        return len(self.home)

    @property
    def affinity(self) -> float | None:
        """Share of keys whose ok work all ran in one place (None without keys, or too many keys)."""
        if self.untracked or not self.home:
            return None
        return 1 - len(self.split) / len(self.home)

    def been_at(self, key: str, place: str) -> bool:
        """Has ``key``'s ok work run at ``place`` before? (True when keys are no longer tracked: unknown.)"""
        return self.untracked or key in self.at.get(place, ())

    def keys_at(self, place: str) -> int | None:
        """Distinct keys whose ok work ran at ``place``: what its cache had to hold (None when not tracked)."""
        if self.untracked or not self.home:
            return None
        return len(self.at.get(place, ()))

    @property
    def moved_whole(self) -> int:
        """Spilled keys whose ok work all still ran in one place: the key moved as a whole, affinity kept."""
        return len(self.spilled_keys - self.split)


@dataclass
class RunOutcome:
    """What one run produced, as `raysched.submit` returns it: counts, timings, where tasks ran, the exit code.

    The summary `raysched submit` prints is `raysched.results.report.format_summary` of it; the
    per-attempt detail is in the CSV at ``out_path`` (`raysched.analysis.load` reads it).

    Attributes:
        run_id: the run's id (the CSV's ``run_id``).
        out_path: the results CSV.
        ok: tasks that ended ok; ``failed``, ``retried``, ``cancelled``, ``infeasible``: attempts with
            that status; ``skipped``: tasks skipped on ``resume``.
        calls: ok tasks that were calls to a service.
        wall_s: seconds the run took, start-up included.
        first_submitted: Unix seconds of the first ok task's submission; ``first_started``: of the
            first ok task's start; ``last_finished``: of the last ok finish.
        per_node: ok tasks (calls included) per node id (a Counter); ``node_weights``: each node's capacity
            weight (its CPUs) at the start, for the imbalance by capacity; ``node_hits``: per node, the sum of
            ``cache_hit`` over its ok work that reported one, and how many did (its hit rate).
        task_keys, call_keys: where the keys of tasks (by node) and of calls (by replica) ran (`KeyHomes`).
        latency: ok tasks' ``latency_s``; ``call_latency``, ``call_wait``, ``call_run``: ok calls' ``latency_s``,
            ``wait_s`` and ``run_s`` (`Samples`, for their quantiles).
        interrupted: ended by Ctrl-C (or SIGTERM); ``stopped_early``: why it stopped otherwise.
    """

    run_id: str
    out_path: Path | None = None
    ok: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    infeasible: int = 0
    skipped: int = 0
    calls: int = 0  # ok tasks that were calls to a service (their key belongs to a replica, not a node)
    wall_s: float = 0.0
    first_submitted: float | None = None  # Unix seconds, over ok tasks (for the start-up)
    first_started: float | None = None  # Unix seconds, over ok tasks (for the makespan)
    last_finished: float | None = None
    interrupted: bool = False
    stopped_early: str = ""
    infeasible_error: str = ""
    per_node: collections.Counter = field(default_factory=collections.Counter)  # ok tasks and calls per node
    node_weights: dict[str, float] = field(default_factory=dict)  # node -> its CPUs (capacity weight), at the start
    task_keys: KeyHomes = field(default_factory=KeyHomes)  # tasks' keys by node
    call_keys: KeyHomes = field(default_factory=KeyHomes)  # calls' keys by replica
    per_replica: collections.Counter = field(default_factory=collections.Counter)  # ok calls per replica
    replica_nodes: dict[str, list[str]] = field(default_factory=dict)  # replica -> the nodes it served from, in order
    brain_wait_s: float = 0.0  # total seconds ok tasks waited in the brain for a node
    router_wait_s: float = 0.0  # total seconds ok calls waited in their service's router for a replica
    latency: Samples = field(default_factory=Samples)  # ok tasks' latency_s (taken in to result back)
    call_latency: Samples = field(default_factory=Samples)  # ok calls' latency_s (the caller's send to the result)
    call_wait: Samples = field(default_factory=Samples)  # ok calls' wait_s (send to start on the replica)
    call_run: Samples = field(default_factory=Samples)  # ok calls' run_s (service time on the replica)
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_counts: dict[str, int] = field(default_factory=dict)  # ok tasks that reported each metric
    node_hits: dict[str, tuple[float, int]] = field(default_factory=dict)  # node -> (sum of cache_hit, ok reporting)
    brain_decisions: int | None = None
    keys_spread: int | None = None  # hot keys the brain spread over several nodes (hash), at the end
    hot_keys: list[dict] = field(default_factory=list)  # {"key", "nodes", "share"} of the hottest, hottest first
    executor_events: list[dict] = field(default_factory=list)  # executors created, retired, lost during the run
    brain_ready_at: float | None = None  # Unix seconds: registered with the brain (start-up diagnosis)
    first_dispatch_at: float | None = None  # Unix seconds: the first task handed to Ray
    brain_calls: int = 0  # answers received, and the seconds they were under way in all
    brain_call_s: float = 0.0
    notices: int = 0  # finishes noticed, and the seconds from each finish to the driver noticing it, in all
    notice_s: float = 0.0
    gaps: int = 0  # round trips the pacer heard (a brain call's for tasks, a finish to the next call for calls)
    gap_s: float = 0.0
    overcommit_max: float | None = None  # the most work per slot (running + queued) pacing let the brain or router hold
    notes: list[str] = field(default_factory=list)

    def pacing(self) -> dict[str, float | None]:
        """What the driver's pacing measured (mean seconds, and the deepest queue it allowed), recorded so a replay's
        pacing can see the same. ``brain_rtt_s`` is None for a run of calls only: calls are routed in the driver."""
        return {
            "brain_rtt_s": self.brain_call_s / self.brain_calls if self.brain_calls else None,
            "notice_s": self.notice_s / self.notices if self.notices else None,
            "gap_s": self.gap_s / self.gaps if self.gaps else None,
            "overcommit_max": self.overcommit_max,
        }

    def paced(self, overcommit: float) -> None:
        """The work per slot pacing lets the brain (tasks) or a router (calls) hold now: the deepest is recorded."""
        self.overcommit_max = overcommit if self.overcommit_max is None else max(self.overcommit_max, overcommit)

    def counts(self) -> dict[str, int | bool]:
        """How the run's tasks ended, by status, plus those skipped on resume and whether it was interrupted."""
        by_status: dict[str, int | bool] = {status.value: getattr(self, status.value) for status in Status}
        return {**by_status, "skipped": self.skipped, "interrupted": self.interrupted}

    def timed(self, submitted_at: float, started_at: float, finished_at: float) -> None:
        """An ok task's times, for the makespan and the start-up (the earliest and latest of each)."""
        self.first_submitted = submitted_at if self.first_submitted is None else min(self.first_submitted, submitted_at)
        self.first_started = started_at if self.first_started is None else min(self.first_started, started_at)
        self.last_finished = finished_at if self.last_finished is None else max(self.last_finished, finished_at)

    @property
    def makespan_s(self) -> float:
        """First ok task start to last ok finish (`raysched.results.figures.makespan`); 0 before any finish."""
        span = makespan(self.first_started, self.last_finished)
        return 0.0 if math.isnan(span) else span

    @property
    def startup_s(self) -> float:
        """First ok submission to first ok start: Ray starting the workers (NaN before any task ran)."""
        return start_up(self.first_submitted, self.first_started)

    @property
    def tasks_per_s(self) -> float:
        """Ok tasks per second of the makespan, as `raysched analyze` computes it."""
        return tasks_per_s(self.ok, self.makespan_s)

    def add_metrics(self, metrics: dict[str, float]) -> None:
        """An ok task's numeric metrics, summed (and counted) for the rates and the hit rate."""
        for name, value in metrics.items():
            self.metric_sums[name] = self.metric_sums.get(name, 0.0) + value
            self.metric_counts[name] = self.metric_counts.get(name, 0) + 1

    @property
    def hit_rate(self) -> float | None:
        """Mean ``cache_hit`` of the ok tasks that reported one, in % (`figures.hit_rate`'s arithmetic); else None."""
        reported = self.metric_counts.get("cache_hit", 0)
        return self.metric_sums["cache_hit"] / reported * 100 if reported else None

    def node_hit_rate(self, node: str) -> float | None:
        """Mean ``cache_hit`` of the ok work that ran on ``node`` and reported one, in %; else None."""
        total, reported = self.node_hits.get(node, (0.0, 0))
        return total / reported * 100 if reported else None

    @property
    def tasks(self) -> int:
        """Ok tasks that were not calls to a service."""
        return self.ok - self.calls

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.infeasible:
            return ExitCode.BAD_INPUT
        return ExitCode.FAILED if self.failed else ExitCode.OK
