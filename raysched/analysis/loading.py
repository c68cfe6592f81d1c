"""Read results CSVs (one row per attempt) into one typed DataFrame, telling a crash's cut line from a bad file.

Parsed with the csv module rather than `pandas.read_csv`, so a last line cut short by a crash can
be dropped with a warning while damage in the middle of a file is reported with its line number.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysched.analysis.errors import AnalysisInputError, AnalysisWarning
from raysched.results import sidecar
from raysched.results.figures import RATE_METRICS
from raysched.results.schema import (
    BASE_COLUMNS,
    NODE_COLUMNS,
    NUMERIC_COLUMNS,
    REQUIRED_COLUMNS,
    STATUSES,
    TEXT_COLUMNS,
)
from raysched.results.shared import SharedRecords

__all__ = ["COLUMNS", "SOURCE", "load"]

#: The columns `raysched submit` writes, in order (from `raysched.results.schema`); metric columns follow them.
COLUMNS: tuple[str, ...] = BASE_COLUMNS
#: The column `load` adds: the file each row came from (the path as given).
SOURCE = "source"
HINT = "pass the CSV written by `raysched submit --out`"


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
        raise AnalysisInputError(f"no CSV given; {HINT}")
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
    df.attrs["run_records"] = SharedRecords(records)  # not copied by every pandas operation
    return df


def _records(path: Path, name: str) -> list[list[str]]:
    """All non-blank CSV records of a file; unreadable files become one-line errors."""
    reader = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            records = list(reader)
    except UnicodeDecodeError:
        raise AnalysisInputError(f"{name}: not a text CSV (not UTF-8); {HINT}") from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 0
        raise AnalysisInputError(f"{name} line {line}: unreadable CSV ({exc}); {HINT}") from None
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
        raise AnalysisInputError(f"{name}: no such file; {HINT}")
    if path.is_dir():
        raise AnalysisInputError(f"{name} is a directory; pass the CSV files in it (e.g. {name}/*.csv)")
    records = _records(path, name)
    if not records:
        raise AnalysisInputError(f"{name}: the file is empty; {HINT}")

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
        raise AnalysisInputError(f"{name}: no complete result rows; {HINT}")

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
                raise AnalysisInputError(f"{name}: no complete result rows; {HINT}")
        else:
            what = (
                f"status {_clip(value)!r} is not one of {', '.join(STATUSES)}"
                if col == "status"
                else f"{col} holds {_clip(value)!r}, not a number"
            )
            raise AnalysisInputError(f"{name} line {row_lines[first_row]}: {what}; {HINT}")
    for col in COLUMNS:  # columns newer than the file (demand, spill, brain_wait_s) are empty
        if col not in typed.columns:
            typed[col] = math.nan if col in NUMERIC_COLUMNS else ""
    for col in TEXT_COLUMNS:
        typed[col] = typed[col].astype("str")  # pandas' text dtype, as read_csv would give
    typed[SOURCE] = name
    return typed


def _check_header(name: str, header: list[str]) -> None:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise AnalysisInputError(f"{name}: repeated columns {', '.join(dupes)}; {HINT}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise AnalysisInputError(f"{name} is not a raysched results CSV: missing columns {', '.join(missing)}; {HINT}")


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
        if col in NUMERIC_COLUMNS or col in RATE_METRICS:
            typed[col], mask = _numbers(frame[col])
            bad += [(int(i), col, str(frame[col].iloc[i])) for i in np.flatnonzero(mask)]
        elif col not in COLUMNS:
            parsed, mask = _numbers(frame[col])
            if not mask.any():
                typed[col] = parsed
    for col in NODE_COLUMNS:
        typed[col] = frame[col].replace("", None)
    unknown = ~frame["status"].isin(STATUSES).to_numpy()
    bad += [(int(i), "status", str(frame["status"].iloc[i])) for i in np.flatnonzero(unknown)]
    no_run = (frame["run_id"] == "").to_numpy()
    bad += [(int(i), "run_id", "") for i in np.flatnonzero(no_run)]
    return typed, bad


def _clip(value: str, width: int = 30) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"
