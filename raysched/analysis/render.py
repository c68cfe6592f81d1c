"""The summary for people and programs: the terminal tables, JSON, and a tidy table for CSV.

Counts show as integers, percentages with a % sign, other figures to about three significant
digits; NaN (a figure that means nothing for a run, e.g. throughput without ok tasks) shows as
``n/a`` in tables and ``null`` in JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from raysched.analysis import metric_names as names
from raysched.analysis.figures import NODE_HIT_RATE, NODE_KEYS
from raysched.results.schema import short_node

__all__ = [
    "calls_only",
    "format_value",
    "render_node_table",
    "render_replica_table",
    "render_table",
    "summary_to_dict",
    "summary_to_json",
    "summary_to_tidy",
]

_COUNT_METRICS = frozenset(
    {
        names.M_ATTEMPTS,
        names.M_OK,
        names.M_FAILED,
        names.M_RETRIED,
        names.M_INFEASIBLE,
        names.M_CANCELLED,
        names.M_NODES,
        names.M_KEYS,
        names.M_SPILLED_BOUND,
        names.M_SPILLED_WAIT,
        names.M_SPILLED_SPREAD,
        names.M_KEYS_SPREAD,
        names.M_SPREAD_MOST,
        names.M_REPLICAS,
        names.M_CALLS_OK,
    }
)
_PERCENT_METRICS = frozenset({names.M_AFFINITY, names.M_SPILLED, names.M_HIT_RATE, names.M_REPLICA_AFFINITY})
# Figures of tasks over nodes: balance, then key affinity and spills.
_BY_NODE: tuple[str, ...] = (
    names.M_NODES,
    names.M_IMBALANCE_CAPACITY,
    names.M_IMBALANCE,
    names.M_CV,
    names.M_AFFINITY,
    names.M_SPILLED,
    names.M_SPILLED_BOUND,
    names.M_SPILLED_WAIT,
    names.M_SPILLED_SPREAD,
    names.M_KEYS_SPREAD,
    names.M_SPREAD_MOST,
)
# Groups are separated by a blank line in the terminal table.
_GROUPS: tuple[tuple[str, ...], ...] = (
    (names.M_ATTEMPTS, names.M_OK, names.M_FAILED, names.M_RETRIED, names.M_INFEASIBLE, names.M_CANCELLED),
    (names.M_MAKESPAN, names.M_THROUGHPUT, names.M_ITEMS, names.M_BYTES, names.M_STARTUP),
    tuple(name for column in names.LATENCY_COLUMNS for name in names.latency_names(column)),
    (*_BY_NODE[:4], names.M_KEYS, *_BY_NODE[4:], names.M_HIT_RATE),
    (
        names.M_CALLS_OK,
        names.M_CALL_THROUGHPUT,
        *(name for figure, _ in names.CALL_TIMINGS for name in names.latency_names(figure)),
        names.M_REPLICAS,
        names.M_REPLICA_IMBALANCE,
        names.M_REPLICA_AFFINITY,
        names.M_CALLS_OFF_OWNER,
    ),
)


def _short_prefixes(ids: Sequence[str], minimum: int = 8) -> dict[str, str]:
    """Run ids cut to the shortest unique prefix (at least `minimum` chars), marked with … when cut."""
    longest = max((len(i) for i in ids), default=0)
    n = minimum
    while n < longest and len({i[:n] for i in ids}) < len(set(ids)):
        n += 1
    return {i: i if len(i) <= n + 1 else i[:n] + "…" for i in ids}


def _fmt_number(value: float) -> str:
    """Readable magnitude: thousands separators, ~3 significant digits below 1."""
    a = abs(value)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    if a >= 0.001:
        return f"{value:.{2 - math.floor(math.log10(a))}f}"
    return f"{value:.2e}"


def format_value(metric: str, value: Any) -> str:
    """How the terminal table shows one figure (counts as integers, NaN as n/a)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric in _COUNT_METRICS:
        return f"{round(value):,}"
    if metric in _PERCENT_METRICS or metric.endswith("(%)"):
        return f"{value:.1f}%"
    return _fmt_number(float(value))


def _ordered_metrics(index: Iterable[str]) -> list[list[str]]:
    present = list(index)
    groups = [[m for m in group if m in present] for group in _GROUPS]
    known = {m for group in _GROUPS for m in group}
    groups.append([m for m in present if m not in known])
    return [g for g in groups if g]


_RULE = "rule"


