"""The driver loop of `raysched submit`: draw tasks, dispatch what the brain placed, write every attempt.

Tasks are drawn lazily from the job's `tasks()` while fewer than the window
(``--max-inflight``) are held. Each is sent to the brain once, through the
`BrainClient`; the brain answers with nodes as room appears, and the driver
dispatches each task there with hard node affinity and ``max_retries=0`` (a
lost attempt is placed again through the brain, never re-pinned to a dead
node). Consecutive tiny tasks for one node travel as one Ray task (pacing).

A node that holds this run's work but finishes nothing for far longer than
its tasks take is reported to the brain as stalled. The brain probes its
raylet (`raysched.brain.node_health`) and drops it only when it is dead or
unreachable, so its keys move seconds before Ray's health checks agree.
"""

from __future__ import annotations

import collections
import math
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysched.brain.client import BrainClient
from raysched.brain.placement import Placement, PolicyError, Request
from raysched.driver import remote
from raysched.driver.pacing import Pacer
from raysched.job import JobFile, JobFileError, Task, task_demand
from raysched.results.outcome import RunOutcome
from raysched.results.schema import ResultsWriter, Row, Status, error_text, format_demand

# Ray errors that mean the node the task was pinned to is gone.
NODE_LOST_ERRORS: tuple[type[BaseException], ...] = (
    ray.exceptions.NodeDiedError,
    ray.exceptions.TaskUnschedulableError,
)
# System failures worth another attempt elsewhere (bounded, in case a task kills its worker every time).
LOST_ATTEMPTS_LIMIT = 5
WAIT_S = 0.2  # longest pause in ray.wait before the loop looks around again
POLL_S = 0.05  # with tasks waiting at the brain, ask at least this often (room freed by others)
TICK_MIN_S, TICK_MAX_S, TICK_UNITS = 0.002, 0.020, 0.5  # one wait of the loop collects this long (Runner._tick)
CALL_EVERY_TICKS = 2
MIN_WINDOW, WINDOW_PER_SLOT, MAX_WINDOW = 64, 2, 100_000
REMOTE_CACHE = 4096  # (function, node) pairs kept with their Ray options
# Stall detection: a node with work of this run that finishes nothing for
# max(STALL_MIN_S, STALL_TASKS x the 90th-percentile unit time) is reported;
# one that has never finished anything in this run gets STALL_NEW_S (worker start-up).
STALL_MIN_S, STALL_NEW_S, STALL_TASKS = 2.0, 15.0, 10.0
STALL_CHECK_S = 0.5


@dataclass
class RunSettings:
    """What a submission needs besides the job itself."""

    policy_name: str
    max_inflight: int | None = None  # None: 2 x cluster CPUs x overcommit, at least 64
    retries: int = 0
    max_failures: int | None = None
    skip_task_ids: frozenset[int] = frozenset()
    overcommit: float | None = None  # None: adaptive (pacing)
    batch: int | None = None  # None: auto; 1: off
    cluster_cpus: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)  # shown by `raysched status`


@dataclass(eq=False)
class _Attempt:
    task_id: int
    task: Task
    key: str
    demand: Mapping[str, float]
    demand_text: str
    attempt: int = 1
    lost: int = 0
    node: str = ""
    spill: str = ""
    brain_wait_s: float | None = None
    # When raysched took the attempt in (drawn from tasks(), or queued again for a retry), so
    # wait_s counts the wait for room as well as Ray's own dispatch.
    submitted_at: float = field(default_factory=time.time)


