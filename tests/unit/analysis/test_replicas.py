"""Calls to a service in `raysched.analysis`: replica figures and the per-replica table, worked out by hand.

Run S ("hash", file s.csv, with a replica column): the Shard service has replicas Shard#0 on N1,
Shard#1 and Shard#2 on N2, Shard#3 on N1; task 7 is a plain task (no replica) run beside the calls.

  task key status  node replica
  0    a   ok      N1   Shard#0
  1    a   ok      N1   Shard#0
  2    a   ok      N1   Shard#0
  3    b   ok      N2   Shard#1
  4    b   ok      N2   Shard#2   key b: one node, two replicas
  5    c   ok      N2   Shard#1
  6    d   failed  N1   Shard#3   a replica that served no ok call
  7    -   ok      N1   -         a task, not a call

  ok calls per replica: Shard#0 3, Shard#1 2, Shard#2 1 -> replicas used 3,
      imbalance = max 3 / mean 2 = 1.5; shares 50%, 33.3%, 16.7%, and Shard#3 0 (0%);
  keys of ok calls: a -> {Shard#0}, b -> {Shard#1, Shard#2}, c -> {Shard#1}:
      key affinity by replica = 2 of 3 keys = 66.7%;
  while by node every key (a, b, c and task 7) stayed on one node: key affinity 100%.

Run O ("random", file o.csv, written before services: no replica column): two tasks on N1 and N2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_summary import N1, N2, row, write_csv

from raysched.analysis import (
    M_AFFINITY,
    M_OK,
    M_REPLICA_AFFINITY,
    M_REPLICA_IMBALANCE,
    M_REPLICAS,
    call_mask,
    load,
    per_node,
    per_replica,
    render_replica_table,
    render_table,
    summarize,
    summary_to_dict,
    summary_to_json,
)

REPLICA_METRICS = (M_REPLICAS, M_REPLICA_IMBALANCE, M_REPLICA_AFFINITY)


def service_rows() -> list[dict[str, object]]:
    s = dict(run_id="runS-0001", policy="hash")
    calls = [
        (0, "a", "ok", N1, "Shard#0"),
        (1, "a", "ok", N1, "Shard#0"),
        (2, "a", "ok", N1, "Shard#0"),
        (3, "b", "ok", N2, "Shard#1"),
        (4, "b", "ok", N2, "Shard#2"),
        (5, "c", "ok", N2, "Shard#1"),
        (6, "d", "failed", N1, "Shard#3"),
        (7, "", "ok", N1, ""),
    ]
    return [
        row(**s, task_id=t, key=k, attempt=1, status=st, node=n, submitted=0.0, started=t, finished=t + 1.0, replica=r)
        for t, k, st, n, r in calls
    ]


def old_rows() -> list[dict[str, object]]:
    o = dict(run_id="runO-0002", policy="random")
    return [
        row(**o, task_id=0, key="a", attempt=1, status="ok", node=N1, submitted=0.0, started=0.0, finished=1.0),
        row(**o, task_id=1, key="b", attempt=1, status="ok", node=N2, submitted=0.0, started=0.0, finished=2.0),
    ]


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return [
        write_csv(tmp_path / "s.csv", service_rows(), extra=("replica",)),
        write_csv(tmp_path / "o.csv", old_rows()),  # the first format: no replica column
    ]


def test_replica_figures_of_a_run_with_calls(files: list[Path]) -> None:
    s = summarize(load(files))["hash"]
    assert s[M_OK] == 7  # six ok calls and one task
    assert s[M_REPLICAS] == 3  # Shard#3 served no ok call
    assert s[M_REPLICA_IMBALANCE] == pytest.approx(1.5)
    assert s[M_REPLICA_AFFINITY] == pytest.approx(200 / 3)
    assert s[M_AFFINITY] == 100.0  # by node key b stayed home; by replica it did not


def test_a_run_without_calls_shows_the_replica_figures_as_not_applicable(files: list[Path]) -> None:
    summary = summarize(load(files))
    for metric in REPLICA_METRICS:
        assert math.isnan(summary.loc[metric, "random"]), metric
    table = render_table(summary)
    line = next(line for line in table.splitlines() if line.startswith(M_REPLICA_AFFINITY))
    assert line.split()[-2:] == ["66.7%", "n/a"]
    assert next(line for line in table.splitlines() if line.startswith(M_REPLICAS)).split()[-2:] == ["3", "n/a"]
    metrics = summary_to_dict(summary)["runs"][1]["metrics"]
    assert [metrics[m] for m in REPLICA_METRICS] == [None, None, None]


def test_without_calls_nothing_about_replicas_appears(files: list[Path]) -> None:
    df = load(files[1:])
    assert list(df["replica"]) == ["", ""]  # a column newer than the file is read as empty
    summary = summarize(df)
    assert not set(REPLICA_METRICS) & set(summary.index)
    assert per_replica(df).empty
    assert "replicas" not in summary_to_dict(summary, per_node(df), replicas=per_replica(df))["runs"][0]


def test_per_replica_counts_shares_and_idle_replicas(files: list[Path]) -> None:
    table = per_replica(load(files))
    assert list(table.columns) == ["run", "run_id", "replica", "calls", "share (%)", "keys", "hit rate (%)"]
    assert set(table["run"]) == {"hash"}  # the run without calls is left out
    assert list(table["replica"]) == ["Shard#0", "Shard#1", "Shard#2", "Shard#3"]
    assert list(table["calls"]) == [3, 2, 1, 0]
    assert list(table["share (%)"]) == pytest.approx([50.0, 100 / 3, 100 / 6, 0.0])
    assert list(table["keys"]) == [1, 2, 1, 0]  # a; b and c; b; none ok
    assert table["hit rate (%)"].isna().all()  # no cache_hit reported


def test_replica_table_and_json(files: list[Path]) -> None:
    df = load(files)
    text = render_replica_table(per_replica(df))
    lines = text.splitlines()
    assert lines[0] == "Calls per replica (ok rows)"
    assert lines[1].split() == ["run", "replica", "calls", "share", "keys"]
    assert lines[3].split() == ["hash", "Shard#0", "3", "50.0%", "1"]
    assert lines[-1].split() == ["Shard#3", "0", "0.0%", "0"]
    data = json.loads(summary_to_json(summarize(df), per_node(df), replicas=per_replica(df)))
    with_calls, without = data["runs"]
    assert [(r["replica"], r["calls"]) for r in with_calls["replicas"]] == [
        ("Shard#0", 3),
        ("Shard#1", 2),
        ("Shard#2", 1),
        ("Shard#3", 0),
    ]
    assert without["replicas"] == []


def test_a_call_is_a_row_that_names_its_replica() -> None:
    rows = pd.DataFrame({"replica": ["Shard#0", "", "  ", None, math.nan, "Shard#0", "Other#1"]})
    assert list(call_mask(rows)) == [True, False, False, False, False, True, True]
    assert list(call_mask(rows.astype({"replica": "category"}))) == list(call_mask(rows))
    assert not call_mask(pd.DataFrame({"key": ["a", "b"]})).any()  # a frame without the column: no calls
    assert call_mask(pd.DataFrame({"replica": []})).dtype == np.bool_
