"""The driver loop of `raysched submit`: stream tasks to the brain, dispatch, collect rows.

Tasks are drawn lazily from the job's `tasks()`; at most `max_inflight` are held
at once (waiting for a node or running). Each round trip to the brain carries
the tasks that finished and the tasks that wait; the brain answers with nodes,
and the driver dispatches each task there with hard node affinity and
`max_retries=0` (a lost attempt is re-placed through the brain, never re-pinned
to a dead node).
"""
from __future__ import annotations

import collections
import pickle
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysched import remote
from raysched.brain import HEARTBEAT_S, Placement, PolicyError, UnknownSubmission, brain_handle
from raysched.cluster import ClusterError
from raysched.job import JobFile, JobFileError, Task, demand_of
from raysched.policies import Policy
from raysched.results import ResultsWriter, Row, Status, error_text

# Ray errors that mean the node the task was pinned to is gone.
NODE_LOST_ERRORS: tuple[type[BaseException], ...] = (
    ray.exceptions.NodeDiedError,
    ray.exceptions.TaskUnschedulableError,
)
# System failures worth another attempt elsewhere (bounded, in case a task kills its worker every time).
LOST_ATTEMPTS_LIMIT = 5
# Tasks asked about per brain call: about twice what the last call placed plus what
# has finished since, so a full cluster is not asked about thousands of waiting tasks.
BRAIN_BATCH = 512
MIN_ASK = 16
WAIT_S = 0.2
# With many tasks in flight the nodes hold queues, so after the first result the
# driver lingers briefly to collect more in one pass (ray.wait is O(n) per call);
# with few in flight it reacts at once, since every slot waits on it.
LINGER_S = 0.005
LINGER_ABOVE = 64
BRAIN_RETRY_S = 60.0


@dataclass
class RunSettings:
    """What a submission needs besides the job itself."""

    policy_name: str
    max_inflight: int
    retries: int = 0
    max_failures: int | None = None
    skip_task_ids: frozenset[int] = frozenset()
    overcommit: float = 1.0


@dataclass
class RunOutcome:
    """Counts and timings for the end-of-run summary and the exit code."""

    run_id: str
    ok: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    infeasible: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    interrupted: bool = False
    stopped_early: str = ""
    infeasible_error: str = ""
    per_node: collections.Counter = field(default_factory=collections.Counter)
    metric_sums: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.infeasible:
            return 2
        return 1 if self.failed else 0


@dataclass
class _Attempt:
    task_id: int
    task: Task
    key: str
    demand: Mapping[str, float]
    attempt: int = 1
    lost: int = 0
    node: str = ""
    # When raysched took the attempt in (drawn from tasks(), or queued again for a retry), so
    # wait_s counts the wait for room as well as Ray's own dispatch.
    submitted_at: float = field(default_factory=time.time)


@dataclass
class _BrainCall:
    """A placement round trip under way: its reply, the tasks it asks about, the releases it carries."""

    ref: Any
    batch: list[_Attempt]
    finished: list[int]
    sent_at: float = field(default_factory=time.monotonic)


