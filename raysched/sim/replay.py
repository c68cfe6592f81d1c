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
the policies are deterministic given their seed. Without a seed (none given,
none recorded) one replay of a randomized policy is one draw of many: each
policy is replayed with seeds 0..R-1 and the run of median throughput is the
answer (R = ``repeats``, by default an odd count from 9 down to 1 that keeps
about 100,000 simulated tasks per policy; a policy that ignores its seed stops
after two identical replays).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysched.analysis import hit_rate, per_node, summarize
from raysched.config import POLICY_OPTIONS
from raysched.core.collector import fewer_collections
from raysched.core.view import capacity_holds, fmt_resources, largest_capacity
from raysched.policies import POLICY_NAMES, PolicyOptions, build_policy
from raysched.results import figures, sidecar
from raysched.results.schema import Status
from raysched.results.shared import SharedRecords
from raysched.sim import SimInputError
from raysched.sim.cluster import AddNode, Cluster, KillNode, check_kills, resolve_cluster, virtual_ids
from raysched.sim.engine import AddAt, CacheModel, DriverModel, KillAt, Simulation, SimulationStats
from raysched.sim.estimate import (
    estimate_cache,
    estimate_dispatch_s,
    estimate_miss_s,
    estimate_startup,
    estimate_turnaround_s,
)
from raysched.sim.fidelity import HIT_RATE, Fidelity, fidelity_metrics, measured_metrics
from raysched.sim.record import CACHE_HIT, Recorder
from raysched.sim.sweep import Sweep, sweep_table
from raysched.sim.trace import Trace, load_trace
from raysched.sim.workers import WorkerAssignment, assign_workers

__all__ = [
    "HIT_RATE",
    "Fidelity",
    "Model",
    "SimInputError",
    "SimulateSettings",
    "SimulationReport",
    "simulate",
    "validate",
]

MAX_REPEATS = 9  # replays per policy without a seed (the median run is reported), at most ...
REPEAT_BUDGET = 100_000  # ... and about this many simulated tasks per policy in all


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
    cache_scope: str | None = None  # "node" / "worker"; None: the one that best reproduces the recorded hits
    turnaround_ms: float | None = None  # None: estimated from the trace
    start_rate: float | None = None  # Ray task starts per second at most; 0: no limit; None: estimated
    check_fidelity: bool = True  # also replay the run as recorded and say how well the model reproduced it
    policy_options: Mapping[str, Any] = field(default_factory=dict)  # seed / load_factor / vnodes, as given
    repeats: int | None = None  # replays per policy without a seed (median run reported); None: auto
    kills: tuple[KillNode, ...] = ()
    adds: tuple[AddNode, ...] = ()
    out: Path | None = None
    keep_rows: bool = False  # keep every policy's rows in the report (for a plot)
    sweep: Sweep | None = None  # replay the policies it affects once per setting (raysched.sim.sweep)
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
    repeats: int = 1  # seeds each policy is replayed with (the median run is reported)

    def describe(self) -> str:
        """One line for stderr: the run, the cluster, and every model setting (marked when estimated)."""

        def guess(name: str) -> str:
            return " (estimated)" if name in self.estimated else ""

        cache = (
            "no cache model"
            if self.cache is None
            else f"cache of {self.cache.keys} keys per {'worker process' if self.cache.scope == 'worker' else 'node'}"
            f"{guess('cache_keys')}{guess('cache_scope') if 'cache_keys' not in self.estimated else ''}, "
            f"a miss adds {self.cache.miss_s:.3g} s{guess('miss_s')}"
        )
        driver = self.driver
        rate = "without limit" if driver.start_gap_s <= 0 else f"at most {1 / driver.start_gap_s:,.0f}/s"
        every = [t for firsts in driver.startup.values() for t in firsts]
        startup = f"; workers up within {max(every):.2g} s (estimated)" if every and max(every) > 0 else ""
        if driver.pacing_gap_s is not None:
            startup += f"; the pacer's round trip {driver.pacing_gap_s * 1000:.3g} ms (recorded)"
        return (
            f"raysched simulate: {self.tasks:,} tasks of run {self.run_id} ({self.job}) on {self.nodes:,} "
            f"node(s) ({self.cpus:g} CPUs, {self.cluster}); dispatch {self.dispatch_s * 1000:.3g} ms"
            f"{guess('dispatch')}; Ray tasks start {rate}, a worker's turnaround "
            f"{driver.turnaround_s * 1000:.3g} ms{guess('turnaround')}{startup}; {cache}"
            + (
                f"; without a seed: each policy's median run of {self.repeats} seeds (0-{self.repeats - 1})"
                if self.repeats > 1
                else ""
            )
        )