def _grid(rows: list[list[str] | str | None], right_from: int = 1) -> str:
    """Columns padded to width; None is a blank line, _RULE a dashed rule; numbers right-aligned."""
    real = [r for r in rows if isinstance(r, list)]
    widths = [max(len(r[i]) for r in real) for i in range(len(real[0]))]
    lines = []
    for r in rows:
        if r is None:
            lines.append("")
        elif r == _RULE:
            lines.append("  ".join("-" * w for w in widths))
        else:
            cells = [
                c.rjust(w) if i >= right_from else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


#: A table of runs of calls only speaks of calls: these rows are named in call terms ...
_CALL_TERMS = {
    names.M_FAILED: "calls failed",
    names.M_INFEASIBLE: "calls infeasible",
    names.M_CANCELLED: "calls cancelled",
}
#: ... and these are left out: they repeat a call figure under a task name (tasks ok, throughput, the timing
#: columns' quantiles; brain_wait_s means nothing for calls) or count nodes where a call's place is its replica.
_NOT_FOR_CALLS = frozenset(
    {
        names.M_OK,
        names.M_THROUGHPUT,
        *(name for column in names.LATENCY_COLUMNS for name in names.latency_names(column)),
        *_BY_NODE,
    }
)


def calls_only(summary: pd.DataFrame) -> bool:
    """Whether every run of the summary is calls to services only (`raysched.analysis.figures.run_unit`)."""
    runs = summary.attrs.get("runs") or []
    return bool(runs) and all(r.get("unit") == "calls" for r in runs)


def render_table(summary: pd.DataFrame) -> str:
    """The side-by-side table for the terminal: metrics as rows, one column per run.

    When every run is calls only, the table speaks of calls (`_CALL_TERMS`) and leaves out the rows of task
    figures (`_NOT_FOR_CALLS`); JSON and the tidy CSV keep every figure under its one name.
    """
    if calls_only(summary):
        summary = summary.loc[[m for m in summary.index if m not in _NOT_FOR_CALLS]]
    labels = [str(c) for c in summary.columns]
    rows: list[list[str] | str | None] = [["metric", *labels]]
    runs = summary.attrs.get("runs")
    if runs and [str(r["label"]) for r in runs] == labels:
        rows.append(["job", *[str(r["job"]) for r in runs]])
        short = _short_prefixes([str(r["run_id"]) for r in runs])
        rows.append(["run id", *[short[str(r["run_id"])] for r in runs]])
    rows.append(_RULE)
    for i, group in enumerate(_ordered_metrics(summary.index)):
        if i:
            rows.append(None)
        for metric in group:
            values = list(summary.loc[metric])
            shown = _CALL_TERMS.get(metric, metric) if calls_only(summary) else metric
            rows.append([shown, *[format_value(metric, v) for v in values]])
    return _grid(rows)


def render_node_table(nodes: pd.DataFrame, most: int | None = None) -> str:
    """Ok tasks per node for each run, node ids cut to 8 chars.

    With ``most``, a run of more nodes shows its busiest and its least busy (``most`` in all) and one line
    counting the rest: a what-if on 1,000 nodes stays a screenful (JSON lists every node).
    """
    title = "Tasks per node (ok rows; node ids cut to 8 chars)"
    if most is not None and (nodes.groupby("run", sort=False).size() > most).any():
        title = f"Tasks per node (ok rows; node ids cut to 8 chars; the busiest and least busy {most} of a run's)"
        nodes = pd.concat([_ends(rows, most) for _, rows in nodes.groupby("run", sort=False)], ignore_index=True)
    extra = [column for column in (NODE_KEYS, NODE_HIT_RATE) if column in nodes and nodes[column].notna().any()]
    if extra:
        title += "; keys = distinct keys its tasks ran, what its cache had to hold"
    return f"{title}\n" + _shares_grid(nodes, "node", "tasks", short_node, extra)


def _ends(rows: pd.DataFrame, most: int) -> pd.DataFrame:
    """A run's busiest and least busy nodes (already sorted busiest first), with a row counting the others."""
    if len(rows) <= most:
        return rows
    head, tail = rows.iloc[: most - most // 2], rows.iloc[len(rows) - most // 2 :]
    hidden = rows.iloc[len(head) : len(rows) - len(tail)]
    gap = pd.DataFrame(
        {"run": [rows["run"].iloc[0]], "node": [_HIDDEN.format(len(hidden))], "tasks": [-1], "share (%)": [math.nan]}
    )
    return pd.concat([head, gap, tail], ignore_index=True)


_HIDDEN = "… {:,} more"  # nodes between the busiest and the least busy (--json lists them)


def render_replica_table(replicas: pd.DataFrame) -> str:
    """Ok calls per replica for each run that has calls (`raysched.analysis.figures.per_replica`), with each
    replica's keys and hit rate where the runs have them."""
    extra = [column for column in (NODE_KEYS, NODE_HIT_RATE) if column in replicas and replicas[column].notna().any()]
    return "Calls per replica (ok rows)\n" + _shares_grid(replicas, "replica", "calls", str, extra)


def _shares_grid(
    table: pd.DataFrame, place: str, unit: str, show: Callable[[str], str], extra: Sequence[str] = ()
) -> str:
    """A per-place table (node, replica) of `per_node` / `per_replica`; runs separated by a blank line.

    ``extra`` columns (a node's keys, its hit rate) follow the share; an unknown value shows as "-".
    """
    rows: list[list[str] | str | None] = [["run", place, unit, "share", *(_EXTRA_HEADERS[c] for c in extra)], _RULE]
    last = None
    for i, (run, name, count, share) in enumerate(
        zip(table["run"], table[place], table[unit], table["share (%)"], strict=True)
    ):
        if last is not None and run != last:
            rows.append(None)
        if count < 0:  # the line counting the nodes left out (`_ends`)
            rows.append(["", str(name), "", "", *("" for _ in extra)])
        else:
            more = [_extra_cell(column, table[column].iloc[i]) for column in extra]
            first = "" if run == last else str(run)
            rows.append([first, show(name), f"{int(count):,}", format_value("share (%)", share), *more])
        last = run
    return _grid(rows, right_from=2)


_EXTRA_HEADERS = {NODE_KEYS: "keys", NODE_HIT_RATE: "hits"}


def _extra_cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{int(value):,}" if column == NODE_KEYS else f"{value:.1f}%"


def _json_value(metric: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if metric in _COUNT_METRICS:
        return round(value)
    return float(value)


def summary_to_dict(
    summary: pd.DataFrame, nodes: pd.DataFrame | None = None, *, replicas: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The summary (and per-node, per-replica counts) as plain Python: {"runs": [{label, run_id, …, metrics, nodes}]}.

    Per-replica counts (``replicas``) are listed only when some run has calls to a service.
    """
    infos: list[Mapping[str, Any]] = summary.attrs.get("runs") or []
    by_label = {str(r["label"]): r for r in infos}
    out = []
    for label in summary.columns:
        info = by_label.get(str(label), {})
        run: dict[str, Any] = {
            "label": str(label),
            "run_id": info.get("run_id"),
            "policy": info.get("policy"),
            "job": info.get("job"),
            "sources": list(info.get("sources", ())),
            "metrics": {str(m): _json_value(str(m), v) for m, v in summary[label].items()},
        }
        if nodes is not None:
            run["nodes"] = _share_records(nodes, label, "node", "tasks")
        if replicas is not None and len(replicas):
            run["replicas"] = _share_records(replicas, label, "replica", "calls")
        out.append(run)
    return {"runs": out}


def _share_records(table: pd.DataFrame, label: object, place: str, unit: str) -> list[dict[str, Any]]:
    """One run's places as records; a node's ``keys`` and ``hit rate (%)`` only where the run has them."""
    mine = table[table["run"] == label]
    extra = [column for column in (NODE_KEYS, NODE_HIT_RATE) if column in mine and mine[column].notna().any()]
    records = []
    for i, (name, count, share) in enumerate(zip(mine[place], mine[unit], mine["share (%)"], strict=True)):
        record = {place: str(name), unit: int(count), "share (%)": _json_value("share (%)", float(share))}
        for column in extra:
            value = _json_value("share (%)", float(mine[column].iloc[i]))
            record[column] = round(value) if column == NODE_KEYS and value is not None else value
        records.append(record)
    return records


def summary_to_json(
    summary: pd.DataFrame, nodes: pd.DataFrame | None = None, indent: int = 2, *, replicas: pd.DataFrame | None = None
) -> str:
    """The same figures as the table, as JSON (NaN becomes null, counts are integers)."""
    return json.dumps(summary_to_dict(summary, nodes, replicas=replicas), indent=indent, allow_nan=False)


def summary_to_tidy(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as a tidy table (run, run_id, metric, value), one row per figure."""
    infos = summary.attrs.get("runs") or []
    ids = {str(r["label"]): r["run_id"] for r in infos}
    cells = [(str(label), str(metric), value) for label in summary.columns for metric, value in summary[label].items()]
    return pd.DataFrame(
        {
            "run": [c[0] for c in cells],
            "run_id": [ids.get(c[0]) for c in cells],
            "metric": [c[1] for c in cells],
            # object dtype so counts stay integers in the written CSV; NaN becomes an empty cell
            "value": pd.Series([_json_value(m, v) for _, m, v in cells], dtype=object),
        }
    )
