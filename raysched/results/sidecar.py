"""The sidecar ``<name>.json`` beside each results CSV: what produced every run in it.

Ray Tune writes ``params.json`` beside ``progress.csv``; raysched writes, per
run id, the job file, the policy and every placement option, the cluster's
nodes and capacities at the start, Ray and raysched versions, start and end
times, the command line, and the run's outcome. ``--resume`` appends its run.

Reading never fails: a missing or damaged sidecar gives no runs (and a
warning through the callback), so `raysched analyze` always works on the CSV.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["read_runs", "record_run", "sidecar_path", "update_run"]

FORMAT = 1


def sidecar_path(csv_path: Path) -> Path:
    """``results/x.csv`` -> ``results/x.json``."""
    return csv_path.with_suffix(".json")


def read_runs(csv_path: Path, on_warning: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """run_id -> the record of that run; {} when there is no sidecar or it cannot be read."""
    path = sidecar_path(csv_path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        runs = data["runs"]
        return {str(run["run_id"]): dict(run) for run in runs}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if on_warning is not None:
            on_warning(f"{path}: cannot read the run records ({type(err).__name__}); analysing the CSV alone")
        return {}


def record_run(csv_path: Path, record: Mapping[str, Any]) -> None:
    """Add a run (a fresh submission, or a --resume appended to the same CSV)."""
    runs = list(read_runs(csv_path).values())
    runs.append(dict(record))
    _write(sidecar_path(csv_path), runs)


def update_run(csv_path: Path, run_id: str, changes: Mapping[str, Any]) -> None:
    """Fill in what is known at the end of a run (end time, outcome, brain counters)."""
    runs = read_runs(csv_path)
    if run_id not in runs:
        return
    runs[run_id].update(changes)
    _write(sidecar_path(csv_path), list(runs.values()))


def _write(path: Path, runs: list[dict[str, Any]]) -> None:
    """Atomically: a crash mid-write leaves the old file, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "runs": runs}, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
