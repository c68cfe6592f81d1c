"""Every figure of a run, from its rows (one per attempt): throughput, latency, balance, affinity, spills, hits.

Every figure is defined so a user can reproduce it with plain pandas on the
rows of one run (see README, "Analyzing results"):

* counts: rows per ``status`` (``ok``, ``failed``, ``retried``, ``infeasible``,
  ``cancelled``) and all attempts;
* makespan = ``finished_at.max() - started_at.min()`` over ok rows (the one clock,
  `raysched.results.figures.makespan`); start-up = ``started_at.min() - submitted_at.min()``
  over ok rows; throughput = ok rows / makespan; items/s, bytes/s = column sum over ok rows /
  makespan (NaN when there are no ok rows or the makespan is 0);
* ``run_s`` / ``wait_s`` p50, p95, p99 over ok rows, ``Series.quantile``
  (linear interpolation);
* ok rows per ``node_ran``; imbalance = max / mean and CV = population std
  (``ddof=0``) / mean, both over the nodes that ran at least one ok task;
  imbalance by capacity = the most ok tasks per CPU of one node over ok tasks per CPU of
  the nodes used (`raysched.results.figures.capacity_imbalance`; capacities from the sidecar);
* key affinity = share of keys whose ok rows all ran on one node, over the tasks with a key of
  their own (`keyed_mask`: a task without a key is recorded with its ``task_id``, and a run of
  such tasks has no key figures); spills count those tasks too;
* cache hit rate = mean of the ``cache_hit`` metric over ok rows, in %;
* ``latency_s`` p50, p95, p99 over ok rows (the send to the result back in the driver), when recorded;
* calls to a service (rows with a ``replica``, `call_mask`), only in runs that have them, in call terms:
  calls ok, calls/s = ok calls / makespan, call latency (``latency_s``), queue wait (``wait_s``) and
  service time (``run_s``) p50, p95, p99 over ok calls, replicas used, replica imbalance = max / mean of
  ok calls per replica, key affinity by replica = share of keys whose ok calls were all served by one
  replica, and calls off ring owner = share of keyed ok calls with a ``spill`` (hash). The spill figures
  above count tasks only: a call's spill is its router's, over replicas. Per replica (`per_replica`): ok
  calls, share, distinct keys and hit rate, as `per_node` has them per node. A run whose rows are all calls
  (`run_unit`) is shown in call terms by `raysched.analysis.render.render_table`.

The arithmetic shared with the end-of-run summary and bench is `raysched.results.figures`.
Pure pandas (no Ray, no matplotlib) so notebooks and tests stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict

import numpy as np
import pandas as pd

from raysched.analysis import metric_names as names
from raysched.analysis.labels import RunInfo, runs
from raysched.core.view import node_weight
from raysched.results.figures import (
    RATE_METRICS,
    capacity_imbalance,
    cv,
    imbalance,
    makespan,
    per_s,
    quantile,
    start_up,
    tasks_per_s,
    work_unit,
)
from raysched.results.figures import hit_rate as hit_rate_of
from raysched.results.schema import Status, is_no_key, task_key

__all__ = [
    "NODE_HIT_RATE",
    "NODE_KEYS",
    "REPLICA",
    "call_mask",
    "hit_rate",
    "keyed_mask",
    "node_weights",
    "per_node",
    "per_replica",
    "summarize",
    "task_keys",
]

#: The column naming the replica that served a call to a service (``Shard#2``); empty for a task.
REPLICA = "replica"

_STATUS_COUNTS: tuple[tuple[str, Status], ...] = (
    (names.M_FAILED, Status.FAILED),
    (names.M_RETRIED, Status.RETRIED),
    (names.M_INFEASIBLE, Status.INFEASIBLE),
    (names.M_CANCELLED, Status.CANCELLED),
)


def task_keys(rows: pd.DataFrame) -> pd.Series:
    """The key each row's task is placed and counted by (`raysched.results.schema.task_key`).

    The rule is asked once per distinct key cell, and only the rows without a key pay a Python call each.
    """
    task_id = rows["task_id"]
    if pd.api.types.is_float_dtype(task_id) and (task_id.dropna() % 1 == 0).all():
        task_id = task_id.astype("Int64")  # 7.0 -> "7"
    key = rows["key"]
    codes, cells = pd.factorize(key, use_na_sentinel=False)
    no_key = np.array([is_no_key(cell) for cell in cells], dtype=bool)[codes]
    out = key.astype(str)
    if not no_key.any():
        return out
    values = out.to_numpy(dtype=object, copy=True)
    values[no_key] = [task_key(k, t) for k, t in zip(key[no_key], task_id[no_key], strict=True)]
    return pd.Series(values, index=out.index, dtype=out.dtype)


def keyed_mask(rows: pd.DataFrame) -> np.ndarray:
    """Which rows' tasks have a key of their own (`raysched.results.figures.keyed`): a key other than the task id
    a task without one is recorded with. Only these count in the key figures (keys, affinity, spills)."""
    task_id = rows["task_id"]
    if pd.api.types.is_float_dtype(task_id) and (task_id.dropna() % 1 == 0).all():
        task_id = task_id.astype("Int64")  # 7.0 -> "7"
    return (task_keys(rows) != task_id.astype(str)).to_numpy(dtype=bool)


def call_mask(rows: pd.DataFrame) -> np.ndarray:
    """Which rows are calls to a service: those that name the replica that served them.

    Tasks have an empty replica cell, and CSVs written before services have no such column. `analyze`
    shows replica figures for these rows and `simulate` refuses them, by this one test. The rule is asked
    once per distinct cell, so a trace of millions of rows pays for its few replica names only.
    """
    if REPLICA not in rows.columns:
        return np.zeros(len(rows), dtype=bool)
    codes, cells = pd.factorize(rows[REPLICA])
    named = np.array([isinstance(cell, str) and bool(cell.strip()) for cell in cells] + [False], dtype=bool)
    return named[codes]  # a missing cell (code -1) picks the trailing False


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == Status.OK.value]


def _affinity(places_per_key: pd.Series) -> float:
    """Share of keys (in %) whose ok rows all ran in one place (a node, a replica); NaN without keys."""
    return float((places_per_key == 1).mean() * 100) if len(places_per_key) else math.nan


def _call_metrics(calls: pd.DataFrame, span: float) -> dict[str, float]:
    """A run's ok calls in call terms: how many and how fast, their latency, queue wait and service time, how they
    spread over the replicas, and how many went off their key's ring owner."""
    out = {names.M_CALLS_OK: float(len(calls)), names.M_CALL_THROUGHPUT: tasks_per_s(len(calls), span)}
    for figure, column in names.CALL_TIMINGS:
        for (_, q), metric in zip(names.QUANTILES, names.latency_names(figure), strict=True):
            out[metric] = quantile(calls[column], q)
    calls_per_replica = calls[REPLICA].value_counts()
    keyed = calls[keyed_mask(calls)]
    replicas_per_key = keyed.assign(_key=task_keys(keyed)).groupby("_key")[REPLICA].nunique()
    out[names.M_REPLICAS] = float(len(calls_per_replica))
    out[names.M_REPLICA_IMBALANCE] = imbalance(calls_per_replica)
    out[names.M_REPLICA_AFFINITY] = _affinity(replicas_per_key)
    spill = keyed["spill"].fillna("").astype(str)
    if len(keyed) and ((spill != "").any() or (keyed["policy"].astype(str) == "hash").any()):
        out[names.M_CALLS_OFF_OWNER] = float((spill != "").mean() * 100)
    return out


