"""Services, measured side by side in one run on one loopback cluster (fresh drivers, alternating A B A B).

1. Cache-bound: jobs/service_cache.py (4 replicas, an LRU of 12 models each, 100 ms per miss, 10 ms per
   call, 40 models) routed by hash and by random: throughput over the whole run, hit rate, key affinity by
   replica.
2. Overhead: 10 ms calls routed by raysched (hash, unkeyed) against plain Ray actor calls sent round-robin
   from one driver to 4 actors pinned one per node: steady-state calls/s (completions between the 10th and
   90th percentile finish times).

    python benchmarks/services.py              # 2 rounds, about 4 minutes here
    python benchmarks/services.py --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

OVERHEAD_JOB = """
import time
import raysched

@raysched.service(num_cpus=1, replicas=4)
class Echo:
    def call(self, i):
        time.sleep(0.01)
        return {"items": 1}

def tasks():
    for i in range(N):
        yield raysched.Task(Echo.call, args=(i,))
"""

PLAIN_DRIVER = """
import json, sys, time
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

ray.init(address=sys.argv[1], logging_level="ERROR")
n = int(sys.argv[2])

@ray.remote(num_cpus=1)
class Echo:
    def call(self, i):
        time.sleep(0.01)
        return time.time()

nodes = sorted(x["NodeID"] for x in ray.nodes() if x["Alive"] and x["Resources"].get("CPU", 0) > 0)[:4]
actors = [Echo.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote() for node in nodes]
ray.get([a.__ray_ready__.remote() for a in actors])
refs = [actors[i % len(actors)].call.remote(i) for i in range(n)]
print(json.dumps(ray.get(refs)))
"""


def steady_rate(finished: np.ndarray) -> float:
    """Completions between the 10th and 90th percentile finish times, per second."""
    lo, hi = np.quantile(finished, [0.1, 0.9])
    inside = ((finished >= lo) & (finished <= hi)).sum()
    return float(inside / (hi - lo)) if hi > lo else float("nan")


def submit(address: str, job: Path, out: Path, *args: str, env: dict | None = None) -> pd.DataFrame:
    cmd = [sys.executable, "-m", "raysched.cli", "submit", str(job), "--address", address, "--out", str(out), "--quiet"]
    subprocess.run([*cmd, *args], check=True, capture_output=True, env={**os.environ, **(env or {})}, timeout=900)
    rows = pd.read_csv(out)
    return rows[rows["status"] == "ok"]


def cache_run(address: str, policy: str, tmp: Path, i: int) -> dict:
    ok = submit(address, ROOT / "jobs" / "service_cache.py", tmp / f"cache-{policy}-{i}.csv", "--policy", policy)
    span = ok["finished_at"].max() - ok["submitted_at"].min()
    return {
        "policy": policy,
        "calls/s": len(ok) / span,
        "hit rate (%)": 100 * ok["cache_hit"].mean(),
        "key affinity by replica (%)": 100 * (ok.groupby("key")["replica"].nunique() == 1).mean(),
    }


def overhead_raysched(address: str, tmp: Path, n: int, i: int) -> float:
    job = tmp / "echo.py"
    job.write_text(OVERHEAD_JOB.replace("range(N)", f"range({n})"))
    ok = submit(address, job, tmp / f"echo-{i}.csv")
    return steady_rate(ok["finished_at"].to_numpy())


def overhead_plain(address: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_DRIVER, address, str(n)], check=True, capture_output=True, text=True, timeout=600
    )
    return steady_rate(np.array(json.loads(out.stdout.strip().splitlines()[-1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=3000, help="10 ms calls per overhead run")
    parser.add_argument("--parts", default="cache,overhead", help="which comparisons to run (default: both)")
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    from raysched.cluster import loopback_only

    loopback_only()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    for _ in range(4):
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=100 * 1024 * 1024)
    cluster.wait_for_nodes()
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            cache, plain, routed = [], [], []
            parts = args.parts.split(",")
            for i in range(args.rounds):  # A B A B: the machine's noise falls on both sides
                if "cache" in parts:
                    cache += [cache_run(cluster.address, "hash", tmp, i), cache_run(cluster.address, "random", tmp, i)]
                if "overhead" in parts:
                    routed.append(overhead_raysched(cluster.address, tmp, args.calls, i))
                    plain.append(overhead_plain(cluster.address, args.calls))
    finally:
        cluster.shutdown()
    if cache:
        table = pd.DataFrame(cache).groupby("policy").mean()
        print("Cache-bound service (jobs/service_cache.py), mean of", args.rounds, "runs each:")
        print(table.round(1).to_string())
        print(f"  hash / random throughput: {table.loc['hash', 'calls/s'] / table.loc['random', 'calls/s']:.2f}x")
    if routed:
        print(f"\n10 ms calls, steady state ({args.calls} calls, 4 replicas one per node):")
        print(
            f"  raysched (hash)          {np.mean(routed):7.1f} calls/s   runs {', '.join(f'{r:.1f}' for r in routed)}"
        )
        print(f"  plain Ray round-robin    {np.mean(plain):7.1f} calls/s   runs {', '.join(f'{r:.1f}' for r in plain)}")
        print(f"  raysched / plain: {np.mean(routed) / np.mean(plain):.2f}x")


if __name__ == "__main__":
    main()
