"""Nodes dying and joining mid-job, the brain restarting, Ctrl-C, a killed driver and --resume: nothing is lost.

These tests own a loopback cluster of their own (they kill and add nodes): a
head with no CPUs and three 2-CPU workers. Each checks that its event really
happened while the job ran (tasks finished before it and after it), with jobs
long enough for that on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import fresh_driver_json, ok_rows, run_cli, start_submit, wait_for

from raysched.core.ring import HashRing, RingConfig

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


def make_cluster(health: dict) -> object:
    from ray.cluster_utils import Cluster

    from raysched.cluster import loopback_only

    loopback_only()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "_system_config": health,
            "object_store_memory": 100 * 1024 * 1024,
        },
    )
    for _ in range(3):
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=100 * 1024 * 1024)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture()
def churn_cluster() -> Iterator[object]:
    """Ray's health checks shortened, so a dead node is declared within about 2 s."""
    cluster = make_cluster(FAST_HEALTH)
    yield cluster
    cluster.shutdown()  # type: ignore[attr-defined]


def write_job(tmp_path: Path, n: int, sleep: float, keys: int) -> Path:
    job = tmp_path / "slowjob.py"
    job.write_text(SLOW_JOB.format(n=n, sleep=sleep, keys=keys))
    return job


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def assert_each_task_ok_once(df: pd.DataFrame, n: int) -> None:
    ok = df[df["status"] == "ok"]
    assert sorted(ok["task_id"]) == list(range(n)), "a task was lost or ran ok twice"
    assert (ok["node_ran"] == ok["node_chosen"]).all()


def assert_mid_job(df: pd.DataFrame, at: float) -> None:
    """The event at Unix time `at` happened while the job ran: tasks finished before it and started after it."""
    ok = df[df["status"] == "ok"]
    assert (ok["finished_at"] < at).sum() >= 5, "the job had barely started"
    assert (ok["started_at"] > at).sum() >= 5, "the job was over before the event"


def ring_owner(key: str, cpus: dict[str, float]) -> str:
    """The documented pure-ring owner: 100 points per CPU (1 for a node without CPUs), first node clockwise
    that has a CPU. Built here, independently of the policy's own ring."""
    ring = HashRing(RingConfig(vnodes=100))
    for node, cpu in cpus.items():
        ring.add(node, cpu or 1.0)
    return next(n for n in ring.successors(key) if cpus[n] > 0)


def node_cpus(address: str) -> dict[str, float]:
    return fresh_driver_json(address, "{n['NodeID']: n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive']}")


def test_node_death_mid_job_loses_nothing_and_moves_only_its_keys(churn_cluster, tmp_path: Path) -> None:
    n = 480  # 48 CPU-seconds: about 12 s on the 4 CPUs left, so work remains well after the 3 s below
    job, out = write_job(tmp_path, n, 0.1, keys=30), tmp_path / "out.csv"
    cpus = node_cpus(churn_cluster.address)
    proc = start_submit(churn_cluster.address, job, out, "--load-factor", "off")
    assert wait_for(lambda: ok_rows(out) >= 40, timeout=120), "the job never got going"
    # Kill the node that finished the latest task: it is busy, so work is really lost.
    busiest = pd.read_csv(out, on_bad_lines="skip").dropna(subset=["finished_at"])
    dead = busiest.sort_values("finished_at")["node_ran"].iloc[-1]
    victim = next(w for w in churn_cluster.worker_nodes if w.node_id == dead)
    killed_at = time.time()
    churn_cluster.remove_node(victim, allow_graceful=False)
    code, stdout, stderr = finish(proc)
    assert code == 0, stdout + stderr
    df = pd.read_csv(out)
    assert_each_task_ok_once(df, n)
    assert_mid_job(df, killed_at)
    retried = df[df["status"] == "retried"]
    assert len(retried) >= 1 and (retried["node_chosen"] == dead).all()  # work was lost with the node
    for _, again in retried.iterrows():  # each lost attempt came back as attempt + 1, and ended ok
        later = df[(df["task_id"] == again["task_id"]) & (df["attempt"] == again["attempt"] + 1)]
        assert len(later) == 1
    # the brain stopped choosing the dead node (a task can be placed there only by mistake)
    assert not (df["node_chosen"].eq(dead) & df["submitted_at"].gt(killed_at + 3)).any()
    ok = df[df["status"] == "ok"]
    survivors = {node: cpu for node, cpu in cpus.items() if node != dead}
    before, after = ok[ok["finished_at"] < killed_at], ok[ok["started_at"] > killed_at + 3]
    assert len(after) > 0
    for key, rows in before.groupby("key"):
        assert set(rows["node_ran"]) == {ring_owner(key, cpus)}, key  # the pure ring, before
    for key, rows in after.groupby("key"):
        assert set(rows["node_ran"]) == {ring_owner(key, survivors)}, key  # and after: only dead keys moved
    moved = {k for k in after["key"] if ring_owner(k, cpus) != ring_owner(k, survivors)}
    assert moved and all(ring_owner(k, cpus) == dead for k in moved)


