"""`raysched simulate --sweep NAME=V1,V2,...`: one placement knob over several values, read as one table.

A user picks hash's load factor (or locality wait, or ring size) for their
workload by replaying their own trace under each value and reading the
trade-off: a looser bound keeps keys home (affinity, cache hits) at the price
of queueing on hot nodes (makespan, p95 wait). This module is the pure part:
the spec parsed with the same validators as the flags and the config file
(so ``off`` and ``auto`` mean what they mean everywhere), which policies a
knob touches, and the table of one row per setting. The replays themselves
are raysched.sim.replay's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from raysched.analysis import M_AFFINITY, M_MAKESPAN, M_SPILLED, M_THROUGHPUT, format_value
from raysched.analysis.metric_names import latency_name
from raysched.config import ConfigError, parse_auto_number, parse_load_factor
from raysched.policies import HashPolicy, PolicyOptions
from raysched.sim import SimInputError
from raysched.sim.fidelity import HIT_RATE

__all__ = [
    "SWEEPABLE",
    "SWEEP_METRICS",
    "Sweep",
    "SweepPoint",
    "parse_sweep",
    "render_sweep",
    "sweep_records",
    "sweep_table",
]

M_WAIT_P95 = latency_name("wait_s", "p95")
# The columns of the table, in order; the cache hit rate only when a cache is modelled.
SWEEP_METRICS = (M_MAKESPAN, M_THROUGHPUT, M_WAIT_P95, M_AFFINITY, HIT_RATE, M_SPILLED)


def _vnodes(value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise ConfigError(f"vnodes must be a whole number from 1 to 100,000, got {value!r}")
    return int(text)


@dataclass(frozen=True)
class _Knob:
    option: str  # the PolicyOptions field it sets
    short: str  # how analyze labels it (`hash c=1.25`)
    none: str  # what None means for it, as the user writes it
    parse: Callable[[str], Any]


# Knobs a sweep can turn: the CLI's name -> the option. All of them are hash's (ring and bounded loads).
SWEEPABLE: dict[str, _Knob] = {
    "load-factor": _Knob("load_factor", "c", "off", parse_load_factor),
    "locality-wait": _Knob("locality_wait", "wait", "auto", lambda v: parse_auto_number("locality wait", v, 0)),
    "vnodes": _Knob("vnodes", "vnodes", "-", _vnodes),
}


@dataclass(frozen=True)
class SweepPoint:
    """One setting of the knob: the value as the user wrote it (the table's label) and as the policy takes it."""

    label: str
    value: Any


@dataclass(frozen=True)
class Sweep:
    """The knob and its settings, in the order given."""

    name: str
    points: tuple[SweepPoint, ...]

    @property
    def option(self) -> str:
        return SWEEPABLE[self.name].option

    def column(self, policy: str, point: SweepPoint) -> str:
        """How the run is named in figures: as `raysched analyze` labels runs that differ in one setting."""
        return f"{policy} {SWEEPABLE[self.name].short}={point.label}"

    def tag(self, point: SweepPoint) -> str:
        """A run-id-safe tag for one setting (`c1.25`, `coff`): each setting's rows form their own run in --out."""
        return f"{SWEEPABLE[self.name].short}{point.label}"

    def options(self, base: PolicyOptions, point: SweepPoint) -> PolicyOptions:
        """The policy's options with this setting; SimInputError when the policy refuses it."""
        try:
            return replace(base, **{self.option: point.value})
        except (TypeError, ValueError) as err:
            raise SimInputError(f"--sweep {self.name}={point.label}: {err}") from None

    def affects(self, policy: object) -> bool:
        """Whether the knob changes what this (built) policy does: the hash policy and its subclasses read it."""
        return isinstance(policy, HashPolicy)


def parse_sweep(text: str) -> Sweep:
    """``NAME=V1,V2,...`` -> Sweep; SimInputError (one line) on an unknown name, a bad or repeated value, no value."""
    known = ", ".join(SWEEPABLE)
    name, sep, values = text.partition("=")
    name = name.strip().lower()
    if not sep or not name:
        raise SimInputError(f"--sweep takes NAME=V1,V2,... (NAME one of {known}), got {text!r}")
    knob = SWEEPABLE.get(name)
    if knob is None:
        raise SimInputError(f"--sweep cannot turn {name!r}; it can turn {known}")
    labels = [v.strip() for v in values.split(",")]
    if not any(labels):
        raise SimInputError(f"--sweep {name}= lists no values; give two or more, e.g. {name}={_example(name)}")
    if "" in labels:
        raise SimInputError(f"--sweep {name}={values} has an empty value; separate values with single commas")
    points: list[SweepPoint] = []
    seen: dict[Any, str] = {}
    for label in labels:
        try:
            value = knob.parse(label)
        except ConfigError as err:
            raise SimInputError(f"--sweep {name}: {err}") from None
        if value in seen:
            raise SimInputError(f"--sweep {name}: {label!r} repeats {seen[value]!r}")
        seen[value] = label
        points.append(SweepPoint(_label(value, knob.none), value))
    return Sweep(name, tuple(points))


def _example(name: str) -> str:
    return {"load-factor": "1.1,1.25,1.5,2,off", "locality-wait": "0,0.5,2,auto", "vnodes": "10,100,1000"}[name]


def _label(value: Any, none: str) -> str:
    """The setting as a short, stable label, as analyze writes it in `hash c=2`: 2.0 -> '2', None -> 'off'/'auto'."""
    return none if value is None else f"{value:g}"  # numbers only: vnodes <= 100,000 never turns exponential


def sweep_table(rows: Sequence[tuple[str, str, pd.Series]], cached: bool) -> pd.DataFrame:
    """One row per (policy, setting), in the order run: the sweep's figures, named as `raysched analyze` names them.

    ``rows`` holds (policy, setting label, that run's summary column). A setting of "-" marks a policy the
    knob does not touch, replayed once as a reference.
    """
    metrics = [m for m in SWEEP_METRICS if cached or m != HIT_RATE]
    records = [
        {"policy": policy, "setting": setting, **{m: float(summary.get(m, math.nan)) for m in metrics}}
        for policy, setting, summary in rows
    ]
    return pd.DataFrame.from_records(records, columns=["policy", "setting", *metrics])


def render_sweep(table: pd.DataFrame, name: str) -> str:
    """The table for the terminal: the knob's setting first (and the policy when more than one was replayed)."""
    metrics = [c for c in table.columns if c not in ("policy", "setting")]
    several = table["policy"].nunique() > 1
    head = [*(["policy"] if several else []), name, *metrics]
    body = [
        [*([str(r["policy"])] if several else []), str(r["setting"]), *[format_value(m, r[m]) for m in metrics]]
        for _, r in table.iterrows()
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    first = 2 if several else 1

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i < first else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule, *(line(r) for r in body)])


def sweep_records(table: pd.DataFrame, name: str) -> list[dict[str, Any]]:
    """The table as JSON-ready records: {"setting", "knob", "policy", metrics...}; NaN becomes None."""
    out = []
    for _, r in table.iterrows():
        metrics = {
            str(m): (None if math.isnan(v) else float(v)) for m, v in r.items() if m not in ("policy", "setting")
        }
        out.append({"setting": r["setting"], "knob": name, "policy": r["policy"], **metrics})
    return out
