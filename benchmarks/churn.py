"""Kill one worker node hard in the middle of a job; measure what raysched (and plain Ray) did.

    python benchmarks/churn.py [--tasks 3000] [--keys 60] [--task-ms 50] [--policy hash]
                               [--health default|fast] [--kill-at 0.35] [--rounds 1]

An existing-style cluster on loopback: a head with no CPUs and four 2-CPU
workers, with Ray's *default* health checks unless --health fast (real
clusters keep the defaults; they declare a dead node only 15-18 s later). Per
round, raysched (`raysched submit`, default flags) and then plain Ray (hard
node affinity round-robin, everything submitted at once) each run the same
job on a fresh cluster, and one worker is killed when that fraction of the
tasks has finished. Prints per driver:

* completions per second before the kill (whole cluster) and in the 10 s
  after it (surviving nodes), and their ratio (target: at least 0.5);
* every task ok exactly once;
* for raysched: seconds until the brain stopped placing on the dead node, and
  keys that moved off surviving nodes (target: none), how many of them ran
  more than two tasks elsewhere (a key moved, not a task or two stolen), and
  how many moved before the run's tail (from the moment the first surviving node ran
  out of work, work conservation hands queued tasks to idle slots; a run
  without a kill does the same).

With --sim NODES it runs no cluster: the same job shape (keys and tasks per
CPU as above) on NODES simulated 2-CPU nodes through `raysched simulate`,
once with a node killed at the same point and once without (the control),
and prints the same key figures for both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

JOB = """
import time, raysched

@raysched.task(num_cpus=1)
def work(i):
    time.sleep({ms} / 1000)
    return {{"items": 1}}

def tasks():
    for i in range({n}):
        yield raysched.Task(work, args=(i,), key=f"key-{{i % {keys}}}")
"""

PLAIN = """
import json, sys, time, itertools, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address=sys.argv[1], logging_level="ERROR")
n, ms, out = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def work(i):
    started = time.time()
    time.sleep(ms / 1000)
    return (i, ray.get_runtime_context().get_node_id(), started, time.time())
fn = ray.remote(work)
nodes = sorted(x["NodeID"] for x in ray.nodes() if x["Alive"] and x["Resources"].get("CPU", 0) > 0)
pinned = itertools.cycle([fn.options(num_cpus=1, max_retries=0,
                          scheduling_strategy=NodeAffinitySchedulingStrategy(x, soft=False)) for x in nodes])
pending = {next(pinned).remote(i): i for i in range(n)}
rows, attempts = [], {i: 1 for i in range(n)}
with open(out, "w") as fh:
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1)
        for ref in ready:
            i = pending.pop(ref)
            try:
                i, node, started, finished = ray.get(ref)
                fh.write(json.dumps({"task_id": i, "node_ran": node, "started_at": started,
                                     "finished_at": finished, "status": "ok"}) + "\\n")
            except ray.exceptions.RayError as err:  # lost with the node: resubmit round-robin
                attempts[i] += 1
                fh.write(json.dumps({"task_id": i, "status": "retried", "error": type(err).__name__}) + "\\n")
                pending[next(pinned).remote(i)] = i
            fh.flush()