def node_weights(df: pd.DataFrame, run_id: str) -> dict[str, float]:
    """Each node's capacity weight (its CPUs, `raysched.core.view.node_weight`) as the run's sidecar recorded
    the cluster at its start; {} when there is no record (`df.attrs["run_records"]`, set by `load`)."""
    record = (df.attrs.get("run_records") or {}).get(run_id) or {}
    out: dict[str, float] = {}
    for node in (record.get("cluster") or {}).get("nodes") or ():
        try:
            out[str(node["node_id"])] = node_weight(node["capacity"])
        except (KeyError, TypeError, AttributeError):
            continue  # a damaged entry: that node's weight is unknown
    return out


def _run_metrics(
    rows: pd.DataFrame, rate_columns: Iterable[str], weights: dict[str, float] | None = None
) -> dict[str, float]:
    """Every figure of one run; see the module docstring for the definitions."""
    status = rows["status"]
    ok = _ok(rows)
    n_ok = len(ok)
    out: dict[str, float] = {names.M_ATTEMPTS: float(len(rows)), names.M_OK: float(n_ok)}
    for metric, counted in _STATUS_COUNTS:
        out[metric] = float((status == counted.value).sum())
    first_started = float(ok["started_at"].min()) if n_ok else None
    span = makespan(first_started, float(ok["finished_at"].max()) if n_ok else None)
    out[names.M_MAKESPAN] = span
    out[names.M_STARTUP] = start_up(float(ok["submitted_at"].min()) if n_ok else None, first_started)
    out[names.M_THROUGHPUT] = tasks_per_s(n_ok, span)
    for col in rate_columns:
        total = ok[col].sum(min_count=1) if col in ok.columns else math.nan
        out[names.rate_name(col)] = per_s(float(total), span) if pd.notna(total) else math.nan
    for column in names.LATENCY_COLUMNS:
        values = ok[column].dropna()
        if column in ("brain_wait_s", "latency_s") and not len(values):
            continue  # written by later versions of raysched
        for (_, q), metric in zip(names.QUANTILES, names.latency_names(column), strict=True):
            out[metric] = float(values.quantile(q)) if len(values) else math.nan
    placed = ok[ok["node_ran"].notna()]
    tasks_per_node = placed["node_ran"].value_counts()
    out[names.M_NODES] = float(len(tasks_per_node))
    counts = {str(node): float(count) for node, count in tasks_per_node.items()}
    out[names.M_IMBALANCE_CAPACITY] = capacity_imbalance(counts, weights or {})
    out[names.M_IMBALANCE] = imbalance(tasks_per_node)
    out[names.M_CV] = cv(tasks_per_node)
    keyed = placed[keyed_mask(placed)]  # tasks without a key of their own have no affinity to keep
    nodes_per_key = keyed.assign(_key=task_keys(keyed)).groupby("_key")["node_ran"].nunique()
    out[names.M_KEYS] = float(len(nodes_per_key))
    out[names.M_AFFINITY] = _affinity(nodes_per_key)
    is_call = call_mask(ok)
    tasks = ok[~is_call]  # spills are the brain's, of tasks off their key's ring owner node; calls say it their way
    keyed_ok = tasks[keyed_mask(tasks)]
    spill = keyed_ok["spill"].fillna("").astype(str)
    if len(keyed_ok) and ((spill != "").any() or (tasks["policy"].astype(str) == "hash").any()):
        out[names.M_SPILLED] = float((spill != "").mean() * 100)
        out[names.M_SPILLED_BOUND] = float((spill == "bound").sum())
        out[names.M_SPILLED_WAIT] = float((spill == "wait").sum())
        spread = spill == "spread"
        if spread.any():  # hot keys the brain spread by their share of the work (raysched 0.3 and later)
            out[names.M_SPILLED_SPREAD] = float(spread.sum())
            hot = set(task_keys(keyed_ok[spread]))
            out[names.M_KEYS_SPREAD] = float(len(hot))
            out[names.M_SPREAD_MOST] = float(nodes_per_key[nodes_per_key.index.isin(hot)].max())
    if "cache_hit" in ok.columns:
        out[names.M_HIT_RATE] = hit_rate(ok)
    calls = ok[is_call]
    if len(calls):  # a run of tasks only shows no call figures (NaN beside a run with calls)
        out.update(_call_metrics(calls, span))
    return out