def test_node_join_mid_job_takes_work_and_only_its_keys_move(churn_cluster, tmp_path: Path) -> None:
    n = 700  # long enough (about 12 s) that work remains once the new node is up and has started its executors
    job, out = write_job(tmp_path, n, 0.1, keys=30), tmp_path / "out.csv"
    cpus = node_cpus(churn_cluster.address)
    proc = start_submit(churn_cluster.address, job, out, "--load-factor", "off")
    assert wait_for(lambda: ok_rows(out) >= 40, timeout=120)
    joining_at = time.time()
    newcomer = churn_cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=100 * 1024 * 1024)
    joined_at = time.time()  # the raylet is registered (starting it takes seconds on a loaded machine)
    code, stdout, stderr = finish(proc)
    assert code == 0, stdout + stderr
    df = pd.read_csv(out)
    assert_each_task_ok_once(df, n)
    assert_mid_job(df, joined_at)
    ok = df[df["status"] == "ok"]
    grown = {**cpus, newcomer.node_id: 2.0}
    after = ok[ok["started_at"] > joined_at + 3]  # the brain follows membership every second
    assert (after["node_ran"] == newcomer.node_id).any(), "the new node got no work"
    for key, rows in ok[ok["finished_at"] < joining_at].groupby("key"):
        assert set(rows["node_ran"]) == {ring_owner(key, cpus)}, key
    for key, rows in after.groupby("key"):
        assert set(rows["node_ran"]) == {ring_owner(key, grown)}, key  # keys that now belong to it, no others
    moved = {k for k in after["key"] if ring_owner(k, cpus) != ring_owner(k, grown)}
    assert moved and all(ring_owner(k, grown) == newcomer.node_id for k in moved)


def test_brain_killed_mid_job_is_recreated_and_nothing_is_lost(churn_cluster, tmp_path: Path) -> None:
    n = 200
    job, out = write_job(tmp_path, n, 0.1, keys=20), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out)
    assert wait_for(lambda: ok_rows(out) >= 30, timeout=120)
    kill = (
        f"import ray; ray.init(address={churn_cluster.address!r}, namespace='raysched', logging_level='ERROR');"
        "b = ray.get_actor('raysched-brain'); first = ray.get(b.ping.remote());"
        "ray.kill(b, no_restart=False); print(first)"
    )
    killed_at = time.time()
    killed = subprocess.run([sys.executable, "-c", kill], capture_output=True, text=True, timeout=60)
    assert killed.returncode == 0, killed.stderr
    code, stdout, stderr = finish(proc)
    assert code == 0, stdout + stderr
    df = pd.read_csv(out)
    assert_each_task_ok_once(df, n)
    assert_mid_job(df, killed_at)
    status = json.loads(run_cli("status", "--address", churn_cluster.address, "--json").out)
    assert status["brain_id"] != killed.stdout.strip()  # a new incarnation answered


def test_sigint_cancels_then_resume_finishes_every_task_once(churn_cluster, tmp_path: Path) -> None:
    n = 120
    job, out = write_job(tmp_path, n, 0.2, keys=10), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out)
    assert wait_for(lambda: ok_rows(out) >= 10, timeout=120)
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc, timeout=60)
    assert code == 130, stdout + stderr
    assert "Traceback" not in stderr and "interrupted" in stdout
    first = pd.read_csv(out)
    assert (first["status"] == "cancelled").any()  # it stopped while tasks ran
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


