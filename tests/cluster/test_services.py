"""Services on a real loopback cluster: replicas placed by the brain, calls routed by key, a replica lost and
re-created, bad replicas refused. Driven through `raysched submit` as a user would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from conftest import ok_rows, run_cli, start_submit, wait_for
from test_churn import finish, make_cluster

SERVICE_JOB = """
import os, time
import raysched

@raysched.service(num_cpus=1, replicas={replicas})
class Shard:
    def __init__(self):
        self.keys = set()

    def serve(self, key, i):
        time.sleep({sleep})
        hit = key in self.keys
        self.keys.add(key)
        return {{"items": 1, "cache_hit": int(hit), "pid": os.getpid()}}

def tasks():
    for i in range({n}):
        key = f"key-{{i % {keys}}}"
        yield raysched.Task(Shard.serve, args=(key, i), key=key)
"""


def write_job(tmp_path: Path, n: int, keys: int, replicas: int = 4, sleep: float = 0.01) -> Path:
    job = tmp_path / "svcjob.py"
    job.write_text(SERVICE_JOB.format(n=n, keys=keys, replicas=replicas, sleep=sleep))
    return job


def submit(address: str, job: Path, out: Path, *args: str):
    return run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet", *args)


def test_hash_routes_every_key_to_one_replica_and_greedy_spreads_the_replicas(address: str, tmp_path: Path) -> None:
    job, out = write_job(tmp_path, n=400, keys=24), tmp_path / "hash.csv"
    result = submit(address, job, out)
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    ok = df[df["status"] == "ok"]
    assert sorted(ok["task_id"]) == list(range(400))
    assert set(ok["replica"]) == {f"Shard#{i}" for i in range(4)}
    assert (ok.groupby("key")["replica"].nunique() == 1).all()  # key affinity by replica: 100%
    assert (ok.groupby("replica")["node_ran"].nunique() == 1).all()  # nothing was lost: one home each
    homes = ok.groupby("replica")["node_ran"].first()
    assert homes.nunique() == 3  # greedy, least allocated: the 4-CPU node is still the emptiest after one replica
    assert homes.value_counts().max() == 2
    assert (ok.groupby("replica")["pid"].nunique() == 1).all()  # each replica is one long-lived process
    runs = json.loads((tmp_path / "hash.json").read_text())["runs"]
    events = runs[0]["replicas"]
    assert sorted(e["replica"] for e in events if e["event"] == "created") == [f"Shard#{i}" for i in range(4)]
    # the summary speaks of calls and replicas (issue 30), not of brain decisions the router never asked for
    assert "(all calls to Shard)" in result.out and "replicas used 4" in result.out
    assert "100% of 24 keys ran on one replica" in result.out
    hits = ok["cache_hit"].mean() * 100
    assert f"cache hits    {hits:.1f}%" in result.out and "decisions" not in result.out


def test_pack_puts_replicas_on_fewer_nodes_and_random_routing_splits_keys(address: str, tmp_path: Path) -> None:
    job, out = write_job(tmp_path, n=300, keys=6), tmp_path / "pack.csv"
    result = submit(address, job, out, "--service-policy", "pack", "--policy", "random", "--seed", "3")
    assert result.code == 0, result.text
    ok = pd.read_csv(out).query("status == 'ok'")
    assert ok.groupby("replica")["node_ran"].first().nunique() < 4
    assert (ok.groupby("key")["replica"].nunique() > 1).all()


def test_a_replica_whose_init_raises_everywhere_stops_the_run_with_a_clear_error(address: str, tmp_path: Path) -> None:
    job = tmp_path / "badinit.py"
    job.write_text(
        "import raysched\n"
        "@raysched.service(num_cpus=1, replicas=2)\n"
        "class Broken:\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('no model file here')\n"
        "    def serve(self, i):\n"
        "        return {'items': 1}\n"
        "def tasks():\n"
        "    for i in range(5):\n"
        "        yield raysched.Task(Broken.serve, args=(i,))\n"
    )
    out = tmp_path / "bad.csv"
    result = submit(address, job, out)
    assert result.code == 2, result.text
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Broken" in errors[0] and "no model file here" in errors[0], result.err
    assert "Traceback" not in result.text


def test_a_node_killed_with_its_replicas_they_are_recreated_and_no_call_is_lost(tmp_path: Path) -> None:
    """Ray's default health checks: the dead node looks alive to Ray for 15 s or more."""
    cluster = make_cluster({})
    try:
        n = 3000
        job, out = write_job(tmp_path, n=n, keys=30, replicas=3, sleep=0.01), tmp_path / "out.csv"
        proc = start_submit(cluster.address, job, out)
        assert wait_for(lambda: ok_rows(out) >= 300, timeout=180)
        rows = pd.read_csv(out, on_bad_lines="skip").dropna(subset=["finished_at"])
        dead = rows["node_ran"].iloc[-1]
        victim = next(w for w in cluster.worker_nodes if w.node_id == dead)
        killed_at = time.time()
        cluster.remove_node(victim, allow_graceful=False)
        code, stdout, stderr = finish(proc, timeout=300)
        assert code == 0, stdout + stderr
    finally:
        cluster.shutdown()
    df = pd.read_csv(out)
    ok = df[df["status"] == "ok"]
    assert sorted(ok["task_id"]) == list(range(n))  # every call exactly one ok row
    lost = set(ok.loc[ok["node_ran"] == dead, "replica"])
    assert lost, "the killed node held no replica"
    before, after = ok[ok["finished_at"] < killed_at], ok[ok["started_at"] > killed_at]
    home_before = before.groupby("key")["replica"].agg(lambda s: set(s))
    home_after = after.groupby("key")["replica"].agg(lambda s: set(s))
    for key, replicas in home_before.items():
        if not replicas & lost:
            assert home_after[key] == replicas, key  # a surviving replica's keys stay with it
    for key in home_before.index[home_before.apply(lambda r: bool(r & lost))]:
        served = after[after["key"] == key]["finished_at"]
        assert not served.empty and served.min() - killed_at < 5.0, key  # served again within 5 s
    moved = ok[ok["replica"].isin(lost) & (ok["node_ran"] != dead)]
    last_there = ok.loc[ok["node_ran"] == dead, "finished_at"].max()
    assert not moved.empty and moved["started_at"].min() - killed_at < 5.0  # re-created on another node
    assert moved["started_at"].min() > last_there - 1.0  # ... once the old one was gone (it ran on briefly)


def free_cpus(address: str) -> tuple[float, float]:
    """Ray's own view of the cluster's CPUs (available, total), from a fresh driver."""
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR');"
        "print(ray.available_resources().get('CPU', 0), ray.cluster_resources().get('CPU', 0))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout.split()
    return float(out[-2]), float(out[-1])


def test_ctrl_c_ends_the_run_and_removes_its_replicas(address: str, tmp_path: Path) -> None:
    job, out = write_job(tmp_path, n=20_000, keys=10, replicas=3), tmp_path / "interrupted.csv"
    proc = start_submit(address, job, out)
    assert wait_for(lambda: ok_rows(out) >= 50, timeout=120)
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc, timeout=120)
    assert code == 130, stdout + stderr
    assert "Traceback" not in stderr
    status = json.loads(run_cli("status", "--address", address, "--json").out)
    assert not any(sub.get("replicas") for sub in status["submissions"])  # the brain holds nothing for it
    assert wait_for(lambda: (lambda free, total: free == total)(*free_cpus(address)), timeout=60)  # Ray agrees
    rows = pd.read_csv(out)
    assert set(rows["status"]) <= {"ok", "cancelled"} and (rows["status"] == "cancelled").any()
