"""`analyze` of a run of calls only speaks of calls (no cluster), worked out by hand.

Run C ("hash", c.csv: every row a call to Shard, each reporting cache_hit):

  task key replica  status cache_hit
  0    a   Shard#0  ok     0
  1    a   Shard#0  ok     1
  2    a   Shard#0  ok     1
  3    b   Shard#1  ok     0
  4    c   Shard#1  ok     1
  5    c   Shard#1  failed -

  per replica: Shard#0 3 calls, key a, hits 2 of 3 = 66.7%; Shard#1 2 ok calls, keys b and c, hits 1 of 2 = 50%.

Rules: its table names rows in call terms (calls ok, calls failed, throughput (calls/s), call latency, queue wait,
service time) and leaves out task rows (tasks ok, throughput (tasks/s), nodes used, brain_wait_s, the timing
columns by their task names); the per-replica table has each replica's keys and hit rate; the node table ("Tasks
per node") is left out; JSON keeps every figure under its existing name; beside a run of tasks the table keeps its
task names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_summary import N1, N2, row, run_a_rows, write_csv

from raysched.analysis import load, per_replica, render_replica_table, render_table, summarize, summary_to_dict
from raysched.analysis.render import calls_only
from raysched.cli.analyze import analyze_command


def call_rows() -> list[dict[str, object]]:
    c = dict(run_id="runC-0003", policy="hash")
    calls = [
        (0, "a", "Shard#0", N1, "ok", 0),
        (1, "a", "Shard#0", N1, "ok", 1),
        (2, "a", "Shard#0", N1, "ok", 1),
        (3, "b", "Shard#1", N2, "ok", 0),
        (4, "c", "Shard#1", N2, "ok", 1),
        (5, "c", "Shard#1", N2, "failed", ""),
    ]
    return [
        row(
            **c,
            task_id=t,
            key=k,
            attempt=1,
            status=st,
            node=n,
            submitted=0.0,
            started=t,
            finished=t + 0.5,
            replica=r,
            cache_hit=hit,
            latency_s=0.6,
        )
        for t, k, r, n, st, hit in calls
    ]


@pytest.fixture
def calls_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "c.csv", call_rows(), extra=("replica", "latency_s", "cache_hit"))


def metric_names(table: str) -> list[str]:
    return [line.split("  ")[0] for line in table.splitlines()[3:] if line.strip()]


def test_a_run_of_calls_only_is_told_in_call_terms(calls_csv: Path) -> None:
    summary = summarize(load([calls_csv]))
    assert calls_only(summary)
    shown = metric_names(render_table(summary))
    for metric in (
        "calls ok",
        "calls failed",
        "throughput (calls/s)",
        "call latency p50 (s)",
        "queue wait p95 (s)",
        "service time p50 (s)",
        "replicas used",
        "key affinity by replica (%)",
        "cache hit rate (%)",
    ):
        assert metric in shown, metric
    for task_row in (
        "tasks ok",
        "tasks failed",
        "throughput (tasks/s)",
        "nodes used",
        "run_s p50 (s)",
        "wait_s p50 (s)",
        "latency_s p50 (s)",
        "key affinity (%)",
        "CV tasks/node (pop. std/mean)",
    ):
        assert task_row not in shown, task_row
    assert not any("brain_wait_s" in m for m in shown)
    metrics = summary_to_dict(summary)["runs"][0]["metrics"]  # JSON: every figure under its one name
    assert metrics["tasks ok"] == 5 and metrics["calls ok"] == 5 and metrics["tasks failed"] == 1


def test_each_replica_has_its_keys_and_hit_rate(calls_csv: Path) -> None:
    table = per_replica(load([calls_csv]))
    assert list(table["replica"]) == ["Shard#0", "Shard#1"]
    assert list(table["keys"]) == [1, 2]
    assert list(table["hit rate (%)"]) == pytest.approx([200 / 3, 50.0])
    lines = render_replica_table(table).splitlines()
    assert lines[1].split() == ["run", "replica", "calls", "share", "keys", "hits"]
    assert lines[3].split() == ["hash", "Shard#0", "3", "60.0%", "1", "66.7%"]
    assert lines[4].split() == ["Shard#1", "2", "40.0%", "2", "50.0%"]


def test_the_cli_shows_replicas_not_nodes_for_calls_only_and_json_lists_replica_hit_rates(calls_csv: Path) -> None:
    out = CliRunner().invoke(analyze_command, [str(calls_csv)])
    assert out.exit_code == 0, out.output
    assert "Tasks per node" not in out.output and "Calls per replica" in out.output
    runs = json.loads(CliRunner().invoke(analyze_command, [str(calls_csv), "--json"]).output)["runs"]
    assert [r["hit rate (%)"] for r in runs[0]["replicas"]] == pytest.approx([200 / 3, 50.0])
    assert runs[0]["nodes"]  # the per-node records stay in JSON


def test_beside_a_run_of_tasks_the_table_keeps_its_task_names(calls_csv: Path, tmp_path: Path) -> None:
    tasks = write_csv(tmp_path / "a.csv", run_a_rows())
    summary = summarize(load([calls_csv, tasks]))
    assert not calls_only(summary)
    shown = metric_names(render_table(summary))
    assert "tasks ok" in shown and "nodes used" in shown and "calls ok" in shown
