"""Which runs a results table holds, and the column label each gets in the summary.

A run is labelled by its policy, plus its job when the runs' jobs differ, plus the settings that
differ when runs share a label (from the sidecar records), plus a short run id when labels still collide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from raysched.analysis.errors import AnalysisInputError
from raysched.analysis.loading import SOURCE
from raysched.results.schema import REQUIRED_COLUMNS

__all__ = ["RunInfo", "require_columns", "run_labels", "runs"]


@dataclass(frozen=True)
class RunInfo:
    """One run (one ``run_id``) and the label its column gets."""

    run_id: str
    label: str
    policy: str
    job: str
    sources: tuple[str, ...] = field(default_factory=tuple)


def _short_ids(ids: Sequence[str], minimum: int = 6) -> dict[str, str]:
    """Shortest prefix or suffix (at least `minimum` chars) that tells the ids apart."""
    longest = max((len(i) for i in ids), default=0)
    for n in range(minimum, longest + 1):
        for short in ([i[:n] for i in ids], [i[-n:] for i in ids]):
            if len(set(short)) == len(ids):
                return dict(zip(ids, short, strict=True))
    return {i: i for i in ids}


def runs(df: pd.DataFrame) -> list[RunInfo]:
    """Runs in order of first appearance, labelled policy [+ job when jobs differ] [+ id when labels collide]."""
    require_columns(df)
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
    ("keys_per_node", "keys/node", "learned"),
    ("overcommit", "overcommit", "auto"),
    ("batch", "batch", "auto"),
    ("vnodes", "vnodes", "-"),
    ("max_inflight", "inflight", "auto"),
    ("seed", "seed", "none"),
    ("retries", "retries", "0"),
    ("executors", "executors", "auto"),
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
    return {r.run_id: r.label for r in runs(df)}


def require_columns(df: pd.DataFrame) -> None:
    """A frame not built by `load` fails here with one line, not with a KeyError deep inside a figure."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise AnalysisInputError(
            f"not a raysched results table: missing columns {', '.join(missing)}; "
            "build it with raysched.analysis.load()"
        )
    if df.empty:
        raise AnalysisInputError("no result rows to analyse; build the table with raysched.analysis.load()")