"""

FAST_HEALTH = {
    "health_check_initial_delay_ms": 500,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


def start_cluster(health: str):
    from ray.cluster_utils import Cluster

    from raysched.cluster import loopback_only

    loopback_only()
    config = FAST_HEALTH if health == "fast" else {}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "_system_config": config,
            "object_store_memory": 100 << 20,
        },
    )
    workers = [
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=100 << 20) for _ in range(4)
    ]
    cluster.wait_for_nodes()
    return cluster, workers


def ok_count(path: Path, jsonl: bool) -> int:
    try:
        if jsonl:
            return sum(1 for line in path.read_text().splitlines() if '"ok"' in line)
        return int((pd.read_csv(path, on_bad_lines="skip")["status"] == "ok").sum())
    except (FileNotFoundError, pd.errors.EmptyDataError, KeyError, ValueError):
        return 0


def kill_when(path: Path, target: int, jsonl: bool, cluster, workers, proc) -> tuple[str, float]:
    """Kill the worker that finished the most tasks so far once `target` tasks are ok (a busy node)."""
    while proc.poll() is None and ok_count(path, jsonl) < target:
        time.sleep(0.05)
    victim = workers[1]
    killed_at = time.time()
    cluster.remove_node(victim, allow_graceful=False)
    return victim.node_id, killed_at


def rates(ok: pd.DataFrame, dead: str, killed_at: float, window: float = 10.0) -> tuple[float, float, float]:
    """(tasks/s before the kill, tasks/s on survivors in the window after it, seconds of that window)."""
    start = ok["started_at"].min()
    before = ok[ok["finished_at"] < killed_at]
    before_rate = len(before) / (killed_at - max(start, before["finished_at"].min()))
    end = min(killed_at + window, ok["finished_at"].max())
    after = ok[(ok["finished_at"] >= killed_at) & (ok["finished_at"] < end) & (ok["node_ran"] != dead)]
    return before_rate, len(after) / max(end - killed_at, 1e-9), end - killed_at


def run_raysched(args, tmp: Path) -> dict:
    cluster, workers = start_cluster(args.health)
    try:
        job, out = tmp / "churnjob.py", tmp / f"rs-{time.time_ns()}.csv"
        job.write_text(JOB.format(n=args.tasks, keys=args.keys, ms=args.task_ms))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raysched.cli",
                "submit",
                str(job),
                "--address",
                cluster.address,
                "--out",
                str(out),
                "--quiet",
                "--policy",
                args.policy,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        dead, killed_at = kill_when(out, int(args.tasks * args.kill_at), False, cluster, workers, proc)
        stdout, stderr = proc.communicate(timeout=900)
        if proc.returncode != 0:
            sys.exit(f"raysched submit failed ({proc.returncode}):\n{stdout}\n{stderr}")
        status = subprocess.run(
            [sys.executable, "-m", "raysched.cli", "status", "--address", cluster.address, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        changes = json.loads(status.stdout)["membership_changes"]
        df = pd.read_csv(out)
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(out, Path(args.keep) / f"churn-raysched-{int(killed_at)}-{dead[:8]}-killed.csv")
    finally:
        cluster.shutdown()
    ok = df[df["status"] == "ok"]
    before_rate, after_rate, window = rates(ok, dead, killed_at)
    left = [t for t, kind, node in changes if kind == "leave" and node == dead]
    chosen_after = df[(df["node_chosen"] == dead) & (df["submitted_at"] > (left[0] if left else killed_at) + 1)]
    moves = surviving_moves(ok, dead, killed_at, settle_s=1.0)
    return {
        "driver": f"raysched {args.policy}",
        "before": before_rate,
        "after": after_rate,
        "window": window,
        "once": len(ok) == ok["task_id"].nunique() == args.tasks,
        "retried": int((df["status"] == "retried").sum()),
        "left_s": (left[0] - killed_at) if left else None,
        "placed_on_dead_after": len(chosen_after),
        **moves,
    }


def surviving_moves(ok: pd.DataFrame, dead: str, killed_at: float, settle_s: float) -> dict:
    """Keys that lived on a surviving node (the node of their last ok task before the kill) and later ran
    elsewhere (from ``settle_s`` after the kill on), and how many of them first did so before the run's tail:
    the moment the first surviving node ran out of work, when work conservation hands the last queued tasks
    to idle slots (a run without a kill does that too)."""
    before = ok[ok["finished_at"] < killed_at]
    home = before.groupby("key")["node_ran"].agg(lambda s: s.iloc[-1])
    home = home[home != dead]
    later = ok[ok["started_at"] > killed_at + settle_s].merge(home.rename("home"), left_on="key", right_index=True)
    elsewhere = later[later["node_ran"] != later["home"]].groupby("key")["started_at"]
    away, tasks_away = elsewhere.min(), elsewhere.size()
    last = ok.groupby("node_ran")["finished_at"].max()
    tail = float(last[last.index != dead].min())
    return {
        "surviving_keys_moved": len(away),
        "whole_keys_moved": int((tasks_away > 2).sum()),  # the rest ran one or two tasks elsewhere (steals)
        "moved_before_tail": int((away < tail).sum()),
        "tail_s": float(ok["finished_at"].max()) - tail,
        "surviving_keys": len(home),
    }


def run_plain(args, tmp: Path) -> dict:
    cluster, workers = start_cluster(args.health)
    try:
        out = tmp / f"plain-{time.time_ns()}.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-c", PLAIN, cluster.address, str(args.tasks), str(args.task_ms), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        dead, killed_at = kill_when(out, int(args.tasks * args.kill_at), True, cluster, workers, proc)
        stdout, stderr = proc.communicate(timeout=900)
        if proc.returncode != 0:
            sys.exit(f"plain driver failed ({proc.returncode}):\n{stdout}\n{stderr}")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    finally:
        cluster.shutdown()
    df = pd.DataFrame(rows)
    ok = df[df["status"] == "ok"]
    before_rate, after_rate, window = rates(ok, dead, killed_at)
    return {
        "driver": "plain Ray affinity",
        "before": before_rate,
        "after": after_rate,
        "window": window,
        "once": len(ok) == ok["task_id"].nunique() == args.tasks,
        "retried": int((df["status"] == "retried").sum()),
    }


def simulate(args) -> None:
    """The job's shape on ``args.sim`` simulated 2-CPU nodes: keys and tasks per CPU as on the 4 x 2 cluster."""
    import numpy as np

    from raysched.results.schema import BASE_COLUMNS

    scale = args.sim * 2 / 8  # CPUs over the real cluster's 8
    keys, tasks = int(args.keys * scale), int(args.tasks * scale)
    run_s = args.task_ms / 1000
    kill_s = args.kill_at * tasks * run_s / (args.sim * 2)  # when that share of the work is done, about
    print(
        f"simulated: {tasks:,} tasks of {args.task_ms:g} ms over {keys:,} keys on {args.sim:,} x 2 CPUs, the "
        f"busiest node killed at {kill_s:.1f} s (virtual), against the same run without a kill"
    )
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.csv"
        ids = np.arange(tasks)
        frame = pd.DataFrame(
            {
                "run_id": "churn",
                "job": "churn.py",
                "policy": args.policy,
                "task_id": ids,
                "key": [f"key-{i % keys}" for i in ids],
                "attempt": 1,
                "status": "ok",
                "error": "",
                "node_chosen": "n0000",
                "node_ran": "n0000",
                "submitted_at": ids * 1e-4,
                "started_at": ids * 1e-4,
                "finished_at": ids * 1e-4 + run_s,
                "wait_s": 0.0,
                "run_s": run_s,
                "demand": "CPU=1",
                "spill": "",
            }
        )
        frame[[c for c in BASE_COLUMNS if c in frame]].to_csv(trace, index=False)
        for label, extra in (("killed", ["--kill-node", f"{kill_s:g}"]), ("control", [])):
            out = Path(tmp) / f"{label}.csv"
            command = [sys.executable, "-m", "raysched.cli", "simulate", str(trace), "--policies", args.policy]
            command += ["--nodes", f"{args.sim}x2", "--out", str(out), *extra]
            subprocess.run(command, check=True, capture_output=True, text=True)
            df = pd.read_csv(out, low_memory=False)
            ok = df[df["status"] == "ok"]
            dead = df.loc[df["status"] == "retried", "node_chosen"].dropna()
            moves = surviving_moves(ok, dead.iloc[0] if len(dead) else "", kill_s, settle_s=0.0)
            print(
                f"{label:<8} makespan {ok['finished_at'].max() - ok['started_at'].min():.2f} s  surviving keys "
                f"moved: {moves['surviving_keys_moved']:,} of {moves['surviving_keys']:,}, "
                f"{moves['whole_keys_moved']:,} with more than two of their tasks "
                f"({moves['moved_before_tail']:,} before the run's tail, the rest in its last {moves['tail_s']:.2f} s)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--task-ms", type=float, default=50)
    parser.add_argument("--policy", default="hash")
    parser.add_argument("--health", choices=["default", "fast"], default="default")
    parser.add_argument("--kill-at", type=float, default=0.35, help="fraction of tasks ok when the node is killed")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="keep raysched's results CSV of each round in DIR")
    parser.add_argument("--sim", type=int, metavar="NODES", help="simulate NODES 2-CPU nodes instead (no cluster)")
    args = parser.parse_args()
    if args.sim:
        simulate(args)
        return
    print(
        f"job: {args.tasks} tasks of {args.task_ms:g} ms over {args.keys} keys; 4 workers x 2 CPUs, one killed "
        f"hard at {args.kill_at:.0%} done; Ray's {args.health} health checks"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(1, args.rounds + 1):
            for run in (run_raysched, run_plain):
                r = run(args, Path(tmp))
                line = (
                    f"round {rnd}  {r['driver']:<20} before {r['before']:6.1f}/s  after (survivors, "
                    f"{r['window']:.1f} s) {r['after']:6.1f}/s  ratio {r['after'] / r['before']:.2f}  "
                    f"each task ok once: {r['once']}  retried {r['retried']}"
                )
                if "left_s" in r:
                    left = "never" if r["left_s"] is None else f"{r['left_s']:.1f} s"
                    line += (
                        f"  dead node out of the brain after {left}, placed on it later: "
                        f"{r['placed_on_dead_after']}  surviving keys moved: {r['surviving_keys_moved']} of "
                        f"{r['surviving_keys']} ({r['whole_keys_moved']} with more than two of their tasks; "
                        f"{r['moved_before_tail']} before the run's tail, the rest in its "
                        f"last {r['tail_s']:.2f} s, once a surviving node had run out of work)"
                    )
                print(line, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
