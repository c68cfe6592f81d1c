"""The simulator's fidelity table: recorded runs against their replays, under their own policy and another.

    python benchmarks/fidelity.py --record --dir results/fidelity   # record each job under hash and random
    python benchmarks/fidelity.py --dir results/fidelity            # the table (markdown) from those runs
    python benchmarks/fidelity.py --dir results/fidelity --compact  # one line per job (the README's table)

Each job is recorded once under hash and once under random on the embedded
default cluster (one `raysched submit` at a time). Per job the table shows,
measured against simulated (`raysched simulate --validate`): throughput from
the first task start, p95 wait and the cache hit rate of each run replayed
under its own policy; then the hash/random throughput ratio measured, and as
predicted by replaying the hash run under random and the random run under
hash (each prediction: the simulated ratio of the two policies on one trace).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

from raysched.sim.fidelity import HIT_RATE, WAIT_P95
from raysched.sim.replay import SimulateSettings, simulate, validate

THROUGHPUT = "throughput (tasks/s)"
ROOT = Path(__file__).resolve().parents[1]
JOBS: dict[str, tuple[str, dict[str, str]]] = {
    "jobs/cache_affinity.py": ("jobs/cache_affinity.py", {}),
    "jobs/cpu_bound.py": ("jobs/cpu_bound.py", {}),
    "jobs/quickstart.py": ("jobs/quickstart.py", {}),
    "jobs/mixed_resources.py": ("jobs/mixed_resources.py", {}),
    "per-worker LRU (worker_lru.py)": ("benchmarks/fidelity_jobs/worker_lru.py", {}),
    "short tasks, 5 ms x 2,000": (
        "benchmarks/fidelity_jobs/sleep_tasks.py",
        {"SLEEP_TASK_MS": "5", "SLEEP_TASKS": "2000"},
    ),
    "medium tasks, 50 ms x 400": (
        "benchmarks/fidelity_jobs/sleep_tasks.py",
        {"SLEEP_TASK_MS": "50", "SLEEP_TASKS": "400"},
    ),
    "long tasks, 500 ms x 60": (
        "benchmarks/fidelity_jobs/sleep_tasks.py",
        {"SLEEP_TASK_MS": "500", "SLEEP_TASKS": "60"},
    ),
}
POLICIES = ("hash", "random")


def _csv(folder: Path, label: str, policy: str) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")
    return folder / f"{slug}-{policy}.csv"


def record(folder: Path) -> None:
    """Each job under each policy, one run at a time; runs already there are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, (job, env) in JOBS.items():
        for policy in POLICIES:
            out = _csv(folder, label, policy)
            if out.exists():
                continue
            command = ["raysched", "submit", job, "--policy", policy, "--out", str(out), "--quiet"]
            print("+", " ".join(command), file=sys.stderr)
            subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=True)


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value * 100:+.0f}%"


def _num(value: float | None, digits: str = ".3g") -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, digits)


def table(folder: Path, compact: bool = False) -> str:
    """The full table (a line per run), or with ``compact`` a line per job: each run's errors and the ratio."""
    if compact:
        lines = [
            "| job | throughput error hash / random | p95 wait error hash / random | hits (points) hash / random "
            "| hash/random measured | predicted from hash / random run |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines = [
            "| job | run | throughput measured / simulated | p95 wait (s) measured / simulated | "
            "hits measured / simulated | hash/random throughput measured | predicted from the hash run | "
            "predicted from the random run |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for label in JOBS:
        paths = {p: _csv(folder, label, p) for p in POLICIES}
        if not all(p.exists() for p in paths.values()):
            continue
        measured: dict[str, float] = {}
        predicted: dict[str, float] = {}
        errors: dict[str, tuple[str, str, str]] = {}
        for policy, path in paths.items():
            fidelity = validate(SimulateSettings(trace=path))
            m, s, e = fidelity.measured, fidelity.simulated, fidelity.error
            measured[policy] = m[THROUGHPUT]
            hits = (
                f"{m[HIT_RATE]:.0f}% / {s[HIT_RATE]:.0f}% ({s[HIT_RATE] - m[HIT_RATE]:+.0f} pt)"
                if HIT_RATE in m
                else "–"
            )
            both = simulate(SimulateSettings(trace=path, policies=POLICIES, check_fidelity=False)).summary
            ratio = both.loc[THROUGHPUT].iloc[0] / both.loc[THROUGHPUT].iloc[1]
            predicted[policy] = float(ratio)
            points = f"{s[HIT_RATE] - m[HIT_RATE]:+.0f}" if HIT_RATE in m else "–"
            errors[policy] = (_pct(e[THROUGHPUT]), _pct(e[WAIT_P95]), points)
            cells = [
                label,
                policy,
                f"{m[THROUGHPUT]:.0f} / {s[THROUGHPUT]:.0f} ({_pct(e[THROUGHPUT])})",
                f"{_num(m[WAIT_P95])} / {_num(s[WAIT_P95])} ({_pct(e[WAIT_P95])})",
                hits,
            ]
            if policy == "random":
                real = measured["hash"] / measured["random"]
                cells += [
                    f"{real:.2f}×",
                    f"{predicted['hash']:.2f}× ({_pct(predicted['hash'] / real - 1)})",
                    f"{predicted['random']:.2f}× ({_pct(predicted['random'] / real - 1)})",
                ]
            else:
                cells += ["", "", ""]
            if not compact:
                lines.append("| " + " | ".join(cells) + " |")
        if compact:
            real = measured["hash"] / measured["random"]
            h, r = errors["hash"], errors["random"]
            lines.append(
                f"| {label} | {h[0]} / {r[0]} | {h[1]} / {r[1]} | {h[2]} / {r[2]} | {real:.2f}× | "
                f"{_pct(predicted['hash'] / real - 1)} / {_pct(predicted['random'] / real - 1)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("results/fidelity"), help="where the recorded runs are")
    parser.add_argument("--record", action="store_true", help="record the runs first (embedded cluster)")
    parser.add_argument("--compact", action="store_true", help="one line per job (errors only)")
    args = parser.parse_args()
    if args.record:
        record(args.dir)
    print(table(args.dir, args.compact))


if __name__ == "__main__":
    main()
