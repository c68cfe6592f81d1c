"""The results schema: one row per attempt, its columns, and how its cells are spelled.

The schema lives in one place, `Row`; every column list (which are numbers, which are
text, which every file has) is derived from it. The CSV writer is `raysched.results.writer`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from raysched.core.names import NODE_ID_CHARS, short_node  # the one shortener, shown in every table


class Status(str, Enum):
    """Outcome of one attempt."""

    OK = "ok"
    FAILED = "failed"
    RETRIED = "retried"
    INFEASIBLE = "infeasible"
    CANCELLED = "cancelled"


@dataclass
class Row:
    """One attempt of one task, as it appears in the results CSV."""

    run_id: str
    job: str
    policy: str
    task_id: int
    key: str
    attempt: int
    status: str
    error: str = ""
    node_chosen: str = ""
    node_ran: str = ""
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    wait_s: float | None = None
    run_s: float | None = None
    demand: str = ""
    spill: str = ""
    brain_wait_s: float | None = None
    replica: str = ""  # a call to a service: the replica that served it (``Shard#2``); empty for a task
    via: str = ""  # how the attempt reached its node: task | executor | replica (empty: never sent)
    executor: str = ""  # the executor that ran it, when via is executor
    # Seconds from raysched taking the attempt in (submitted_at: the caller's send) to its result reaching the
    # driver, both on the driver's clock: what the caller waited, queueing included. Empty when no result came back.
    latency_s: float | None = None


BASE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))
#: What every raysched CSV has; `demand`, `spill`, `brain_wait_s`, `replica`, `via`, `executor` and `latency_s`
#: came later and may be missing.
REQUIRED_COLUMNS: tuple[str, ...] = BASE_COLUMNS[: BASE_COLUMNS.index("run_s") + 1]
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
#: Columns that hold numbers (ints, or floats where a cell may be empty) and columns that hold text, by `Row`'s
#: own field types, so a reader parses each column as the writer meant it.
NUMERIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row) if f.type != "str")
TEXT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row) if f.type == "str")
#: The columns that name a node (empty while a task was never placed).
NODE_COLUMNS: tuple[str, ...] = ("node_chosen", "node_ran")


def is_no_key(key: object) -> bool:
    """True when a task has no key: None, a missing CSV cell (NaN), or a blank string.

    The one definition of "no key", used by `submit` (the runner), `analyze` and `simulate`, so the
    three agree about the same run: such a task is placed and counted by its task id alone.
    """
    if key is None:
        return True
    if isinstance(key, float) and math.isnan(key):
        return True
    return isinstance(key, str) and not key.strip()


def task_key(key: object, task_id: int) -> str:
    """The key placement hashes: the task's own key, or its task id when it has none (`is_no_key`)."""
    return str(task_id) if is_no_key(key) else str(key)


def format_demand(demand: Mapping[str, float]) -> str:
    """A demand as the CSV writes it: ``CPU=1;ssd=1`` (sorted; zero amounts left out)."""
    return ";".join(f"{name}={amount:g}" for name, amount in sorted(demand.items()) if amount)


def parse_demand(text: str) -> dict[str, float]:
    """The inverse of `format_demand` (ValueError on a malformed cell)."""
    out: dict[str, float] = {}
    for part in filter(None, (text or "").split(";")):
        name, sep, amount = part.partition("=")
        if not sep or not name:
            raise ValueError(f"bad demand {text!r}: expected NAME=AMOUNT;NAME=AMOUNT")
        out[name] = float(amount)
    return out


def numeric_metrics(value: Any) -> dict[str, float]:
    """The numeric fields of a task's return value, which become CSV columns.

    Non-dict results and non-numeric fields are ignored; names that would collide
    with the schema are prefixed with ``metric_``.
    """
    if not isinstance(value, Mapping):
        return {}
    metrics: dict[str, float] = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not isinstance(name, str):
            continue
        if isinstance(number, float) and not math.isfinite(number):
            continue
        metrics[f"metric_{name}" if name in BASE_COLUMNS else name] = number
    return metrics


def error_text(err: BaseException, limit: int = 500) -> str:
    """`Type: message` on one line, for the CSV's `error` column."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:limit]}"


__all__ = [
    "BASE_COLUMNS",
    "NODE_COLUMNS",
    "NODE_ID_CHARS",
    "NUMERIC_COLUMNS",
    "REQUIRED_COLUMNS",
    "STATUSES",
    "TEXT_COLUMNS",
    "Row",
    "Status",
    "error_text",
    "format_demand",
    "is_no_key",
    "numeric_metrics",
    "parse_demand",
    "short_node",
    "task_key",
]
