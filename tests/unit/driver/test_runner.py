"""The runner's own decisions, on its real code path without a cluster: what it draws, keys and retries."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import ray

from raysched.brain.actor import PlacementBrain
from raysched.brain.state import Placement
from raysched.driver import rules
from raysched.driver.attempts import Attempt
from raysched.driver.loop import Runner, RunSettings
from raysched.driver.pacing import Pacer
from raysched.driver.remote import Outcome
from raysched.job import JobFile, Task
from raysched.policies import build_policy
from raysched.results.schema import Row, Status
from raysched.results.writer import ResultsWriter, completed_task_ids

JOB = "job.py"
POLICY = "hash"


def work(i: int) -> int:
    return i


def job_of(tasks: list[Task]) -> JobFile:
    return JobFile(path=Path(JOB), module=types.ModuleType("job"), tasks_fn=lambda: tasks)


class FakeClient:
    """What the runner asks of its brain client outside the loop: its run id, node reports, calls sent."""

    run_id = "run-1"
    cycle_s = 0.02
    in_flight = False
    at_brain = 0
    idle_s = 10.0
    pending_ref = None  # no brain call under way

    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []
        self.sent = 0
        self.stats: list[dict[str, float]] = []

    def send(self, finished: list[int], requests: list[Any], stats: dict[str, float], lost: Any = ()) -> None:
        self.sent += 1
        self.stats.append(dict(stats))

    def report_node_failure(self, node: str, why: str) -> None:
        self.reports.append((node, why))


class Rows:
    """A results writer that keeps the rows."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def write(self, row: Row, metrics: Any = None) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        pass


def runner_of(job: JobFile, **settings: Any) -> tuple[Runner, Rows]:
    rows = Rows()
    runner = Runner(job, FakeClient(), RunSettings(policy_name=POLICY, **settings), rows)  # type: ignore[arg-type]
    return runner, rows


# -- --resume ---------------------------------------------------------------------------------------


def test_resume_skips_the_tasks_ok_in_the_csv_and_runs_the_rest(tmp_path: Path) -> None:
    # The CSV of an earlier run: tasks 1 and 3 ok, task 2 failed, task 4 retried then cut off.
    csv_path = tmp_path / "out.csv"
    writer = ResultsWriter(csv_path, flush_every_s=0)
    for task_id, status in [(1, Status.OK), (2, Status.FAILED), (3, Status.OK), (4, Status.RETRIED)]:
        writer.write(Row("run-0", JOB, POLICY, task_id, f"k{task_id}", 1, status.value))
    writer.close()
    skip = completed_task_ids(csv_path, JOB, POLICY)
    runner, _ = runner_of(job_of([Task(work, (i,), key=f"k{i}") for i in range(6)]), skip_task_ids=skip)
    drawn = list(runner.draw())
    assert [a.task_id for a in drawn] == [0, 2, 4, 5]  # failed and retried tasks run again
    assert [a.task.args for a in drawn] == [(0,), (2,), (4,), (5,)]
    assert runner.outcome.skipped == 2


# -- keys -------------------------------------------------------------------------------------------


def _placed_nodes(requests: list[tuple[int, Any, str]]) -> dict[int, str]:
    brain = PlacementBrain(clock=lambda: 0.0)
    brain.sync_nodes({f"{c}" * 56: {"CPU": 64.0} for c in "abcdef"})
    brain.register("s", build_policy(POLICY), {"run_id": "r", "policy": POLICY})
    answer = brain.place("s", [], requests, Pacer().stats())
    return {uid: node for uid, node, _spill, _waited in answer.placed}


def test_tasks_with_an_empty_key_are_placed_by_their_task_id() -> None:
    tasks = [Task(work, (i,), key="") for i in range(40)]
    runner, _ = runner_of(job_of(tasks))
    drawn = list(runner.draw())
    assert [a.key for a in drawn] == [str(i) for i in range(40)]
    placed = _placed_nodes([a.request for a in drawn])  # what the runner sends the brain
    by_task_id = _placed_nodes([(i, {"CPU": 1.0}, str(i)) for i in range(40)])
    assert placed == by_task_id
    assert len(set(placed.values())) > 1  # one shared key "" would have sent them all to one home


# -- dispatch ---------------------------------------------------------------------------------------