class PinnedFunctions:
    """Ray remote functions for a task function pinned to a node, with Ray's options: an LRU of them.

    Building `.options(...)` is not free, so they are reused; the cache is
    bounded, so a long run on an autoscaled cluster does not keep one per node
    that ever lived.
    """

    def __init__(self, demand_of: Callable[[Any], Mapping[str, float]], limit: int = REMOTE_CACHE) -> None:
        self._demand_of = demand_of
        self.limit = limit
        self._pinned: collections.OrderedDict[tuple[Any, str, bool], Any] = collections.OrderedDict()
        self._wrapped: dict[tuple[Any, bool], tuple[Any, dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self._pinned)

    def get(self, fn: Any, node: str, batch: bool) -> Any:
        """`fn` (or its batch runner) as a Ray remote function with hard affinity to `node`."""
        key = (fn, node, batch)
        cached = self._pinned.get(key)
        if cached is not None:
            self._pinned.move_to_end(key)
            return cached
        wrapped = self._wrapped.get((fn, batch))
        if wrapped is None:
            runner = remote.wrap_batch(fn) if batch else remote.wrap(fn)
            wrapped = self._wrapped[(fn, batch)] = (ray.remote(runner), _ray_options(self._demand_of(fn)))
        base, options = wrapped
        cached = self._pinned[key] = base.options(
            **options, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
        )
        if len(self._pinned) > self.limit:
            self._pinned.popitem(last=False)
        return cached


class Interrupt:
    """Turn SIGINT/SIGTERM into a flag the loop checks, so shutdown is orderly; a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop waiting for the orderly path
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Runner:
    """Runs one job under one policy on the connected cluster, writing every attempt."""

    def __init__(
        self,
        job: JobFile,
        client: BrainClient,
        settings: RunSettings,
        writer: ResultsWriter,
        on_progress: Callable[[RunOutcome, int], None] | None = None,
    ) -> None:
        self.job = job
        self.client = client
        self.settings = settings
        self.writer = writer
        self.on_progress = on_progress or (lambda outcome, in_flight: None)
        self.outcome = RunOutcome(run_id=client.run_id)
        self.pacer = Pacer(settings.overcommit, settings.batch)
        self._shared_depth: float | None = None  # the depth the brain keeps for us while nodes are shared
        self._held: dict[int, _Attempt] = {}  # every attempt not finished: to send, at the brain, running
        self._to_send: list[_Attempt] = []
        self._running: dict[Any, list[_Attempt]] = {}  # ObjectRef -> its attempts (one, or a batch)
        self._finished: list[int] = []
        self._pinned = PinnedFunctions(lambda fn: task_demand(fn, job.name))
        self._notice_s = 0.0  # EWMA: a task's finish to the driver noticing it
        self._node_work: collections.Counter[str] = collections.Counter()  # attempts running per node
        self._node_progress: dict[str, float] = {}  # last finish seen (or first dispatch) per node
        self._node_done: set[str] = set()
        self._stalled: dict[str, float] = {}  # node -> when it was last reported (it may be alive: asked again)
        self._last_stall_check = 0.0

    # -- the loop -----------------------------------------------------------------------------
    def run(self, interrupt: Interrupt | None = None) -> RunOutcome:
        """Run the job to the end (or to an interrupt, an infeasible task, too many failures)."""
        interrupt = interrupt or Interrupt()
        started = time.monotonic()
        source = self._tasks()
        exhausted = False
        try:
            self.client.start()
            self.outcome.brain_ready_at = time.time()
            while True:
                if interrupt.requested:
                    self.outcome.interrupted = True
                    break
                if self.outcome.infeasible or self._too_many_failures():
                    break
                room = self._window() - len(self._held)
                while room > 0 and not exhausted:
                    attempt = next(source, None)
                    if attempt is None:
                        exhausted = True
                    else:
                        self._hold(attempt)
                        room -= 1
                if exhausted and not self._held and not self.client.in_flight:
                    break
                self._maybe_send()
                self._collect()
                self._check_stalls()
                self.on_progress(self.outcome, len(self._held))
        finally:
            self._stop_all()
            self.outcome.wall_s = time.monotonic() - started
            self.writer.flush()
        return self.outcome

    def _window(self) -> int:
        if self.settings.max_inflight is not None:
            return self.settings.max_inflight
        depth = max(self.pacer.overcommit(), self._shared_depth or 0.0)  # enough to fill what the brain keeps
        slots = WINDOW_PER_SLOT * self.settings.cluster_cpus * depth
        return int(min(MAX_WINDOW, max(MIN_WINDOW, math.ceil(slots))))

    def _tasks(self) -> Iterator[_Attempt]:
        demands: dict[Any, tuple[Mapping[str, float], str]] = {}
        for task_id, task in enumerate(self.job.iter_tasks()):
            if task_id in self.settings.skip_task_ids:
                self.outcome.skipped += 1
                continue
            demand = demands.get(task.fn)
            if demand is None:
                resources = task_demand(task.fn, self.job.name)
                demand = demands[task.fn] = (resources, format_demand(resources))
            key = task.key if task.key is not None else str(task_id)
            yield _Attempt(task_id, task, str(key), demand[0], demand[1])

    def _hold(self, attempt: _Attempt) -> None:
        self._held[attempt.task_id] = attempt
        self._to_send.append(attempt)

    def _too_many_failures(self) -> bool:
        limit = self.settings.max_failures
        if limit is not None and self.outcome.failed >= limit:
            self.outcome.stopped_early = f"stopped after {self.outcome.failed} failed tasks (--max-failures {limit})"
            return True
        return False

    # -- the brain ----------------------------------------------------------------------------
    def _maybe_send(self) -> None:
        """Start a brain call when there is news, or to collect placements others' releases made possible."""
        client = self.client
        if client.in_flight:
            return
        polling = client.at_brain and client.idle_s >= POLL_S
        if not (self._to_send or self._finished or polling):
            return
        if client.idle_s < self._call_interval() and len(self._running) >= self.settings.cluster_cpus:
            return  # every slot has work: gather more news per call (each call costs both sides CPU)
        requests: list[Request] = [(a.task_id, a.demand, a.key) for a in self._to_send]
        client.send(self._finished, requests, self.pacer.stats())
        self._to_send, self._finished = [], []

    def _apply(self, answer: Placement, rtt_s: float) -> None:
        """Dispatch what the brain placed; record what it found infeasible."""
        self._shared_depth = answer.depth
        # A slot freed just after a call waits for the next call and its answer: the whole cycle.
        self.pacer.gap(min(self.client.cycle_s, 1.0) + rtt_s + self._notice_s)
        for uid, message in answer.infeasible:
            a = self._held.pop(uid)
            self.writer.write(self._row(a, Status.INFEASIBLE, f"InfeasibleError: {message}"))
            self.outcome.infeasible += 1
            self.outcome.infeasible_error = message
        groups: dict[tuple[str, Any], list[_Attempt]] = {}
        for uid, node, spill, waited in answer.placed:
            placed = self._held.get(uid)
            if placed is None:
                continue
            placed.node, placed.spill, placed.brain_wait_s = node, spill, waited
            groups.setdefault((node, placed.task.fn), []).append(placed)
        size = max(1, self.pacer.batch())
        for (node, _fn), attempts in groups.items():
            for i in range(0, len(attempts), size):
                self._dispatch(node, attempts[i : i + size])

    # -- dispatch -----------------------------------------------------------------------------
    def _dispatch(self, node: str, attempts: list[_Attempt]) -> None:
        first = attempts[0]
        try:
            if len(attempts) == 1:
                ref = self._pinned.get(first.task.fn, node, False).remote(*first.task.args, **(first.task.kwargs or {}))
            else:
                calls = [(a.task.args, a.task.kwargs) for a in attempts]
                ref = self._pinned.get(first.task.fn, node, True).remote(calls)
        except (TypeError, ValueError, AttributeError) as err:  # pickling a function or its arguments failed
            self._finished.extend(a.task_id for a in attempts)  # release the brain's reservations on the way out
            name = getattr(first.task.fn, "__qualname__", repr(first.task.fn))
            reason = " ".join(str(err).split())[:200]
            raise JobFileError(
                f"{self.job.name}: task {first.task_id} ({name}) cannot be serialized to send it to the cluster "
                f"({reason}); create locks, generators and connections inside the task function instead of "
                "capturing them"
            ) from None
        self._running[ref] = attempts
        if self.outcome.first_dispatch_at is None:
            self.outcome.first_dispatch_at = time.time()
        if self._node_work[node] == 0:
            self._node_progress[node] = time.monotonic()
        self._node_work[node] += len(attempts)

    # -- results ------------------------------------------------------------------------------
    def _call_interval(self) -> float:
        """While every slot has work, call the brain about this often, at most (pacing sizes node queues for it)."""
        return self.pacer.call_interval()

    def _tick(self) -> float:
        """How long one wait collects results: a quarter of a unit's run time, 1 to 10 ms.

        Collecting several completions per wait (and per brain call) costs the
        driver far less CPU than one wait per task; the queue at each node
        (pacing) covers the extra latency, which the measured gap includes.
        """
        t = self.pacer.task_s
        if t is None:
            return TICK_MIN_S
        return min(TICK_MAX_S, max(TICK_MIN_S, TICK_UNITS * t * self.pacer.batch()))

    def _collect(self) -> None:
        """Wait one tick for finished attempts and the brain's answer, and act on what arrived."""
        waiting_on = list(self._running)
        brain_ref = self.client.pending_ref
        if brain_ref is not None:
            waiting_on.append(brain_ref)
        if not waiting_on:
            time.sleep(0.01)  # tasks are held for the next brain call
            return
        tick = self._tick()
        ready, _ = ray.wait(waiting_on, num_returns=len(waiting_on), timeout=tick, fetch_local=False)
        if not ready:
            # Nothing yet: wait for the first result, but no later than the next poll is due when tasks wait at
            # the brain (room another driver's tasks freed is placed for us there, and heard of only by asking).
            longest = max(0.001, POLL_S - self.client.idle_s) if self.client.at_brain and brain_ref is None else WAIT_S
            ready, _ = ray.wait(waiting_on, num_returns=1, timeout=min(WAIT_S, longest), fetch_local=False)
        done = [ref for ref in ready if ref in self._running]
        now = time.time()
        for ref, out in zip(done, _get_each(done), strict=True):
            attempts = self._running.pop(ref)
            node = attempts[0].node
            self._node_work[node] -= len(attempts)
            outs = out if isinstance(out, list) else [out] * len(attempts)
            for a, one in zip(attempts, outs, strict=True):
                self._held.pop(a.task_id, None)
                self._finished.append(a.task_id)
                self._record(a, one, now)
        if brain_ref is not None:
            rtt_s = self.client.idle_s
            try:
                answer = self.client.receive()
            except PolicyError as err:
                raise JobFileError(f"policy error: {err}") from None
            if answer is not None:
                self._apply(answer, rtt_s)

    def _record(self, a: _Attempt, out: Any, now: float) -> None:
        if isinstance(out, ray.exceptions.RayError):
            if isinstance(out, NODE_LOST_ERRORS):
                self.client.report_node_failure(a.node, "lost")
            self._record_error(a, error_text(out), None, lost=True)
            return
        self._node_progress[a.node] = time.monotonic()
        self._node_done.add(a.node)
        self._stalled.pop(a.node, None)
        self.pacer.task_ran(out.finished_at - out.started_at)
        notice = min(1.0, max(0.0, now - out.finished_at))
        self._notice_s = 0.9 * self._notice_s + 0.1 * notice
        if out.error is None:
            self._record_ok(a, out)
        else:
            self._record_error(a, out.error, out, lost=False)

    def _row(self, a: _Attempt, status: Status, error: str = "", out: remote.Outcome | None = None) -> Row:
        row = Row(
            run_id=self.outcome.run_id,
            job=self.job.name,
            policy=self.settings.policy_name,
            task_id=a.task_id,
            key=a.key,
            attempt=a.attempt,
            status=status.value,
            error=error,
            node_chosen=a.node,
            submitted_at=a.submitted_at,
            demand=a.demand_text,
            spill=a.spill,
            brain_wait_s=a.brain_wait_s,
        )
        if out is not None:
            row.node_ran, row.started_at, row.finished_at = out.node_ran, out.started_at, out.finished_at
            row.wait_s = out.started_at - a.submitted_at
            row.run_s = out.finished_at - out.started_at
        return row

    def _record_ok(self, a: _Attempt, out: remote.Outcome) -> None:
        self.writer.write(self._row(a, Status.OK, out=out), out.metrics)
        o = self.outcome
        o.ok += 1
        o.per_node[out.node_ran] += 1
        o.ran(a.key, out.node_ran)
        if a.spill:
            o.spills[a.spill] += 1
        o.brain_wait_s += a.brain_wait_s or 0.0
        o.first_submitted = a.submitted_at if o.first_submitted is None else min(o.first_submitted, a.submitted_at)
        o.last_finished = out.finished_at if o.last_finished is None else max(o.last_finished, out.finished_at)
        for name, value in out.metrics.items():
            o.metric_sums[name] = o.metric_sums.get(name, 0.0) + value

    def _record_error(self, a: _Attempt, error: str, out: remote.Outcome | None, lost: bool) -> None:
        """An attempt failed: retry it through the brain when allowed, else it failed for good."""
        if lost:
            a.lost += 1
        retry = (a.lost <= LOST_ATTEMPTS_LIMIT) if lost else (a.attempt - a.lost <= self.settings.retries)
        status = Status.RETRIED if retry else Status.FAILED
        self.writer.write(self._row(a, status, error, out), out.metrics if out else None)
        if retry:
            self.outcome.retried += 1
            self._hold(_Attempt(a.task_id, a.task, a.key, a.demand, a.demand_text, a.attempt + 1, a.lost))
        else:
            self.outcome.failed += 1

    # -- stalls -------------------------------------------------------------------------------
    def _check_stalls(self) -> None:
        """Report nodes that hold our work and finish nothing for far longer than our tasks take.

        A report is a suspicion: the brain probes the node's raylet and drops
        it only if it is dead or unreachable, so long tasks on a live node cost
        nothing but a health check now and then.
        """
        now = time.monotonic()
        if now - self._last_stall_check < STALL_CHECK_S:
            return
        self._last_stall_check = now
        p90 = self.pacer.task_quantile(0.9) or 0.0
        unit = p90 * max(1, self.pacer.batch())
        for node, work in self._node_work.items():
            if work <= 0:
                continue
            limit = (
                max(STALL_MIN_S, STALL_TASKS * unit)
                if node in self._node_done
                else max(STALL_NEW_S, STALL_TASKS * unit)
            )
            quiet_since = max(self._node_progress.get(node, now), self._stalled.get(node, -math.inf))
            if now - quiet_since > limit:
                self._stalled[node] = now
                self.client.report_node_failure(node, "stalled")

    # -- the end ------------------------------------------------------------------------------
    def _stop_all(self) -> None:
        """Cancel what runs, record it, and leave the brain."""
        for ref, attempts in list(self._running.items()):
            ray.cancel(ref, force=True)
            for a in attempts:
                self.writer.write(
                    self._row(a, Status.CANCELLED, "Cancelled: the run stopped before this task finished")
                )
                self.outcome.cancelled += 1
        self._running.clear()
        counters = self.client.close()
        self.outcome.brain_decisions = counters.decisions
        self.outcome.keys_spread = counters.keys_spread
        self.outcome.hot_keys = counters.hot_keys


def _get_each(refs: list[Any]) -> list[Any]:
    """Results of finished tasks in one call; a Ray error stands in for a lost task's result."""
    if not refs:
        return []
    try:
        return ray.get(refs)
    except ray.exceptions.RayError:
        results = []
        for ref in refs:
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as err:
                results.append(err)
        return results


def _ray_options(demand: Mapping[str, float]) -> dict[str, Any]:
    """Ray's own options for a demand, with Ray's retries off (the brain re-places instead)."""
    options: dict[str, Any] = {"num_cpus": demand.get("CPU", 0), "num_gpus": demand.get("GPU", 0), "max_retries": 0}
    if demand.get("memory"):
        options["memory"] = demand["memory"]
    custom = {k: v for k, v in demand.items() if k not in ("CPU", "GPU", "memory")}
    if custom:
        options["resources"] = custom
    return options


def new_run_id() -> str:
    """A run id that sorts by start time: 20261126T081012-1a2b3c."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


__all__ = ["Interrupt", "PinnedFunctions", "PolicyError", "RunSettings", "Runner", "new_run_id"]
