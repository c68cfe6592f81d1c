"""Turn results CSVs (one row per attempt) into throughput, latency and balance figures.

Every figure is defined so a user can reproduce it with plain pandas on the
rows of one run (see README, "Analyzing results"):

* counts: rows per ``status`` (``ok``, ``failed``, ``retried``, ``infeasible``,
  ``cancelled``) and all attempts;
* makespan = ``finished_at.max() - submitted_at.min()`` over ok rows;
  throughput = ok rows / makespan; items/s, bytes/s = column sum over ok rows /
  makespan (NaN when there are no ok rows or the makespan is 0);
* ``run_s`` / ``wait_s`` p50, p95, p99 over ok rows, ``Series.quantile``
  (linear interpolation);
* ok rows per ``node_ran``; imbalance = max / mean and CV = population std
  (``ddof=0``) / mean, both over the nodes that ran at least one ok task;
* key affinity = share of keys whose ok rows all ran on one node (an empty key
  counts as its ``task_id``, as the hash policy does).

The module is pure pandas (no Ray, no matplotlib) so notebooks and tests stay fast.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysched.results import sidecar
from raysched.results.outcome import tasks_per_s
from raysched.results.schema import BASE_COLUMNS, REQUIRED_COLUMNS, STATUSES, short_node

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "STATUSES",
    "AnalysisInputError",
    "AnalysisWarning",
    "format_value",
    "load",
    "per_node",
    "render_node_table",
    "render_table",
    "run_labels",
    "short_node",
    "summarize",
    "summary_to_dict",
    "summary_to_json",
    "summary_to_tidy",
]

#: The columns `raysched submit` writes, in order (from `raysched.results.schema`); metric columns follow them.
COLUMNS: tuple[str, ...] = BASE_COLUMNS
_NUMERIC: tuple[str, ...] = (
    "task_id",
    "attempt",
    "submitted_at",
    "started_at",
    "finished_at",
    "wait_s",
    "run_s",
    "brain_wait_s",
)
#: Metric columns that feed rates; a bad value in them is an input error.
_RATE_COLUMNS: tuple[str, ...] = ("items", "bytes")
_NODE_COLUMNS: tuple[str, ...] = ("node_chosen", "node_ran")
_TEXT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "job",
    "policy",
    "key",
    "status",
    "error",
    "demand",
    "spill",
    *_NODE_COLUMNS,
)
SOURCE = "source"
_HINT = "pass the CSV written by `raysched submit --out`"

# Metric names (rows of the summary); the unit is part of the name.
M_ATTEMPTS = "attempts"
M_OK = "tasks ok"
M_FAILED = "tasks failed"
M_RETRIED = "attempts retried"
M_INFEASIBLE = "tasks infeasible"
M_CANCELLED = "tasks cancelled"
M_MAKESPAN = "makespan (s)"
M_THROUGHPUT = "throughput (tasks/s)"
M_ITEMS = "items/s"
M_BYTES = "bytes/s"
M_NODES = "nodes used"
M_IMBALANCE = "imbalance (max/mean)"
M_CV = "CV tasks/node (pop. std/mean)"
M_KEYS = "keys"
M_AFFINITY = "key affinity (%)"
M_SPILLED = "spilled (%)"
M_SPILLED_BOUND = "spilled: bound"
M_SPILLED_WAIT = "spilled: wait"
M_SPILLED_SPREAD = "spilled: spread"
M_KEYS_SPREAD = "keys spread (hot)"
M_SPREAD_MOST = "most nodes for one hot key"
M_HIT_RATE = "cache hit rate (%)"
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def _latency_names(column: str) -> list[str]:
    return [f"{column} {name} (s)" for name, _ in QUANTILES]


_COUNT_METRICS = frozenset(
    {
        M_ATTEMPTS,
        M_OK,
        M_FAILED,
        M_RETRIED,
        M_INFEASIBLE,
        M_CANCELLED,
        M_NODES,
        M_KEYS,
        M_SPILLED_BOUND,
        M_SPILLED_WAIT,
        M_SPILLED_SPREAD,
        M_KEYS_SPREAD,
        M_SPREAD_MOST,
    }
)
_PERCENT_METRICS = frozenset({M_AFFINITY, M_SPILLED, M_HIT_RATE})
# Groups are separated by a blank line in the terminal table.
_GROUPS: tuple[tuple[str, ...], ...] = (
    (M_ATTEMPTS, M_OK, M_FAILED, M_RETRIED, M_INFEASIBLE, M_CANCELLED),
    (M_MAKESPAN, M_THROUGHPUT, M_ITEMS, M_BYTES),
    tuple(_latency_names("run_s") + _latency_names("wait_s") + _latency_names("brain_wait_s")),
    (
        M_NODES,
        M_IMBALANCE,
        M_CV,
        M_KEYS,
        M_AFFINITY,
        M_SPILLED,
        M_SPILLED_BOUND,
        M_SPILLED_WAIT,
        M_SPILLED_SPREAD,
        M_KEYS_SPREAD,
        M_SPREAD_MOST,
        M_HIT_RATE,
    ),
)


class AnalysisInputError(ValueError):
    """Input that cannot be analysed; the message is one line: what is wrong, what to do."""


class AnalysisWarning(UserWarning):
    """Input that was analysed anyway, minus a damaged part (e.g. a last line cut by a crash)."""


@dataclass(frozen=True)
class RunInfo:
    """One run (one ``run_id``) and the label its column gets."""

    run_id: str
    label: str
    policy: str
    job: str
    sources: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- load


def load(
    paths: Sequence[str | Path],
    *,
    on_warning: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Read and validate results CSVs into one DataFrame (one row per attempt).

    Raises `AnalysisInputError` for a missing, empty or foreign file, so callers
    can show one line instead of a traceback. A last line cut short by a crash
    (too few fields, or a bad number in it) is dropped and reported through
    ``on_warning`` (default: `warnings.warn` with `AnalysisWarning`), because the
    rows before it are still good data. Adds a ``source`` column (the path as given).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise AnalysisInputError(f"no CSV given; {_HINT}")
    warn = on_warning or (lambda msg: warnings.warn(msg, AnalysisWarning, stacklevel=3))
    frames: list[pd.DataFrame] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        resolved = path.resolve()
        if resolved in seen:
            warn(f"{path}: given more than once; read it once")
            continue
        seen.add(resolved)
        frames.append(_read_one(path, warn))
    extras: list[str] = []
    for frame in frames:
        extras += [c for c in frame.columns if c not in COLUMNS and c != SOURCE and c not in extras]
    df = pd.concat(frames, ignore_index=True, sort=False)
    df = df[list(COLUMNS) + extras + [SOURCE]]
    records: dict[str, dict[str, Any]] = {}
    for raw in dict.fromkeys(str(p) for p in paths):
        records.update(sidecar.read_runs(Path(raw), on_warning=warn))
    df.attrs["run_records"] = records
    return df


def _records(path: Path, name: str) -> list[list[str]]:
    """All non-blank CSV records of a file; unreadable files become one-line errors."""
    reader = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            records = list(reader)
    except UnicodeDecodeError:
        raise AnalysisInputError(f"{name}: not a text CSV (not UTF-8); {_HINT}") from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 0
        raise AnalysisInputError(f"{name} line {line}: unreadable CSV ({exc}); {_HINT}") from None
    except OSError as exc:
        raise AnalysisInputError(
            f"{name}: cannot read it ({exc.strerror or exc}); check the path and permissions"
        ) from None
    return [r for r in records if not _blank(r)]


def _blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


class _LineNumbers:
    """Physical line number of data row i (a quoted field may span lines), found by re-reading the file.

    Only messages need it, so the common clean file never pays for it.
    """

    def __init__(self, path: Path, n_records: int) -> None:
        self._path = path
        self._rows = n_records - 1
        self._lines: list[int] | None = None

    def __getitem__(self, row: int) -> int:
        if self._lines is None:
            with self._path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                self._lines = [reader.line_num for rec in reader if not _blank(rec)]
        if row < 0:
            row += self._rows
        return self._lines[row + 1]  # record 0 is the header


def _read_one(path: Path, warn: Callable[[str], None]) -> pd.DataFrame:
    """Parse one file with the csv module, so a cut last line can be told from a bad file."""
    name = str(path)
    if not path.exists():
        raise AnalysisInputError(f"{name}: no such file; {_HINT}")
    if path.is_dir():
        raise AnalysisInputError(f"{name} is a directory; pass the CSV files in it (e.g. {name}/*.csv)")
    records = _records(path, name)
    if not records:
        raise AnalysisInputError(f"{name}: the file is empty; {_HINT}")

    header = [h.strip() for h in records[0]]
    _check_header(name, header)
    rows = records[1:]
    row_lines = _LineNumbers(path, len(records))  # physical line of each row, computed only for a message
    if not rows:
        raise AnalysisInputError(
            f"{name}: has a header but no result rows (did the run stop before its first task finished?)"
        )
    ncol = len(header)
    dropped = False
    if len(rows[-1]) < ncol:
        warn(
            f"{name} line {row_lines[-1]}: last line is cut short ({len(rows[-1])} of {ncol} fields), "
            f"probably by a crash; skipped it and analysed the {len(rows) - 1} rows before it"
        )
        rows, dropped = rows[:-1], True
    wrong = [i for i, rec in enumerate(rows) if len(rec) != ncol]
    if wrong:
        raise AnalysisInputError(
            f"{name} line {row_lines[wrong[0]]}: {len(rows[wrong[0]])} fields but the header has {ncol}; "
            "the file is damaged in the middle (was it appended to after a crash?)"
        )
    if not rows:
        raise AnalysisInputError(f"{name}: no complete result rows; {_HINT}")

    frame = pd.DataFrame(rows, columns=header, dtype=object)
    typed, bad = _parse(frame)
    if bad:
        last = len(frame) - 1
        first_row, col, value = min(bad)
        if not dropped and all(row == last for row, _, _ in bad):
            warn(
                f"{name} line {row_lines[last]}: last line has a bad value in {col} ({_clip(value)!r}), "
                f"probably cut short by a crash; skipped it and analysed the {last} rows before it"
            )
            typed = typed.iloc[:last].copy()
            if typed.empty:
                raise AnalysisInputError(f"{name}: no complete result rows; {_HINT}")
        else:
            what = (
                f"status {_clip(value)!r} is not one of {', '.join(STATUSES)}"
                if col == "status"
                else f"{col} holds {_clip(value)!r}, not a number"
            )
            raise AnalysisInputError(f"{name} line {row_lines[first_row]}: {what}; {_HINT}")
    for col in COLUMNS:  # columns newer than the file (demand, spill, brain_wait_s) are empty
        if col not in typed.columns:
            typed[col] = math.nan if col in _NUMERIC else ""
    for col in _TEXT_COLUMNS:
        typed[col] = typed[col].astype("str")  # pandas' text dtype, as read_csv would give
    typed[SOURCE] = name
    return typed


def _check_header(name: str, header: list[str]) -> None:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise AnalysisInputError(f"{name}: repeated columns {', '.join(dupes)}; {_HINT}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise AnalysisInputError(f"{name} is not a raysched results CSV: missing columns {', '.join(missing)}; {_HINT}")


def _numbers(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse a text column once: (numbers with empty/"nan" as NaN, mask of cells that are not numbers)."""
    parsed = pd.to_numeric(text, errors="coerce")
    missing = parsed.isna().to_numpy()
    if not missing.any():
        return parsed, missing
    cells = text.to_numpy(dtype=object)
    bad = missing.copy()
    bad[missing] = [str(v).strip().lower() not in ("", "nan") for v in cells[missing]]
    return parsed, bad