class Interrupt:
    """Turn SIGINT/SIGTERM into a flag the loop checks, so shutdown is orderly."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "Interrupt":
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
        policy: Policy,
        settings: RunSettings,
        writer: ResultsWriter,
        on_progress: Callable[[RunOutcome, int], None] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.job = job
        self.policy = policy
        self.settings = settings
        self.writer = writer
        self.on_progress = on_progress or (lambda outcome, in_flight: None)
        self.outcome = RunOutcome(run_id=run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6])
        self._brain: Any = None
        self._pending: collections.deque[_Attempt] = collections.deque()
        self._running: dict[Any, _Attempt] = {}  # ObjectRef -> attempt
        self._finished: list[int] = []
        self._remote_fns: dict[tuple[Any, str], Any] = {}
        self._wrapped: dict[Any, Any] = {}
        self._last_brain_call = 0.0
        self._call: _BrainCall | None = None  # the one brain round trip in flight, if any
        self._news = False  # tasks joined the pending queue since the last brain call
        self._brain_down_since: float | None = None
        self._last_placed = 0

    # -- brain ------------------------------------------------------------------------------
    def _register(self) -> None:
        """Tell the brain about this run (again, after a restart), with the work it already holds."""
        held = [(a.task_id, a.node, a.demand) for a in self._running.values()]
        info = {"run_id": self.outcome.run_id, "job": self.job.name, "policy": self.settings.policy_name,
                "started_at": time.time()}
        try:
            reply = ray.get(self._brain.register.remote(self.outcome.run_id, self.policy, info, held))
        except ray.exceptions.RayTaskError as err:  # e.g. the brain could not unpickle the policy
            raise ClusterError(f"the placement brain refused this run: {error_text(err.cause or err)}") from None
        if reply["overcommit"] != self.settings.overcommit and not self.outcome.notes:
            self.outcome.notes.append(
                f"the running brain admits up to {reply['overcommit']:g} x capacity per node (set when it "
                f"started), not the {self.settings.overcommit:g} asked for; it applies to every submission")

    def _send_to_brain(self) -> None:
        """Start one round trip (finished tasks out, waiting tasks in) unless one is under way.

        The call is pipelined: the driver keeps collecting results while the
        brain decides, and applies the answer when it arrives.
        """
        if self._call is not None:
            return
        idle_for = time.monotonic() - self._last_brain_call
        due = idle_for > (WAIT_S if self._pending else HEARTBEAT_S)
        if not (self._finished or self._news or due):
            return
        ask = min(BRAIN_BATCH, len(self._pending), max(MIN_ASK, 2 * (len(self._finished) + self._last_placed)))
        batch = [self._pending.popleft() for _ in range(ask)]
        finished, self._finished = self._finished, []
        requests = [(a.task_id, a.demand, a.key) for a in batch]
        # One pickled blob instead of thousands of small objects: Ray's argument encoding is per object.
        payload = pickle.dumps((finished, requests), protocol=pickle.HIGHEST_PROTOCOL)
        ref = self._brain.place_packed.remote(self.outcome.run_id, payload)
        self._call = _BrainCall(ref, batch, finished)
        self._news = False
        self._last_brain_call = time.monotonic()

    def _apply_answer(self) -> None:
        """Dispatch what the brain placed; put the rest back in line. Survives a brain restart."""
        call, self._call = self._call, None
        assert call is not None
        try:
            answer: Placement = ray.get(call.ref)
        except UnknownSubmission:  # the brain restarted: it forgot us and what we sent
            self._pending.extendleft(reversed(call.batch))
            self._retry_brain(self._register)
            return
        except PolicyError as err:
            self._pending.extendleft(reversed(call.batch))
            raise JobFileError(f"policy error: {err.args[0] if err.args else err}") from None
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            self._pending.extendleft(reversed(call.batch))
            self._finished = call.finished + self._finished
            self._brain_unavailable()
            return
        self._brain_down_since = None
        self._last_placed = len(answer.placed)
        by_id = {a.task_id: a for a in call.batch}
        for uid, message in answer.infeasible:
            a = by_id.pop(uid)
            self.writer.write(self._row(a, Status.INFEASIBLE, f"InfeasibleError: {message}"))
            self.outcome.infeasible += 1
            self.outcome.infeasible_error = message
        for uid, node in answer.placed:
            self._dispatch(by_id.pop(uid), node)
        # Still waiting for room: to the back of the line, so tasks that wait for one busy
        # node (a hot key's home) never block tasks that could run elsewhere.
        self._pending.extend(by_id.values())

    def _retry_brain(self, action: Callable[[], Any]) -> None:
        try:
            action()
            self._brain_down_since = None
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            self._brain_unavailable()

    def _brain_unavailable(self) -> None:
        """The brain is restarting (or gone): wait a little, get a fresh handle, give up after a minute."""
        now = time.monotonic()
        self._brain_down_since = self._brain_down_since or now
        if now - self._brain_down_since > BRAIN_RETRY_S:
            raise ClusterError(f"the placement brain has not answered for {BRAIN_RETRY_S:.0f} s; "
                               "check `raysched status` and the cluster's health")
        time.sleep(0.2)
        self._brain = brain_handle(self.settings.overcommit)

    def _report_lost_node(self, node: str) -> None:
        try:
            self._brain.report_node_failure.remote(node)
        except Exception:  # the brain will see the death through membership anyway
            pass

    # -- dispatch ---------------------------------------------------------------------------
    def _remote_fn(self, fn: Any, node: str) -> Any:
        """A Ray remote function for `fn` pinned to `node` (cached: options are not free)."""
        cached = self._remote_fns.get((fn, node))
        if cached is None:
            if fn not in self._wrapped:
                self._wrapped[fn] = (ray.remote(remote.wrap(fn)), _ray_options(demand_of(fn)))
            base, options = self._wrapped[fn]
            cached = self._remote_fns[(fn, node)] = base.options(
                **options, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            )
        return cached

    def _dispatch(self, attempt: _Attempt, node: str) -> None:
        attempt.node = node
        task = attempt.task
        try:
            ref = self._remote_fn(task.fn, node).remote(*task.args, **(task.kwargs or {}))
        except (TypeError, ValueError, AttributeError) as err:  # pickling a function or its arguments failed
            self._finished.append(attempt.task_id)  # release the brain's reservation on the way out
            name = getattr(task.fn, "__qualname__", repr(task.fn))
            reason = " ".join(str(err).split())[:200]
            raise JobFileError(
                f"{self.job.name}: task {attempt.task_id} ({name}) cannot be serialized to send it to the cluster "
                f"({reason}); create locks, generators and connections inside the task function instead of "
                "capturing them"
            ) from None
        self._running[ref] = attempt

    # -- rows -------------------------------------------------------------------------------
    def _row(self, a: _Attempt, status: Status, error: str = "", out: remote.Outcome | None = None) -> Row:
        row = Row(run_id=self.outcome.run_id, job=self.job.name, policy=self.settings.policy_name,
                  task_id=a.task_id, key=a.key, attempt=a.attempt, status=status.value, error=error,
                  node_chosen=a.node, submitted_at=a.submitted_at)
        if out is not None:
            row.node_ran, row.started_at, row.finished_at = out.node_ran, out.started_at, out.finished_at
            row.wait_s = out.started_at - a.submitted_at
            row.run_s = out.finished_at - out.started_at
        return row

    def _record_ok(self, a: _Attempt, out: remote.Outcome) -> None:
        self.writer.write(self._row(a, Status.OK, out=out), out.metrics)
        self.outcome.ok += 1
        self.outcome.per_node[out.node_ran] += 1
        for name, value in out.metrics.items():
            self.outcome.metric_sums[name] = self.outcome.metric_sums.get(name, 0.0) + value

    def _record_error(self, a: _Attempt, error: str, out: remote.Outcome | None, lost: bool) -> None:
        """An attempt failed: retry it through the brain when allowed, else it failed for good."""
        if lost:
            a.lost += 1
        retry = (a.lost <= LOST_ATTEMPTS_LIMIT) if lost else (a.attempt - a.lost <= self.settings.retries)
        status = Status.RETRIED if retry else Status.FAILED
        self.writer.write(self._row(a, status, error, out), out.metrics if out else None)
        if retry:
            self.outcome.retried += 1
            self._pending.appendleft(_Attempt(a.task_id, a.task, a.key, a.demand, a.attempt + 1, a.lost))
            self._news = True
        else:
            self.outcome.failed += 1

    # -- the loop ---------------------------------------------------------------------------
    def _tasks(self) -> Iterator[_Attempt]:
        for task_id, task in enumerate(self.job.iter_tasks()):
            if task_id in self.settings.skip_task_ids:
                self.outcome.skipped += 1
                continue
            key = task.key if task.key is not None else str(task_id)
            yield _Attempt(task_id, task, str(key), demand_of(task.fn))

    def run(self, interrupt: Interrupt | None = None) -> RunOutcome:
        """Run the job to the end (or to an interrupt, an infeasible task, too many failures)."""
        interrupt = interrupt or Interrupt()
        started = time.monotonic()
        self._brain = brain_handle(self.settings.overcommit)
        self._register()
        self._last_brain_call = 0.0
        source = self._tasks()
        exhausted = False
        try:
            while True:
                if interrupt.requested:
                    self.outcome.interrupted = True
                    break
                if self.outcome.infeasible or self._too_many_failures():
                    break
                asking = len(self._call.batch) if self._call is not None else 0
                room = self.settings.max_inflight - len(self._running) - len(self._pending) - asking
                while room > 0 and not exhausted:
                    nxt = next(source, None)
                    if nxt is None:
                        exhausted = True
                    else:
                        self._pending.append(nxt)
                        self._news = True
                        room -= 1
                if exhausted and not self._pending and not self._running and self._call is None:
                    break
                self._send_to_brain()
                self._collect()
                self.on_progress(self.outcome, len(self._running))
        finally:
            self._stop_all()
            self.outcome.wall_s = time.monotonic() - started
            self.writer.flush()
        return self.outcome

    def _too_many_failures(self) -> bool:
        limit = self.settings.max_failures
        if limit is not None and self.outcome.failed >= limit:
            self.outcome.stopped_early = f"stopped after {self.outcome.failed} failed tasks (--max-failures {limit})"
            return True
        return False

    def _collect(self) -> None:
        """Wait briefly for finished attempts or the brain's answer, and act on what arrived."""
        waiting_on = list(self._running)
        if self._call is not None:
            if time.monotonic() - self._call.sent_at > BRAIN_RETRY_S:
                raise ClusterError(f"the placement brain has not answered for {BRAIN_RETRY_S:.0f} s "
                                   "(a policy stuck in choose()?); check `raysched status`")
            waiting_on.append(self._call.ref)
        if not waiting_on:
            time.sleep(0.02)  # tasks wait for room somewhere; the next brain call asks again
            return
        ready, rest = ray.wait(waiting_on, num_returns=1, timeout=WAIT_S, fetch_local=False)
        if not ready:
            return
        if rest:
            linger = LINGER_S if len(self._running) > LINGER_ABOVE else 0
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=linger, fetch_local=False)
            ready += more
        done = [ref for ref in ready if ref in self._running]
        for ref, out in zip(done, _get_each(done)):
            a = self._running.pop(ref)
            self._finished.append(a.task_id)
            if isinstance(out, ray.exceptions.RayError):
                if isinstance(out, NODE_LOST_ERRORS):
                    self._report_lost_node(a.node)
                self._record_error(a, error_text(out), None, lost=True)
            elif out.error is None:
                self._record_ok(a, out)
            else:
                self._record_error(a, out.error, out, lost=False)
        if self._call is not None and self._call.ref in ready:
            self._apply_answer()

    def _stop_all(self) -> None:
        """Cancel what runs, record it, and leave the brain."""
        for ref, a in list(self._running.items()):
            ray.cancel(ref, force=True)
            self.writer.write(self._row(a, Status.CANCELLED, "Cancelled: the run stopped before this task finished"))
            self.outcome.cancelled += 1
        self._running.clear()
        try:
            if self._brain is not None:
                ray.get(self._brain.unregister.remote(self.outcome.run_id), timeout=10)
        except Exception:  # the brain expires idle submissions on its own
            pass


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
