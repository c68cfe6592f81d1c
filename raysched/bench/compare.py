"""`raysched bench`: what raysched costs next to plain Ray, and which policy wins a job, in one run.

Every measured run is a fresh driver process on one shared cluster, as a user's
would be: plain Ray ("submit all, get all", default scheduling or hard node
affinity round-robin, `raysched.bench.plain`) and `raysched submit` under each
policy. Modes alternate (A B C … A B C …) so drift on a noisy machine shows as
spread between rounds rather than as a bias.

Figures per run, from the tasks' own finish times:

* steady state: completions between the 10th and 90th percentile finish times
  divided by that span (start-up and tail excluded);
* whole run: tasks / (last finish - first submission);
* start-up: launch of the driver process to its first finished task.
"""

from __future__ import annotations

import csv
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysched.cluster import LocalNode
from raysched.results.figures import per_s, tasks_per_s
from raysched.results.schema import Status

# The overhead curve's default cluster: 4 nodes of 2 CPUs, as the targets were set on.
BENCH_NODES: tuple[LocalNode, ...] = (LocalNode(num_cpus=2),) * 4
PLAIN_DEFAULT = "ray-default"
PLAIN_AFFINITY = "ray-affinity-rr"
PLAIN_ACTOR_POOL = "ray-actorpool"  # ray.util.ActorPool over one 1-CPU actor per CPU: the hand-written peer
PLAIN_MODES = (PLAIN_DEFAULT, PLAIN_AFFINITY, PLAIN_ACTOR_POOL)
BASELINE = PLAIN_AFFINITY
DRIVER_TIMEOUT_S = 900.0


class BenchError(RuntimeError):
    """A measured run failed or did not complete every task; its figures would mean nothing."""


BENCH_JOB = '''"""raysched bench: {n} tasks of {ms} ms (generated)."""
import time

import raysched

MS = {ms!r}


def work(i):
    if MS:
        time.sleep(MS / 1000)


def tasks():
    for i in range({n}):
        yield raysched.Task(work, args=(i,), key=f"k{{i}}")
'''


@dataclass
class DriverRun:
    """One fresh driver's timings (Unix seconds)."""

    mode: str
    task_ms: float
    round: int
    tasks: int
    launched_at: float
    first_submit: float
    finished: list[float] = field(repr=False, default_factory=list)
    decisions: int | None = None
    driver_cpu_s: float = math.nan  # CPU the driver processes themselves used (rusage at exit), all drivers

    @property
    def steady_tasks_per_s(self) -> float:
        return steady_rate(self.finished)

    @property
    def whole_tasks_per_s(self) -> float:
        return tasks_per_s(len(self.finished), max(self.finished) - self.first_submit)

    @property
    def startup_s(self) -> float:
        return min(self.finished) - self.launched_at


def steady_rate(finished: Sequence[float]) -> float:
    """Completions between the 10th and 90th percentile finish times, per second of that span."""
    times = sorted(finished)
    if len(times) < 10:
        return float("nan")
    lo, hi = _quantile(times, 0.10), _quantile(times, 0.90)
    inside = sum(1 for t in times if lo <= t <= hi)
    return per_s(inside, hi - lo)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation, as pandas' default."""
    pos = q * (len(sorted_values) - 1)
    i = int(pos)
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (pos - i)


def default_tasks(task_ms: float, slots: int) -> int:
    """About 8 s of plain-Ray work: slots / task time, at most ~2,000 tasks/s (one driver's dispatch); 1,000-20,000."""
    rate = min(max(slots, 1) / (task_ms / 1000), 2000.0) if task_ms > 0 else 2000.0
    return int(min(20_000, max(1_000, round(8.0 * rate))))


def _spawn_plain(address: str, n: int, task_ms: float, mode: str, out: Path) -> subprocess.Popen:
    launched = time.time()
    cmd = [
        sys.executable,
        "-m",
        "raysched.bench.plain",
        "--address",
        address,
        "--tasks",
        str(n),
        "--task-ms",
        str(task_ms),
        "--launched-at",
        repr(launched),
        "--out",
        str(out),
    ]
    if mode == PLAIN_AFFINITY:
        cmd.append("--affinity")
    elif mode == PLAIN_ACTOR_POOL:
        cmd.append("--actor-pool")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _spawn_raysched(
    address: str, job: Path, policy: str, out: Path, flags: Sequence[str]
) -> tuple[subprocess.Popen, float]:
    launched = time.time()
    cmd = [
        sys.executable,
        "-m",
        "raysched.cli",
        "submit",
        str(job),
        "--address",
        address,
        "--policy",
        policy,
        "--out",
        str(out),
        "--quiet",
        *flags,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), launched