def hit_rate(ok: pd.DataFrame) -> float:
    """The cache hit rate of ok tasks in % (`raysched.results.figures.hit_rate` of their ``cache_hit`` column).

    A cell that is not a number counts as unreported; NaN when the job reports no cache_hit.
    """
    if "cache_hit" not in ok.columns:
        return math.nan
    return hit_rate_of(pd.to_numeric(ok["cache_hit"], errors="coerce"))


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Figures per run: metrics as rows, one column per run (labelled by policy).

    ``summary.attrs["runs"]`` keeps each run's id, policy, job and source files
    for `render_table` / `summary_to_json`. items/s and bytes/s rows appear only
    when those columns exist.
    """
    run_infos = runs(df)
    rate_columns = [c for c in RATE_METRICS if c in df.columns]
    groups = dict(tuple(df.groupby("run_id", sort=False)))
    columns = {r.label: _run_metrics(groups[r.run_id], rate_columns, node_weights(df, r.run_id)) for r in run_infos}
    summary = pd.DataFrame(columns, dtype="float64")
    summary.index.name = "metric"
    summary.columns.name = "run"
    summary.attrs["runs"] = [{**asdict(r), "unit": run_unit(groups[r.run_id])} for r in run_infos]
    return summary


def run_unit(rows: pd.DataFrame) -> str:
    """``calls`` for a run whose rows are all calls to services, else ``tasks`` (`results.figures.work_unit`)."""
    calls = int(call_mask(rows).sum())
    return work_unit(len(rows) - calls, calls)


#: The per-node columns that tell a node that thrashes (`per_node`): distinct keys it ran, and its hit rate.
NODE_KEYS, NODE_HIT_RATE = "keys", "hit rate (%)"


def per_node(df: pd.DataFrame) -> pd.DataFrame:
    """Ok tasks per node for every run: columns run, run_id, node, tasks, share (%), keys, hit rate (%).

    Nodes a run touched (chosen or ran) that finished no ok task are listed with 0,
    so an idle node shows; most loaded first within a run. ``keys`` is the number of distinct keys
    (of tasks with a key of their own) whose ok tasks ran on the node: what its cache had to hold
    (NaN for a run without keys); ``hit rate (%)`` the mean ``cache_hit`` of its ok tasks (NaN where
    none reported one). A node holding many more keys than the others at a far lower hit rate thrashes.
    """
    out: list[pd.DataFrame] = []
    groups = dict(tuple(df.groupby("run_id", sort=False)))
    for run in runs(df):
        rows = groups[run.run_id]
        ok = _ok(rows)
        counts = ok["node_ran"].dropna().value_counts()
        touched = pd.unique(pd.concat([rows["node_ran"], rows["node_chosen"]]).dropna())
        table = _shares(run, counts, touched, "node", "tasks")
        placed = ok[ok["node_ran"].notna()]
        out.append(_with_keys_and_hits(table, placed, placed[~call_mask(placed)], "node", "node_ran"))
    return pd.concat(out, ignore_index=True)


def _with_keys_and_hits(
    table: pd.DataFrame, ok: pd.DataFrame, keyed_rows: pd.DataFrame, place: str, column: str
) -> pd.DataFrame:
    """`_shares`' table of one run with its places' (nodes', replicas') distinct keys (of ``keyed_rows`` with a key
    of their own: NaN for a run without keys) and hit rate in % (mean ``cache_hit`` of ``ok``: NaN where none
    reported one); ``column`` names each row's place."""
    keyed = keyed_rows[keyed_mask(keyed_rows)]
    keys = None
    if len(keyed):
        per = keyed.assign(_key=task_keys(keyed)).groupby(column)["_key"].nunique()
        keys = {str(where): float(n) for where, n in per.items()}
    hits = None
    if "cache_hit" in ok.columns:
        reported = pd.to_numeric(ok["cache_hit"], errors="coerce")
        if reported.notna().any():
            rate = reported.groupby(ok[column]).mean() * 100
            hits = {str(where): float(v) for where, v in rate.items() if pd.notna(v)}
    table[NODE_KEYS] = table[place].map(keys).fillna(0.0) if keys is not None else math.nan
    table[NODE_HIT_RATE] = table[place].map(hits).astype("float64") if hits is not None else math.nan
    return table


