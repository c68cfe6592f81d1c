"""`raysched simulate` at scale: a million Zipf-keyed tasks on 10,000 nodes of 16 CPUs, one policy at a time.

    python benchmarks/simulate_scale.py                      # 1,000,000 tasks: hash, random, p2c
    python benchmarks/simulate_scale.py --tasks 100000 --nodes 1000x16   # a quicker look
    python benchmarks/simulate_scale.py --policies hash --load-factor off  # hash without bounded loads

Writes a trace in the results schema (keys Zipf(1.1) over 100,000 keys, one
CPU each, run_s uniform in 0.5-1.5 s; no sidecar: the cluster comes from
--nodes), then simulates each policy in a fresh process (so its peak memory is
its own) with a modelled cache (--cache-keys, --miss-s). Prints, per policy:
seconds (the simulation alone, and the whole process with reading the trace
and the figures; and the process's CPU seconds, which other load on a shared
machine does not inflate), peak resident memory, simulated brain decisions per second,
and what the policy did: balance (max/mean and CV of tasks per node), key
affinity, cache hit rate, throughput and p95 wait. Targets: <= 60 s and
<= 1.5 GB per policy (a policy still running after --timeout is stopped and
reported as missed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

# This checkout's raysched, not whichever one is installed (as brain_cost.py does); its workers run this file too.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

TARGET_S = 60.0
TARGET_RSS_GB = 1.5
FIGURES = (
    "imbalance (max/mean)",
    "CV tasks/node (pop. std/mean)",
    "key affinity (%)",
    "cache hit rate (%)",
    "throughput (tasks/s)",
    "wait_s p95 (s)",
    "nodes used",
    "keys",
)


def write_trace(path: Path, tasks: int, keys: int, zipf: float, seed: int) -> None:
    """A recorded run of ``tasks`` tasks in the results schema (what `raysched submit` would have written)."""
    from raysched.results.schema import BASE_COLUMNS

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, keys + 1) ** zipf
    ranks = rng.choice(keys, size=tasks, p=weights / weights.sum())
    run_s = rng.uniform(0.5, 1.5, size=tasks)
    started = np.arange(tasks) * 1e-4
    frame = pd.DataFrame(
        {
            "run_id": "scale",
            "job": "zipf.py",
            "policy": "hash",
            "task_id": np.arange(tasks),
            "key": pd.Series(ranks).map(lambda r: f"user-{r}"),
            "attempt": 1,
            "status": "ok",
            "error": "",
            "node_chosen": "n0000",
            "node_ran": "n0000",
            "submitted_at": started,
            "started_at": started,
            "finished_at": started + run_s,
            "wait_s": 0.0,
            "run_s": run_s,
            "demand": "CPU=1",
            "spill": "",
            "brain_wait_s": 0.0,
            "replica": "",
        }
    )
    # The schema's order; columns added to it later may be missing from a CSV (the reader fills them in).
    frame[[c for c in BASE_COLUMNS if c in frame]].to_csv(path, index=False)


def worker(args: argparse.Namespace) -> None:
    """One policy, in this process: print its figures as one JSON line."""
    from raysched.sim.replay import SimulateSettings, simulate

    started = time.perf_counter()
    options: dict[str, object] = {"vnodes": args.vnodes} if args.vnodes else {}
    if args.load_factor is not None:
        options["load_factor"] = None if args.load_factor == "off" else float(args.load_factor)
    report = simulate(
        SimulateSettings(
            trace=Path(args.trace),
            policies=(args.worker,),
            nodes=args.nodes,
            cache_keys=args.cache_keys,
            miss_s=args.miss_s,
            dispatch_ms=args.dispatch_ms,
            policy_options=options,
        )
    )
    stats = report.stats[args.worker]
    column = report.summary[args.worker]
    print(
        json.dumps(
            {
                "sim_s": stats.wall_s,
                "process_s": time.perf_counter() - started,
                "decisions": stats.decisions,
                "decisions_per_s": stats.decisions_per_s,
                "calls": stats.calls,
                "virtual_s": stats.virtual_s,
                "figures": {name: float(column[name]) for name in FIGURES if name in column.index},
            }
        )
    )


def run_policy(policy: str, trace: Path, args: argparse.Namespace) -> dict | None:
    """Simulate one policy in a child process; its figures, with the child's wall time and peak memory.

    None when it has not finished within --timeout (the child is stopped).
    """
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        policy,
        "--trace",
        str(trace),
        "--nodes",
        args.nodes,
        "--cache-keys",
        str(args.cache_keys),
        "--miss-s",
        str(args.miss_s),
        "--dispatch-ms",
        str(args.dispatch_ms),
    ]
    if args.vnodes:
        cmd += ["--vnodes", str(args.vnodes)]
    if args.load_factor is not None:
        cmd += ["--load-factor", args.load_factor]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(cmd, stdout=out)
        timer = threading.Timer(args.timeout, child.kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode == -signal.SIGKILL:
            return None
        out.seek(0)
        text = out.read()
    if child.returncode != 0:
        raise SystemExit(f"{policy}: the simulation failed (exit {child.returncode})")
    result = json.loads(text.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # what it cost, whatever else the machine was doing
    result["peak_rss_gb"] = usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--nodes", default="10000x16")
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys (Zipf ranks)")
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--policies", default="hash,random,p2c")
    parser.add_argument("--cache-keys", type=int, default=64)
    parser.add_argument("--miss-s", type=float, default=0.2)
    parser.add_argument("--dispatch-ms", type=float, default=10.0)
    parser.add_argument("--vnodes", type=int, default=None, help="hash ring points per CPU (default 100)")
    parser.add_argument("--load-factor", default=None, help="hash's bounded loads: C or off (default 1.25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace", default=None, help="the trace's path: reused if it exists, else written there")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a policy after this many seconds")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(args.trace) if args.trace else Path(tmp) / "zipf.csv"
        if not trace.exists():
            started = time.perf_counter()
            write_trace(trace, args.tasks, args.keys, args.zipf, args.seed)
            print(
                f"wrote a trace of {args.tasks:,} tasks (Zipf({args.zipf}) over {args.keys:,} keys) in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
        print(
            f"cluster {args.nodes}; cache {args.cache_keys} keys per node, miss +{args.miss_s} s; dispatch "
            f"{args.dispatch_ms} ms; vnodes {args.vnodes or 'default'}; load factor {args.load_factor or 'default'}",
            flush=True,
        )
        header = (
            f"{'policy':<8}{'sim s':>8}{'process s':>11}{'CPU s':>8}{'peak GB':>9}{'decisions/s':>13}"
            f"{'max/mean':>10}{'CV':>7}{'affinity':>10}{'hit rate':>10}{'tasks/s':>10}{'p95 wait':>10}"
        )
        print(header, flush=True)
        for policy in args.policies.split(","):
            r = run_policy(policy, trace, args)
            if r is None:
                print(
                    f"{policy:<8}not done after {args.timeout:g} s: MISSED (profile it: py-spy top --pid ...)",
                    flush=True,
                )
                continue
            f = r["figures"]
            verdict = "met" if r["process_s"] <= TARGET_S and r["peak_rss_gb"] <= TARGET_RSS_GB else "MISSED"
            print(
                f"{policy:<8}{r['sim_s']:>8.1f}{r['process_s']:>11.1f}{r['cpu_s']:>8.1f}{r['peak_rss_gb']:>9.2f}"
                f"{r['decisions_per_s']:>13,.0f}{f['imbalance (max/mean)']:>10.2f}"
                f"{f['CV tasks/node (pop. std/mean)']:>7.3f}{f['key affinity (%)']:>9.1f}%"
                f"{f.get('cache hit rate (%)', float('nan')):>9.1f}%{f['throughput (tasks/s)']:>10,.0f}"
                f"{f['wait_s p95 (s)']:>10.2f}   {verdict} (<= {TARGET_S:g} s, <= {TARGET_RSS_GB} GB)",
                flush=True,
            )


if __name__ == "__main__":
    main()
