"""The results schema (one row per attempt) and the streaming CSV writer.

The schema lives in one place, `Row`; the writer adds the task's own numeric
metrics as extra columns. A timer thread pushes rows to the disk at least
every `flush_every_s`, even while no new row arrives, so a crash leaves a file
pandas can read (at most a cut last line).
"""

from __future__ import annotations

import csv
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import IO, Any


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


BASE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))
#: What every raysched CSV has; `demand`, `spill` and `brain_wait_s` came later and may be missing.
REQUIRED_COLUMNS: tuple[str, ...] = BASE_COLUMNS[: BASE_COLUMNS.index("run_s") + 1]
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)


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


NODE_ID_CHARS = 8


def short_node(node_id: str, width: int = NODE_ID_CHARS) -> str:
    """Ray node ids are 56 hex characters; 8 tell them apart on any cluster of sane size (the one shortener)."""
    return str(node_id)[:width]


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


class ResultsWriter:
    """Append rows to a CSV; a timer thread flushes at least every `flush_every_s` seconds.

    A metric column first seen after the header was written makes the writer
    rewrite the file once with the wider header; no row is lost.
    """

    def __init__(self, path: Path, *, append: bool = False, flush_every_s: float = 1.0) -> None:
        self.path = path
        self.flush_every_s = flush_every_s
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.columns: list[str] = list(BASE_COLUMNS)
        self._file: IO[str]
        path.parent.mkdir(parents=True, exist_ok=True)
        if append and path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as handle:
                header = next(csv.reader(handle), [])
            self.columns = header or self.columns
            self._file = path.open("a", newline="")
            self._ensure_line_start()
        else:
            mode = "a" if append else "x"  # "x": never overwrite an existing file
            self._file = path.open(mode, newline="")
            csv.writer(self._file).writerow(self.columns)
            self._file.flush()
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="raise")
        self._stop = threading.Event()
        if flush_every_s > 0:
            threading.Thread(target=self._flush_on_timer, daemon=True, name="raysched-csv-flush").start()

    def _ensure_line_start(self) -> None:
        """After a crash the file may end mid-line; start appended rows on a fresh line."""
        with self.path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                self._file.write("\n")

    def write(self, row: Row, metrics: Mapping[str, float] | None = None) -> None:
        """Queue one row; the timer (or close) writes it out. With flush_every_s=0, at once."""
        # vars(), not asdict(): rows hold only flat values, and asdict's deep copy is the slow part
        record: dict[str, Any] = {k: ("" if v is None else v) for k, v in vars(row).items()}
        if metrics:
            record.update(metrics)
        with self._lock:
            self._pending.append(record)
        if self.flush_every_s <= 0:
            self.flush()

    def _flush_on_timer(self) -> None:
        while not self._stop.wait(self.flush_every_s):
            self.flush()

    def flush(self) -> None:
        """Write queued rows and push them to the OS."""
        with self._lock:
            if self._file.closed:
                return
            if self._pending:
                new = [name for rec in self._pending for name in rec if name not in self.columns]
                if new:
                    self._widen(list(dict.fromkeys(new)))
                self._writer.writerows(self._pending)
                self._pending.clear()
            self._file.flush()

    def _widen(self, new_columns: list[str]) -> None:
        """Rewrite the file with extra columns (rare: only when a new metric appears)."""
        self._file.flush()
        self._file.close()
        with self.path.open(newline="") as handle:
            old_rows = list(csv.DictReader(handle))
        self.columns = self.columns + new_columns
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows({k: v for k, v in rec.items() if k in self.columns} for rec in old_rows)
        os.replace(tmp, self.path)
        self._file = self.path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, restval="")

    def close(self) -> None:
        self._stop.set()
        self.flush()
        with self._lock:
            self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResumeError(ValueError):
    """A --resume CSV that does not belong to this job and policy, or is no raysched CSV."""


def completed_task_ids(path: Path, job: str, policy: str) -> frozenset[int]:
    """Task ids with an ok row in a results CSV, after checking it is this job's and policy's.

    A last line cut short by a crash is ignored (its task simply runs again).
    """
    if not path.exists():
        raise ResumeError(f"--resume file not found: {path}")
    done: set[int] = set()
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("job", "policy", "task_id", "status") if c not in (reader.fieldnames or [])]
        if missing:
            raise ResumeError(f"{path} is not a raysched results CSV (missing columns: {', '.join(missing)})")
        for record in reader:
            if None in record.values() or not (record["task_id"] or "").isdigit():
                continue  # a line cut short by a crash
            if record["job"] != job or record["policy"] != policy:
                raise ResumeError(
                    f"{path} holds job {record['job']!r} under policy {record['policy']!r}, "
                    f"not {job!r} under {policy!r}; resume with the same job file and --policy"
                )
            if record["status"] == Status.OK.value:
                done.add(int(record["task_id"]))
    return frozenset(done)