@dataclass
class SimulationReport:
    """The figures (as `raysched analyze` has them), per-node counts, and what each policy's run cost."""

    summary: pd.DataFrame
    nodes: pd.DataFrame
    model: Model
    stats: dict[str, SimulationStats]
    rows: pd.DataFrame | None = None  # every policy's rows, when asked for (keep_rows)
    fidelity: Fidelity | None = None  # the run replayed as recorded, against the measurement
    fidelity_note: str = ""  # why there is no fidelity, when there is none
    sweep: pd.DataFrame | None = None  # with settings.sweep: one row per (policy, setting), sweep_table's columns


@dataclass
class _Inputs:
    """The trace and the model, checked, before any policy runs."""

    trace: Trace
    cluster: Cluster
    adds: list[AddAt]
    base_s: np.ndarray
    cache: CacheModel | None
    driver: DriverModel
    options: PolicyOptions
    model: Model


def _prepare(settings: SimulateSettings, on_warning: Callable[[str], None] | None) -> _Inputs:
    """Load the trace, resolve the cluster, estimate what was not given; SimInputError on anything unusable."""
    trace = load_trace(settings.trace, settings.run_id, on_warning)
    record = sidecar.read_runs(settings.trace).get(trace.run_id) or {}
    recorded = dict(record.get("options") or {})
    cluster = resolve_cluster(settings.nodes, settings.config, settings.trace, trace.run_id)
    adds = _added_nodes(cluster, settings.adds)
    check_kills(settings.kills, set(cluster.nodes) | {n for add in adds for n, _ in add.nodes})
    _check_feasible(trace, cluster)
    estimated: tuple[str, ...] = ()
    if settings.dispatch_ms is None:
        dispatch_s, estimated = estimate_dispatch_s(trace), ("dispatch",)
    else:
        dispatch_s = settings.dispatch_ms / 1000
    workers = assign_workers(trace, dispatch_s)
    base_s, cache, cache_estimated = _cache_model(trace, settings, workers)
    estimated += cache_estimated
    if settings.turnaround_ms is None:
        turnaround_s, estimated = estimate_turnaround_s(workers), (*estimated, "turnaround")
    else:
        turnaround_s = settings.turnaround_ms / 1000
    start_gap_s = 1 / settings.start_rate if settings.start_rate else 0.0  # no limit unless given
    startup, startup_default = estimate_startup(workers)
    pacing = record.get("pacing") or {}
    pacing_gap_s = None if pacing.get("gap_s") is None else float(pacing["gap_s"])
    notice_s = float(pacing.get("notice_s") or 0.0)
    driver = DriverModel(
        dispatch_s,
        overcommit=recorded.get("overcommit"),
        batch=recorded.get("batch"),
        max_inflight=recorded.get("max_inflight"),
        turnaround_s=turnaround_s,
        start_gap_s=start_gap_s,
        startup=startup,
        startup_default=startup_default,
        pacing_gap_s=pacing_gap_s,
        notice_s=notice_s,
    )
    seeded = settings.policy_options.get("seed") is not None or recorded.get("seed") is not None
    options = _policy_options(recorded, settings.policy_options)
    _check_policies(settings.policies, options)
    repeats = 1 if seeded else _repeats(settings.repeats, len(trace))
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
        repeats,
    )
    return _Inputs(trace, cluster, adds, base_s, cache, driver, options, model)


