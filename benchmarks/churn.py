"""Lose one of three worker nodes in the middle of a 600-task job; report what raysched did.

    python benchmarks/churn.py [--tasks 600] [--keys 60] [--policy hash] [--load-factor off]

Prints: tasks ok (and whether each ran ok exactly once), attempts re-placed,
seconds from the node's death to its removal from the brain's ring, and how
many keys moved (against the number the dead node owned).
"""
from __future__ import annotations

import argparse
import json
import os
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
    time.sleep(0.05)
    return {{"items": 1}}

def tasks():
    for i in range({n}):
        yield raysched.Task(work, args=(i,), key=f"key-{{i % {keys}}}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--policy", default="hash")
    parser.add_argument("--load-factor", default="off")
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    from raysched.cluster import DEFAULT_SYSTEM_CONFIG, loopback_only

    loopback_only()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "_system_config": dict(DEFAULT_SYSTEM_CONFIG), "object_store_memory": 100 << 20})
    workers = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=100 << 20)
               for _ in range(3)]
    cluster.wait_for_nodes()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            job, out = Path(tmp) / "churnjob.py", Path(tmp) / "out.csv"
            job.write_text(JOB.format(n=args.tasks, keys=args.keys))
            cmd = [sys.executable, "-m", "raysched.cli", "submit", str(job), "--address", cluster.address,
                   "--out", str(out), "--quiet", "--policy", args.policy, "--load-factor", args.load_factor]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while proc.poll() is None:
                done = _ok_rows(out)
                if done >= args.tasks // 2:
                    break
                time.sleep(0.1)
            victim = workers[0]
            killed_at = time.time()
            cluster.remove_node(victim, allow_graceful=False)
            stdout, stderr = proc.communicate(timeout=600)
            if proc.returncode != 0:
                sys.exit(f"submit failed ({proc.returncode}):\n{stdout}\n{stderr}")
            status = subprocess.run([sys.executable, "-m", "raysched.cli", "status", "--address", cluster.address,
                                     "--json"], capture_output=True, text=True, check=True)
            changes = json.loads(status.stdout)["membership_changes"]
            df = pd.read_csv(out)
    finally:
        cluster.shutdown()
    left = [t for t, kind, node in changes if kind == "leave" and node == victim.node_id]
    ok = df[df["status"] == "ok"]
    before = ok[ok["finished_at"] < killed_at]
    after = ok[ok["started_at"] > (left[0] if left else killed_at) + 0.5]
    home = before.groupby("key")["node_ran"].agg(lambda s: s.iloc[-1])
    now = after.groupby("key")["node_ran"].agg(lambda s: s.iloc[-1])
    common = home.index.intersection(now.index)
    moved = int((home[common] != now[common]).sum())
    owned = int((home[common] == victim.node_id).sum())
    print(f"job: {args.tasks} tasks, {args.keys} keys, policy {args.policy}, load factor {args.load_factor}; "
          "3 workers x 2 CPUs, one killed hard at the half-way mark")
    print(f"tasks ok                        {ok['task_id'].nunique()} / {args.tasks}"
          f"  (ok rows {len(ok)}: {'each task exactly once' if len(ok) == ok['task_id'].nunique() else 'DUPLICATES'})")
    print(f"attempts re-placed (retried)    {int((df['status'] == 'retried').sum())}")
    print(f"death -> removed from ring      {left[0] - killed_at:.2f} s" if left else "death -> removed: NOT SEEN")
    print(f"keys moved                      {moved} of {len(common)} seen on both sides"
          f" (dead node owned {owned}; ideal = exactly those)")


def _ok_rows(path: Path) -> int:
    try:
        return int((pd.read_csv(path, on_bad_lines="skip")["status"] == "ok").sum())
    except (FileNotFoundError, pd.errors.EmptyDataError, KeyError):
        return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