def test_placed_tiny_tasks_travel_in_batches_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    # After 0.5 ms tasks the pacing batches 10 a Ray task (5 ms): 25 tasks placed on one node and 3 on another
    # leave as Ray tasks of 10, 10, 5 and 3, each pinned to its node, in the order they were placed.
    sent: list[tuple[str, list[int]]] = []

    def submit(pinned: Any, node: str, attempts: list[Attempt], job: str) -> object:
        sent.append((node, [a.task_id for a in attempts]))
        return object()  # stands in for the Ray ObjectRef

    monkeypatch.setattr("raysched.driver.routes.submit", submit)
    runner, _ = runner_of(job_of([Task(work, (i,), key=f"k{i}") for i in range(28)]))
    for _ in range(50):
        runner.pacer.task_ran(0.0005)
        runner.pacer.gap(0.02)
    for a in runner.draw():
        runner._hold(a)
    a_node, b_node = "a" * 56, "b" * 56
    placed = [(i, a_node if i < 25 else b_node, "", 0.0) for i in range(28)]
    runner._apply(Placement(placed=placed), 0.01)
    assert sent == [
        (a_node, list(range(0, 10))),
        (a_node, list(range(10, 20))),
        (a_node, list(range(20, 25))),
        (b_node, [25, 26, 27]),
    ]
    assert runner._stalls.work == {a_node: 25, b_node: 3}


# -- retries ----------------------------------------------------------------------------------------


def lose(runner: Runner, a: Attempt) -> None:
    runner._record(a, ray.exceptions.NodeDiedError(f"node {a.node} died"), 0.0)


def fail(runner: Runner, a: Attempt) -> None:
    runner._record(a, Outcome(a.node, 1.0, 2.0, {}, "ValueError: bad input"), 2.0)


def _run_attempts(runner: Runner, steps: list[Any]) -> list[tuple[int, str]]:
    """Apply each step (lose or fail) to the task's latest attempt; (attempt, status) of each row."""
    a = next(runner.draw())
    a.node = "n" * 56
    rows: Rows = runner.writer  # type: ignore[assignment]
    for step in steps:
        before = len(runner._to_send)
        step(runner, a)
        if len(runner._to_send) > before:
            a = runner._to_send[-1]
            a.node = "n" * 56
    return [(row.attempt, row.status) for row in rows.rows]


def test_attempts_lost_with_their_nodes_are_retried_up_to_the_limit() -> None:
    runner, _ = runner_of(job_of([Task(work, (0,), key="k")]))
    limit = rules.LOST_ATTEMPTS_LIMIT
    rows = _run_attempts(runner, [lose] * (limit + 1))
    assert rows == [(i, "retried") for i in range(1, limit + 1)] + [(limit + 1, "failed")]
    assert runner.outcome.retried == limit and runner.outcome.failed == 1
    assert runner.client.reports == [("n" * 56, "lost")] * (limit + 1)  # type: ignore[attr-defined]


LIMIT = rules.LOST_ATTEMPTS_LIMIT


@pytest.mark.parametrize(
    ("retries", "steps"),
    [
        (0, [lose] * LIMIT + [fail]),  # losses do not use up --retries
        (2, [lose] * LIMIT + [fail] * 3),
        (1, [fail] + [lose] * (LIMIT + 1)),  # failures do not use up the lost-attempt limit
        (3, [fail] * 3 + [lose] * (LIMIT + 1)),
        (2, [lose, fail, lose, fail, lose, fail]),  # interleaved: the third failure is one too many
    ],
)
def test_own_failures_and_lost_attempts_are_counted_apart(retries: int, steps: list[Any]) -> None:
    runner, _ = runner_of(job_of([Task(work, (0,), key="k")]), retries=retries)
    rows = _run_attempts(runner, steps)
    assert rows == [(i, "retried") for i in range(1, len(steps))] + [(len(steps), "failed")]


# -- pacing -----------------------------------------------------------------------------------------