#: The columns of `per_replica`.
REPLICA_TABLE_COLUMNS: tuple[str, ...] = ("run", "run_id", REPLICA, "calls", "share (%)", NODE_KEYS, NODE_HIT_RATE)


def per_replica(df: pd.DataFrame) -> pd.DataFrame:
    """Ok calls per replica for every run that has calls: columns run, run_id, replica, calls, share (%), keys,
    hit rate (%).

    Replicas a run's calls touched that served no ok call are listed with 0; most loaded first within
    a run. ``keys`` is the number of distinct keys whose ok calls the replica served (NaN for calls without
    keys), ``hit rate (%)`` the mean ``cache_hit`` of its ok calls (NaN where none reported one), as `per_node`
    has them for nodes. Runs of tasks only are left out, so the table is empty when no run has calls.
    """
    out: list[pd.DataFrame] = []
    groups = dict(tuple(df.groupby("run_id", sort=False)))
    for run in runs(df):
        rows = groups[run.run_id]
        calls = rows[call_mask(rows)]
        if len(calls):
            ok = _ok(calls)
            table = _shares(run, ok[REPLICA].value_counts(), calls[REPLICA].unique(), REPLICA, "calls")
            out.append(_with_keys_and_hits(table, ok, ok, REPLICA, REPLICA))
    if not out:
        return pd.DataFrame({column: [] for column in REPLICA_TABLE_COLUMNS})
    return pd.concat(out, ignore_index=True)


def _shares(run: RunInfo, counts: pd.Series, touched: Iterable[object], place: str, unit: str) -> pd.DataFrame:
    """One run's ok rows per place (node, replica), every touched place listed (0 when idle), busiest first."""
    counts = counts.reindex(sorted(set(counts.index) | set(touched)), fill_value=0)
    counts = counts.sort_values(ascending=False, kind="stable")
    total = counts.sum()
    return pd.DataFrame(
        {
            "run": run.label,
            "run_id": run.run_id,
            place: counts.index.astype(str),
            unit: counts.to_numpy(dtype="int64"),
            "share (%)": counts.to_numpy(dtype="float64") * 100 / total if total else math.nan,
        }
    )
