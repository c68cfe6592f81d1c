"""`raysched simulate`: one recorded run replayed under other policies and cluster shapes, on a virtual clock.

The trace gives the tasks (key, demand, run time, in task_id order); the
cluster comes from ``--nodes``, ``--config`` or the run's sidecar; the real
`PlacementBrain` and policies decide, driven the way the runner drives them
(raysched.sim.engine). Each policy's simulated attempts are rows of the
results schema, so the figures are exactly `raysched analyze`'s, and
``--out`` writes a CSV (with its sidecar) that `raysched analyze` reads like
any run. Virtual time starts at 0, the recorded run's first task start: its
start-up (cluster, workers) is not placement.

The same inputs and seed give the same output: time is virtual, the brain and
the policies are deterministic given their seed (0 unless given or recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysched import sidecar
from raysched.analysis import per_node, summarize
from raysched.policies import POLICY_NAMES, PolicyOptions, build_policy
from raysched.sim import SimInputError
from raysched.sim.cluster import AddNode, Cluster, KillNode, check_kills, resolve_cluster, virtual_ids
from raysched.sim.engine import AddAt, CacheModel, DriverModel, KillAt, Simulation, SimulationStats
from raysched.sim.estimate import estimate_cache_keys, estimate_dispatch_s, estimate_miss_s
from raysched.sim.record import Recorder
from raysched.sim.trace import Trace, load_trace
from raysched.view import fmt_resources

__all__ = ["HIT_RATE", "Model", "SimInputError", "SimulateSettings", "SimulationReport", "simulate"]

HIT_RATE = "cache hit rate (%)"  # a figure `raysched analyze` does not have: the modelled cache's hits
_POLICY_OPTIONS = ("seed", "load_factor", "vnodes", "locality_wait")


@dataclass(frozen=True)
class SimulateSettings:
    """Everything one `raysched simulate` needs; None means "estimate it" or "as recorded"."""

    trace: Path
    run_id: str | None = None
    policies: tuple[str, ...] = POLICY_NAMES
    nodes: str | None = None
    config: str | None = None
    cache_keys: int | None = None
    miss_s: float | None = None
    dispatch_ms: float | None = None
    policy_options: Mapping[str, Any] = field(default_factory=dict)  # seed / load_factor / vnodes, as given
    kills: tuple[KillNode, ...] = ()
    adds: tuple[AddNode, ...] = ()
    out: Path | None = None
    keep_rows: bool = False  # keep every policy's rows in the report (for a plot)
    command_line: tuple[str, ...] = ()


@dataclass
class Model:
    """What the simulation assumed, and which of it was estimated from the trace (printed and recorded)."""

    tasks: int
    run_id: str
    job: str
    cluster: str
    nodes: int
    cpus: float
    dispatch_s: float
    cache: CacheModel | None
    estimated: tuple[str, ...]
    driver: DriverModel

    def describe(self) -> str:
        """One line for stderr: the run, the cluster, and every model setting (marked when estimated)."""

        def guess(name: str) -> str:
            return " (estimated)" if name in self.estimated else ""

        cache = (
            "no cache model"
            if self.cache is None
            else f"cache of {self.cache.keys} keys per node{guess('cache_keys')}, "
            f"a miss adds {self.cache.miss_s:.3g} s{guess('miss_s')}"
        )
        return (
            f"raysched simulate: {self.tasks:,} tasks of run {self.run_id} ({self.job}) on {self.nodes:,} "
            f"node(s) ({self.cpus:g} CPUs, {self.cluster}); dispatch {self.dispatch_s * 1000:.3g} ms"
            f"{guess('dispatch')}; {cache}"
        )


@dataclass
class SimulationReport:
    """The figures (as `raysched analyze` has them), per-node counts, and what each policy's run cost."""

    summary: pd.DataFrame
    nodes: pd.DataFrame
    model: Model
    stats: dict[str, SimulationStats]
    rows: pd.DataFrame | None = None  # every policy's rows, when asked for (keep_rows)


