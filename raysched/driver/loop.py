"""The driver loop of `raysched submit`: draw tasks, dispatch what the brain placed, write every attempt.

Tasks are drawn lazily from the job's `tasks()` while fewer than the window
(``--max-inflight``, else `rules.window`) are held. Each is sent to the brain
once, through the `BrainClient`; the brain answers with nodes as room appears,
and the driver dispatches each task there (`dispatch`). A lost attempt is
placed again through the brain (`rules.retry_lost`); a node that stops
finishing work is reported to the brain (`stall`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

from raysched.brain.client import BrainClient
from raysched.brain.state import Placement, PolicyError
from raysched.driver import remote, rules
from raysched.driver.accounting import attempt_row, count_node_reports, count_ok
from raysched.driver.attempts import Attempt, draw_attempts
from raysched.driver.dispatch import NODE_LOST_ERRORS, PinnedFunctions, get_each
from raysched.driver.interrupts import Interrupt
from raysched.driver.pacing import Pacer
from raysched.driver.routes import ExecutorCalls, PinnedTasks, ReplicaCalls, Route
from raysched.driver.service_calls import ServiceCalls
from raysched.driver.stall import StallWatch
from raysched.job import JobFile, JobFileError, task_demand
from raysched.policies.key_capacity import report_hits
from raysched.policies.node_speed import report_run_times
from raysched.results.outcome import RunOutcome
from raysched.results.schema import Row, Status, error_text
from raysched.results.writer import ResultsWriter

WAIT_S = 0.2  # longest pause in ray.wait before the loop looks around again
TICK_MIN_S, TICK_MAX_S, TICK_UNITS = 0.002, 0.020, 0.5  # one wait of the loop collects this long (Runner._tick)


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
    # Executors only while the job's tasks have one demand: shapes alternating on a node make executors retire and
    # come back (jobs/mixed_resources.py with executors for every shape: 2.6-20x the makespan of plain tasks)
    executors_one_demand: bool = False


class Runner:
    """Runs one job under one policy on the connected cluster, writing every attempt."""

    def __init__(
        self,
        job: JobFile,
        client: BrainClient,
        settings: RunSettings,
        writer: ResultsWriter,
        on_progress: Callable[[RunOutcome, int], None] | None = None,
        services: ServiceCalls | None = None,
    ) -> None:
        self.job = job
        self.client = client
        self.settings = settings
        self.writer = writer
        self.on_progress = on_progress or (lambda outcome, in_flight: None)
        self.outcome = RunOutcome(run_id=client.run_id)
        self.pacer = Pacer(settings.overcommit, settings.batch)
        self._shared_depth: float | None = None  # the depth the brain keeps for us while nodes are shared
        self._held: dict[int, Attempt] = {}  # every attempt not finished: to send, at the brain, running
        self._to_send: list[Attempt] = []
        self._running: dict[Any, list[Attempt]] = {}  # ObjectRef -> its attempts (one, or a batch)
        self._finished: list[int] = []
        self._pinned = PinnedFunctions(lambda fn: task_demand(fn, job.name))
        self._executors = ExecutorCalls(client.run_id, job.name)
        self._routes: dict[str, Route] = {"task": PinnedTasks(self._pinned, job.name), "executor": self._executors}
        self._notice_s = 0.0  # EWMA: a task's finish to the driver noticing it
        self._calls_after_first_finish = 0  # brain calls sent since the first finish was noticed (rules.paces)
        self._stalls = StallWatch()
        self._demands: set[str] = set()  # demands of the tasks taken in (the executors' auto rule)
        self._runs: dict[str, tuple[float, int]] = {}  # node -> (run seconds, ok tasks) since the last brain call
        self._hits: dict[str, tuple[int, int]] = {}  # node -> (cache hits, tasks reporting cache_hit) to tell
        self._services = services
        if services is not None:
            self._routes["replica"] = ReplicaCalls(services.fleet, job.name)
            services.fleet.on_lost = self._replica_lost
            services.fleet.on_up = lambda replica: self._dispatch_calls(services.replica_up(replica.name))

    # -- the loop -----------------------------------------------------------------------------
    def run(self, interrupt: Interrupt | None = None) -> RunOutcome:
        """Run the job to the end (or to an interrupt, an infeasible task, too many failures)."""
        interrupt = interrupt or Interrupt()
        started = time.monotonic()
        source = self.draw()
        exhausted = False
        try:
            self.client.start()
            self.outcome.brain_ready_at = time.time()
            if self._services is not None:
                self._services.fleet.start()  # every replica placed and ready before the first call
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
                self._route_calls()
                self._collect()
                self._check_stalls()
                self.on_progress(self.outcome, len(self._held))
        finally:
            self._stop_all()
            self.outcome.wall_s = time.monotonic() - started
            self.writer.flush()
        return self.outcome

    def draw(self) -> Iterator[Attempt]:
        """The job's tasks as first attempts, less those a resumed CSV holds ok (counted as skipped)."""
        return draw_attempts(self.job, self.settings.skip_task_ids, self._skipped)

    def _skipped(self, task_id: int) -> None:
        self.outcome.skipped += 1

    def _window(self) -> int:
        depth = max(self.pacer.overcommit(), self._shared_depth or 0.0)  # enough to fill what the brain keeps
        return rules.window(self.settings.cluster_cpus, depth, self.settings.max_inflight)

    def _hold(self, attempt: Attempt) -> None:
        self._held[attempt.task_id] = attempt
        if attempt.call is None:
            self._to_send.append(attempt)
            self._demands.add(attempt.demand_text)
        elif self._services is None:
            raise JobFileError(
                f"{self.job.name}: a call to {attempt.call.__qualname__}, but the job declares no service"
            )
        else:
            self._services.hold(attempt)

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
        polling = client.at_brain and client.idle_s >= rules.POLL_S
        if not (self._to_send or self._finished or polling):
            return
        if client.idle_s < self.pacer.call_interval() and len(self._running) >= self.settings.cluster_cpus:
            return  # every slot has work: gather more news per call (each call costs both sides CPU)
        stats = self.pacer.stats()
        self.outcome.paced(stats["overcommit"])
        if self._hits:  # the policy learns which nodes thrash (`raysched.policies.key_capacity`)
            stats.update(report_hits(self._hits))
            self._hits = {}
        if self._runs:  # ...and how fast each node runs its tasks (`raysched.policies.node_speed`)
            stats.update(report_run_times(self._runs))
            self._runs = {}
        if self.settings.executors_one_demand:
            stats["executors"] = 1.0 if len(self._demands) <= 1 else 0.0
        client.send(self._finished, [a.request for a in self._to_send], stats, self._executors.take_lost())
        if self.outcome.notices:  # a finish was noticed: the start-up is over
            self._calls_after_first_finish += 1
        self._to_send, self._finished = [], []

    def _apply(self, answer: Placement, rtt_s: float) -> None:
        """Dispatch what the brain placed; record what it found infeasible."""
        self._shared_depth = answer.depth
        # A slot freed just after a call waits for the next call and its answer: the whole cycle.
        if rules.paces(self._calls_after_first_finish):
            gap = min(self.client.cycle_s, 1.0) + rtt_s + self._notice_s
            self.pacer.gap(gap)
            self.outcome.gaps += 1
            self.outcome.gap_s += gap
        for uid, message in answer.infeasible:
            a = self._held.pop(uid)
            self.writer.write(self._row(a, Status.INFEASIBLE, f"InfeasibleError: {message}"))
            self.outcome.infeasible += 1
            self.outcome.infeasible_error = message
        if answer.executors:
            self._executors.add(answer.executors)
            self.pacer.on_executors = True  # calls cost less than tasks: batches follow (pacing)
        groups: dict[tuple[str, str, Any], list[Attempt]] = {}
        for uid, node, spill, waited in answer.placed:
            placed = self._held.get(uid)
            if placed is None:
                continue
            placed.node, placed.spill, placed.brain_wait_s = node, spill, waited
            executor = answer.via.get(uid, "")
            placed.executor = executor if self._executors.has(executor) else ""
            groups.setdefault((node, placed.executor, placed.task.fn), []).append(placed)
        size = max(1, self.pacer.batch())
        for attempts in groups.values():
            for i in range(0, len(attempts), size):
                self._dispatch(attempts[i : i + size])

    def _dispatch(self, attempts: list[Attempt], resend: bool = False) -> None:
        """Send placed attempts (one, or a batch for one place) where they run, by their route (`routes`)."""
        try:
            ref = self._routes[attempts[0].via].send(attempts, resend)
        except JobFileError:
            for a in attempts:
                self._finish_attempt(a)  # release what the brain (or the router) holds on the way out
            raise
        self._running[ref] = attempts
        if self.outcome.first_dispatch_at is None:
            self.outcome.first_dispatch_at = time.time()
        self._stalls.dispatched(attempts[0].node, len(attempts))

    # -- calls to services --------------------------------------------------------------------
    def _route_calls(self) -> None:
        """Route held calls to replicas (`calls.CallRouter`), send those whose replica is up, keep the others."""
        services = self._services
        if services is None:
            return
        services.fleet.poll()
        stats = self.pacer.stats()
        self.outcome.paced(stats["overcommit"])  # calls queue at a replica's slot as deep as this lets them
        for answer in services.route(stats):
            for uid, message in answer.infeasible:
                gone = self._held.pop(uid)
                self.writer.write(self._row(gone, Status.INFEASIBLE, f"InfeasibleError: no live replica: {message}"))
                self.outcome.infeasible += 1
                self.outcome.infeasible_error = message
            ready = []
            for uid, replica, spill, waited in answer.placed:
                a = self._held.get(uid)
                if a is None:
                    continue
                a.replica, a.spill, a.brain_wait_s = replica, spill, waited
                if services.fleet.is_up(replica):
                    ready.append(a)
                else:
                    services.backlog.setdefault(replica, []).append(a)
            self._dispatch_calls(ready)

    def _dispatch_calls(self, attempts: list[Attempt]) -> None:
        services = self._services
        assert services is not None
        for a in attempts:
            a.node = services.fleet.node_of(a.replica)
            self._dispatch([a])

    def _replica_lost(self, name: str) -> None:
        """A replica is gone: its calls under way are lost with it (retried through the router)."""
        for ref, attempts in list(self._running.items()):
            if attempts[0].replica != name:
                continue
            del self._running[ref]
            with contextlib.suppress(Exception):
                ray.cancel(ref)
            for a in attempts:
                self._stalls.returned(a.node, 1)
                self._finish_attempt(a)
                self._record_error(a, f"ReplicaLost: {name} was lost with its node or process", None, lost=True)

    def _finish_attempt(self, a: Attempt) -> None:
        """The attempt is over: its brain (the node brain, or its service's router) releases what it held."""
        self._held.pop(a.task_id, None)
        if a.call is not None and self._services is not None:
            self._services.finished(a)
        else:
            self._finished.append(a.task_id)

    # -- results ------------------------------------------------------------------------------
    def _tick(self) -> float:
        """How long one wait collects results: half a unit's run time, 2 to 20 ms.

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
            polling = self.client.at_brain and brain_ref is None
            longest = max(0.001, rules.POLL_S - self.client.idle_s) if polling else WAIT_S
            ready, _ = ray.wait(waiting_on, num_returns=1, timeout=min(WAIT_S, longest), fetch_local=False)
        # Every finished ref leaves `_running` before any is recorded: recording one (a replica's actor error)
        # may declare its replica lost, which fails whatever of that replica is still under way - never a ref
        # that already finished here, whose own result is recorded below, once.
        finished = [(ref, self._running.pop(ref)) for ref in ready if ref in self._running]
        now = time.time()
        for (_ref, attempts), out in zip(finished, get_each([ref for ref, _ in finished]), strict=True):
            self._stalls.returned(attempts[0].node, len(attempts))
            if out is None:  # an executor that no longer had the function: send it along
                self._dispatch(attempts, resend=True)
                continue
            outs = out if isinstance(out, list) else [out] * len(attempts)
            for a, one in zip(attempts, outs, strict=True):
                self._finish_attempt(a)
                self._record(a, one, now)
        if brain_ref is not None:
            rtt_s = self.client.idle_s
            try:
                answer = self.client.receive()
            except PolicyError as err:
                raise JobFileError(f"policy error: {err}") from None
            if answer is not None:
                self.outcome.brain_calls += 1
                self.outcome.brain_call_s += rtt_s
                self._apply(answer, rtt_s)

    def _record(self, a: Attempt, out: Any, now: float) -> None:
        a.received_at = now
        if isinstance(out, ray.exceptions.RayError):
            if isinstance(out, NODE_LOST_ERRORS):
                self.client.report_node_failure(a.node, "lost")
            self._record_error(a, error_text(out), None, lost=True)
            if a.executor and isinstance(out, ray.exceptions.RayActorError):
                self._executors.lose(a.executor)  # its other calls fail too, each retried through the brain
                self.client.report_node_failure(a.node, "lost")  # probed: only a dead node leaves the brain
            if a.replica and isinstance(out, ray.exceptions.RayActorError) and self._services is not None:
                self.client.report_node_failure(a.node, "lost")  # probed: only a dead node leaves the brain
                self._services.fleet.lost(a.replica)  # re-created; its other calls under way are retried
            return
        self._stalls.finished(a.node)
        self.pacer.task_ran(out.finished_at - out.started_at)
        notice = min(1.0, max(0.0, now - out.finished_at))
        self._notice_s = 0.9 * self._notice_s + 0.1 * notice
        self.outcome.notices += 1
        self.outcome.notice_s += notice
        if a.replica:  # a call's slot waits for its finish to be noticed and the next call routed (in this process)
            gap = notice + self._tick()
            self.pacer.gap(gap)
            self.outcome.gaps += 1  # recorded as a brain round trip is (the sidecar's pacing)
            self.outcome.gap_s += gap
        if out.error is None:
            self.writer.write(self._row(a, Status.OK, out=out), out.metrics)
            count_node_reports(self.outcome.task_keys, a, out, self._hits, self._runs)  # before count_ok adds it
            count_ok(self.outcome, a, out)
        else:
            self._record_error(a, out.error, out, lost=False)

    def _row(self, a: Attempt, status: Status, error: str = "", out: remote.Outcome | None = None) -> Row:
        return attempt_row(self.outcome.run_id, self.job.name, self.settings.policy_name, a, status, error, out)

    def _record_error(self, a: Attempt, error: str, out: remote.Outcome | None, lost: bool) -> None:
        """An attempt failed: retry it through the brain when allowed, else it failed for good."""
        if lost:
            a.lost += 1
            retry = rules.retry_lost(a.lost)
        else:
            retry = rules.retry_failure(a.attempt - a.lost, self.settings.retries)
        status = Status.RETRIED if retry else Status.FAILED
        self.writer.write(self._row(a, status, error, out), out.metrics if out else None)
        if retry:
            self.outcome.retried += 1
            self._hold(a.again())
        else:
            self.outcome.failed += 1

    def _check_stalls(self) -> None:
        """Report nodes that hold our work and finish nothing for far longer than our tasks take (`stall`)."""
        self._stalls.check(self._unit_p90_s, lambda node: self.client.report_node_failure(node, "stalled"))

    def _unit_p90_s(self) -> float:
        """The 90th-percentile run time of one Ray task (a batch counts as its tasks together)."""
        return (self.pacer.task_quantile(0.9) or 0.0) * max(1, self.pacer.batch())

    # -- the end ------------------------------------------------------------------------------
    def _stop_all(self) -> None:
        """Cancel what runs, record it, and leave the brain."""
        for ref, attempts in list(self._running.items()):
            with contextlib.suppress(Exception):
                # A call to an actor (a replica, an executor) cannot be force-cancelled.
                ray.cancel(ref, force=attempts[0].via == "task")
            for a in attempts:
                self.writer.write(
                    self._row(a, Status.CANCELLED, "Cancelled: the run stopped before this task finished")
                )
                self.outcome.cancelled += 1
        self._running.clear()
        if self._services is not None:
            self._services.stop()
        counters = self.client.close()
        self.outcome.brain_decisions = counters.decisions
        self.outcome.keys_spread = counters.keys_spread
        self.outcome.hot_keys = counters.hot_keys
        self.outcome.executor_events = counters.executor_events


def new_run_id() -> str:
    """A run id that sorts by start time: 20261126T081012-1a2b3c."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


__all__ = ["Interrupt", "PinnedFunctions", "PolicyError", "RunSettings", "Runner", "new_run_id"]