def _finish(proc: subprocess.Popen, what: str) -> str:
    try:
        out, err = proc.communicate(timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise BenchError(f"{what} did not finish within {DRIVER_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        tail = (err or out).strip().splitlines()[-3:]
        raise BenchError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return out


def _plain_result(path: Path, mode: str, task_ms: float, rnd: int) -> DriverRun:
    data = json.loads(path.read_text())
    return DriverRun(
        mode, task_ms, rnd, len(data["finished"]), data["launched_at"], data["first_submit"], data["finished"]
    )


def _raysched_result(path: Path, launched: float, mode: str, task_ms: float, rnd: int, n: int) -> DriverRun:
    with path.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == Status.OK.value]
    if len(rows) != n:
        raise BenchError(f"{mode} finished {len(rows)} of {n} tasks")
    decisions = None
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        try:
            runs = json.loads(sidecar.read_text()).get("runs", [])
            decisions = runs[-1].get("brain_decisions") if runs else None
        except (ValueError, AttributeError):
            decisions = None
    return DriverRun(
        mode,
        task_ms,
        rnd,
        n,
        launched,
        min(float(r["submitted_at"]) for r in rows),
        [float(r["finished_at"]) for r in rows],
        decisions,
    )


def raysched_mode(mode: str) -> tuple[str, str | None]:
    """``raysched-random`` -> (random, None: the default); ``raysched-random/executors=off`` -> (random, off)."""
    policy, _, executors = mode.removeprefix("raysched-").partition("/executors=")
    return policy, executors or None


def raysched_modes(policies: Sequence[str], executors: Sequence[str] = ()) -> list[str]:
    """The raysched modes to measure: one per policy, or one per policy and --executors setting."""
    if not executors:
        return [f"raysched-{p}" for p in policies]
    return [f"raysched-{p}/executors={e}" for p in policies for e in executors]


def measure_mode(
    address: str, mode: str, task_ms: float, rnd: int, n: int, concurrent: int, workdir: Path, flags: Sequence[str] = ()
) -> DriverRun:
    """Run `concurrent` fresh drivers of one mode at once; their tasks together are one measurement."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    for k in range(concurrent):
        tag = f"{mode}-{task_ms:g}ms-r{rnd}-d{k}"
        if mode in PLAIN_MODES:
            out = workdir / f"{tag}.json"
            procs.append(("plain", _spawn_plain(address, n, task_ms, mode, out), out, 0.0))
        else:
            job = workdir / f"bench_{n}x{str(task_ms).replace('.', '_')}ms.py"
            if not job.exists():
                job.write_text(BENCH_JOB.format(n=n, ms=task_ms))
            out = workdir / f"{tag.replace('/', '_')}.csv"
            policy, executors = raysched_mode(mode)
            extra = [f"--executors={executors}"] if executors else []
            proc, launched = _spawn_raysched(address, job, policy, out, [*flags, *extra])
            procs.append(("raysched", proc, out, launched))
    runs = []
    for kind, proc, out, launched in procs:
        _finish(proc, f"{mode} ({task_ms:g} ms tasks)")
        if kind == "plain":
            runs.append(_plain_result(out, mode, task_ms, rnd))
        else:
            runs.append(_raysched_result(out, launched, mode, task_ms, rnd, n))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the drivers alone: Ray's workers are not our children
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if len(runs) == 1:
        runs[0].driver_cpu_s = cpu_s
        return runs[0]
    decisions = [r.decisions for r in runs]
    return DriverRun(
        mode,
        task_ms,
        rnd,
        sum(r.tasks for r in runs),
        min(r.launched_at for r in runs),
        min(r.first_submit for r in runs),
        [t for r in runs for t in r.finished],
        None if None in decisions else sum(d for d in decisions if d is not None),
        cpu_s,
    )


def overhead_curve(
    address: str,
    task_ms: Sequence[float],
    policies: Sequence[str],
    rounds: int,
    tasks: int | None,
    slots: int,
    concurrent: int,
    echo: Callable[[str], None],
    flags: Sequence[str] = (),
    executors: Sequence[str] = (),
    actor_pool: bool = False,
) -> list[DriverRun]:
    """Per task length: plain Ray (default, hard affinity; an ActorPool when asked) and raysched per policy (and
    --executors setting), alternating rounds."""
    plain = [PLAIN_DEFAULT, PLAIN_AFFINITY, *([PLAIN_ACTOR_POOL] if actor_pool else [])]
    modes = [*plain, *raysched_modes(policies, executors)]
    runs: list[DriverRun] = []
    with tempfile.TemporaryDirectory(prefix="raysched-bench-") as tmp:
        workdir = Path(tmp)
        echo("warming up: one run of each mode on the smallest task length (not measured)")
        for mode in modes:
            measure_mode(address, mode, task_ms[0], 0, 500, 1, workdir, flags)
        for ms in task_ms:
            n = tasks or default_tasks(ms, slots)
            for rnd in range(1, rounds + 1):
                for mode in modes:
                    run = measure_mode(address, mode, ms, rnd, n, concurrent, workdir, flags)
                    runs.append(run)
                    echo(
                        f"  {ms:>5g} ms  round {rnd}  {mode:<30} steady {run.steady_tasks_per_s:8.0f} tasks/s"
                        f"  whole {run.whole_tasks_per_s:8.0f}  start-up {run.startup_s:5.2f} s"
                    )
    return runs


def summarize(runs: Sequence[DriverRun]) -> list[dict[str, Any]]:
    """Median figures per (task length, mode), with ratios to plain Ray's hard affinity."""
    groups: dict[tuple[float, str], list[DriverRun]] = {}
    for run in runs:
        groups.setdefault((run.task_ms, run.mode), []).append(run)
    rows = []
    for (ms, mode), group in groups.items():
        base = groups.get((ms, BASELINE), group)
        steady = statistics.median(r.steady_tasks_per_s for r in group)
        whole = statistics.median(r.whole_tasks_per_s for r in group)
        base_steady = statistics.median(r.steady_tasks_per_s for r in base)
        base_whole = statistics.median(r.whole_tasks_per_s for r in base)
        decisions = [r.decisions / r.tasks for r in group if r.decisions is not None]
        rows.append(
            {
                "task_ms": ms,
                "mode": mode,
                "tasks": group[0].tasks,
                "steady_tasks_per_s": steady,
                "steady_min": min(r.steady_tasks_per_s for r in group),
                "steady_max": max(r.steady_tasks_per_s for r in group),
                "whole_tasks_per_s": whole,
                "steady_ratio": steady / base_steady,
                "whole_ratio": whole / base_whole,
                "added_us_per_task": 1e6 * (1 / steady - 1 / base_steady),
                "startup_s": statistics.median(r.startup_s for r in group),
                "decisions_per_task": statistics.median(decisions) if decisions else float("nan"),
                "driver_ms_per_task": statistics.median(1000 * r.driver_cpu_s / r.tasks for r in group),
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'task':>6}  {'mode':<30}{'steady/s':>10}{'(min-max)':>15}{'whole/s':>9}{'ratio':>7}{'whole':>7}"
        f"{'+us/task':>10}{'start-up':>9}{'dec/task':>9}{'drv ms/task':>12}"
    )
    lines = [head, "-" * len(head)]
    last = None
    for row in rows:
        if last is not None and row["task_ms"] != last:
            lines.append("")
        last = row["task_ms"]
        span = f"{row['steady_min']:.0f}-{row['steady_max']:.0f}"
        dec = "-" if row["decisions_per_task"] != row["decisions_per_task"] else f"{row['decisions_per_task']:.2f}"
        lines.append(
            f"{row['task_ms']:>4g}ms  {row['mode']:<30}{row['steady_tasks_per_s']:>10.0f}{span:>15}"
            f"{row['whole_tasks_per_s']:>9.0f}{row['steady_ratio']:>6.2f}x{row['whole_ratio']:>6.2f}x"
            f"{row['added_us_per_task']:>10.0f}{row['startup_s']:>8.2f}s{dec:>9}{row['driver_ms_per_task']:>12.2f}"
        )
    lines.append(
        "ratio = steady-state tasks/s over plain Ray with hard affinity (whole = the same over the whole "
        "run); +us/task = 1e6 x (1/steady - 1/baseline steady); drv ms/task = CPU of the driver processes "
        "(start-up included) per task"
    )
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def cluster_cpus(address: str) -> int:
    """CPUs of the cluster at ``address`` (a short-lived driver of its own asks Ray)."""
    code = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False);"
        "print(int(ray.cluster_resources().get('CPU', 0)))"
    )
    done = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"cannot reach the cluster at {address}: {done.stderr.strip().splitlines()[-1:]}")
    return int(done.stdout.strip().splitlines()[-1])


