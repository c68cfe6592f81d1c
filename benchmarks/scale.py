"""Long runs through `raysched submit`: every policy, unkeyed and keyed, the end compared with the start.

    python benchmarks/scale.py                                   # 1,000,000 tasks, every policy, both key modes
    python benchmarks/scale.py --tasks 200000 --policies hash,random --keys 5000

Starts one 4-node loopback cluster and, for each policy and key mode, runs
`raysched submit` with default flags on a generated job of N no-op tasks (a
generator: the job itself holds nothing; keyed = ``key=i % --keys``, unkeyed =
no key). Every few seconds it samples the driver's resident memory (psutil,
the submit process) and the brain actor's (its status). From the results CSV:
all ok, and throughput over the first and the last fifth of the completions.
Targets ("flat cost per task"): all ok, driver <= 500 MB, brain RSS flat
(last sample <= first + 10%; the samples are printed, since the first may fall
in the ramp-up), last fifth >= 0.8x the first fifth.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

JOB = """
import raysched

def noop(i):
    return None

def tasks():
    for i in range({n}):
        yield raysched.Task(noop, args=(i,){key})
"""
TARGET_DRIVER_MB = 500.0
TARGET_END_OVER_START = 0.8
BRAIN_FLAT = 1.10


def fifths(csv: Path) -> tuple[int, int, float, float]:
    """(rows, ok rows, tasks/s over the first fifth of completions, over the last fifth)."""
    frame = pd.read_csv(csv, usecols=["status", "finished_at"])
    ok = frame[frame["status"] == "ok"]["finished_at"].sort_values().to_numpy()
    fifth = len(ok) // 5
    if fifth < 2:
        return len(frame), len(ok), float("nan"), float("nan")
    first = fifth / max(1e-9, ok[fifth - 1] - ok[0])
    last = fifth / max(1e-9, ok[-1] - ok[-fifth])
    return len(frame), len(ok), first, last


def run_one(address: str, job: Path, out: Path, policy: str, every: float) -> dict:
    import ray

    from raysched.brain.actor import find_brain

    cmd = [sys.executable, "-m", "raysched.cli", "submit", str(job), "--address", address]
    cmd += ["--policy", policy, "--out", str(out), "--quiet"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver = psutil.Process(proc.pid)
    driver_peak, brain_rss = 0.0, []
    while proc.poll() is None:
        time.sleep(every)
        try:
            driver_peak = max(driver_peak, driver.memory_info().rss / 2**20)
            brain = find_brain()
            if brain is not None:
                brain_rss.append(ray.get(brain.status.remote(), timeout=30)["rss_bytes"] / 2**20)
        except (psutil.NoSuchProcess, ray.exceptions.GetTimeoutError):
            continue
    _, stderr = proc.communicate()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        print(f"  submit failed ({proc.returncode}): {stderr.strip()[-500:]}", flush=True)
    rows, ok, first, last = fifths(out) if out.exists() else (0, 0, float("nan"), float("nan"))
    return {
        "rc": proc.returncode,
        "wall": wall,
        "rows": rows,
        "ok": ok,
        "first": first,
        "last": last,
        "driver_mb": driver_peak,
        "brain_mb": brain_rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--policies", default="hash,random,p2c,greedy,pack")
    parser.add_argument("--keys", type=int, default=5000, help="distinct keys of the keyed runs")
    parser.add_argument("--modes", default="unkeyed,keyed")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between memory samples")
    args = parser.parse_args()

    import ray

    from raysched.cluster import DEFAULT_LOCAL_NODES, EmbeddedCluster

    cluster = EmbeddedCluster(DEFAULT_LOCAL_NODES).start()
    ray.init(address=cluster.address, namespace="raysched", logging_level="ERROR")
    print(f"{args.tasks:,} no-op tasks per run, default flags, {DEFAULT_LOCAL_NODES} local nodes", flush=True)
    header = (
        f"{'policy':7} {'mode':8} {'ok':>9} {'wall s':>7} {'first 1/5 t/s':>13} {'last 1/5 t/s':>12} {'end/start':>9} "
        f"{'driver MB':>9} {'brain MB first/last/peak':>25}  verdict"
    )
    print(header, flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for mode in args.modes.split(","):
                job = Path(tmp) / f"long_{mode}.py"
                key = f", key=str(i % {args.keys})" if mode == "keyed" else ""
                job.write_text(JOB.format(n=args.tasks, key=key))
                for policy in args.policies.split(","):
                    out = Path(tmp) / f"{policy}_{mode}.csv"
                    r = run_one(cluster.address, job, out, policy, args.every)
                    brain = r["brain_mb"] or [float("nan")]
                    ratio = r["last"] / r["first"] if r["first"] > 0 else float("nan")
                    good = (
                        r["rc"] == 0
                        and r["ok"] == args.tasks
                        and r["driver_mb"] <= TARGET_DRIVER_MB
                        and brain[-1] <= brain[0] * BRAIN_FLAT
                        and ratio >= TARGET_END_OVER_START
                    )
                    print(
                        f"{policy:7} {mode:8} {r['ok']:9,} {r['wall']:7.0f} {r['first']:13,.0f} {r['last']:12,.0f} "
                        f"{ratio:9.2f} {r['driver_mb']:9.0f} "
                        f"{brain[0]:8.0f}/{brain[-1]:.0f}/{max(brain):.0f}".ljust(25)
                        + f"  {'met' if good else 'MISSED'}",
                        flush=True,
                    )
                    print(
                        f"        brain MB over the run (every {args.every:g} s): "
                        + " ".join(f"{m:.0f}" for m in brain)
                    )
                    out.unlink(missing_ok=True)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