def simulate(
    settings: SimulateSettings,
    on_warning: Callable[[str], None] | None = None,
    on_start: Callable[[Model], None] | None = None,
    on_policy_done: Callable[[str, SimulationStats], None] | None = None,
) -> SimulationReport:
    """Simulate every policy over the trace; SimInputError (one line) on anything unusable, before any work.

    ``on_start`` hears what the model assumes (once the inputs are checked), ``on_policy_done`` each policy's cost.
    """
    trace = load_trace(settings.trace, settings.run_id, on_warning)
    record = sidecar.read_runs(settings.trace).get(trace.run_id) or {}
    recorded = dict(record.get("options") or {})
    cluster = resolve_cluster(settings.nodes, settings.config, settings.trace, trace.run_id)
    adds = _added_nodes(cluster, settings.adds)
    check_kills(settings.kills, set(cluster.nodes) | {n for add in adds for n, _ in add.nodes})
    _check_feasible(trace, cluster)
    base_s, cache, estimated = _cache_model(trace, settings)
    if settings.dispatch_ms is None:
        dispatch_s, estimated = estimate_dispatch_s(trace), (*estimated, "dispatch")
    else:
        dispatch_s = settings.dispatch_ms / 1000
    driver = DriverModel(
        dispatch_s,
        overcommit=recorded.get("overcommit"),
        batch=recorded.get("batch"),
        max_inflight=recorded.get("max_inflight"),
    )
    options = _policy_options(recorded, settings.policy_options)
    _check_policies(settings.policies, options)
    if settings.out is not None and settings.out.exists():
        raise SimInputError(
            f"{settings.out} already exists; choose another --out (an existing file is never overwritten)"
        )
    model = Model(
        len(trace),
        trace.run_id,
        trace.job,
        cluster.source,
        len(cluster.nodes),
        sum(c.get("CPU", 0.0) for c in cluster.nodes.values()),
        dispatch_s,
        cache,
        estimated,
        driver,
    )
    if on_start is not None:
        on_start(model)
    kills = [KillAt(k.at, k.node) for k in settings.kills]
    summaries, node_tables, kept, stats = [], [], [], {}
    for name in settings.policies:
        run_id = f"sim-{name}-{trace.run_id}"
        recorder = Recorder(run_id, trace.job, name, len(trace), cached=cache is not None)
        simulation = Simulation(
            keys=trace.keys,
            demand_codes=trace.demand_codes,
            demands=trace.demands,
            base_s=base_s,
            policy=build_policy(name, options),
            policy_name=name,
            nodes=cluster.nodes,
            driver=driver,
            cache=cache,
            recorder=recorder,
            kills=kills,
            adds=adds,
        )
        stats[name] = simulation.run()
        rows = recorder.frame(trace.task_ids, trace.keys, trace.demand_codes, trace.demand_texts, trace.metrics)
        del simulation, recorder
        summaries.append(_summary(rows, cache is not None))
        node_tables.append(per_node(rows))
        if settings.out is not None:
            _write(settings, rows, model, cluster, adds, name, run_id, options, stats[name], trace)
        if settings.keep_rows:
            kept.append(rows)
        del rows
        if on_policy_done is not None:
            on_policy_done(name, stats[name])
    summary = pd.concat(summaries, axis=1, sort=False)
    summary.index.name, summary.columns.name = "metric", "run"
    summary.attrs["runs"] = [run for part in summaries for run in part.attrs["runs"]]
    return SimulationReport(
        summary,
        pd.concat(node_tables, ignore_index=True),
        model,
        stats,
        pd.concat(kept, ignore_index=True) if kept else None,
    )


def _summary(rows: pd.DataFrame, cached: bool) -> pd.DataFrame:
    """`raysched analyze`'s figures for one run, plus the modelled cache's hit rate."""
    summary = summarize(rows)
    if cached:
        ok = rows[rows["status"] == "ok"]
        summary.loc[HIT_RATE] = float(ok["cache_hit"].mean() * 100) if len(ok) else float("nan")
    return summary


def _cache_model(trace: Trace, settings: SimulateSettings) -> tuple[np.ndarray, CacheModel | None, tuple[str, ...]]:
    """Each task's base duration (what it takes on a hit), the cache model, and which settings were estimated."""
    if trace.cache_hit is None:
        if settings.cache_keys is None and settings.miss_s is None:
            return trace.run_s, None, ()
        if settings.cache_keys is None or settings.miss_s is None:
            raise SimInputError(
                "the trace has no cache_hit column to estimate from: give both --cache-keys and "
                "--miss-s to model a cache"
            )
        return trace.run_s, CacheModel(settings.cache_keys, settings.miss_s), ()
    estimated: list[str] = []
    recorded_miss_s = estimate_miss_s(trace)
    missed = trace.cache_hit == 0.0
    if recorded_miss_s is None:  # only hits, or only misses: what a miss cost cannot be told from this trace
        if settings.miss_s is None:
            raise SimInputError(
                "cannot estimate --miss-s: the trace has no cache hits or no misses to compare; give --miss-s"
            )
        recorded_miss_s = settings.miss_s if missed.any() else 0.0
    miss_s = settings.miss_s
    if miss_s is None:
        miss_s = recorded_miss_s
        estimated.append("miss_s")
    keys = settings.cache_keys
    if keys is None:
        keys = estimate_cache_keys(trace) or 1
        estimated.append("cache_keys")
    base_s = np.where(missed, np.clip(trace.run_s - recorded_miss_s, 0.0, None), trace.run_s)
    return base_s, CacheModel(keys, miss_s), tuple(estimated)


