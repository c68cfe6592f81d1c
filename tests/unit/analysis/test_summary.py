"""Pure tests for raysched.analysis: hand-made runs, figures worked out in comments.

Run A ("hash", file a.csv, with items/bytes columns), three nodes N1 N2 N3:

  task key att status    node  submitted started finished  wait  run  items bytes
  0    k1  1   ok        N1    100.0     100.5   101.0     0.5   0.5  10    1000
  1    k1  1   ok        N1    100.0     101.0   102.0     1.0   1.0  10    1000
  2    k2  1   retried   N2     99.0      99.2    99.4     0.2   0.2
  2    k2  2   ok        N2    101.0     101.5   103.0     0.5   1.5  20    2000
  3    k2  1   ok        N3    100.5     102.0   104.0     1.5   2.0  20    2000
  4    k3  1   ok        N1    101.0     103.0   106.0     2.0   3.0  30    3000
  5    k4  1   ok        N1    102.0     106.0   110.0     4.0   4.0  10    1000
  6    k5  1   failed    N2    102.0     102.5   120.0    0.5  17.5

Run B ("random", file b.csv, no metric columns), two nodes N1 N2:

  0    k1  1   ok        N1    200.0     200.0   201.0     0.0   1.0
  1    k1  1   ok        N2    200.0     200.0   202.0     0.0   2.0
  2    k2  1   ok        N1    200.0     201.0   203.0     1.0   2.0
  3    k2  1   ok        N2    200.0     202.0   204.0     2.0   2.0
  4    k3  1   infeasible  -   200.0       -       -
  5    k4  1   cancelled   -   200.0       -       -
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysched.analysis import (
    COLUMNS,
    AnalysisInputError,
    AnalysisWarning,
    format_value,
    load,
    per_node,
    render_node_table,
    render_table,
    run_labels,
    summarize,
    summary_to_dict,
    summary_to_json,
    summary_to_tidy,
)
from raysched.results import sidecar
from raysched.results.schema import REQUIRED_COLUMNS

N1, N2, N3 = ("a1" * 28, "b2" * 28, "c3" * 28)  # 56-hex-char Ray node ids


def row(
    run_id: str,
    policy: str,
    task_id: int,
    key: str,
    attempt: int,
    status: str,
    node: str | None,
    submitted: float,
    started: float | None = None,
    finished: float | None = None,
    job: str = "cache_affinity.py",
    **metrics: object,
) -> dict[str, object]:
    """One CSV row; wait_s/run_s derived from the times, as `raysched submit` writes them."""
    r: dict[str, object] = {
        "run_id": run_id,
        "job": job,
        "policy": policy,
        "task_id": task_id,
        "key": key,
        "attempt": attempt,
        "status": status,
        "error": "" if status == "ok" else "ValueError: boom",
        "node_chosen": node or "",
        "node_ran": node or "",
        "submitted_at": submitted,
        "started_at": "" if started is None else started,
        "finished_at": "" if finished is None else finished,
        "wait_s": "" if started is None else started - submitted,
        "run_s": "" if finished is None or started is None else finished - started,
    }
    r.update(metrics)
    return r


def write_csv(path: Path, rows: list[dict[str, object]], extra: tuple[str, ...] = ()) -> Path:
    """A CSV in the first format (the 15 required columns): raysched must keep reading it."""
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(REQUIRED_COLUMNS) + list(extra), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in w.fieldnames})
    return path


def run_a_rows() -> list[dict[str, object]]:
    a = dict(run_id="runA-0001", policy="hash")
    return [
        row(
            **a,
            task_id=0,
            key="k1",
            attempt=1,
            status="ok",
            node=N1,
            submitted=100.0,
            started=100.5,
            finished=101.0,
            items=10,
            bytes=1000,
        ),
        row(
            **a,
            task_id=1,
            key="k1",
            attempt=1,
            status="ok",
            node=N1,
            submitted=100.0,
            started=101.0,
            finished=102.0,
            items=10,
            bytes=1000,
        ),
        row(
            **a, task_id=2, key="k2", attempt=1, status="retried", node=N2, submitted=99.0, started=99.2, finished=99.4
        ),
        row(
            **a,
            task_id=2,
            key="k2",
            attempt=2,
            status="ok",
            node=N2,
            submitted=101.0,
            started=101.5,
            finished=103.0,
            items=20,
            bytes=2000,
        ),
        row(
            **a,
            task_id=3,
            key="k2",
            attempt=1,
            status="ok",
            node=N3,
            submitted=100.5,
            started=102.0,
            finished=104.0,
            items=20,
            bytes=2000,
        ),
        row(
            **a,
            task_id=4,
            key="k3",
            attempt=1,
            status="ok",
            node=N1,
            submitted=101.0,
            started=103.0,
            finished=106.0,
            items=30,
            bytes=3000,
        ),
        row(
            **a,
            task_id=5,
            key="k4",
            attempt=1,
            status="ok",
            node=N1,
            submitted=102.0,
            started=106.0,
            finished=110.0,
            items=10,
            bytes=1000,
        ),
        row(
            **a,
            task_id=6,
            key="k5",
            attempt=1,
            status="failed",
            node=N2,
            submitted=102.0,
            started=102.5,
            finished=120.0,
        ),
    ]


def run_b_rows() -> list[dict[str, object]]:
    b = dict(run_id="runB-0002", policy="random")
    return [
        row(**b, task_id=0, key="k1", attempt=1, status="ok", node=N1, submitted=200.0, started=200.0, finished=201.0),
        row(**b, task_id=1, key="k1", attempt=1, status="ok", node=N2, submitted=200.0, started=200.0, finished=202.0),
        row(**b, task_id=2, key="k2", attempt=1, status="ok", node=N1, submitted=200.0, started=201.0, finished=203.0),
        row(**b, task_id=3, key="k2", attempt=1, status="ok", node=N2, submitted=200.0, started=202.0, finished=204.0),
        row(**b, task_id=4, key="k3", attempt=1, status="infeasible", node=None, submitted=200.0),
        row(**b, task_id=5, key="k4", attempt=1, status="cancelled", node=None, submitted=200.0),
    ]


@pytest.fixture
def two_files(tmp_path: Path) -> list[Path]:
    return [
        write_csv(tmp_path / "a.csv", run_a_rows(), extra=("items", "bytes")),
        write_csv(tmp_path / "b.csv", run_b_rows()),
    ]


@pytest.fixture
def summary(two_files: list[Path]) -> pd.DataFrame:
    return summarize(load(two_files))


# --------------------------------------------------------------------------- figures


def test_run_a_counts_makespan_and_rates(summary: pd.DataFrame) -> None:
    a = summary["hash"]
    assert a["attempts"] == 8
    assert a["tasks ok"] == 6
    assert a["tasks failed"] == 1
    assert a["attempts retried"] == 1
    assert a["tasks infeasible"] == 0 and a["tasks cancelled"] == 0
    # ok rows only: last finished 110.0 - first started 100.5 = 9.5 (the one clock: first start)
    # (from the first submission, 100.0, it would be 10.0; all rows would give 120.0 - 99.2 = 20.8)
    assert a["makespan (s)"] == pytest.approx(9.5)
    assert a["start-up (s)"] == pytest.approx(0.5)  # first ok start 100.5 - first ok submission 100.0
    assert a["throughput (tasks/s)"] == pytest.approx(6 / 9.5)  # 6 ok / 9.5 s = 0.632
    assert a["items/s"] == pytest.approx(100 / 9.5)  # (10+10+20+20+30+10) / 9.5 s
    assert a["bytes/s"] == pytest.approx(10_000 / 9.5)
    assert summary["random"]["start-up (s)"] == pytest.approx(0.0)  # run B's first task started at once


def test_run_a_latency_quantiles_are_linear(summary: pd.DataFrame) -> None:
    a = summary["hash"]
    # run_s of ok rows sorted: 0.5 1.0 1.5 2.0 3.0 4.0; position = q * (6 - 1)
    assert a["run_s p50 (s)"] == pytest.approx(1.75)  # pos 2.5: 1.5 + 0.5 * 0.5
    assert a["run_s p95 (s)"] == pytest.approx(3.75)  # pos 4.75: 3.0 + 0.75 * 1.0
    assert a["run_s p99 (s)"] == pytest.approx(3.95)  # pos 4.95: 3.0 + 0.95 * 1.0
    # wait_s of ok rows sorted: 0.5 0.5 1.0 1.5 2.0 4.0
    assert a["wait_s p50 (s)"] == pytest.approx(1.25)  # 1.0 + 0.5 * 0.5
    assert a["wait_s p95 (s)"] == pytest.approx(3.5)  # 2.0 + 0.75 * 2.0
    assert a["wait_s p99 (s)"] == pytest.approx(3.9)  # 2.0 + 0.95 * 2.0


def test_run_a_balance_and_affinity(summary: pd.DataFrame) -> None:
    a = summary["hash"]
    # ok tasks per node: N1 4, N2 1, N3 1; mean 2
    assert a["nodes used"] == 3
    assert a["imbalance (max/mean)"] == pytest.approx(2.0)  # 4 / 2
    # population std: sqrt(((4-2)^2 + (1-2)^2 + (1-2)^2) / 3) = sqrt(2); CV = sqrt(2)/2
    # (the sample std, ddof=1, would give sqrt(3)/2 = 0.866)
    assert a["CV tasks/node (pop. std/mean)"] == pytest.approx(math.sqrt(2) / 2)
    # keys: k1 {N1} yes, k2 {N2, N3} no, k3 {N1} yes, k4 {N1} yes -> 3 of 4
    assert a["keys"] == 4
    assert a["key affinity (%)"] == pytest.approx(75.0)


def test_run_b_figures_and_missing_metric_columns(summary: pd.DataFrame) -> None:
    b = summary["random"]
    assert (b["attempts"], b["tasks ok"], b["tasks infeasible"], b["tasks cancelled"]) == (6, 4, 1, 1)
    assert b["makespan (s)"] == pytest.approx(4.0)  # 204 - 200
    assert b["throughput (tasks/s)"] == pytest.approx(1.0)  # 4 / 4
    assert math.isnan(b["items/s"]) and math.isnan(b["bytes/s"])  # b.csv has no such columns
    # run_s 1 2 2 2: p50 pos 1.5 -> 2.0; wait_s 0 0 1 2: p50 pos 1.5 -> 0.5, p95 pos 2.85 -> 1.85
    assert b["run_s p50 (s)"] == pytest.approx(2.0)
    assert b["wait_s p50 (s)"] == pytest.approx(0.5)
    assert b["wait_s p95 (s)"] == pytest.approx(1.85)
    assert b["wait_s p99 (s)"] == pytest.approx(1.97)
    # N1 2, N2 2: perfectly even
    assert b["imbalance (max/mean)"] == pytest.approx(1.0)
    assert b["CV tasks/node (pop. std/mean)"] == pytest.approx(0.0)
    assert b["key affinity (%)"] == pytest.approx(0.0)  # k1 and k2 each ran on N1 and N2


def test_two_runs_side_by_side_labelled_by_policy(summary: pd.DataFrame) -> None:
    assert list(summary.columns) == ["hash", "random"]  # order of first appearance
    assert summary.index[0] == "attempts"
    assert [r["run_id"] for r in summary.attrs["runs"]] == ["runA-0001", "runB-0002"]


def test_per_node_counts_shares_and_idle_nodes(two_files: list[Path]) -> None:
    nodes = per_node(load(two_files))
    a = nodes[nodes["run"] == "hash"]
    assert list(a["node"]) == [N1, N2, N3]  # most loaded first, ties by node id
    assert list(a["tasks"]) == [4, 1, 1]
    assert list(a["share (%)"]) == pytest.approx([400 / 6, 100 / 6, 100 / 6])
    b = nodes[nodes["run"] == "random"]
    assert list(b["tasks"]) == [2, 2]


def test_node_that_only_failed_is_listed_with_zero(tmp_path: Path) -> None:
    rows = [
        row("r", "p2c", 0, "k", 1, "ok", N1, 0.0, 0.0, 1.0),
        row("r", "p2c", 1, "k", 1, "failed", N3, 0.0, 0.0, 1.0),
    ]
    df = load([write_csv(tmp_path / "r.csv", rows)])
    nodes = per_node(df)
    assert list(zip(nodes["node"], nodes["tasks"], strict=True)) == [(N1, 1), (N3, 0)]
    assert summarize(df)["p2c"]["nodes used"] == 1  # only nodes with an ok task count


def test_a_run_without_keys_has_no_key_figures(tmp_path: Path) -> None:
    """Issue 30: an unkeyed run read "key affinity 100% of 300 keys" and "spilled 129"; it has no keys."""
    rows = [row("r", "hash", i, "", 1, "ok", node, 0.0, 0.0, 1.0) for i, node in enumerate([N1, N2, N1])]
    rows += [row("r", "hash", 3, "3", 1, "ok", N2, 0.0, 0.0, 1.0, spill="bound")]  # its task id: recorded as no key
    s = summarize(load([write_csv(tmp_path / "r.csv", rows, extra=("spill",))]))
    assert s["hash"]["keys"] == 0  # each would be its own key "0", "1", "2", "3": no affinity to keep
    assert math.isnan(s["hash"]["key affinity (%)"])
    assert "spilled (%)" not in s.index and "spilled: bound" not in s.index


def test_labels_add_job_when_jobs_differ_and_id_when_they_collide(tmp_path: Path) -> None:
    rows = [
        row("20240101-aaaa", "hash", 0, "k", 1, "ok", N1, 0.0, 0.0, 1.0, job="jobs/a.py"),
        row("20240101-bbbb", "hash", 0, "k", 1, "ok", N1, 0.0, 0.0, 1.0, job="jobs/a.py"),
        row("20240101-cccc", "hash", 0, "k", 1, "ok", N1, 0.0, 0.0, 1.0, job="jobs/b.py"),
    ]
    labels = run_labels(load([write_csv(tmp_path / "r.csv", rows)]))
    # shared prefix "20240101", so the shortest unique cut is the 6-char suffix
    assert list(labels.values()) == ["hash (a) #1-aaaa", "hash (a) #1-bbbb", "hash (b)"]


def test_no_ok_rows_gives_counts_and_nan_not_a_crash(tmp_path: Path) -> None:
    rows = [
        row("r", "pack", 0, "k", 1, "failed", N1, 0.0, 0.5, 1.0),
        row("r", "pack", 1, "k", 1, "infeasible", None, 0.0),
    ]
    df = load([write_csv(tmp_path / "r.csv", rows)])
    s = summarize(df)["pack"]
    assert (s["attempts"], s["tasks ok"], s["tasks failed"], s["nodes used"], s["keys"]) == (2, 0, 1, 0, 0)
    for metric in ("makespan (s)", "throughput (tasks/s)", "run_s p99 (s)", "imbalance (max/mean)", "key affinity (%)"):
        assert math.isnan(s[metric]), metric
    table = render_table(summarize(df))
    assert "n/a" in table
    data = json.loads(summary_to_json(summarize(df), per_node(df)))
    assert data["runs"][0]["metrics"]["throughput (tasks/s)"] is None
    assert data["runs"][0]["nodes"] == [{"node": N1, "tasks": 0, "share (%)": None}]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=40))
def test_balance_invariants(tmp_path_factory: pytest.TempPathFactory, tasks: list[tuple[int, int]]) -> None:
    """For any placement: shares sum to 100, imbalance >= 1, CV >= 0, node tasks sum to tasks ok."""
    ids = [f"{i:056x}" for i in range(6)]
    rows = [row("r", "random", t, f"k{key}", 1, "ok", ids[node], 0.0, 0.0, 1.0) for t, (node, key) in enumerate(tasks)]
    df = load([write_csv(tmp_path_factory.mktemp("h") / "r.csv", rows)])
    s, nodes = summarize(df)["random"], per_node(df)
    assert nodes["tasks"].sum() == s["tasks ok"] == len(tasks)
    assert nodes["share (%)"].sum() == pytest.approx(100.0)
    assert s["imbalance (max/mean)"] >= 1.0 - 1e-12
    assert s["CV tasks/node (pop. std/mean)"] >= 0.0
    assert 0.0 <= s["key affinity (%)"] <= 100.0


# --------------------------------------------------------------------------- output


def test_render_table_is_readable(summary: pd.DataFrame) -> None:
    table = render_table(summary)
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "hash", "random"]
    assert lines[1].split() == ["job", "cache_affinity.py", "cache_affinity.py"]
    assert lines[2].split() == ["run", "id", "runA-0001", "runB-0002"]
    assert set(lines[3].replace(" ", "")) == {"-"}
    by_metric = {line[:29].strip(): line[29:].split() for line in lines[4:] if line.strip()}
    assert by_metric["throughput (tasks/s)"] == ["0.632", "1.00"]
    assert by_metric["items/s"] == ["10.53", "n/a"]
    assert by_metric["run_s p50 (s)"] == ["1.75", "2.00"]
    assert by_metric["key affinity (%)"] == ["75.0%", "0.0%"]
    assert by_metric["tasks ok"] == ["6", "4"]
    assert "" in lines  # groups separated by blank lines


def test_format_value() -> None:
    assert format_value("attempts", 12345.0) == "12,345"
    assert format_value("bytes/s", 1234567.8) == "1,234,568"
    assert format_value("makespan (s)", 123.456) == "123.5"
    assert format_value("makespan (s)", 12.3456) == "12.35"
    assert format_value("run_s p50 (s)", 0.012345) == "0.0123"
    assert format_value("run_s p50 (s)", 0.0000123) == "1.23e-05"
    assert format_value("key affinity (%)", 75.0) == "75.0%"
    assert format_value("throughput (tasks/s)", float("nan")) == "n/a"
    assert format_value("makespan (s)", 0.0) == "0"


def test_node_table_cuts_ids(two_files: list[Path]) -> None:
    text = render_node_table(per_node(load(two_files)))
    assert N1[:8] in text and N1 not in text
    assert "66.7%" in text


def test_json_holds_the_same_figures_and_nodes(summary: pd.DataFrame, two_files: list[Path]) -> None:
    data = json.loads(summary_to_json(summary, per_node(load(two_files))))
    a, b = data["runs"]
    assert (a["label"], a["run_id"], a["policy"], a["job"]) == ("hash", "runA-0001", "hash", "cache_affinity.py")
    assert a["sources"] == [str(two_files[0])]
    assert a["metrics"]["tasks ok"] == 6 and isinstance(a["metrics"]["tasks ok"], int)
    assert a["metrics"]["imbalance (max/mean)"] == pytest.approx(2.0)
    assert b["metrics"]["items/s"] is None
    assert [(n["node"], n["tasks"]) for n in a["nodes"]] == [(N1, 4), (N2, 1), (N3, 1)]
    assert summary_to_dict(summary) == {"runs": [{k: v for k, v in r.items() if k != "nodes"} for r in data["runs"]]}


def test_tidy_table(summary: pd.DataFrame) -> None:
    tidy = summary_to_tidy(summary)
    assert list(tidy.columns) == ["run", "run_id", "metric", "value"]
    assert len(tidy) == summary.size
    pick = tidy[(tidy["run"] == "hash") & (tidy["metric"] == "throughput (tasks/s)")]
    assert pick["value"].item() == pytest.approx(6 / 9.5)
    assert tidy.loc[(tidy["run"] == "hash") & (tidy["metric"] == "tasks ok"), "value"].item() == 6


# --------------------------------------------------------------------------- load: bad and damaged input


def test_load_types_and_source(two_files: list[Path]) -> None:
    df = load(two_files)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert list(df.columns[len(COLUMNS) :]) == ["items", "bytes", "source"]
    assert df["submitted_at"].dtype == "float64" and df["attempt"].dtype == "int64"
    assert df["node_ran"].isna().sum() == 2  # infeasible and cancelled rows of run B
    assert set(df["source"]) == {str(p) for p in two_files}


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("a,b\n1,2\n", "missing columns run_id, job, policy"),
        (",".join(COLUMNS) + "\n", "header but no result rows"),
        (",".join(c for c in COLUMNS if c not in ("run_s", "node_ran")) + "\n", "missing columns node_ran, run_s;"),
    ],
    ids=["empty", "blank-lines", "foreign", "header-only", "two-missing"],
)
def test_bad_files_raise_one_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(AnalysisInputError, match=expected) as info:
        load([path])
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AnalysisInputError, match="no such file"):
        load([tmp_path / "nope.csv"])
    with pytest.raises(AnalysisInputError, match="is a directory"):
        load([tmp_path])


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(AnalysisInputError, match="not a text CSV"):
        load([path])


def test_bad_number_in_the_middle_is_an_error(tmp_path: Path) -> None:
    rows = run_b_rows()
    rows[1]["run_s"] = "fast"
    with pytest.raises(AnalysisInputError, match=r"line 3: run_s holds 'fast', not a number"):
        load([write_csv(tmp_path / "b.csv", rows)])


def test_unknown_status_in_the_middle_is_an_error(tmp_path: Path) -> None:
    rows = run_b_rows()
    rows[0]["status"] = "done"
    with pytest.raises(AnalysisInputError, match=r"line 2: status 'done' is not one of ok, failed"):
        load([write_csv(tmp_path / "b.csv", rows)])


def test_short_row_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", run_b_rows())
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:20]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnalysisInputError, match=r"line 3: \d+ fields but the header has 15"):
        load([path])


def _cut(path: Path, keep_chars: int) -> None:
    """Simulate a crash: the last line stops after `keep_chars` characters, no newline."""
    text = path.read_text()
    head, last = text.rstrip("\n").rsplit("\n", 1)
    path.write_text(head + "\n" + last[:keep_chars])


def test_cut_last_line_is_dropped_with_a_warning(tmp_path: Path) -> None:
    rows = [*run_a_rows(), row("runA-0001", "hash", 7, "k9", 1, "ok", N3, 100.0, 200.0, 900.0, items=1, bytes=1)]
    path = write_csv(tmp_path / "a.csv", rows, extra=("items", "bytes"))
    _cut(path, 40)  # mid node id: 9 of 17 fields
    with pytest.warns(AnalysisWarning, match=r"line 10: last line is cut short \(\d+ of 17 fields\)"):
        df = load([path])
    assert len(df) == 8
    assert summarize(df)["hash"]["makespan (s)"] == pytest.approx(9.5)  # as if the line never was


def test_cut_last_line_with_a_bad_number_is_dropped(tmp_path: Path) -> None:
    rows = run_b_rows()
    rows[-1] = row("runB-0002", "random", 5, "k4", 1, "ok", N1, 200.0, 200.0, 1000.0)
    path = write_csv(tmp_path / "b.csv", rows)
    text = path.read_text().rstrip("\n")
    path.write_text(text[:-2] + "e")  # run_s "800.0" cut to "80" then garbage "e": 15 fields, bad number
    messages: list[str] = []
    df = load([path], on_warning=messages.append)
    assert len(messages) == 1 and "bad value in run_s ('800e')" in messages[0]
    assert summarize(df)["random"]["makespan (s)"] == pytest.approx(4.0)


def test_cut_inside_a_quoted_error_field(tmp_path: Path) -> None:
    rows = run_b_rows()
    rows.append(row("runB-0002", "random", 6, "k6", 1, "failed", N1, 200.0, 200.0, 201.0))
    rows[-1]["error"] = 'RuntimeError: "quoted", with, commas'
    path = write_csv(tmp_path / "b.csv", rows)
    text = path.read_text()
    path.write_text(text[: text.index("with, commas") + 4])  # ends inside the quoted field
    with pytest.warns(AnalysisWarning, match="cut short"):
        df = load([path])
    assert len(df) == 6


def test_same_file_twice_is_read_once(two_files: list[Path]) -> None:
    with pytest.warns(AnalysisWarning, match="given more than once"):
        df = load([two_files[0], two_files[0]])
    assert len(df) == 8


def test_summarize_rejects_a_foreign_frame() -> None:
    with pytest.raises(AnalysisInputError, match="missing columns"):
        summarize(pd.DataFrame({"a": [1]}))


def test_hot_keys_spread_and_the_cache_hit_rate_are_reported(tmp_path: Path) -> None:
    """A hot key spread over three nodes by its share of the work, a cold key at home; hits 3 of 5."""
    rows = [
        row("r1", "hash", 0, "hot", 1, "ok", N1, 0.0, 0.1, 1.0, spill="", cache_hit=1),
        row("r1", "hash", 1, "hot", 1, "ok", N2, 0.0, 0.1, 1.0, spill="spread", cache_hit=0),
        row("r1", "hash", 2, "hot", 1, "ok", N3, 0.0, 0.1, 1.0, spill="spread", cache_hit=0),
        row("r1", "hash", 3, "hot", 1, "ok", N2, 0.0, 1.0, 2.0, spill="spread", cache_hit=1),
        row("r1", "hash", 4, "cold", 1, "ok", N1, 0.0, 1.0, 2.0, spill="", cache_hit=1),
    ]
    path = write_csv(tmp_path / "r.csv", rows, extra=("spill", "cache_hit"))
    s = summarize(load([path])).iloc[:, 0]
    assert s["spilled: spread"] == 3  # three tasks ran on the hot key's other nodes
    assert s["keys spread (hot)"] == 1  # one key
    assert s["most nodes for one hot key"] == 3  # over three nodes
    assert s["cache hit rate (%)"] == pytest.approx(60.0)  # 3 hits of 5 ok tasks
    assert "cache hit rate (%)" in render_table(summarize(load([path])))


def test_no_cache_hit_column_means_no_hit_rate_row(two_files: list[Path]) -> None:
    assert "cache hit rate (%)" not in summarize(load(two_files)).index


# --------------------------------------------------------------------------- each figure told apart from its neighbours


def test_every_status_is_counted_under_its_own_name(tmp_path: Path) -> None:
    """1 ok, 2 failed, 3 retried, 4 infeasible, 5 cancelled: no two counts alike, so no two can be swapped."""
    statuses = ["ok"] + ["failed"] * 2 + ["retried"] * 3 + ["infeasible"] * 4 + ["cancelled"] * 5
    rows = [row("r", "p2c", i, f"k{i}", 1, s, N1, 0.0, 0.0, 1.0) for i, s in enumerate(statuses)]
    s = summarize(load([write_csv(tmp_path / "r.csv", rows)]))["p2c"]
    counts = ("attempts", "tasks ok", "tasks failed", "attempts retried", "tasks infeasible", "tasks cancelled")
    assert [s[c] for c in counts] == [15, 1, 2, 3, 4, 5]


def test_balance_follows_the_node_a_task_ran_on_not_the_one_chosen(tmp_path: Path) -> None:
    """Chosen N1 but ran on N2 (Ray moved it): the figures and the per-node table count N2."""
    rows = [row("r", "p2c", i, f"k{i}", 1, "ok", N1, 0.0, 0.0, 1.0) for i in range(3)]
    rows[2]["node_ran"] = N2
    df = load([write_csv(tmp_path / "r.csv", rows)])
    s = summarize(df)["p2c"]
    assert s["nodes used"] == 2
    assert s["imbalance (max/mean)"] == pytest.approx(2 / 1.5)  # N1 2, N2 1
    nodes = per_node(df)
    assert list(zip(nodes["node"], nodes["tasks"], strict=True)) == [(N1, 2), (N2, 1)]


def test_a_node_only_chosen_is_listed_idle(tmp_path: Path) -> None:
    """An infeasible task the brain chose N3 for never ran: N3 still shows, with 0 tasks."""
    rows = [row("r", "p2c", 0, "k", 1, "ok", N1, 0.0, 0.0, 1.0), row("r", "p2c", 1, "k", 1, "infeasible", None, 0.0)]
    rows[1]["node_chosen"] = N3
    nodes = per_node(load([write_csv(tmp_path / "r.csv", rows)]))
    assert list(zip(nodes["node"], nodes["tasks"], strict=True)) == [(N1, 1), (N3, 0)]
    assert list(nodes["run_id"]) == ["r", "r"] and list(nodes["run"]) == ["p2c", "p2c"]


def test_rates_and_spills_count_ok_rows_only(tmp_path: Path) -> None:
    rows = [
        row("r", "hash", 0, "k", 1, "ok", N1, 0.0, 0.0, 2.0, items=10, spill=""),
        row("r", "hash", 1, "k", 1, "ok", N1, 0.0, 0.0, 2.0, items=10, spill="bound"),
        row("r", "hash", 2, "k", 1, "failed", N2, 0.0, 0.0, 2.0, items=1000, spill="wait"),
    ]
    s = summarize(load([write_csv(tmp_path / "r.csv", rows, extra=("items", "spill"))]))["hash"]
    assert s["items/s"] == pytest.approx(10.0)  # 20 items over 2 s; the failed task's 1000 do not count
    assert s["spilled (%)"] == pytest.approx(50.0)  # 1 of 2 ok tasks
    assert (s["spilled: bound"], s["spilled: wait"]) == (1, 0)


def test_most_nodes_for_one_hot_key_ignores_keys_that_were_not_spread(tmp_path: Path) -> None:
    """The cold key "c" wandered over three nodes; the hot key "h" was spread over two."""
    rows = [
        row("r", "hash", 0, "h", 1, "ok", N1, 0.0, 0.0, 1.0, spill=""),
        row("r", "hash", 1, "h", 1, "ok", N2, 0.0, 0.0, 1.0, spill="spread"),
        *[row("r", "hash", 2 + i, "c", 1, "ok", n, 0.0, 0.0, 1.0, spill="") for i, n in enumerate([N1, N2, N3])],
    ]
    s = summarize(load([write_csv(tmp_path / "r.csv", rows, extra=("spill",))]))["hash"]
    assert (s["keys spread (hot)"], s["most nodes for one hot key"]) == (1, 2)


def test_brain_wait_quantiles_show_only_when_the_file_has_them(tmp_path: Path, two_files: list[Path]) -> None:
    assert not any(m.startswith("brain_wait_s") for m in summarize(load(two_files)).index)  # an older CSV
    rows = [row("r", "hash", i, "k", 1, "ok", N1, 0.0, 0.0, 1.0, brain_wait_s=w) for i, w in enumerate([0.0, 0.2])]
    s = summarize(load([write_csv(tmp_path / "r.csv", rows, extra=("brain_wait_s",))]))["hash"]
    assert s["brain_wait_s p50 (s)"] == pytest.approx(0.1)
    assert s["brain_wait_s p99 (s)"] == pytest.approx(0.198)


def test_runs_keep_the_order_they_first_appear_in(tmp_path: Path) -> None:
    """Not sorted by label: "random" first, then "hash"."""
    rows = [*run_b_rows(), *run_a_rows()]
    df = load([write_csv(tmp_path / "r.csv", rows)])
    assert list(summarize(df).columns) == ["random", "hash"]
    assert list(dict.fromkeys(per_node(df)["run"])) == ["random", "hash"]


def test_runs_that_share_a_label_are_told_apart_by_their_differing_settings(tmp_path: Path) -> None:
    rows = [row(rid, "hash", 0, "k", 1, "ok", N1, 0.0, 0.0, 1.0) for rid in ("run-1", "run-2")]
    path = write_csv(tmp_path / "r.csv", rows)
    sidecar.record_run(path, {"run_id": "run-1", "options": {"load_factor": 1.25, "seed": 7}})
    sidecar.record_run(path, {"run_id": "run-2", "options": {"load_factor": None, "seed": 7}})
    assert list(run_labels(load([path])).values()) == ["hash c=1.25", "hash c=off"]  # the seed is alike: left out


def test_runs_on_executors_and_on_plain_tasks_are_told_apart(tmp_path: Path) -> None:
    rows = [row(rid, "random", 0, "k", 1, "ok", N1, 0.0, 0.0, 1.0) for rid in ("run-1", "run-2")]
    path = write_csv(tmp_path / "r.csv", rows)
    sidecar.record_run(path, {"run_id": "run-1", "options": {"executors": "auto"}})
    sidecar.record_run(path, {"run_id": "run-2", "options": {"executors": "off"}})
    assert list(run_labels(load([path])).values()) == ["random executors=auto", "random executors=off"]


def test_node_table_separates_runs_by_a_blank_line(two_files: list[Path]) -> None:
    lines = render_node_table(per_node(load(two_files))).splitlines()
    blank = lines.index("")
    assert lines[blank - 1].split()[0] == N3[:8]  # the last node of run "hash"
    assert lines[blank + 1].split()[0] == "random"


def test_run_labels_show_only_settings_that_are_run_options() -> None:
    from raysched.analysis.labels import _SETTING_LABELS
    from raysched.config import RUN_OPTIONS

    shown = {name for name, _, _ in _SETTING_LABELS}
    assert shown <= set(RUN_OPTIONS), shown - set(RUN_OPTIONS)
