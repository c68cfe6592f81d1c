"""`raysched submit` end to end on a real 4-node loopback Ray cluster, driven as a user would."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest
from bad_input import GOOD_JOB, write
from conftest import JOBS, ROOT, run_cli, wait_for

POLICIES = ["hash", "random", "p2c", "greedy", "pack"]
CAPACITY = {1: 1, 2: 2, 3: 2, 4: 4}


def submit(address: str, job: Path, out: Path, *args: str) -> pd.DataFrame:
    result = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet", *args)
    assert result.code == 0, result.text
    assert "tasks ok" in result.out
    return pd.read_csv(out)


def max_concurrency(df: pd.DataFrame, weight: pd.Series | None = None) -> dict[str, float]:
    """Per node, the most work running at any instant, from the rows' [started_at, finished_at)."""
    weight = pd.Series(1.0, index=df.index) if weight is None else weight
    peaks = {}
    for node, rows in df.groupby("node_ran"):
        events = sorted(
            [(t, w) for t, w in zip(rows["started_at"], weight[rows.index], strict=True)]
            + [(t, -w) for t, w in zip(rows["finished_at"], weight[rows.index], strict=True)],
            key=lambda e: (e[0], e[1]),
        )  # ends before starts at the same instant
        level = peak = 0.0
        for _, delta in events:
            level += delta
            peak = max(peak, level)
        peaks[node] = peak
    return peaks


@pytest.mark.parametrize("policy", POLICIES)
def test_every_task_runs_where_the_brain_chose(address: str, tmp_path: Path, policy: str) -> None:
    df = submit(address, JOBS / "quickstart.py", tmp_path / "out.csv", "--policy", policy, "--seed", "3")
    assert (df["node_ran"] == df["node_chosen"]).all()
    assert df["node_chosen"].str.fullmatch(r"[0-9a-f]{56}").all()
    assert (df["status"] == "ok").all() and sorted(df["task_id"]) == list(range(200))
    assert df["items"].notna().all() and "total" in df.columns
    assert (df["policy"] == policy).all() and (df["job"] == "quickstart.py").all()
    assert (df["wait_s"] >= 0).all() and (df["run_s"] >= 0).all()


