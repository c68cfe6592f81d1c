"""A million no-op tasks through `raysched submit`: driver and brain memory stay bounded.

    python benchmarks/scale.py [--tasks 1000000] [--overcommit 32] [--max-inflight 2000]

Starts a 4-node loopback cluster, runs `raysched submit` on a generated job of
N no-op tasks (a generator: the job itself holds nothing), and every few
seconds samples the driver's resident memory (psutil, the submit process) and
the brain actor's (from its status). Prints the samples and the peaks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

JOB = """
import raysched

def noop(i):
    return None

def tasks():
    for i in range({n}):
        yield raysched.Task(noop, args=(i,), key=str(i % 1000))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--overcommit", default="32")
    parser.add_argument("--max-inflight", default="2000")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    args = parser.parse_args()

    import ray

    from raysched.brain import find_brain
    from raysched.cluster import DEFAULT_LOCAL_NODES, EmbeddedCluster

    cluster = EmbeddedCluster(DEFAULT_LOCAL_NODES).start()
    samples: list[tuple[float, int, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            job, out = Path(tmp) / "million.py", Path(tmp) / "out.csv"
            job.write_text(JOB.format(n=args.tasks))
            cmd = [
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
                "--overcommit",
                args.overcommit,
                "--max-inflight",
                args.max_inflight,
            ]
            started = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            driver = psutil.Process(proc.pid)
            ray.init(address=cluster.address, namespace="raysched", logging_level="ERROR")
            brain = None
            print(f"{'elapsed s':>9} {'decisions':>10} {'driver RSS MB':>14} {'brain RSS MB':>13}", flush=True)
            while proc.poll() is None:
                time.sleep(args.every)
                brain = brain or find_brain()
                if brain is None or proc.poll() is not None:
                    continue
                try:
                    rss = driver.memory_info().rss / 2**20
                    state = ray.get(brain.status.remote(), timeout=30)
                except (psutil.NoSuchProcess, ray.exceptions.GetTimeoutError):
                    continue
                sample = (time.monotonic() - started, state["decisions"], rss, state["rss_bytes"] / 2**20)
                samples.append(sample)
                print(f"{sample[0]:9.0f} {sample[1]:10,} {sample[2]:14.0f} {sample[3]:13.0f}", flush=True)
            stdout, stderr = proc.communicate()
            wall = time.monotonic() - started
            lines = sum(1 for _ in out.open()) - 1 if out.exists() else 0
    finally:
        ray.shutdown()
        cluster.shutdown()
    if proc.returncode != 0:
        sys.exit(f"submit failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    print(stdout.strip().splitlines()[:6])
    print(f"tasks {args.tasks:,}  rows {lines:,}  wall {wall:.0f} s  ({args.tasks / wall:.0f} tasks/s)")
    if samples:
        print(
            f"driver peak RSS {max(s[2] for s in samples):.0f} MB; brain RSS first {samples[0][3]:.0f} MB, "
            f"last {samples[-1][3]:.0f} MB, peak {max(s[3] for s in samples):.0f} MB"
        )


if __name__ == "__main__":
    main()