def _check_feasible(trace: Trace, cluster: Cluster) -> None:
    """Every demand of the trace must fit some initial node (else the brain would report it infeasible)."""
    capacities = list(cluster.nodes.values())
    for code, demand in enumerate(trace.demands):
        if any(all(a <= cap.get(r, 0.0) + 1e-9 for r, a in demand.items()) for cap in capacities):
            continue
        task_id = int(trace.task_ids[int(np.argmax(trace.demand_codes == code))])
        largest = max(capacities, key=lambda c: (c.get("CPU", 0.0), c.get("GPU", 0.0)))
        raise SimInputError(
            f"task {task_id} demands {fmt_resources(demand)}, which no simulated node can fit "
            f"(the largest has {fmt_resources({k: v for k, v in largest.items() if k != 'memory'})}); "
            "give bigger --nodes"
        )


def _added_nodes(cluster: Cluster, adds: tuple[AddNode, ...]) -> list[AddAt]:
    """Ids for the nodes --add-node brings: virtual ids after the cluster's own."""
    start = len(cluster.nodes) if cluster.virtual else 0
    out = []
    for add in adds:
        ids = virtual_ids(len(add.capacities), start)
        start += len(ids)
        out.append(AddAt(add.at, tuple(zip(ids, add.capacities, strict=True))))
    return out


def _policy_options(recorded: Mapping[str, Any], given: Mapping[str, Any]) -> PolicyOptions:
    """Flags first, then what the recorded run used, then the defaults; the seed is 0 unless set (reproducible)."""
    values = {name: recorded[name] for name in _POLICY_OPTIONS if name in recorded}
    values.update({name: value for name, value in given.items() if name in _POLICY_OPTIONS})
    if values.get("seed") is None:
        values["seed"] = 0
    if values.get("vnodes") is None:
        values.pop("vnodes", None)
    try:
        return PolicyOptions(**values)
    except (TypeError, ValueError) as err:
        raise SimInputError(str(err)) from None


def _check_policies(names: tuple[str, ...], options: PolicyOptions) -> None:
    """Fail on a bad or repeated policy name before simulating anything."""
    if not names:
        raise SimInputError("--policies is empty; give one or more of " + ", ".join(POLICY_NAMES))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SimInputError(f"--policies names {', '.join(repeated)} more than once")
    for name in names:
        try:
            build_policy(name, options)
        except ValueError as err:
            raise SimInputError(str(err)) from None


def _write(
    settings: SimulateSettings,
    rows: pd.DataFrame,
    model: Model,
    cluster: Cluster,
    adds: list[AddAt],
    policy: str,
    run_id: str,
    options: PolicyOptions,
    stats: SimulationStats,
    trace: Trace,
) -> None:
    """Append one policy's rows to --out and its record to the sidecar beside it."""
    out = settings.out
    assert out is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    first = not out.exists()
    try:
        rows.to_csv(out, mode="w" if first else "a", header=first, index=False, na_rep="")
    except OSError as err:
        raise SimInputError(f"cannot write {out}: {err.strerror or err}") from None
    cache = None if model.cache is None else asdict(model.cache)
    sidecar.record_run(
        out,
        {
            "run_id": run_id,
            "job": trace.job,
            "policy": policy,
            "simulated": True,
            "simulated_from": {"csv": str(trace.path), "run_id": trace.run_id},
            "options": {**asdict(options), **{k: v for k, v in asdict(model.driver).items() if k != "dispatch_s"}},
            "model": {"dispatch_s": model.dispatch_s, "cache": cache, "estimated": list(model.estimated)},
            "churn": {
                "kill": [{"at": at, "node": node} for at, node in stats.killed],
                "add": [{"at": k.at, "nodes": [n for n, _ in k.nodes]} for k in adds],
            },
            "cluster": {
                "where": f"simulated: {cluster.source}",
                "nodes": [{"node_id": n, "capacity": c} for n, c in cluster.nodes.items()],
            },
            "brain_decisions": stats.decisions,
            "keys_moved": stats.keys_moved,
            "virtual_s": stats.virtual_s,
            "command_line": list(settings.command_line),
        },
    )
