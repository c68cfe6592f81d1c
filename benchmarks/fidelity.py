"""The simulator's fidelity table: recorded runs against their replays, under their own policy and another.

    python benchmarks/fidelity.py --record --dir results/fidelity   # record each job under hash and random
    python benchmarks/fidelity.py --dir results/fidelity            # the table (markdown) from those runs
    python benchmarks/fidelity.py --dir results/fidelity --compact  # one line per job (the README's table)

Each job is recorded --runs times under hash and under random on the embedded
default cluster (one `raysched submit` at a time, alternating hash random hash
random). Per run the table shows, measured against simulated (`raysched
simulate --validate`): throughput from the first task start, p95 wait and the
cache hit rate of the run replayed under its own policy. Per job: the
hash/random throughput ratio measured (median hash run over median random
run), and as predicted by replaying the hash runs under random and the random
runs under hash (each prediction: the simulated ratio of the two policies on
one trace; the median over the runs). One run of a job of a second or less is
one draw of a noisy machine: compare medians.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


def _csv(folder: Path, label: str, policy: str, run: int = 1) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")
    return folder / (f"{slug}-{policy}.csv" if run == 1 else f"{slug}-{policy}-{run}.csv")


def record(folder: Path, runs: int) -> None:
    """Each job ``runs`` times under each policy, alternating policies, one run at a time; runs already there
    are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, (job, env) in JOBS.items():
        for run in range(1, runs + 1):
            for policy in POLICIES:
                out = _csv(folder, label, policy, run)
                if out.exists():
                    continue
                command = ["raysched", "submit", job, "--policy", policy, "--out", str(out), "--quiet"]
                print("+", " ".join(command), file=sys.stderr)
                subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=True)


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value * 100:+.0f}%"


def _num(value: float | None, digits: str = ".3g") -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, digits)


@dataclass
class _Run:
    """One recorded run replayed: its own policy's fidelity, and the hash/random ratio it predicts."""

    policy: str
    measured: dict
    simulated: dict
    error: dict
    predicted: float

    @property
    def points(self) -> str:
        return f"{self.simulated[HIT_RATE] - self.measured[HIT_RATE]:+.0f}" if HIT_RATE in self.measured else "–"


def _replayed(path: Path, policy: str) -> _Run:
    fidelity = validate(SimulateSettings(trace=path))
    both = simulate(SimulateSettings(trace=path, policies=POLICIES, check_fidelity=False)).summary
    ratio = float(both.loc[THROUGHPUT].iloc[0] / both.loc[THROUGHPUT].iloc[1])
    return _Run(policy, fidelity.measured, fidelity.simulated, fidelity.error, ratio)


def _runs_of(folder: Path, label: str) -> dict[str, list[_Run]]:
    runs: dict[str, list[_Run]] = {p: [] for p in POLICIES}
    for policy in POLICIES:
        run = 1
        while _csv(folder, label, policy, run).exists():
            runs[policy].append(_replayed(_csv(folder, label, policy, run), policy))
            run += 1
    return runs


def _both(runs: dict[str, list[_Run]], cell: Callable[[_Run], str]) -> str:
    """One cell per run, the hash runs / the random runs."""
    return " / ".join(", ".join(cell(r) for r in runs[p]) for p in POLICIES)


def table(folder: Path, compact: bool = False) -> str:
    """The full table (a line per run), or with ``compact`` a line per job: each run's errors and the ratio."""
    if compact:
        lines = [
            "| job | throughput error hash / random | p95 wait error hash / random | hits (points) hash / random "
            "| hash/random measured | predicted from hash / random runs |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines = [
            "| job | run | throughput measured / simulated | p95 wait (s) measured / simulated | "
            "hits measured / simulated | hash/random throughput measured | predicted from the hash runs | "
            "predicted from the random runs |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for label in JOBS:
        runs = _runs_of(folder, label)
        if not all(runs.values()):
            continue
        real = statistics.median(r.measured[THROUGHPUT] for r in runs["hash"]) / statistics.median(
            r.measured[THROUGHPUT] for r in runs["random"]
        )
        predicted = {p: statistics.median(r.predicted for r in runs[p]) for p in POLICIES}
        ratio_cells = [
            f"{real:.2f}×",
            f"{predicted['hash']:.2f}× ({_pct(predicted['hash'] / real - 1)})",
            f"{predicted['random']:.2f}× ({_pct(predicted['random'] / real - 1)})",
        ]
        if compact:
            cells = [
                label,
                _both(runs, lambda r: _pct(r.error[THROUGHPUT])),
                _both(runs, lambda r: _pct(r.error[WAIT_P95])),
                _both(runs, lambda r: r.points),
                f"{real:.2f}×",
                f"{_pct(predicted['hash'] / real - 1)} / {_pct(predicted['random'] / real - 1)}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        last = (POLICIES[-1], len(runs[POLICIES[-1]]) - 1)
        for policy in POLICIES:
            for i, r in enumerate(runs[policy]):
                m, s, e = r.measured, r.simulated, r.error
                hits = (
                    f"{m[HIT_RATE]:.0f}% / {s[HIT_RATE]:.0f}% ({s[HIT_RATE] - m[HIT_RATE]:+.0f} pt)"
                    if HIT_RATE in m
                    else "–"
                )
                cells = [
                    label,
                    f"{policy} #{i + 1}",
                    f"{m[THROUGHPUT]:.0f} / {s[THROUGHPUT]:.0f} ({_pct(e[THROUGHPUT])})",
                    f"{_num(m[WAIT_P95])} / {_num(s[WAIT_P95])} ({_pct(e[WAIT_P95])})",
                    hits,
                    *(ratio_cells if (policy, i) == last else ["", "", ""]),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("results/fidelity"), help="where the recorded runs are")
    parser.add_argument("--record", action="store_true", help="record the runs first (embedded cluster)")
    parser.add_argument("--runs", type=int, default=2, help="runs per job and policy to record (default 2)")
    parser.add_argument("--compact", action="store_true", help="one line per job (errors only)")
    args = parser.parse_args()
    if args.record:
        record(args.dir, args.runs)
    print(table(args.dir, args.compact))


if __name__ == "__main__":
    main()
