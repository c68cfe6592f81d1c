"""Issue 29, item 4: per node, the distinct keys its tasks ran and its cache hit rate, so a node that thrashes
shows; the end-of-run summary (filled as the run loop fills it, `accounting.count_ok`) and `raysched analyze`
(`per_node`, from the rows the run wrote) give the same numbers.

A hand-made run of 9 ok tasks:

  node A (4 CPUs): keys k0..k5, one task each, every one a miss      -> 6 keys, hits 0.0%
  node B (2 CPUs): key k6 three times, a miss then two hits, and an unkeyed task (keyed by its own task id:
                   not a key) that hit                               -> 1 key,  hits 3 of 4 = 75.0%
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysched.analysis import load, per_node, render_node_table, summarize, summary_to_json
from raysched.driver import remote
from raysched.driver.accounting import attempt_row, count_node_reports, count_ok
from raysched.driver.attempts import Attempt
from raysched.job import Task
from raysched.results.outcome import RunOutcome
from raysched.results.report import format_summary
from raysched.results.schema import Status
from raysched.results.writer import ResultsWriter

A, B = "a" * 56, "b" * 56
TASKS = [(f"k{i}", A, 0) for i in range(6)] + [("k6", B, 0), ("k6", B, 1), ("k6", B, 1), (None, B, 1)]


def work(key: str | None) -> dict:
    return {"cache_hit": 0}


def _run(writer: ResultsWriter) -> RunOutcome:
    run = RunOutcome("run-1", wall_s=2.0, node_weights={A: 4.0, B: 2.0})
    for task_id, (key, node, hit) in enumerate(TASKS):
        a = Attempt(task_id, Task(work, args=(key,), key=key), key or str(task_id), {"CPU": 1.0}, "CPU=1")
        a.node, a.received_at = node, 1.0 + task_id / 10
        out = remote.Outcome(node, 0.5 + task_id / 10, 0.6 + task_id / 10, {"cache_hit": hit}, None)
        count_ok(run, a, out)
        writer.write(attempt_row(run.run_id, "cache.py", "hash", a, Status.OK, out=out), out.metrics)
    return run


def test_the_summary_and_analyze_give_each_node_its_keys_and_hit_rate(tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    with ResultsWriter(path, flush_every_s=0) as writer:
        run = _run(writer)
    text = format_summary(run, "cache.py", "hash")
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("    ")}
    assert lines["aaaaaaaa"][-4:] == ["6", "keys", "hits", "0.0%"]
    assert lines["bbbbbbbb"][-4:] == ["1", "key", "hits", "75.0%"]  # 3 of its 4 tasks hit (the unkeyed one too)

    df = load([path])
    nodes = per_node(df).set_index("node")
    assert nodes.loc[A, "keys"] == 6 and nodes.loc[B, "keys"] == 1
    assert nodes.loc[A, "hit rate (%)"] == 0.0 and nodes.loc[B, "hit rate (%)"] == pytest.approx(75.0)
    table = render_node_table(per_node(df))
    assert "keys" in table.splitlines()[1] and "hits" in table.splitlines()[1]
    assert "75.0%" in table and "0.0%" in table
    record = {r["node"]: r for r in json.loads(summary_to_json(summarize(df), per_node(df)))["runs"][0]["nodes"]}
    assert record[A]["keys"] == 6 and record[B]["hit rate (%)"] == pytest.approx(75.0)


def test_a_run_without_keys_or_hits_has_no_such_columns_shown(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    with ResultsWriter(path, flush_every_s=0) as writer:
        for task_id in range(3):
            a = Attempt(task_id, Task(work, args=(None,)), str(task_id), {"CPU": 1.0}, "CPU=1")
            a.node = A
            out = remote.Outcome(A, 0.0, 0.1, {"items": 1}, None)
            writer.write(attempt_row("run-2", "plain.py", "random", a, Status.OK, out=out), out.metrics)
    df = load([path])
    assert "keys" not in render_node_table(per_node(df))
    record = json.loads(summary_to_json(summarize(df), per_node(df)))["runs"][0]["nodes"][0]
    assert set(record) == {"node", "tasks", "share (%)"}


def test_only_a_keys_return_to_a_node_tells_whether_the_node_keeps_it_warm() -> None:
    """The driver reports a node's cache hits to the brain for tasks whose key ran there before (`been_at`): a
    key's first task on a node misses wherever it goes, so counting it made the node that took the most new keys
    look like it thrashed, and shed warm keys at the start of a run (issue 29)."""
    run = RunOutcome("run-4")
    keys = run.task_keys
    assert not keys.been_at("k", A)  # its first task there: a cold start, not counted
    keys.ran("k", A)
    assert keys.been_at("k", A) and not keys.been_at("k", B)
    keys.untracked = True  # past the keys tracked: unknown, so every task counts, as before
    assert keys.been_at("other", B)


def test_the_driver_tells_the_brain_hits_of_returning_keys_and_run_times_of_hits() -> None:
    """`count_node_reports`, as the run loop calls it before `count_ok`: a key's first task on a node (a miss
    wherever it goes) is not counted among the node's hits; its return is. Run times count tasks that hit, or
    tasks that report no cache_hit; a miss (a cold cache, not a slow node) is left out."""
    run = RunOutcome("run-5")
    hits: dict[str, tuple[int, int]] = {}
    runs: dict[str, tuple[float, int]] = {}
    for task_id, (key, hit, seconds) in enumerate([("k", 0, 1.0), ("k", 1, 0.1), ("k", 0, 0.9), (None, None, 0.2)]):
        a = Attempt(task_id, Task(work, args=(key,), key=key), key or str(task_id), {"CPU": 1.0}, "CPU=1")
        a.node = A
        metrics = {} if hit is None else {"cache_hit": hit}
        out = remote.Outcome(A, 10.0, 10.0 + seconds, metrics, None)
        count_node_reports(run.task_keys, a, out, hits, runs)
        count_ok(run, a, out)
    assert hits == {A: (1, 2)}  # k's first task (a cold start) not counted; its two returns: one hit of two
    assert runs[A][1] == 2 and runs[A][0] == pytest.approx(0.3)  # the hit (0.1 s) and the task without cache_hit
