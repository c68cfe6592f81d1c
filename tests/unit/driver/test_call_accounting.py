"""Issue 28, item 5: a run with calls to a service, counted as the run loop counts it (`accounting`), is told in
call terms, by the end-of-run summary and by `raysched analyze` alike, with the same numbers.

Four calls of one hand-made run (times in seconds; `received` is when the result reached the driver):

  task key replica  node submitted started finished received router spill hit
  0    m1  Shard#0  A    0.0       0.10    0.20     0.21     0.05   -     0
  1    m1  Shard#0  A    0.0       0.20    0.30     0.32     0.15   -     1
  2    m2  Shard#1  B    0.0       0.05    0.45     0.46     0.00   bound 0
  3    m2  Shard#1  B    0.1       0.45    0.50     0.52     0.30   bound 1

  latency (received - submitted): 0.21 0.32 0.46 0.42 -> sorted .21 .32 .42 .46:
      p50 = (.32 + .42) / 2 = 370 ms; p95 at rank 0.95 x 3 = 2.85: .42 + .85 x .04 = 454 ms
  queue wait (started - submitted): .10 .20 .05 .35 -> sorted .05 .10 .20 .35: p50 150 ms; p95 .20 + .85 x .15 = 327.5
  service time (finished - started): .10 .10 .40 .05 -> sorted .05 .10 .10 .40: p50 100 ms; p95 .10 + .85 x .30 = 355
  router wait: (.05 + .15 + 0 + .30) / 4 = 125 ms per call
  makespan: first start .05 to last finish .50 = 0.45 s; 4 / 0.45 = 8.9 calls/s; start-up .05 - 0 = 0.05 s
  keys: m1 on Shard#0 only, m2 on Shard#1 only -> 100% of 2 keys on one replica; m2's two calls went off its ring
      owner (bound) and the key moved whole; cache hits 2 of 4 = 50.0%
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import raysched
from raysched.analysis import load, summarize
from raysched.driver import remote
from raysched.driver.accounting import attempt_row, count_ok
from raysched.driver.attempts import Attempt
from raysched.job import Task
from raysched.results.outcome import RunOutcome
from raysched.results.report import format_summary
from raysched.results.schema import Status
from raysched.results.writer import ResultsWriter

A, B = "a" * 56, "b" * 56

CALLS = [  # task, key, replica, node, submitted, started, finished, received, router wait, spill, hit
    (0, "m1", "Shard#0", A, 0.0, 0.10, 0.20, 0.21, 0.05, "", 0),
    (1, "m1", "Shard#0", A, 0.0, 0.20, 0.30, 0.32, 0.15, "", 1),
    (2, "m2", "Shard#1", B, 0.0, 0.05, 0.45, 0.46, 0.00, "bound", 0),
    (3, "m2", "Shard#1", B, 0.1, 0.45, 0.50, 0.52, 0.30, "bound", 1),
]


@raysched.service(num_cpus=1, replicas=2)
class Shard:
    def predict(self, model: str) -> dict:
        return {"items": 1}


def work(i: int) -> dict:
    return {"items": 1}


def _attempt(
    fn: Callable[..., Any],
    task_id: int,
    key: str,
    node: str,
    submitted: float,
    received: float | None,
    waited: float,
    spill: str,
    replica: str = "",
) -> Attempt:
    """An attempt as the loop holds it once its result came back (``received``), routed or placed as given."""
    a = Attempt(task_id, Task(fn, args=(key,), key=key), key, {"CPU": 1.0}, "CPU=1", submitted_at=submitted)
    a.node, a.replica, a.brain_wait_s, a.spill, a.received_at = node, replica, waited, spill, received
    return a


def _count(run: RunOutcome, writer: ResultsWriter | None, a: Attempt, started: float, end: float, hit: int) -> None:
    out = remote.Outcome(a.node, started, end, {"items": 1, "cache_hit": hit}, None)
    count_ok(run, a, out)
    if writer is not None:
        writer.write(attempt_row(run.run_id, "service_cache.py", "hash", a, Status.OK, out=out), out.metrics)


def _calls_run(writer: ResultsWriter | None = None) -> RunOutcome:
    run = RunOutcome("run-1", wall_s=3.0, brain_decisions=0)  # the brain decided nothing: calls are routed
    for task_id, key, replica, node, submitted, started, finished, received, waited, spill, hit in CALLS:
        a = _attempt(Shard.predict, task_id, key, node, submitted, received, waited, spill, replica)
        _count(run, writer, a, started, finished, hit)
    return run


def _line(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


def test_a_run_of_calls_is_told_in_call_terms() -> None:
    text = format_summary(_calls_run(), "service_cache.py", "hash")
    assert _line(text, "calls ok").split()[:3] == ["calls", "ok", "4"]
    assert "(all calls to Shard)" in _line(text, "calls ok")
    assert _line(text, "calls failed").split() == ["calls", "failed", "0"]
    assert _line(text, "calls/s").split() == ["calls/s", "8.9"]  # 4 / 0.45 s
    assert _line(text, "makespan").split()[1:3] == ["0.45", "s"]
    assert "first call start" in _line(text, "makespan")
    assert _line(text, "replicas used").split()[:6] == ["replicas", "used", "2", "on", "2", "nodes"]
    replicas = [line.split() for line in text.splitlines() if "Shard#" in line]
    assert replicas == [["Shard#0", "2", "50.0%", "on", "aaaaaaaa"], ["Shard#1", "2", "50.0%", "on", "bbbbbbbb"]]
    assert "100% of 2 keys ran on one replica" in _line(text, "key affinity")
    assert _line(text, "cache hits").split()[2:] == ["50.0%", "(mean", "cache_hit", "of", "4", "ok", "calls)"]
    # what a task run says and a run of calls must not: the brain's decisions, spills, nodes, tasks
    for absent in ("decisions", "spilled", "nodes used", "brain wait", "tasks", "task "):
        assert absent not in text, absent


def test_latency_queue_wait_and_service_time_are_quantiles_worked_out_by_hand() -> None:
    text = format_summary(_calls_run(), "j", "hash")
    assert _line(text, "latency").split()[:6] == ["latency", "p50", "370.0", "ms", "p95", "454.0"]
    assert "a call's send to its result back in the driver" in _line(text, "latency")
    assert _line(text, "queue wait").split()[:7] == ["queue", "wait", "p50", "150.0", "ms", "p95", "327.5"]
    assert "125.0 ms of it on average in the router" in _line(text, "queue wait")
    assert _line(text, "service time").split()[:7] == ["service", "time", "p50", "100.0", "ms", "p95", "355.0"]


def test_calls_off_their_ring_owner_are_said_in_replica_terms_not_as_task_spills() -> None:
    text = format_summary(_calls_run(), "j", "hash")
    line = _line(text, "off owner")
    assert line.split()[2:5] == ["2", "calls", "of"]  # m2's two calls, of one key
    assert "of 1 keys went to a replica other than their key's ring owner (2 bound" in line
    assert "1 of those keys moved whole" in text and "0 split over several" in text
    assert "tasks placed off" not in text


def test_the_summary_and_analyze_give_the_same_call_figures(tmp_path: Path) -> None:
    """One clock, one arithmetic: the rows the run wrote, analysed, give the numbers the summary printed."""
    path = tmp_path / "calls.csv"
    with ResultsWriter(path, flush_every_s=0) as writer:
        run = _calls_run(writer)
    figures = summarize(load([path]))["hash"]
    assert figures["calls ok"] == 4 and figures["throughput (calls/s)"] == pytest.approx(4 / 0.45)
    for name, samples in (("call latency", run.call_latency), ("queue wait", run.call_wait)):
        for q in ("p50", "p95", "p99"):
            assert figures[f"{name} {q} (s)"] == samples.quantile({"p50": 0.5, "p95": 0.95, "p99": 0.99}[q])
    assert figures["call latency p50 (s)"] == pytest.approx(0.37)
    assert figures["service time p95 (s)"] == pytest.approx(0.355)
    assert figures["latency_s p50 (s)"] == pytest.approx(0.37)  # over every ok row: here, the calls
    assert figures["key affinity by replica (%)"] == 100.0
    assert figures["calls off ring owner (%)"] == pytest.approx(50.0)  # 2 of 4 keyed calls
    assert "spilled (%)" not in figures.dropna().index  # the brain's spills are of tasks; there are none here


def test_the_latency_column_is_send_to_result_and_covers_the_service_time(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    with ResultsWriter(path, flush_every_s=0) as writer:
        _calls_run(writer)
    rows = load([path])
    assert list(rows["latency_s"]) == pytest.approx([0.21, 0.32, 0.46, 0.42])  # received - submitted
    assert (rows["latency_s"] >= rows["run_s"]).all() and (rows["latency_s"] >= rows["wait_s"] + rows["run_s"]).all()
    lost = _attempt(Shard.predict, 9, "m1", A, 0.0, None, 0.0, "", "Shard#0")
    assert attempt_row("r", "j", "hash", lost, Status.RETRIED, "ReplicaLost: gone").latency_s is None  # no result


def test_a_mixed_run_tells_tasks_in_task_terms_and_calls_in_call_terms() -> None:
    run = _calls_run()
    run.brain_decisions = 2
    for task_id, node, spill in ((10, A, ""), (11, B, "bound")):  # task k1: one home A, one spill to B
        a = _attempt(work, task_id, "k1", node, 0.0, 0.30, 0.02, spill)
        _count(run, None, a, 0.10, 0.25, 1)
    text = format_summary(run, "j", "hash")
    assert "(4 of them calls to Shard)" in _line(text, "tasks ok")
    assert "(tasks and calls)" in _line(text, "tasks/s") and _line(text, "calls/s").split() == ["calls/s", "8.9"]
    assert "0% of 1 task keys ran on one node" in text and "100% of 2 call keys ran on one replica" in text
    assert _line(text, "spilled").split()[1:3] == ["1", "tasks"]  # the task's spill, not the calls'
    assert _line(text, "off owner").split()[2:4] == ["2", "calls"]
    assert _line(text, "task latency").split()[2:5] == ["p50", "300.0", "ms"]  # 0.30 - 0.0, both tasks
    assert _line(text, "call latency").split()[2:5] == ["p50", "370.0", "ms"]
    assert "20.0 ms per task" in _line(text, "brain wait")  # 0.04 s over the 2 tasks (6.7 over all 6 rows)
    assert "per task attempt" in _line(text, "decisions")
    assert "tasks and calls per node" in _line(text, "nodes used")