def job_bench(
    address: str, job: Path, policies: Sequence[str], rounds: int, flags: Sequence[str], echo: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Run a real job under each policy (fresh drivers, alternating rounds); figures per policy from the CSVs.

    Reports what decides "which policy wins" for the job: throughput over the
    whole run (first submission to last finish) and in steady state, p95 wait,
    nodes used, key affinity, tasks spilled off their key's owner, and the
    hit rate when the job reports a ``cache_hit`` metric.
    """
    from raysched import analysis
    from raysched.analysis.metric_names import latency_name

    figures: dict[str, list[dict[str, float]]] = {name: [] for name in policies}
    with tempfile.TemporaryDirectory(prefix="raysched-bench-") as tmp:
        for rnd in range(1, rounds + 1):
            for name in policies:
                out = Path(tmp) / f"{name.replace(':', '-')}-{rnd}.csv"
                proc, _ = _spawn_raysched(address, job, name, out, flags)
                _finish(proc, f"{job.name} under {name}")
                df = analysis.load([out])
                summary = analysis.summarize(df).iloc[:, 0]
                ok = df[df["status"] == Status.OK.value]
                row = {
                    "tasks_per_s": float(summary[analysis.M_THROUGHPUT]),
                    "steady_tasks_per_s": steady_rate(ok["finished_at"].tolist()),
                    "wait_p95_s": float(summary[latency_name("wait_s", "p95")]),
                    "nodes_used": float(summary[analysis.M_NODES]),
                    "key_affinity_pct": float(summary[analysis.M_AFFINITY]),
                    "spilled_pct": float(summary.get(analysis.M_SPILLED, float("nan"))),
                    "cache_hit_pct": float(summary.get(analysis.M_HIT_RATE, float("nan"))),
                }
                figures[name].append(row)
                echo(
                    f"  round {rnd}  {name:<8} {row['tasks_per_s']:8.1f} tasks/s  p95 wait {row['wait_p95_s']:.3f} s"
                    f"  nodes {row['nodes_used']:.0f}  affinity {row['key_affinity_pct']:.0f}%"
                    f"  cache hits {row['cache_hit_pct']:.0f}%"
                )
    first = statistics.median(f["tasks_per_s"] for f in figures[policies[0]])
    table = []
    for name, rows in figures.items():
        merged = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        merged["ratio_to_first"] = merged["tasks_per_s"] / first
        table.append({"policy": name, **merged})
    return table


def format_job_table(rows: Sequence[dict[str, Any]]) -> str:
    first = rows[0]["policy"]
    lines = [
        f"{'policy':<10}{'tasks/s':>9}{'steady/s':>10}{'p95 wait s':>12}{'nodes':>7}{'affinity':>10}"
        f"{'spilled':>9}{'cache hits':>12}{'vs ' + first:>12}"
    ]
    for row in rows:

        def pct(v: float) -> str:
            return "-" if v != v else f"{v:.0f}%"

        lines.append(
            f"{row['policy']:<10}{row['tasks_per_s']:>9.1f}{row['steady_tasks_per_s']:>10.1f}"
            f"{row['wait_p95_s']:>12.3f}{row['nodes_used']:>7.0f}{pct(row['key_affinity_pct']):>10}"
            f"{pct(row['spilled_pct']):>9}{pct(row['cache_hit_pct']):>12}{row['ratio_to_first']:>11.2f}x"
        )
    lines.append(
        "tasks/s = ok tasks / (last finish - first submission); steady = between the 10th and 90th "
        "percentile finish times"
    )
    return "\n".join(lines)
