"""Nodes dying and joining mid-job, the brain restarting, Ctrl-C and --resume: nothing is lost.

These tests own a loopback cluster of their own (they kill and add nodes), with
Ray's health checks shortened so a dead node is declared within about 2 s.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from conftest import ROOT, run_cli, wait_for

FAST_HEALTH = {
    "health_check_initial_delay_ms": 500,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}

SLOW_JOB = """
from time import sleep
import raysched

@raysched.task(num_cpus=1)
def work(i):
    sleep({sleep})  # the task's work
    return {{"items": 1}}

def tasks():
    for i in range({n}):
        yield raysched.Task(work, args=(i,), key=f"key-{{i % {keys}}}")
"""


@pytest.fixture()
def churn_cluster() -> Iterator[object]:
    """Head (brain, driver; 0 CPUs) and three 2-CPU workers, fresh for each test."""
    from ray.cluster_utils import Cluster

    from raysched.cluster import loopback_only

    loopback_only()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "_system_config": FAST_HEALTH, "object_store_memory": 100 * 1024 * 1024})
    for _ in range(3):
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=100 * 1024 * 1024)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def write_job(tmp_path: Path, n: int, sleep: float, keys: int) -> Path:
    job = tmp_path / "slowjob.py"
    job.write_text(SLOW_JOB.format(n=n, sleep=sleep, keys=keys))
    return job


def start_submit(address: str, job: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "raysched.cli", "submit", str(job), "--address", address, "--out", str(out),
         "--quiet", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def ok_rows(path: Path) -> int:
    """Ok rows written so far (the file may be mid-write)."""
    if not path.exists():
        return 0
    try:
        return int((pd.read_csv(path, on_bad_lines="skip")["status"] == "ok").sum())
    except (pd.errors.EmptyDataError, KeyError):
        return 0


def node_of(cluster: object, raylet: object) -> str:
    return raylet.node_id  # type: ignore[attr-defined]


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def assert_each_task_ok_once(df: pd.DataFrame, n: int) -> None:
    ok = df[df["status"] == "ok"]
    assert sorted(ok["task_id"]) == list(range(n)), "a task was lost or ran ok twice"
    assert (ok["node_ran"] == ok["node_chosen"]).all()


def test_node_death_mid_job_loses_nothing_and_moves_only_its_keys(churn_cluster, tmp_path: Path) -> None:
    n = 150
    job, out = write_job(tmp_path, n, 0.1, keys=30), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out, "--load-factor", "off")
    assert wait_for(lambda: ok_rows(out) >= 40, timeout=120), "the job never got going"
    # Kill the node that finished the latest task: it is busy, so work is really lost.
    busiest = pd.read_csv(out, on_bad_lines="skip").dropna(subset=["finished_at"])
    busiest = busiest.sort_values("finished_at")["node_ran"].iloc[-1]
    victim = next(n for n in churn_cluster.worker_nodes if n.node_id == busiest)
    killed_at = time.time()
    churn_cluster.remove_node(victim, allow_graceful=False)
    code, stdout, stderr = finish(proc)
    assert code == 0, stdout + stderr
    df = pd.read_csv(out)
    assert_each_task_ok_once(df, n)
    dead = victim.node_id
    retried = df[df["status"] == "retried"]
    assert (retried["node_chosen"] == dead).all() and len(retried) >= 1
    assert retried["error"].str.len().gt(0).all()
    for _, again in retried.iterrows():  # each lost attempt came back as attempt + 1, and ended ok
        later = df[(df["task_id"] == again["task_id"]) & (df["attempt"] == again["attempt"] + 1)]
        assert len(later) == 1
    ok = df[df["status"] == "ok"]
    before = ok[ok["finished_at"] < killed_at]
    after = ok[ok["started_at"] > killed_at + 5]
    assert not (after["node_ran"] == dead).any()
    home = before.groupby("key")["node_ran"].agg(lambda s: s.iloc[0])
    for key, node in home.items():
        moved_to = set(after[after["key"] == key]["node_ran"])
        if node != dead:
            assert moved_to <= {node}, f"{key} moved off a surviving node"


def test_node_join_mid_job_takes_work_and_only_its_keys_move(churn_cluster, tmp_path: Path) -> None:
    n = 400  # long enough (about 7 s) that work remains once the new node is up
    job, out = write_job(tmp_path, n, 0.1, keys=30), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out, "--load-factor", "off")
    assert wait_for(lambda: ok_rows(out) >= 40, timeout=120)
    joined_at = time.time()
    newcomer = churn_cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1",
                                      object_store_memory=100 * 1024 * 1024)
    code, stdout, stderr = finish(proc)
    assert code == 0, stdout + stderr
    df = pd.read_csv(out)
    assert_each_task_ok_once(df, n)
    ok = df[df["status"] == "ok"]
    assert (ok["node_ran"] == newcomer.node_id).any(), "the new node got no work"
    before = ok[ok["finished_at"] < joined_at]
    after = ok[ok["started_at"] > joined_at + 2]
    home = before.groupby("key")["node_ran"].agg(lambda s: s.iloc[0])
    moved = 0
    for key, node in home.items():
        targets = set(after[after["key"] == key]["node_ran"])
        assert targets <= {node, newcomer.node_id}, f"{key} moved between old nodes"
        moved += targets == {newcomer.node_id}
    assert 0 < moved < len(home)  # about 1/(n+1) of keys, never all


def test_brain_killed_mid_job_is_recreated_and_nothing_is_lost(churn_cluster, tmp_path: Path) -> None:
    n = 120
    job, out = write_job(tmp_path, n, 0.1, keys=20), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out)
    assert wait_for(lambda: ok_rows(out) >= 30, timeout=120)
    kill = ("import ray; ray.init(address=%r, namespace='raysched', logging_level='ERROR');"
            "b = ray.get_actor('raysched-brain'); first = ray.get(b.ping.remote());"
            "ray.kill(b, no_restart=False); print(first)") % churn_cluster.address
    killed = subprocess.run([sys.executable, "-c", kill], capture_output=True, text=True, timeout=60)
    assert killed.returncode == 0, killed.stderr
    code, stdout, stderr = finish(proc)
    assert code == 0, stdout + stderr
    assert_each_task_ok_once(pd.read_csv(out), n)
    status = json.loads(run_cli("status", "--address", churn_cluster.address, "--json").out)
    assert status["brain_id"] != killed.stdout.strip()  # a new incarnation answered


def test_sigint_cancels_then_resume_finishes_every_task_once(churn_cluster, tmp_path: Path) -> None:
    n = 80
    job, out = write_job(tmp_path, n, 0.2, keys=10), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out)
    assert wait_for(lambda: ok_rows(out) >= 10, timeout=120)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code, stdout, stderr = finish(proc, timeout=60)
    assert code == 130, stdout + stderr
    assert time.monotonic() - sent < 10
    assert "Traceback" not in stderr and "interrupted" in stdout
    first = pd.read_csv(out)
    assert (first["status"] == "cancelled").any()
    assert first["status"].isin(["ok", "cancelled"]).all()
    done_first = set(first.loc[first["status"] == "ok", "task_id"])
    assert 0 < len(done_first) < n

    resumed = run_cli("submit", str(job), "--address", churn_cluster.address, "--resume", str(out), "--quiet")
    assert resumed.code == 0, resumed.text
    both = pd.read_csv(out)
    assert_each_task_ok_once(both, n)
    assert both["run_id"].nunique() == 2
    second = both[both["run_id"] != first["run_id"].iloc[0]]
    assert not (set(second.loc[second["status"] == "ok", "task_id"]) & done_first)


def test_csv_cut_by_a_hard_kill_is_readable_and_resumable(churn_cluster, tmp_path: Path) -> None:
    n = 60
    job, out = write_job(tmp_path, n, 0.2, keys=10), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out)
    assert wait_for(lambda: ok_rows(out) >= 8, timeout=120)
    proc.kill()
    proc.communicate(timeout=30)
    with out.open("a") as handle:  # simulate the kill landing mid-row
        handle.write("deadbeef,slowjob.py,hash,5")
    analyzed = run_cli("analyze", str(out))
    assert analyzed.code == 0, analyzed.text
    assert "warning" in analyzed.err.lower()
    resumed = run_cli("submit", str(job), "--address", churn_cluster.address, "--resume", str(out), "--quiet")
    assert resumed.code == 0, resumed.text
    df = pd.read_csv(out, on_bad_lines="skip")
    ok = df[df["status"] == "ok"]
    assert set(ok["task_id"].astype(int)) == set(range(n))
