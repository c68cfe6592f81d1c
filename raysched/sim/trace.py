"""One recorded run of a results CSV, as the simulator replays it: tasks in task_id order, in arrays.

A trace of a million rows must fit in little memory, so this reads only the
columns the simulator needs, with pandas' C parser (not `raysched.analysis.load`,
which keeps every cell as a Python string for its line-exact messages), and
keeps per-task data as numpy arrays; demands become small integer codes. A run with calls to a
service is refused: the simulator models tasks on nodes, not the replicas that serve calls.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from raysched.analysis.figures import REPLICA, call_mask
from raysched.job import DEFAULT_DEMAND
from raysched.results.schema import BASE_COLUMNS, REQUIRED_COLUMNS, Status, format_demand, is_no_key, parse_demand
from raysched.sim import SimInputError
from raysched.sim.record import CACHE_HIT, schema_columns

__all__ = ["Trace", "load_trace"]

_HINT = "pass a CSV written by `raysched submit --out`"
_TEXT = schema_columns("run_id", "job", "policy", "key", "status", "demand", "node_ran", REPLICA)
_NUMBERS = schema_columns("task_id", "run_s", "wait_s", "started_at", "brain_wait_s")


@dataclass
class Trace:
    """The ok attempt of every task of one run, in task_id order."""

    path: Path
    run_id: str
    job: str
    policy: str
    task_ids: np.ndarray  # int64
    keys: np.ndarray  # object: the key the brain hashes (the task id when the key was empty)
    demand_codes: np.ndarray  # int32 index into demands
    demands: list[dict[str, float]]
    demand_texts: list[str]
    run_s: np.ndarray  # float64, as recorded
    wait_s: np.ndarray
    brain_wait_s: np.ndarray  # NaN where not recorded
    started_at: np.ndarray
    node_ran: np.ndarray  # object
    cache_hit: np.ndarray | None  # float64 0/1, when the job reported it
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # other numeric columns, carried to the rows

    def __len__(self) -> int:
        return len(self.task_ids)


def load_trace(path: Path, run_id: str | None = None, on_warning: Callable[[str], None] | None = None) -> Trace:
    """The run ``run_id`` (default: the file's first) of a results CSV; SimInputError on anything unusable."""
    warn = on_warning or (lambda message: None)
    header = _header(path)
    metric_columns = [c for c in header if c not in BASE_COLUMNS]
    wanted = [c for c in (*_TEXT, *_NUMBERS) if c in header] + metric_columns
    try:
        df = pd.read_csv(
            path,
            usecols=wanted,
            encoding="utf-8-sig",
            low_memory=False,
            dtype={c: (str if c == "key" else "category") for c in _TEXT if c in header},  # few distinct values
            keep_default_na=False,
            na_values={c: ["", "nan", "NaN"] for c in wanted if c not in _TEXT},
        )
    except (ValueError, pd.errors.ParserError) as err:
        raise SimInputError(f"{path}: unreadable CSV ({_first_line(err)}); {_HINT}") from None
    if df.empty:
        raise SimInputError(f"{path}: has a header but no result rows; {_HINT}")
    runs = [str(r) for r in df["run_id"].unique()]  # in order of appearance
    chosen = runs[0] if run_id is None else run_id
    if chosen not in runs:
        raise SimInputError(
            f"{path} has no run {run_id!r}; its runs: {', '.join(runs[:10])}{' ...' if len(runs) > 10 else ''}"
        )
    run = df[df["run_id"] == chosen]
    _refuse_calls(path, chosen, run)
    rows = run[run["status"] == Status.OK.value].copy()
    del df, run
    if rows.empty:
        raise SimInputError(f"{path}: run {chosen} has no ok rows to replay (every task failed or was cancelled)")
    for column in [c for c in (*_NUMBERS, *metric_columns) if c in rows.columns]:
        text_metric = column in metric_columns and column != CACHE_HIT
        if not pd.api.types.is_numeric_dtype(rows[column]) and not text_metric:  # text metrics are not carried
            rows[column] = _numeric(path, rows[column], column)
    missing_run = int(rows["run_s"].isna().sum())
    if missing_run:
        warn(f"{path}: {missing_run} ok rows of run {chosen} have no run_s (cut by a crash?); skipped them")
        rows = rows[rows["run_s"].notna()]
    if rows["task_id"].isna().any():
        raise SimInputError(f"{path}: an ok row of run {chosen} has no task_id; {_HINT}")
    rows = rows.drop_duplicates("task_id", keep="last").sort_values("task_id", kind="stable")
    return _to_trace(path, chosen, rows, header, metric_columns, warn)


def _refuse_calls(path: Path, run_id: str, run: pd.DataFrame) -> None:
    """SimInputError when the run called a service: replicas are not modelled, so its calls cannot be replayed."""
    calls = int(call_mask(run).sum())
    if calls:
        raise SimInputError(
            f"{path}: {calls:,} of the {len(run):,} rows of run {run_id} are calls to a service (they name a "
            "replica); simulate replays tasks only (service replicas are not modelled)"
        )


def _to_trace(
    path: Path,
    run_id: str,
    rows: pd.DataFrame,
    header: list[str],
    metric_columns: list[str],
    warn: Callable[[str], None],
) -> Trace:
    task_ids = rows["task_id"].to_numpy(dtype=np.int64)
    keys = rows["key"].to_numpy(dtype=object)
    empty = np.array([is_no_key(k) for k in keys], dtype=bool)
    if empty.any():  # a task without a key is keyed by its task id, as the runner sent it (schema.task_key)
        keys = keys.copy()
        keys[empty] = task_ids[empty].astype(str)
    if "demand" in header:
        codes, texts = pd.factorize(rows["demand"], sort=False)
        demands = [_demand(path, str(text)) for text in texts]
        demand_texts = [str(text) for text in texts]
        codes = codes.astype(np.int32)
    else:
        warn(f"{path}: no demand column (written before raysched 0.2); assuming CPU=1 for every task")
        codes = np.zeros(len(rows), dtype=np.int32)
        demands, demand_texts = [dict(DEFAULT_DEMAND)], [format_demand(DEFAULT_DEMAND)]
    nan = np.full(len(rows), math.nan)
    hit = rows[CACHE_HIT].to_numpy(dtype=np.float64) if CACHE_HIT in rows.columns else None
    if hit is not None and not np.isin(hit[~np.isnan(hit)], (0.0, 1.0)).all():
        raise SimInputError(f"{path}: cache_hit must be 0 or 1 in every ok row; {_HINT}")
    metrics = {
        c: rows[c].to_numpy(dtype=np.float64)
        for c in metric_columns
        if c != CACHE_HIT and pd.api.types.is_numeric_dtype(rows[c])
    }
    first = rows.iloc[0]
    return Trace(
        path=path,
        run_id=run_id,
        job=str(first.get("job", "")),
        policy=str(first.get("policy", "")),
        task_ids=task_ids,
        keys=keys,
        demand_codes=codes,
        demands=demands,
        demand_texts=demand_texts,
        run_s=np.clip(rows["run_s"].to_numpy(dtype=np.float64), 0.0, None),
        wait_s=rows["wait_s"].to_numpy(dtype=np.float64) if "wait_s" in rows.columns else nan,
        brain_wait_s=rows["brain_wait_s"].to_numpy(dtype=np.float64) if "brain_wait_s" in rows.columns else nan,
        started_at=rows["started_at"].to_numpy(dtype=np.float64) if "started_at" in rows.columns else nan,
        node_ran=rows["node_ran"].to_numpy(dtype=object),
        cache_hit=hit,
        metrics=metrics,
    )


def _header(path: Path) -> list[str]:
    if not path.exists():
        raise SimInputError(f"{path}: no such file; {_HINT}")
    if path.is_dir():
        raise SimInputError(f"{path} is a directory; {_HINT}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError:
        raise SimInputError(f"{path}: not a text CSV (not UTF-8); {_HINT}") from None
    except (OSError, csv.Error) as err:
        raise SimInputError(f"{path}: cannot read it ({_first_line(err)}); {_HINT}") from None
    header = [h.strip() for h in header]
    if not header:
        raise SimInputError(f"{path}: the file is empty; {_HINT}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise SimInputError(f"{path} is not a raysched results CSV: missing columns {', '.join(missing)}; {_HINT}")
    return header


def _numeric(path: Path, column: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column):
        return column
    parsed = pd.to_numeric(column, errors="coerce")
    bad = column[parsed.isna() & column.notna()]
    if len(bad):
        raise SimInputError(f"{path}: {name} holds {str(bad.iloc[0])[:30]!r}, not a number; {_HINT}")
    return parsed


def _demand(path: Path, text: str) -> dict[str, float]:
    try:
        demand = parse_demand(text)
    except ValueError as err:
        raise SimInputError(f"{path}: {err}; {_HINT}") from None
    if any(not math.isfinite(a) or a < 0 for a in demand.values()):
        raise SimInputError(f"{path}: bad demand {text!r}: amounts must be finite and >= 0; {_HINT}")
    return demand


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
