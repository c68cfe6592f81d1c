"""Kill the node holding the most replicas of a keyed service mid-run, several times; count what held.

    python benchmarks/service_node_death.py [--runs 5] [--calls 3000] [--keys 30] [--call-ms 40] [--replicas 6]

Per run, a fresh loopback cluster (a head with no CPUs and four 2-CPU workers,
Ray's *default* health checks: a dead node looks alive for 15 s or more) runs
`raysched submit` on a job of ``--replicas`` one-CPU replicas and ``--calls``
keyed calls; after ``--kill-after`` ok calls the worker holding the most
replicas is killed hard. Per run it prints: the command's exit code, every
call ok exactly once, the longest time until a key of a lost replica was
served again, and the keys of surviving replicas that changed replica; then
the targets with met/missed over all runs (exit 0, once, served again within
5 s, no surviving key moved: in every run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..")]  # churn.py beside it; raysched from this checkout

from churn import ok_count, start_cluster  # noqa: E402

JOB = """
import time, raysched

@raysched.service(num_cpus=1, replicas={replicas})
class Shard:
    def __init__(self):
        self.keys = set()

    def serve(self, key, i):
        time.sleep({ms} / 1000)
        hit = key in self.keys
        self.keys.add(key)
        return {{"items": 1, "cache_hit": int(hit)}}

def tasks():
    for i in range({calls}):
        key = f"key-{{i % {keys}}}"
        yield raysched.Task(Shard.serve, args=(key, i), key=key)
"""

SERVED_AGAIN_S = 5.0


def busiest_worker(out: Path, workers: list) -> tuple[object, str]:
    """The worker whose node ran the most distinct replicas so far (a node with replicas, from the CSV)."""
    rows = pd.read_csv(out, on_bad_lines="skip").dropna(subset=["finished_at"])
    per_node = rows.groupby("node_ran")["replica"].nunique().sort_values(ascending=False)
    for node in per_node.index:
        for worker in workers:
            if worker.node_id == node:
                return worker, node
    raise RuntimeError("no worker ran a replica")


def one_run(args: argparse.Namespace, tmp: Path) -> dict:
    cluster, workers = start_cluster("default")
    try:
        job, out = tmp / "svc_death.py", tmp / f"run-{time.time_ns()}.csv"
        job.write_text(JOB.format(replicas=args.replicas, calls=args.calls, keys=args.keys, ms=args.call_ms))
        command = [sys.executable, "-m", "raysched.cli", "submit", str(job), "--address", cluster.address]
        proc = subprocess.Popen(
            [*command, "--out", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        while proc.poll() is None and ok_count(out, False) < args.kill_after:
            time.sleep(0.05)
        victim, dead = busiest_worker(out, workers)
        killed_at = time.time()
        cluster.remove_node(victim, allow_graceful=False)
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        cluster.shutdown()
    df = pd.read_csv(out)
    ok = df[df["status"] == "ok"]
    lost = set(ok.loc[ok["node_ran"] == dead, "replica"])
    before, after = ok[ok["finished_at"] < killed_at], ok[ok["started_at"] > killed_at]
    home_before = before.groupby("key")["replica"].agg(set)
    home_after = after.groupby("key")["replica"].agg(set)
    moved = sum(1 for key, reps in home_before.items() if not reps & lost and home_after.get(key, reps) != reps)
    lost_keys = [key for key, reps in home_before.items() if reps & lost]
    served = [after.loc[after["key"] == key, "finished_at"].min() - killed_at for key in lost_keys]
    return {
        "exit": proc.returncode,
        "tail": (stdout + stderr).strip().splitlines()[-3:] if proc.returncode else [],
        "once": sorted(ok["task_id"]) == list(range(args.calls)) and len(df) >= len(ok),
        "lost_replicas": len(lost),
        "served_again_s": max(served) if served else float("nan"),
        "surviving_keys_moved": moved,
        "surviving_keys": len(home_before) - len(lost_keys),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--keys", type=int, default=30)
    parser.add_argument("--call-ms", type=float, default=40)
    parser.add_argument("--replicas", type=int, default=6)
    parser.add_argument("--kill-after", type=int, default=300, help="ok calls before the kill")
    args = parser.parse_args()
    print(
        f"{args.replicas} one-CPU replicas on 4 x 2-CPU workers (0-CPU head), {args.calls} calls of "
        f"{args.call_ms:g} ms over {args.keys} keys; the worker with the most replicas killed hard after "
        f"{args.kill_after} ok calls; Ray's default health checks; {args.runs} runs"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.runs + 1):
            r = one_run(args, Path(tmp))
            results.append(r)
            print(
                f"run {run}: exit {r['exit']}  every call ok once: {r['once']}  replicas lost: "
                f"{r['lost_replicas']}  their keys served again after {r['served_again_s']:.2f} s  "
                f"surviving keys moved: {r['surviving_keys_moved']} of {r['surviving_keys']}",
                flush=True,
            )
            for line in r["tail"]:
                print(f"    {line}")
    checks = {
        "exit 0": [r["exit"] == 0 for r in results],
        "every call ok exactly once": [r["once"] for r in results],
        f"lost keys served again within {SERVED_AGAIN_S:g} s": [r["served_again_s"] < SERVED_AGAIN_S for r in results],
        "no surviving key changed replica": [r["surviving_keys_moved"] == 0 for r in results],
    }
    for what, held in checks.items():
        print(f"{what}: in {sum(held)} of {len(held)} runs ({'met' if all(held) else 'MISSED'})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