def _repeats(given: int | None, tasks: int) -> int:
    """Replays per policy for a trace without a seed: as given, else the odd count (1 to 9) that keeps about
    100,000 simulated tasks per policy (9 up to 11,111 tasks, 1 from 33,334)."""
    if given is not None:
        return given
    fits = min(MAX_REPEATS, max(1, REPEAT_BUDGET // max(1, tasks)))
    return fits if fits % 2 else fits - 1


def _replay(
    inputs: _Inputs,
    name: str,
    nodes: Mapping[str, dict[str, float]],
    kills: list[KillAt],
    adds: list[AddAt],
    options: PolicyOptions | None = None,
    run_id: str | None = None,
) -> tuple[pd.DataFrame, SimulationStats]:
    """One policy over the trace on ``nodes``: its rows (results schema) and what it cost.

    Without a seed, the policy is replayed with seeds 0..repeats-1 and the run of median throughput is
    returned (two identical first replays: the policy ignores its seed, and one is enough).
    """
    options = inputs.options if options is None else options
    if inputs.model.repeats <= 1:
        return _replay_once(inputs, name, nodes, kills, adds, options, run_id)
    runs: list[tuple[float, int, pd.DataFrame, SimulationStats]] = []
    for seed in range(inputs.model.repeats):
        rows, stats = _replay_once(inputs, name, nodes, kills, adds, replace(options, seed=seed), run_id)
        runs.append((_throughput(rows), seed, rows, stats))
        if seed == 1 and rows["node_ran"].equals(runs[0][2]["node_ran"]):
            runs.pop()  # the same placements: this policy does not draw on its seed
            break
    runs.sort(key=lambda run: (run[0], run[1]))
    _, _, rows, stats = runs[(len(runs) - 1) // 2]
    return rows, stats


def _throughput(rows: pd.DataFrame) -> float:
    """Ok tasks per second from the first start to the last finish (NaN when none ran)."""
    ok = rows[rows["status"] == Status.OK.value]
    span = figures.makespan(ok["started_at"].min(), ok["finished_at"].max()) if len(ok) else math.nan
    return figures.tasks_per_s(len(ok), span)


def _replay_once(
    inputs: _Inputs,
    name: str,
    nodes: Mapping[str, dict[str, float]],
    kills: list[KillAt],
    adds: list[AddAt],
    options: PolicyOptions,
    run_id: str | None,
) -> tuple[pd.DataFrame, SimulationStats]:
    trace, cache = inputs.trace, inputs.cache
    run_id = run_id or f"sim-{name}-{trace.run_id}"
    recorder = Recorder(run_id, trace.job, name, len(trace), cached=cache is not None)
    simulation = Simulation(
        keys=trace.keys,
        demand_codes=trace.demand_codes,
        demands=trace.demands,
        base_s=inputs.base_s,
        policy=build_policy(name, options),
        policy_name=name,
        nodes=nodes,
        driver=inputs.driver,
        cache=cache,
        recorder=recorder,
        kills=kills,
        adds=adds,
    )
    stats = simulation.run()
    del simulation
    rows = recorder.frame(trace.task_ids, trace.keys, trace.demand_codes, trace.demand_texts, trace.metrics)
    return rows, stats


@dataclass(frozen=True)
class _Run:
    """One replay of the trace: a policy with its options; under a sweep, the setting it stands for."""

    policy: str
    options: PolicyOptions
    run_id: str
    label: str  # the summary column: the policy, or `hash c=1.25` under a sweep
    setting: str | None = None  # the sweep's setting ("-": a policy the sweep leaves alone); None: no sweep


def _plan(settings: SimulateSettings, inputs: _Inputs) -> list[_Run]:
    """Every replay, in order; under a sweep each affected policy once per setting, the others once (reference).

    SimInputError before any work when the sweep touches none of the policies or a policy refuses a setting.
    """
    trace_id, base = inputs.trace.run_id, inputs.options
    sweep = settings.sweep
    if sweep is None:
        return [_Run(name, base, f"sim-{name}-{trace_id}", name) for name in settings.policies]
    affected = [name for name in settings.policies if sweep.affects(build_policy(name, base))]
    if not affected:
        raise SimInputError(
            f"--sweep {sweep.name} changes only the hash policy (and its subclasses); --policies "
            f"{','.join(settings.policies)} names none: add hash"
        )
    runs = [
        _Run(
            name,
            sweep.options(base, point),
            f"sim-{name}-{sweep.tag(point)}-{trace_id}",
            sweep.column(name, point),
            point.label,
        )
        for name in affected
        for point in sweep.points
    ]
    others = [n for n in settings.policies if n not in affected]
    return runs + [_Run(name, base, f"sim-{name}-{trace_id}", name, "-") for name in others]


@fewer_collections()  # millions of live per-task objects: Python's default thresholds cost a third
def simulate(
    settings: SimulateSettings,
    on_warning: Callable[[str], None] | None = None,
    on_start: Callable[[Model], None] | None = None,
    on_policy_done: Callable[[str, SimulationStats], None] | None = None,
) -> SimulationReport:
    """Simulate every policy over the trace; SimInputError (one line) on anything unusable, before any work.

    ``on_start`` hears what the model assumes (once the inputs are checked), ``on_policy_done`` each run's cost
    (named by its summary column). With ``check_fidelity``, the run is also replayed under its own policy on its
    own cluster (reusing that policy's run when the what-if is exactly that) and compared with the measurement
    (``report.fidelity``). With ``sweep``, ``report.sweep`` holds one row per setting (raysched.sim.sweep).
    """
    inputs = _prepare(settings, on_warning)
    trace, cluster, model = inputs.trace, inputs.cluster, inputs.model
    plan = _plan(settings, inputs)
    if on_start is not None:
        on_start(model)
    kills = [KillAt(k.at, k.node) for k in settings.kills]
    as_recorded = not cluster.virtual and not kills and not inputs.adds
    summaries, node_tables, kept, stats = [], [], [], {}
    swept: list[tuple[str, str, pd.Series]] = []
    fidelity: Fidelity | None = None
    for run in plan:
        rows, stats[run.label] = _replay(inputs, run.policy, cluster.nodes, kills, inputs.adds, run.options, run.run_id)
        if settings.check_fidelity and as_recorded and run.policy == trace.policy and run.options == inputs.options:
            fidelity = _fidelity(inputs, rows)
        rows.attrs["run_records"] = SharedRecords({run.run_id: _cluster_record(cluster.nodes, inputs.adds)})
        summary = _summary(rows, inputs.cache is not None)
        summary.columns = [run.label]
        summary.attrs["runs"] = [{**info, "label": run.label} for info in summary.attrs["runs"]]
        summaries.append(summary)
        if run.setting is not None:
            swept.append((run.policy, run.setting, summary[run.label]))
        node_tables.append(per_node(rows).assign(run=run.label))
        if settings.out is not None:
            written = stats[run.label]
            _write(settings, rows, model, cluster, inputs.adds, run.policy, run.run_id, run.options, written, trace)
        if settings.keep_rows:
            kept.append(rows)
        del rows
        if on_policy_done is not None:
            on_policy_done(run.label, stats[run.label])
    note = ""
    if settings.check_fidelity and fidelity is None:
        fidelity, note = _check_as_recorded(inputs, settings)
    summary = pd.concat(summaries, axis=1, sort=False)
    summary.index.name, summary.columns.name = "metric", "run"
    summary.attrs["runs"] = [run for part in summaries for run in part.attrs["runs"]]
    return SimulationReport(
        summary,
        pd.concat(node_tables, ignore_index=True),
        model,
        stats,
        pd.concat(kept, ignore_index=True) if kept else None,
        fidelity,
        note,
        sweep_table(swept, inputs.cache is not None) if settings.sweep is not None else None,
    )


def validate(
    settings: SimulateSettings,
    on_warning: Callable[[str], None] | None = None,
    on_start: Callable[[Model], None] | None = None,
) -> Fidelity:
    """Replay the run under its own recorded policy on its own recorded cluster; measured against simulated.

    SimInputError when the run has no recorded cluster or its policy cannot be rebuilt here.
    """
    if settings.nodes is not None or settings.config is not None or settings.kills or settings.adds:
        raise SimInputError(
            "--validate replays the run on its own recorded cluster: drop --nodes, --config, --kill-node and --add-node"
        )
    trace = load_trace(settings.trace, settings.run_id, on_warning)
    inputs = _prepare(
        SimulateSettings(**{**_fields(settings), "policies": (trace.policy,), "run_id": trace.run_id}), None
    )
    if on_start is not None:
        on_start(inputs.model)
    rows, _ = _replay(inputs, trace.policy, inputs.cluster.nodes, [], [])
    if settings.out is not None:
        stats = SimulationStats()
        _write(
            settings,
            rows,
            inputs.model,
            inputs.cluster,
            [],
            trace.policy,
            f"sim-{trace.policy}-{trace.run_id}",
            inputs.options,
            stats,
            trace,
        )
    return _fidelity(inputs, rows)


def _fields(settings: SimulateSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def _fidelity(inputs: _Inputs, rows: pd.DataFrame) -> Fidelity:
    ok = rows[rows["status"] == Status.OK.value]
    simulated = fidelity_metrics(
        ok["submitted_at"].to_numpy(dtype=np.float64),
        ok["started_at"].to_numpy(dtype=np.float64),
        ok["finished_at"].to_numpy(dtype=np.float64),
        ok["node_ran"].to_numpy(dtype=object),
        ok[CACHE_HIT].to_numpy(dtype=np.float64) if CACHE_HIT in ok.columns else None,
    )
    return Fidelity(inputs.trace.policy, measured_metrics(inputs.trace), simulated)


def _check_as_recorded(inputs: _Inputs, settings: SimulateSettings) -> tuple[Fidelity | None, str]:
    """The run replayed under its recorded policy on its recorded cluster, or why that cannot be done."""
    trace = inputs.trace
    try:
        recorded = resolve_cluster(None, None, settings.trace, trace.run_id)
        build_policy(trace.policy, inputs.options)
    except (SimInputError, ValueError) as err:
        return None, str(err).split(";")[0]
    rows, _ = _replay(inputs, trace.policy, recorded.nodes, [], [])
    return _fidelity(inputs, rows), ""


def _cluster_record(nodes: Mapping[str, Mapping[str, float]], adds: list[AddAt]) -> dict[str, Any]:
    """The simulated cluster as a sidecar records one (every node ever in it), so analyze's figures weigh by it."""
    every = {**nodes, **{node: capacity for add in adds for node, capacity in add.nodes}}
    return {"cluster": {"nodes": [{"node_id": n, "capacity": dict(c)} for n, c in every.items()]}}


def _summary(rows: pd.DataFrame, cached: bool) -> pd.DataFrame:
    """`raysched analyze`'s figures for one run, plus the modelled cache's hit rate."""
    summary = summarize(rows)
    if cached:
        summary.loc[HIT_RATE] = hit_rate(rows[rows["status"] == Status.OK.value])
    elif HIT_RATE in summary.index:
        summary = summary.drop(index=HIT_RATE)  # no cache modelled: no hit rate to show
    return summary


def _cache_model(
    trace: Trace, settings: SimulateSettings, workers: WorkerAssignment
) -> tuple[np.ndarray, CacheModel | None, tuple[str, ...]]:
    """Each task's base duration (what it takes on a hit), the cache model, and which settings were estimated."""
    if trace.cache_hit is None:
        if settings.cache_keys is None and settings.miss_s is None:
            return trace.run_s, None, ()
        if settings.cache_keys is None or settings.miss_s is None:
            raise SimInputError(
                "the trace has no cache_hit column to estimate from: give both --cache-keys and "
                "--miss-s to model a cache"
            )
        return trace.run_s, CacheModel(settings.cache_keys, settings.miss_s, settings.cache_scope or "node"), ()
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
    scope, keys = settings.cache_scope, settings.cache_keys
    if keys is None or scope is None:
        found = estimate_cache(trace, workers, scope, recorded_miss_s)
        best_scope, best_keys = (found[0], found[1]) if found is not None else ("node", 1)
        if scope is None:
            scope = best_scope
            estimated.append("cache_scope")
        if keys is None:
            keys = (
                best_keys
                if best_scope == scope
                else (estimate_cache(trace, workers, scope, recorded_miss_s) or ("", 1))[1]
            )
            estimated.append("cache_keys")
    base_s = np.where(missed, np.clip(trace.run_s - recorded_miss_s, 0.0, None), trace.run_s)
    return base_s, CacheModel(keys, miss_s, scope), tuple(estimated)


def _check_feasible(trace: Trace, cluster: Cluster) -> None:
    """Every demand of the trace must fit some initial node (else the brain would report it infeasible)."""
    for code, demand in enumerate(trace.demands):
        if any(capacity_holds(cap, demand) for cap in cluster.nodes.values()):
            continue
        task_id = int(trace.task_ids[int(np.argmax(trace.demand_codes == code))])
        _, largest = largest_capacity(cluster.nodes)
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
    values = {name: recorded[name] for name in POLICY_OPTIONS if name in recorded}
    values.update({name: value for name, value in given.items() if name in POLICY_OPTIONS})
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
