"""The streaming results CSV writer, and reading back which tasks a run already finished (--resume).

The writer adds the task's own numeric metrics as extra columns. A timer thread
pushes rows to the disk at least every `flush_every_s`, even while no new row
arrives, so a crash leaves a file pandas can read (at most a cut last line).
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from raysched.results.schema import BASE_COLUMNS, Row, Status

__all__ = ["ResultsWriter", "ResumeError", "completed_task_ids"]


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
