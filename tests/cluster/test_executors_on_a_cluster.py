"""Executors on a real loopback cluster: tasks run as calls on shared actors, and nothing is lost or doubled.

The shared session cluster has 1, 2, 2 and 4 CPUs: at most 9 one-CPU executors at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from conftest import run_cli, start_submit

SLOTS = 9  # one-CPU slots of the session cluster (1 + 2 + 2 + 4)

SHORT_JOB = """
import time
import raysched

def work(i):
    time.sleep({ms} / 1000)
    return {{"items": 1}}

def tasks():
    for i in range({n}):
        yield raysched.Task(work, args=(i,), key=f"k{{i % 20}}")
"""


def short_job(tmp_path: Path, n: int, ms: float, name: str = "short.py") -> Path:
    job = tmp_path / name
    job.write_text(SHORT_JOB.format(n=n, ms=ms))
    return job


def executor_events(csv_path: Path) -> list[dict]:
    runs = json.loads(csv_path.with_suffix(".json").read_text())["runs"]
    return runs[-1]["executors"]["events"]


def test_tasks_run_as_calls_on_executors_of_the_node_the_brain_chose(address: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = run_cli("submit", str(short_job(tmp_path, 300, 2)), "--address", address, "--out", str(out), "--quiet")
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    assert (df["status"] == "ok").all() and sorted(df["task_id"]) == list(range(300))
    assert (df["via"] == "executor").all()
    assert (df["node_ran"] == df["node_chosen"]).all()
    names = set(df["executor"])
    assert 1 <= len(names) <= SLOTS
    run = json.loads(out.with_suffix(".json").read_text())["runs"][-1]
    assert run["executors"]["mode"] == "on" and run["options"]["executors"] == "auto"


def test_executors_off_runs_plain_pinned_tasks(address: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    job = short_job(tmp_path, 60, 1)
    result = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet", "--executors", "off")
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    assert (df["via"] == "task").all() and df["executor"].isna().all()
    assert all(e["event"] != "created" for e in executor_events(out))  # it made none


def test_two_concurrent_submissions_share_one_set_of_executors(address: str, tmp_path: Path) -> None:
    outs = [tmp_path / "a.csv", tmp_path / "b.csv"]
    jobs = [short_job(tmp_path, 600, 5, "a.py"), short_job(tmp_path, 600, 5, "b.py")]
    procs = [start_submit(address, job, out) for job, out in zip(jobs, outs, strict=True)]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout + stderr
    frames = [pd.read_csv(out) for out in outs]
    for df in frames:
        assert sorted(df.loc[df["status"] == "ok", "task_id"]) == list(range(600))
        assert (df["via"] == "executor").all()
    a, b = (set(df["executor"]) for df in frames)
    # Two sets of their own would need up to 2 x 9 actors; one shared set has at most 9, used by both runs.
    assert len(a | b) <= SLOTS
    assert a & b, "the two runs used no executor in common"
    overlap = frames[0]["started_at"].max() > frames[1]["started_at"].min()
    assert overlap and frames[1]["started_at"].max() > frames[0]["started_at"].min(), "the runs did not overlap"


CRASH_JOB = """
import os
import time
from pathlib import Path
import raysched

MARK = Path({mark!r})

def work(i):
    if i == 25 and not MARK.exists():  # the worker process dies in this call, once
        MARK.write_text("crashed")
        os._exit(1)
    time.sleep(0.01)
    return {{"items": 1}}

def tasks():
    for i in range(200):
        yield raysched.Task(work, args=(i,), key=f"k{{i % 10}}")
"""


def test_a_worker_process_dying_in_a_call_loses_only_attempts_that_are_placed_again(
    address: str, tmp_path: Path
) -> None:
    job, out, mark = tmp_path / "crash.py", tmp_path / "out.csv", tmp_path / "mark"
    job.write_text(CRASH_JOB.format(mark=str(mark)))
    result = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet")
    assert result.code == 0, result.text
    assert mark.exists(), "the task never crashed its executor"
    df = pd.read_csv(out)
    ok = df[df["status"] == "ok"]
    assert sorted(ok["task_id"]) == list(range(200)), "a task was lost or ran ok twice"
    retried = df[df["status"] == "retried"]
    assert 25 in set(retried["task_id"])
    assert retried["executor"].nunique() == 1  # only the calls on the executor that died were lost
    assert (ok[ok["task_id"] == 25]["executor"] != retried["executor"].iloc[0]).all()  # a new executor ran it
    assert any(e["event"] == "lost" for e in executor_events(out))
