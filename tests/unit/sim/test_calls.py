"""`raysched simulate` replays tasks only: a run with calls to a service is refused, before anything is written."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from test_replay import ok, run, write_trace

from raysched.sim import SimInputError
from raysched.sim.trace import load_trace

# three calls of the Shard service (two of them ok, one failed) among five rows, then two plain tasks
CALLS = [
    {"key": "a", "replica": "Shard#0"},
    {"key": "b", "replica": "Shard#1"},
    {"key": "c", "replica": "Shard#0", "status": "failed"},
    {"key": "d"},
    {"key": "e"},
]


def test_a_trace_with_calls_is_refused_with_one_line_and_nothing_written(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "calls.csv", CALLS)
    out = tmp_path / "sim.csv"
    done = subprocess.run(
        [sys.executable, "-m", "raysched.cli", "simulate", str(trace), "--nodes", "2x2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "3 of the 5 rows of run r1 are calls to a service" in errors[0]  # the failed call counts too
    assert "simulate replays tasks only" in errors[0] and "replicas are not modelled" in errors[0]
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.csv"]  # no --out, no sidecar


def test_only_the_replayed_run_is_asked_about_calls(tmp_path: Path) -> None:
    """A file holding a run with calls and a run of tasks: the tasks replay, the calls are refused."""
    trace = write_trace(tmp_path / "two.csv", CALLS, run_id="with-calls")
    tasks = write_trace(tmp_path / "tasks.csv", CALLS[3:] * 2, run_id="tasks")
    with trace.open("a") as fh:
        fh.writelines(tasks.read_text().splitlines(keepends=True)[1:])
    assert len(load_trace(trace, "tasks")) == 4
    with pytest.raises(SimInputError, match="3 of the 5 rows of run with-calls are calls"):
        load_trace(trace, "with-calls")


def test_a_trace_written_before_services_still_replays(tmp_path: Path) -> None:
    """No replica column at all: every row is a task."""
    full = write_trace(tmp_path / "full.csv", [{"key": k} for k in "abcd"])
    with full.open(newline="") as fh:
        records = list(csv.reader(fh))
    drop = records[0].index("replica")
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as fh:
        csv.writer(fh).writerows([r[:drop] + r[drop + 1 :] for r in records])
    assert "replica" not in old.read_text()
    assert len(load_trace(old)) == 4
    result = ok(run(old, "--nodes", "2x2", "--policies", "hash,random"))
    assert "tasks ok" in result.stdout