def test_a_driver_killed_hard_leaves_a_readable_csv_and_does_not_block_its_resume(
    churn_cluster, tmp_path: Path
) -> None:
    """Regression: a killed driver's reservations held its nodes for the brain's expiry (a minute)."""
    n = 90
    job, out = write_job(tmp_path, n, 0.2, keys=10), tmp_path / "out.csv"
    proc = start_submit(churn_cluster.address, job, out)
    assert wait_for(lambda: ok_rows(out) >= 8, timeout=120)
    proc.kill()  # no orderly exit: it never unregisters, its tasks keep the nodes busy for a moment
    proc.communicate(timeout=30)
    with out.open("a") as handle:  # simulate the kill landing mid-row
        handle.write("deadbeef,slowjob.py,hash,5")
    analyzed = run_cli("analyze", str(out))
    assert analyzed.code == 0, analyzed.text
    assert "warning" in analyzed.err.lower()
    started = time.monotonic()
    resumed = run_cli("submit", str(job), "--address", churn_cluster.address, "--resume", str(out), "--quiet")
    took = time.monotonic() - started
    assert resumed.code == 0, resumed.text
    df = pd.read_csv(out, on_bad_lines="skip")
    ok = df[df["status"] == "ok"]
    assert set(ok["task_id"].astype(int)) == set(range(n))
    # At most ~80 tasks of 0.2 s on 6 CPUs, plus start-up: seconds. Had the dead driver's reservations held
    # until the brain expired them, the resumed run would have waited over a minute first.
    assert took < 50, took


def test_a_node_dying_with_rays_default_health_checks_stalls_only_its_own_keys(tmp_path: Path) -> None:
    """With Ray's default health checks a killed node looks alive for 15-18 s; its tasks must not hold up the
    rest of the job meanwhile: the surviving nodes keep completing tasks, and the dead node leaves the brain
    on the driver's evidence long before Ray declares it dead."""
    cluster = make_cluster({})
    try:
        n = 1500  # 50 ms tasks on 6 CPUs: about 12 s, so 10 s remain after the kill
        job, out = write_job(tmp_path, n, 0.05, keys=60), tmp_path / "out.csv"
        proc = start_submit(cluster.address, job, out)  # default flags: hash with bounded loads
        assert wait_for(lambda: ok_rows(out) >= 300, timeout=180)
        busiest = pd.read_csv(out, on_bad_lines="skip").dropna(subset=["finished_at"])
        dead = busiest.sort_values("finished_at")["node_ran"].iloc[-1]
        victim = next(w for w in cluster.worker_nodes if w.node_id == dead)
        killed_at = time.time()
        cluster.remove_node(victim, allow_graceful=False)
        code, stdout, stderr = finish(proc, timeout=300)
        assert code == 0, stdout + stderr
        status = json.loads(run_cli("status", "--address", cluster.address, "--json").out)
    finally:
        cluster.shutdown()
    df = pd.read_csv(out)
    assert_each_task_ok_once(df, n)
    ok = df[df["status"] == "ok"]
    survivors = ok[(ok["node_ran"] != dead) & ok["finished_at"].between(killed_at + 2, killed_at + 10)]
    assert survivors["node_ran"].nunique() == 2  # both surviving nodes kept working through the window
    assert len(survivors) >= 100, len(survivors)  # 8 s x 80 tasks/s at full speed; a stall finished none
    left = [t for t, kind, node in status["membership_changes"] if kind == "leave" and node == dead]
    assert left and left[0] - killed_at < 10  # out of the brain before Ray's health checks (15 s or more)
    # Issue 29: no key of a surviving node ran anywhere else after the kill (the dead node's keys were spread
    # over the survivors by key counts), but for work conservation's last tasks once a survivor ran dry.
    before = ok[ok["finished_at"] < killed_at]
    home = before.groupby("key")["node_ran"].agg(lambda s: s.iloc[-1])
    home = home[home != dead]
    later = ok[ok["started_at"] > killed_at + 1].merge(home.rename("home"), left_on="key", right_index=True)
    tail = ok[ok["node_ran"] != dead].groupby("node_ran")["finished_at"].max().min()  # a survivor ran dry
    moved = later[(later["node_ran"] != later["home"]) & (later["started_at"] < tail)]
    assert moved.empty, moved[["key", "home", "node_ran", "started_at"]].to_string()
