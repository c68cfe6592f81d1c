"""`raysched bench`: what placement costs, measured against plain Ray in one run on one cluster.

The same N no-op tasks (one CPU each) go through: plain Ray with default
scheduling; plain Ray with hard node affinity, round-robin over the nodes; and
raysched under each policy. Runs alternate (A B C … A B C …) so drift on a
noisy machine shows as spread between rounds rather than as a bias.
"""
from __future__ import annotations

import csv
import itertools
import statistics
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from raysched.job import JobFile, Task

class BenchError(RuntimeError):
    """A measured run did not complete every task; its figures would mean nothing."""


PLAIN_DEFAULT = "ray-default"
PLAIN_AFFINITY = "ray-affinity-rr"


def noop() -> None:
    """The task whose cost is all overhead."""
    return None


@dataclass
class Measurement:
    mode: str
    round: int
    tasks: int
    seconds: float

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else float("nan")


def _ray_nodes() -> list[str]:
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)


def run_plain(n: int, affinity: bool) -> float:
    """Plain Ray: submit everything, wait for everything; seconds taken."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    fn = ray.remote(noop)
    if affinity:
        pinned = [fn.options(num_cpus=1, max_retries=0,
                             scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                  for node in _ray_nodes()]
        targets = itertools.cycle(pinned)
    else:
        targets = itertools.repeat(fn.options(num_cpus=1, max_retries=0))
    started = time.perf_counter()
    refs = [next(targets).remote() for _ in range(n)]
    ray.get(refs)
    return time.perf_counter() - started


def noop_job(n: int) -> JobFile:
    """A synthetic job of `n` no-op tasks, as if loaded from a file."""
    module = types.ModuleType("raysched_bench_job")
    return JobFile(path=Path("noop-bench.py"), module=module,
                   tasks_fn=lambda: (Task(noop, key=str(i)) for i in range(n)))


def run_raysched(n: int, policy_name: str, seed: int, max_inflight: int, overcommit: float, out_dir: Path,
                 load_factor: float | None = 1.25) -> float:
    """raysched end to end (brain, dispatch, CSV rows); seconds taken."""
    from raysched import policies
    from raysched.results import ResultsWriter
    from raysched.runner import Runner, RunSettings

    policy = policies.build_policy(policy_name, policies.PolicyOptions(seed=seed, load_factor=load_factor))
    settings = RunSettings(policy_name=policy_name, max_inflight=max_inflight, overcommit=overcommit)
    path = Path(tempfile.mkstemp(suffix=".csv", dir=out_dir)[1])
    path.unlink()
    with ResultsWriter(path) as writer:
        started = time.perf_counter()
        outcome = Runner(noop_job(n), policy, settings, writer).run()
        seconds = time.perf_counter() - started
    if outcome.ok != n:
        raise BenchError(f"bench run under {policy_name} finished {outcome.ok} of {n} tasks")
    return seconds


def brain_decisions_per_s(nodes: int = 1000, decisions: int = 20000, policy_name: str = "hash") -> float:
    """Decisions per second of the brain class itself on a synthetic view (no Ray)."""
    from raysched import policies
    from raysched.brain import PlacementBrain

    brain = PlacementBrain(overcommit=1.0)
    brain.sync_nodes({f"{i:056x}": {"CPU": 8.0} for i in range(nodes)})
    brain.register("bench", policies.build_policy(policy_name, policies.PolicyOptions(seed=1)), {})
    batch = 512
    uid = 0
    started = time.perf_counter()
    in_flight: list[int] = []
    while uid < decisions:
        requests = [(uid + i, {"CPU": 1.0}, str(uid + i)) for i in range(batch)]
        answer = brain.place("bench", in_flight, requests)
        in_flight = [u for u, _ in answer.placed]
        uid += batch
    return uid / (time.perf_counter() - started)


def run_bench(
    n: int,
    policy_names: Sequence[str],
    rounds: int,
    seed: int,
    max_inflight: int,
    overcommit: float,
    echo: Callable[[str], None],
    load_factor: float | None = 1.25,
) -> list[Measurement]:
    """Alternate every mode for `rounds` rounds after one warm-up of each; return all measurements."""
    modes: list[tuple[str, Callable[[], float]]] = [
        (PLAIN_DEFAULT, lambda: run_plain(n, affinity=False)),
        (PLAIN_AFFINITY, lambda: run_plain(n, affinity=True)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        for name in policy_names:
            modes.append((f"raysched-{name}",
                          lambda name=name: run_raysched(n, name, seed, max_inflight, overcommit, out_dir,
                                                         load_factor)))
        echo(f"warming up workers ({len(modes)} modes, {min(n, 2000)} tasks each)")
        for mode, _ in modes[:2]:
            run_plain(min(n, 2000), affinity=mode == PLAIN_AFFINITY)
        for name in policy_names:
            run_raysched(min(n, 2000), name, seed, max_inflight, overcommit, out_dir)
        results = []
        for r in range(1, rounds + 1):
            for mode, fn in modes:
                seconds = fn()
                results.append(Measurement(mode, r, n, seconds))
                echo(f"  round {r}  {mode:<22} {n / seconds:8.0f} tasks/s")
    return results


def summarize(results: Sequence[Measurement]) -> list[dict[str, Any]]:
    """Median tasks/s per mode, and each mode's ratio to plain-affinity Ray."""
    by_mode: dict[str, list[float]] = {}
    for m in results:
        by_mode.setdefault(m.mode, []).append(m.tasks_per_s)
    baseline = statistics.median(by_mode[PLAIN_AFFINITY])
    return [
        {"mode": mode, "tasks_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
         "ratio_to_affinity": statistics.median(rates) / baseline}
        for mode, rates in by_mode.items()
    ]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'mode':<22}{'tasks/s (median)':>18}{'min':>9}{'max':>9}{'vs ray-affinity':>17}"]
    for row in rows:
        lines.append(f"{row['mode']:<22}{row['tasks_per_s']:>18.0f}{row['min']:>9.0f}{row['max']:>9.0f}"
                     f"{row['ratio_to_affinity']:>16.2f}x")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_job_bench(
    job_path: Path,
    policy_names: Sequence[str],
    rounds: int,
    seed: int,
    max_inflight: int,
    overcommit: float,
    echo: Callable[[str], None],
    load_factor: float | None = 1.25,
) -> list[dict[str, Any]]:
    """Run a real job under each policy (alternating rounds); figures per policy from the CSVs.

    Reports what decides "which policy wins" for the job: throughput, p95 wait,
    nodes used, and the hit rate when the job reports a `cache_hit` metric.
    """
    from raysched import analysis, policies
    from raysched.job import load_job
    from raysched.results import ResultsWriter
    from raysched.runner import Runner, RunSettings

    job = load_job(job_path)
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in policy_names}
    with tempfile.TemporaryDirectory() as tmp:
        echo("warming up workers")  # so the first policy measured does not pay for worker start-up
        run_raysched(500, policy_names[0], seed, max_inflight, overcommit, Path(tmp))
        for r in range(1, rounds + 1):
            for name in policy_names:
                policy = policies.build_policy(name, policies.PolicyOptions(seed=seed, load_factor=load_factor))
                path = Path(tmp) / f"{name}-{r}.csv"
                settings = RunSettings(policy_name=name, max_inflight=max_inflight, overcommit=overcommit)
                with ResultsWriter(path) as writer:
                    outcome = Runner(job, policy, settings, writer).run()
                if outcome.failed or outcome.ok == 0:
                    raise BenchError(f"{job.name} under {name}: {outcome.ok} ok, {outcome.failed} failed")
                df = analysis.load([path])
                summary = analysis.summarize(df).iloc[:, 0]
                ok = df[df["status"] == "ok"]
                row = {
                    "tasks_per_s": float(summary[analysis.M_THROUGHPUT]),
                    "wait_p95_s": float(summary["wait_s p95 (s)"]),
                    "nodes_used": float(summary[analysis.M_NODES]),
                    "key_affinity_pct": float(summary[analysis.M_AFFINITY]),
                    "cache_hit_pct": float(ok["cache_hit"].mean() * 100) if "cache_hit" in ok else float("nan"),
                }
                figures[name].append(row)
                echo(f"  round {r}  {name:<8} {row['tasks_per_s']:8.1f} tasks/s  p95 wait {row['wait_p95_s']:.3f} s"
                     f"  nodes {row['nodes_used']:.0f}  cache hits {row['cache_hit_pct']:.0f}%")
    first = statistics.median(f["tasks_per_s"] for f in figures[policy_names[0]])
    table = []
    for name, rows in figures.items():
        merged = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        merged["ratio_to_first"] = merged["tasks_per_s"] / first
        table.append({"policy": name, **merged})
    return table


def format_job_table(rows: Sequence[dict[str, Any]]) -> str:
    first = rows[0]["policy"]
    lines = [f"{'policy':<10}{'tasks/s':>10}{'p95 wait s':>12}{'nodes used':>12}{'key affinity':>14}"
             f"{'cache hits':>12}{'vs ' + first:>12}"]
    for row in rows:
        hits = "-" if row["cache_hit_pct"] != row["cache_hit_pct"] else f"{row['cache_hit_pct']:.0f}%"
        lines.append(f"{row['policy']:<10}{row['tasks_per_s']:>10.1f}{row['wait_p95_s']:>12.3f}"
                     f"{row['nodes_used']:>12.0f}{row['key_affinity_pct']:>13.0f}%{hits:>12}"
                     f"{row['ratio_to_first']:>11.2f}x")
    return "\n".join(lines)
