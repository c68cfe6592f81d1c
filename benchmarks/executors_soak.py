"""Many submissions in a row on one cluster: the brain's memory and the executors stay flat, idle ones retire.

Starts an embedded loopback cluster of 4 x 2 CPUs, runs ``--runs`` fresh `raysched submit` drivers one after
another (each ``--tasks`` tasks of 1 ms over 20 keys, hash, default flags: executors on), and after each reads
the brain's `raysched status --json`: its resident memory, the executors alive, created and retired so far.
Then it waits for the idle executors to retire. Prints the first and last runs and the verdict::

    python benchmarks/executors_soak.py --runs 100
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

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only, before Ray is imported

JOB = """
import time
import raysched

def work(i):
    time.sleep(0.001)
    return {{"items": 1}}

def tasks():
    for i in range({n}):
        yield raysched.Task(work, args=(i,), key=f"k{{i % 20}}")
"""

SLOTS = 8  # executors of one CPU that 4 x 2 CPUs hold


def status(address: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "raysched.cli", "status", "--address", address, "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--executors", default="auto", help="passed to every submission (auto|on|off)")
    args = parser.parse_args()

    from raysched.bench.compare import BENCH_NODES
    from raysched.cluster import EmbeddedCluster

    rows = []
    with EmbeddedCluster(BENCH_NODES) as cluster, tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "soak.py"
        job.write_text(JOB.format(n=args.tasks))
        for run in range(1, args.runs + 1):
            out = Path(tmp) / f"run{run}.csv"
            started = time.time()
            command = [sys.executable, "-m", "raysched.cli", "submit", str(job), "--address", cluster.address]
            done = subprocess.run(
                [*command, "--out", str(out), "--quiet", "--executors", args.executors],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                sys.exit(f"run {run} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
            state = status(cluster.address)
            counts = state.get("executor_counts", {})
            rows.append(
                {
                    "run": run,
                    "wall_s": time.time() - started,
                    "brain_rss_mb": state["rss_bytes"] / 2**20,
                    "alive": len(state["executors"]),
                    "created": counts.get("created", 0),
                    "retired": counts.get("retired", 0),
                }
            )
            out.unlink()
            out.with_suffix(".json").unlink()
        waited = 0.0
        while status(cluster.address)["executors"] and waited < 60:
            time.sleep(1.0)
            waited += 1.0
        left = len(status(cluster.address)["executors"])

    print(f"{'run':>5}{'wall s':>8}{'brain RSS MB':>14}{'executors alive':>17}{'created':>9}{'retired':>9}")
    shown = rows if len(rows) <= 20 else rows[:10] + rows[-10:]
    for r in shown:
        print(
            f"{r['run']:>5}{r['wall_s']:>8.1f}{r['brain_rss_mb']:>14.1f}{r['alive']:>17}"
            f"{r['created']:>9}{r['retired']:>9}"
        )
    first = sum(r["brain_rss_mb"] for r in rows[:10]) / min(10, len(rows))
    last = sum(r["brain_rss_mb"] for r in rows[-10:]) / min(10, len(rows))
    print(
        f"brain RSS, mean of the last 10 runs over the first 10: {last:.1f} / {first:.1f} MB = {last / first:.2f}; "
        f"most executors alive after a run: {max(r['alive'] for r in rows)} (slots: {SLOTS}); "
        f"{left} left {waited:.0f} s after the last run"
    )


if __name__ == "__main__":
    main()