def _parse(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """Typed copy of a text frame, plus (row, column, value) of every bad cell.

    Numbers become floats/ints (empty = NaN), empty node ids become missing, and
    metric columns beyond items/bytes become numeric only when they all parse
    (otherwise they stay text and are not used). Bad cells: a non-number in a
    numeric column, an unknown status, an empty run_id.
    """
    typed = frame.copy()
    bad: list[tuple[int, str, str]] = []
    for col in frame.columns:
        if col in _NUMERIC or col in _RATE_COLUMNS:
            typed[col], mask = _numbers(frame[col])
            bad += [(int(i), col, str(frame[col].iloc[i])) for i in np.flatnonzero(mask)]
        elif col not in COLUMNS:
            parsed, mask = _numbers(frame[col])
            if not mask.any():
                typed[col] = parsed
    for col in _NODE_COLUMNS:
        typed[col] = frame[col].replace("", None)
    unknown = ~frame["status"].isin(STATUSES).to_numpy()
    bad += [(int(i), "status", str(frame["status"].iloc[i])) for i in np.flatnonzero(unknown)]
    no_run = (frame["run_id"] == "").to_numpy()
    bad += [(int(i), "run_id", "") for i in np.flatnonzero(no_run)]
    return typed, bad


def _clip(value: str, width: int = 30) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


# --------------------------------------------------------------------------- runs and labels


def _short_ids(ids: Sequence[str], minimum: int = 6) -> dict[str, str]:
    """Shortest prefix or suffix (at least `minimum` chars) that tells the ids apart."""
    longest = max((len(i) for i in ids), default=0)
    for n in range(minimum, longest + 1):
        for short in ([i[:n] for i in ids], [i[-n:] for i in ids]):
            if len(set(short)) == len(ids):
                return dict(zip(ids, short, strict=True))
    return {i: i for i in ids}


def _short_prefixes(ids: Sequence[str], minimum: int = 8) -> dict[str, str]:
    """Run ids cut to the shortest unique prefix (at least `minimum` chars), marked with … when cut."""
    longest = max((len(i) for i in ids), default=0)
    n = minimum
    while n < longest and len({i[:n] for i in ids}) < len(set(ids)):
        n += 1
    return {i: i if len(i) <= n + 1 else i[:n] + "…" for i in ids}


def _runs(df: pd.DataFrame) -> list[RunInfo]:
    """Runs in order of first appearance, labelled policy [+ job when jobs differ] [+ id when labels collide]."""
    _require_columns(df)
    first = df.drop_duplicates("run_id")
    ids = [str(r) for r in first["run_id"]]
    policy = dict(zip(ids, first["policy"].astype(str), strict=True))
    job = dict(zip(ids, first["job"].astype(str), strict=True))
    sources: dict[str, tuple[str, ...]] = {i: () for i in ids}
    if SOURCE in df.columns:
        pairs = df[["run_id", SOURCE]].drop_duplicates()
        for rid, src in zip(pairs["run_id"].astype(str), pairs[SOURCE].astype(str), strict=True):
            sources[rid] += (src,)
    several_jobs = len(set(job.values())) > 1
    labels = {i: f"{policy[i]} ({Path(job[i]).stem or job[i]})" if several_jobs else policy[i] for i in ids}
    _add_differing_settings(labels, df.attrs.get("run_records") or {})
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    colliding = [i for i in ids if counts[labels[i]] > 1]
    if colliding:
        short = _short_ids(colliding)
        for i in colliding:
            labels[i] = f"{labels[i]} #{short[i]}"
    return [RunInfo(i, labels[i], policy[i], job[i], sources[i]) for i in ids]


# How a setting shows in a label, and what None means for it.
_SETTING_LABELS: tuple[tuple[str, str, str], ...] = (
    ("load_factor", "c", "off"),
    ("locality_wait", "wait", "auto"),
    ("overcommit", "overcommit", "auto"),
    ("batch", "batch", "auto"),
    ("vnodes", "vnodes", "-"),
    ("max_inflight", "inflight", "auto"),
    ("seed", "seed", "none"),
    ("retries", "retries", "0"),
)


def _add_differing_settings(labels: dict[str, str], records: Mapping[str, Mapping[str, Any]]) -> None:
    """Runs that share a label get the settings that differ between them: `hash c=1.25` vs `hash c=off`."""
    groups: dict[str, list[str]] = {}
    for run_id, label in labels.items():
        groups.setdefault(label, []).append(run_id)
    for label, run_ids in groups.items():
        options = {i: dict((records.get(i) or {}).get("options") or {}) for i in run_ids}
        if len(run_ids) < 2 or not all(options.values()):
            continue
        for run_id in run_ids:
            parts = []
            for name, short, none in _SETTING_LABELS:
                values = {_fmt_setting(options[i].get(name), none) for i in run_ids}
                if len(values) > 1:
                    parts.append(f"{short}={_fmt_setting(options[run_id].get(name), none)}")
            if parts:
                labels[run_id] = f"{label} {' '.join(parts)}"


def _fmt_setting(value: Any, none: str) -> str:
    if value is None:
        return none
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_labels(df: pd.DataFrame) -> dict[str, str]:
    """run_id -> column label, in order of first appearance (the summary's column order)."""
    return {r.run_id: r.label for r in _runs(df)}


def _require_columns(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise AnalysisInputError(
            f"not a raysched results table: missing columns {', '.join(missing)}; "
            "build it with raysched.analysis.summary.load()"
        )
    if df.empty:
        raise AnalysisInputError("no result rows to analyse; build the table with raysched.analysis.summary.load()")


def _keys(rows: pd.DataFrame) -> pd.Series:
    """The task key, with an empty key replaced by the task id (as the hash policy does)."""
    task_id = rows["task_id"]
    if pd.api.types.is_float_dtype(task_id) and (task_id.dropna() % 1 == 0).all():
        task_id = task_id.astype("Int64")  # 7.0 -> "7"
    key = rows["key"]
    empty = key.isna() | (key.astype(str).str.strip() == "")
    return key.astype(str).where(~empty, task_id.astype(str))


# --------------------------------------------------------------------------- figures


def _run_metrics(rows: pd.DataFrame, rate_columns: Iterable[str]) -> dict[str, float]:
    """Every figure of one run; see the module docstring for the definitions."""
    status = rows["status"]
    ok = rows[status == "ok"]
    n_ok = len(ok)
    out: dict[str, float] = {
        M_ATTEMPTS: float(len(rows)),
        M_OK: float(n_ok),
        M_FAILED: float((status == "failed").sum()),
        M_RETRIED: float((status == "retried").sum()),
        M_INFEASIBLE: float((status == "infeasible").sum()),
        M_CANCELLED: float((status == "cancelled").sum()),
    }
    makespan = float(ok["finished_at"].max() - ok["submitted_at"].min()) if n_ok else math.nan
    has_time = not math.isnan(makespan) and makespan > 0
    out[M_MAKESPAN] = makespan
    out[M_THROUGHPUT] = tasks_per_s(n_ok, makespan) if has_time else math.nan
    for col in rate_columns:
        total = ok[col].sum(min_count=1) if col in ok.columns else math.nan
        out[f"{col}/s"] = float(total) / makespan if has_time and pd.notna(total) else math.nan
    for column in ("run_s", "wait_s", "brain_wait_s"):
        values = ok[column].dropna()
        if column == "brain_wait_s" and not len(values):
            continue  # written by raysched 0.2 and later
        for (_, q), metric in zip(QUANTILES, _latency_names(column), strict=True):
            out[metric] = float(values.quantile(q)) if len(values) else math.nan
    placed = ok[ok["node_ran"].notna()]
    per_node = placed["node_ran"].value_counts()
    out[M_NODES] = float(len(per_node))
    if len(per_node):
        mean = float(per_node.mean())
        out[M_IMBALANCE] = float(per_node.max()) / mean
        out[M_CV] = float(per_node.std(ddof=0)) / mean
    else:
        out[M_IMBALANCE] = out[M_CV] = math.nan
    nodes_per_key = placed.assign(_key=_keys(placed)).groupby("_key")["node_ran"].nunique()
    out[M_KEYS] = float(len(nodes_per_key))
    out[M_AFFINITY] = float((nodes_per_key == 1).mean() * 100) if len(nodes_per_key) else math.nan
    spill = ok["spill"].fillna("").astype(str)
    if (spill != "").any() or (ok["policy"].astype(str) == "hash").any():
        out[M_SPILLED] = float((spill != "").mean() * 100) if n_ok else math.nan
        out[M_SPILLED_BOUND] = float((spill == "bound").sum())
        out[M_SPILLED_WAIT] = float((spill == "wait").sum())
        spread = spill == "spread"
        if spread.any():  # hot keys the brain spread by their share of the work (raysched 0.3 and later)
            out[M_SPILLED_SPREAD] = float(spread.sum())
            hot = set(_keys(ok[spread]))
            out[M_KEYS_SPREAD] = float(len(hot))
            out[M_SPREAD_MOST] = float(nodes_per_key[nodes_per_key.index.isin(hot)].max())
    if "cache_hit" in ok.columns:
        out[M_HIT_RATE] = hit_rate(ok)
    return out


def hit_rate(ok: pd.DataFrame) -> float:
    """The one definition of the cache hit rate: the mean of the ``cache_hit`` metric (0/1) over ok tasks, in %
    (NaN when the job reports no cache_hit)."""
    if "cache_hit" not in ok.columns:
        return math.nan
    hits = pd.to_numeric(ok["cache_hit"], errors="coerce").dropna()
    return float(hits.mean() * 100) if len(hits) else math.nan


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Figures per run: metrics as rows, one column per run (labelled by policy).

    ``summary.attrs["runs"]`` keeps each run's id, policy, job and source files
    for `render_table` / `summary_to_json`. items/s and bytes/s rows appear only
    when those columns exist.
    """
    runs = _runs(df)
    rate_columns = [c for c in _RATE_COLUMNS if c in df.columns]
    groups = dict(tuple(df.groupby("run_id", sort=False)))
    columns = {r.label: _run_metrics(groups[r.run_id], rate_columns) for r in runs}
    summary = pd.DataFrame(columns, dtype="float64")
    summary.index.name = "metric"
    summary.columns.name = "run"
    summary.attrs["runs"] = [asdict(r) for r in runs]
    return summary


def per_node(df: pd.DataFrame) -> pd.DataFrame:
    """Ok tasks per node for every run: columns run, run_id, node, tasks, share (%).

    Nodes a run touched (chosen or ran) that finished no ok task are listed with 0,
    so an idle node shows; most loaded first within a run.
    """
    out: list[pd.DataFrame] = []
    runs = _runs(df)
    groups = dict(tuple(df.groupby("run_id", sort=False)))
    for run in runs:
        rows = groups[run.run_id]
        counts = rows.loc[rows["status"] == "ok", "node_ran"].dropna().value_counts()
        touched = pd.unique(pd.concat([rows["node_ran"], rows["node_chosen"]]).dropna())
        counts = counts.reindex(sorted(set(counts.index) | set(touched)), fill_value=0)
        counts = counts.sort_values(ascending=False, kind="stable")
        total = counts.sum()
        out.append(
            pd.DataFrame(
                {
                    "run": run.label,
                    "run_id": run.run_id,
                    "node": counts.index.astype(str),
                    "tasks": counts.to_numpy(dtype="int64"),
                    "share (%)": counts.to_numpy(dtype="float64") * 100 / total if total else math.nan,
                }
            )
        )
    return pd.concat(out, ignore_index=True)


# --------------------------------------------------------------------------- output


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


def render_table(summary: pd.DataFrame) -> str:
    """The side-by-side table for the terminal: metrics as rows, one column per run."""
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
            rows.append([metric, *[format_value(metric, v) for v in values]])
    return _grid(rows)


def render_node_table(nodes: pd.DataFrame) -> str:
    """Ok tasks per node for each run, node ids cut to 8 chars."""
    rows: list[list[str] | str | None] = [["run", "node", "tasks", "share"], _RULE]
    last = None
    for run, node, tasks, share in zip(nodes["run"], nodes["node"], nodes["tasks"], nodes["share (%)"], strict=True):
        if last is not None and run != last:
            rows.append(None)
        rows.append(
            ["" if run == last else str(run), short_node(node), f"{int(tasks):,}", format_value("share (%)", share)]
        )
        last = run
    return "Tasks per node (ok rows; node ids cut to 8 chars)\n" + _grid(rows, right_from=2)


def _json_value(metric: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if metric in _COUNT_METRICS:
        return round(value)
    return float(value)


def summary_to_dict(summary: pd.DataFrame, nodes: pd.DataFrame | None = None) -> dict[str, Any]:
    """The summary (and per-node counts) as plain Python: {"runs": [{label, run_id, …, metrics, nodes}]}."""
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
            mine = nodes[nodes["run"] == label]
            run["nodes"] = [
                {"node": str(n), "tasks": int(t), "share (%)": _json_value("share (%)", float(s))}
                for n, t, s in zip(mine["node"], mine["tasks"], mine["share (%)"], strict=True)
            ]
        out.append(run)
    return {"runs": out}


def summary_to_json(summary: pd.DataFrame, nodes: pd.DataFrame | None = None, indent: int = 2) -> str:
    """The same figures as the table, as JSON (NaN becomes null, counts are integers)."""
    return json.dumps(summary_to_dict(summary, nodes), indent=indent, allow_nan=False)


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