def test_the_pacer_hears_no_round_trip_that_spans_the_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first brain calls wait for the cluster's workers and the brain to start (here 5 s); the first call
    # after the first finish still began its cycle then. Only from the second call after the first finish
    # does a round trip tell the pacer how long a freed slot waits (rules.paces).
    monkeypatch.setattr("raysched.driver.routes.submit", lambda *args: object())  # stands in for Ray
    runner, _ = runner_of(job_of([Task(work, (i,), key=f"k{i}") for i in range(8)]))
    client: FakeClient = runner.client  # type: ignore[assignment]
    start_depth = runner.pacer.depth()
    for a in runner.draw():
        runner._hold(a)
    runner._maybe_send()
    client.cycle_s = 5.0
    runner._apply(Placement(placed=[(0, "n" * 56, "", 0.0)]), 5.0)  # answered after the start-up
    first = runner._held[0]
    runner._finish_attempt(first)
    runner._record(first, Outcome(first.node, 1.0, 1.01, {}, None), 1.02)  # the first finish, noticed
    runner._maybe_send()
    runner._apply(Placement(), 5.0)  # its cycle began during the start-up
    assert client.sent == 2 and runner.pacer.depth() == start_depth  # heard neither
    runner._finished.append(99)  # news to send
    runner._maybe_send()
    client.cycle_s = 0.02
    runner._apply(Placement(), 0.01)  # a round trip of the running job: heard
    assert client.sent == 3 and runner.pacer.depth() != start_depth


# -- calls to a replica that dies --------------------------------------------------------------------


class Shelf:
    def read(self, i: int) -> dict[str, int]:
        return {"items": 1}


class FakeFleet:
    """A replica fleet as the runner sees it: `lost` declares a replica gone once, and tells the runner."""

    def __init__(self) -> None:
        self.on_lost: Any = None
        self.on_up: Any = None
        self.down: list[str] = []

    def lost(self, name: str) -> None:
        if name not in self.down:
            self.down.append(name)
            self.on_lost(name)


class FakeServices:
    def __init__(self) -> None:
        self.fleet = FakeFleet()
        self.held: list[Attempt] = []

    def hold(self, a: Attempt) -> None:
        self.held.append(a)

    def finished(self, a: Attempt) -> None:
        pass


def test_two_calls_of_a_dead_replica_finishing_in_one_collect_are_each_recorded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A replica's actor dies: two of its calls come back in the same wait with actor errors, a third is still
    # under way. Recording the first declares the replica lost, which fails what is still under way; the
    # second finished call must be recorded from its own result, once (it crashed the run with KeyError).
    import raysched

    shelf = raysched.service(num_cpus=1, replicas=1)(Shelf)
    services = FakeServices()
    rows = Rows()
    job = job_of([Task(shelf.read, (i,), key=f"k{i}") for i in range(3)])
    runner = Runner(job, FakeClient(), RunSettings(policy_name=POLICY), rows, services=services)  # type: ignore[arg-type]
    refs = ["ref-0", "ref-1", "ref-2"]
    for a, ref in zip(runner.draw(), refs, strict=True):
        runner._hold(a)
        a.replica, a.node = "Shelf#0", "n" * 56
        runner._running[ref] = [a]
    died = ray.exceptions.RayActorError()
    monkeypatch.setattr(ray, "wait", lambda refs, **kw: (["ref-0", "ref-1"], ["ref-2"]))
    monkeypatch.setattr("raysched.driver.loop.get_each", lambda done: [died] * len(done))
    cancelled: list[Any] = []
    # no Ray here: a real ray.cancel would start (or join whatever /tmp/ray/ray_current_cluster names, hanging
    # on a dead or foreign one) the unit loop
    monkeypatch.setattr(ray, "cancel", lambda ref, **kw: cancelled.append(ref))
    runner._collect()
    assert cancelled == ["ref-2"]  # what was still under way on the lost replica
    assert services.fleet.down == ["Shelf#0"]
    assert sorted((r.task_id, r.status) for r in rows.rows) == [(0, "retried"), (1, "retried"), (2, "retried")]
    assert not runner._running
    assert sorted(a.task_id for a in services.held[3:]) == [0, 1, 2]  # each retried exactly once


# -- executors: the auto rule -----------------------------------------------------------------------


def wide(i: int) -> int:
    return i


@pytest.mark.parametrize(("auto", "mixed", "expected"), [(True, False, 1.0), (True, True, 0.0), (False, True, None)])
def test_executors_hold_while_the_job_has_one_demand(auto: bool, mixed: bool, expected: float | None) -> None:
    import raysched

    wide_task = raysched.task(num_cpus=2)(wide)
    tasks = [Task(wide_task if mixed and i == 3 else work, (i,), key=f"k{i}") for i in range(6)]
    runner, _ = runner_of(job_of(tasks), executors_one_demand=auto)
    for a in runner.draw():
        runner._hold(a)
    runner._maybe_send()
    client: FakeClient = runner.client  # type: ignore[assignment]
    assert client.stats[-1].get("executors") == expected  # not said at all without auto: the brain's setting holds