def test_each_run_records_what_produced_it_beside_its_csv(address: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    submit(address, JOBS / "quickstart.py", out, "--policy", "p2c", "--seed", "5", "--load-factor", "2")
    record = json.loads((tmp_path / "out.json").read_text())["runs"]
    assert len(record) == 1
    run = record[0]
    df = pd.read_csv(out)
    assert run["run_id"] == df["run_id"].iloc[0] and run["job"] == "quickstart.py" and run["policy"] == "p2c"
    assert run["options"]["seed"] == 5 and run["options"]["load_factor"] == 2.0
    assert run["options"]["overcommit"] is None and run["options"]["batch"] is None  # adaptive
    assert sorted(n["capacity"]["CPU"] for n in run["cluster"]["nodes"]) == [1, 2, 2, 4]
    assert all("node:127.0.0.1" not in n["capacity"] for n in run["cluster"]["nodes"])  # only what tasks can ask for
    assert run["versions"]["raysched"] and run["versions"]["ray"].count(".") == 2
    assert run["started_at"] < run["ended_at"] and run["command_line"][:2] == ["raysched", "submit"]
    assert run["outcome"]["ok"] == 200 and run["code"] == "by value"
    assert run["brain_decisions"] >= 200  # at least one decision per placed task
    assert set(df["demand"]) == {"CPU=1"}
    # What the driver's pacing measured, for a replay's pacing (mean seconds): a brain call's round trip, a
    # finish's notice, and the round trip the pacer heard (time between calls, at most 1 s, plus the two).
    pacing = run["pacing"]
    assert 0 < pacing["brain_rtt_s"] < 1 and 0 <= pacing["notice_s"] < 1
    assert 0 < pacing["gap_s"] < 1 + 1 + 1


def test_the_summary_says_what_hash_did(address: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = run_cli("submit", str(JOBS / "quickstart.py"), "--address", address, "--out", str(out), "--quiet")
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    keys_on_one_node = int((df.groupby("key")["node_ran"].nunique() == 1).sum())  # counted from the rows
    assert f"key affinity  {keys_on_one_node / 20:.0%} of 20 keys ran on one node" in result.out
    spilled = df["spill"].fillna("")
    if (spilled != "").any():
        assert f"spilled       {int((spilled != '').sum())} tasks placed off their key's ring owner" in result.out
        assert "moved whole" in result.out
    waited_ms = df["brain_wait_s"].mean() * 1000
    assert f"brain wait    {waited_ms:.1f} ms per task" in result.out
    # one clock (issue 30): the summary's makespan and start-up are analyze's, from the same rows
    makespan = df["finished_at"].max() - df["started_at"].min()
    startup = df["started_at"].min() - df["submitted_at"].min()
    assert f"makespan      {makespan:.2f} s" in result.out and f"start-up      {startup:.2f} s" in result.out
    assert "max/mean by capacity" in result.out  # the embedded nodes' sizes are known


def test_a_run_without_keys_prints_no_key_figures(address: str, tmp_path: Path) -> None:
    """Issue 30: an unkeyed job read "key affinity 100% of 300 keys" and "spilled 129" under hash."""
    job = write(tmp_path / "unkeyed.py", GOOD_JOB)  # three tasks without keys
    result = run_cli("submit", str(job), "--address", address, "--out", str(tmp_path / "o.csv"), "--quiet")
    assert result.code == 0, result.text
    assert "key affinity" not in result.out and "spilled" not in result.out
    assert "the tasks have no keys" in result.out


def test_pure_ring_keeps_each_key_on_one_node(address: str, tmp_path: Path) -> None:
    df = submit(address, JOBS / "quickstart.py", tmp_path / "out.csv", "--load-factor", "off")
    nodes_per_key = df.groupby("key")["node_ran"].nunique()
    assert (nodes_per_key == 1).all(), nodes_per_key[nodes_per_key > 1]
    assert df["node_ran"].nunique() > 1  # 20 keys spread over the ring


def test_bounded_loads_spread_a_hot_key_that_the_pure_ring_keeps_on_one_node(address: str, tmp_path: Path) -> None:
    job = tmp_path / "hotkey.py"
    job.write_text(
        "import time, raysched\n"
        "def work(i):\n    time.sleep(0.05)\n    return {'items': 1}\n"
        "def tasks():\n    for i in range(160):\n"
        "        yield raysched.Task(work, args=(i,), key='hot' if i % 4 else f'cold-{i}')\n"
    )
    # Three tasks in four are 'hot'. The largest node (4 of 9 CPUs) may hold at most 1.25 x 4/9 = 56% of the
    # assigned work, less than 75%: wherever the ring puts the hot key, it must spread. (With half the tasks
    # hot it could stay home on the 4-CPU node, and the test would depend on the node ids.)
    bounded = submit(address, job, tmp_path / "bounded.csv")
    pure = submit(address, job, tmp_path / "pure.csv", "--load-factor", "off")
    hot_pure = pure[pure["key"] == "hot"]["node_ran"]
    hot_bounded = bounded[bounded["key"] == "hot"]["node_ran"]
    assert hot_pure.nunique() == 1  # the pure ring: a key never leaves its owner
    owner = hot_pure.iloc[0]
    # 75% of all work on one node (of 1, 2, 2, 4 CPUs) is more than any node's bound: it spreads
    assert hot_bounded.nunique() >= 2
    assert (hot_bounded == owner).sum() < len(hot_bounded)
    assert set(bounded["spill"].fillna("")) <= {"", "bound", "wait", "spread"}
    assert (bounded.loc[bounded["key"] == "hot", "spill"].fillna("") != "").any()  # and says so


@pytest.mark.parametrize("policy", ["greedy", "pack"])
def test_mixed_resources_never_overfill_a_node(address: str, tmp_path: Path, policy: str) -> None:
    df = submit(address, JOBS / "mixed_resources.py", tmp_path / "out.csv", "--policy", policy)
    status = json.loads(run_cli("status", "--address", address, "--json").out)
    capacity = {n["node_id"]: n["capacity"] for n in status["nodes"]}
    cpu = df["items"].where(df["items"] == 2, 1.0)  # wide tasks (items == 2) take 2 CPUs
    for node, peak in max_concurrency(df, cpu).items():
        assert peak <= capacity[node]["CPU"], (node[:8], peak)
    ssd_rows = df[df["bytes"].notna()]
    assert all(capacity[n].get("ssd", 0) >= 1 for n in ssd_rows["node_ran"])


def test_pack_keeps_work_on_fewer_nodes_than_greedy(tmp_path: Path) -> None:
    """On equal nodes with light load, pack fills one node while greedy spreads (embedded cluster)."""
    config = tmp_path / "even.yaml"
    config.write_text("local_nodes:\n  - {num_cpus: 2}\nmax_inflight: 2\n")
    job = tmp_path / "light.py"
    job.write_text(
        "import time, raysched\n"
        "def work(i):\n    time.sleep(0.03)\n    return {'items': 1}\n"
        "def tasks():\n    for i in range(30):\n        yield raysched.Task(work, args=(i,))\n"
    )
    used = {}
    for policy in ("pack", "greedy"):
        out = tmp_path / f"{policy}.csv"
        result = run_cli(
            "submit", str(job), "--config", str(config), "--local-nodes", "3", "--policy", policy, "--out", str(out)
        )
        assert result.code == 0, result.text
        assert "embedded cluster of 3 nodes" in result.err
        used[policy] = pd.read_csv(out)["node_ran"].nunique()
    assert used["pack"] == 1  # two 1-CPU tasks fill one 2-CPU node
    assert used["greedy"] >= 2  # the second task goes to the emptiest node


def test_concurrent_submissions_share_one_brain(address: str, tmp_path: Path) -> None:
    gate = tmp_path / "open"
    job = tmp_path / "gated.py"
    job.write_text(
        "import os, time, raysched\n"
        f"GATE = {str(gate)!r}\n"
        "def work(i):\n"
        "    deadline = time.time() + 120\n"
        "    while not os.path.exists(GATE) and time.time() < deadline:\n"
        "        time.sleep(0.05)\n"
        "def tasks():\n    for i in range(4):\n        yield raysched.Task(work, args=(i,), key=str(i))\n"
    )  # 4 + 4 tasks fit the cluster's 9 CPUs at once
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raysched.cli",
                "submit",
                str(job),
                "--address",
                address,
                "--quiet",
                "--out",
                str(tmp_path / f"run{i}.csv"),
                "--policy",
                policy,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, policy in enumerate(["random", "p2c"])  # both place every task at once (hash may wait for a home)
    ]
    try:

        def both_in_flight() -> dict | None:
            state = json.loads(run_cli("status", "--address", address, "--json").out or "{}")
            busy = [s for s in state.get("submissions", []) if s["in_flight"] > 0]
            return state if len(busy) == 2 and sum(s["in_flight"] for s in busy) == 8 else None

        seen = wait_for(both_in_flight, timeout=120, interval=0)
        assert seen is not None, "never saw both submissions holding the cluster at once"
        # One ledger: the nodes' in-flight counts are the two submissions' together, never above what a node
        # admits while it is shared: its capacity x the sum of the depths the two drivers' pacing asked for
        # (no task has finished, so neither has a lease-turn share yet: 1 + 1 = 2 x the capacity here).
        assert sum(n["tasks_in_flight"] for n in seen["nodes"]) == 8
        shared = sum(s["overcommit"] for s in seen["submissions"])
        for node in seen["nodes"]:
            assert node["reserved"].get("CPU", 0) <= node["capacity"]["CPU"] * shared
        assert {s["policy"] for s in seen["submissions"]} == {"random", "p2c"}
        human = run_cli("status", "--address", address)
        assert human.code == 0 and "submissions: 2 active" in human.out
    finally:
        gate.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for i in range(2):
        assert (pd.read_csv(tmp_path / f"run{i}.csv")["status"] == "ok").sum() == 4


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_embedded_default_listens_on_loopback_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "q.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "raysched.cli", "submit", str(JOBS / "quickstart.py"), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawned: set[int] = set()
    listening: set[str] = set()

    def exited() -> bool:
        with contextlib.suppress(psutil.NoSuchProcess):  # every Ray process descends from the submit process
            spawned.update(child.pid for child in psutil.Process(proc.pid).children(recursive=True))
        listening.update(
            c.laddr.ip
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in spawned
        )
        return proc.poll() is not None

    assert wait_for(exited, timeout=240, interval=0.2)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    assert "embedded cluster of 4 nodes on 127.0.0.1" in stderr
    assert "tasks ok      200" in stdout
    assert pd.read_csv(out)["node_ran"].nunique() >= 3
    assert len(spawned) >= 8  # raylets, GCS, workers: we did watch a real cluster
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening  # loopback only
    assert wait_for(lambda: not [p for p in spawned if _alive(p)], timeout=20), [
        psutil.Process(p).cmdline() for p in spawned if _alive(p)
    ]


def test_user_policy_from_the_working_directory(address: str, tmp_path: Path) -> None:
    """`--policy module:Name` works although the brain actor cannot import the user's module."""
    (tmp_path / "mypolicy.py").write_text(
        "from raysched.policies import check_feasible\n"
        "class Emptiest:\n"
        "    name = 'emptiest'\n"
        "    def choose(self, task, view):\n"
        "        check_feasible(view, task.resources)\n"
        "        fits = [n for n in view.nodes if view.fits_now(n, task.resources)]\n"
        "        return min(fits, key=lambda n: (view.load(n), n)) if fits else None\n"
    )
    out = tmp_path / "out.csv"
    result = run_cli(
        "submit",
        str(JOBS / "quickstart.py"),
        "--address",
        address,
        "--policy",
        "mypolicy:Emptiest",
        "--out",
        str(out),
        "--quiet",
        cwd=tmp_path,
    )
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    assert (df["status"] == "ok").sum() == 200 and (df["policy"] == "mypolicy:Emptiest").all()
    assert (df["node_ran"] == df["node_chosen"]).all() and df["node_ran"].nunique() == 4
