"""How well the model reproduces a recorded run: measured against simulated, figure by figure.

Both sides are computed the same way, from the first task start (virtual
second 0 is the recorded first start; a task drawn before it counts as
submitted then, since start-up is not placement): the makespan and throughput
are `raysched analyze`'s (first start to last finish, `raysched.results.figures.makespan`),
so measured figures equal what analyze prints for the CSV; wait is a task's start less
its submission or the first start, whichever is later (analyze's `wait_s` also counts the
start-up). Keys are `raysched analyze`'s metric names, plus the simulator's cache hit rate row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raysched.analysis import M_CV, M_HIT_RATE, M_IMBALANCE, M_MAKESPAN, M_NODES, M_THROUGHPUT
from raysched.analysis.metric_names import latency_name
from raysched.results import figures
from raysched.results.schema import short_node
from raysched.sim.trace import Trace

__all__ = ["HEADLINE", "HIT_RATE", "Fidelity", "fidelity_metrics", "measured_metrics"]

HIT_RATE = M_HIT_RATE  # one name for the figure, as analyze prints it
WAIT_P50, WAIT_P95 = latency_name("wait_s", "p50"), latency_name("wait_s", "p95")
METRICS = (M_THROUGHPUT, M_MAKESPAN, WAIT_P50, WAIT_P95, M_NODES, M_IMBALANCE, M_CV, HIT_RATE)
HEADLINE = (M_THROUGHPUT, WAIT_P95, HIT_RATE)  # the figures the one-line verdict weighs


def fidelity_metrics(
    submitted: np.ndarray,
    started: np.ndarray,
    finished: np.ndarray,
    nodes: np.ndarray,
    hits: np.ndarray | None,
) -> dict[str, Any]:
    """The compared figures of one run's ok tasks (times in any clock; see the module docstring)."""
    out: dict[str, Any] = dict.fromkeys(METRICS, math.nan)
    done = np.isfinite(started) & np.isfinite(finished)
    if not done.any():
        return out
    t0 = float(started[done].min())
    span = figures.makespan(t0, float(finished[done].max()))
    out[M_MAKESPAN] = span
    out[M_THROUGHPUT] = figures.tasks_per_s(int(done.sum()), span)
    wait = started[done] - np.maximum(np.nan_to_num(submitted[done], nan=t0), t0)
    out[WAIT_P50], out[WAIT_P95] = (float(q) for q in np.quantile(wait, [0.5, 0.95]))
    names, counts = np.unique(nodes[done].astype(str), return_counts=True)
    out[M_NODES] = float(len(names))
    out[M_IMBALANCE] = figures.imbalance(counts)
    out[M_CV] = figures.cv(counts)
    if hits is not None:
        out[HIT_RATE] = figures.hit_rate(hits[done])
    else:
        del out[HIT_RATE]
    out["tasks per node"] = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
    return out


def measured_metrics(trace: Trace) -> dict[str, Any]:
    """The compared figures of the recorded run."""
    submitted = trace.started_at - trace.wait_s
    return fidelity_metrics(
        submitted, trace.started_at, trace.started_at + trace.run_s, trace.node_ran, trace.cache_hit
    )


def _error(measured: Any, simulated: Any) -> float:
    if not isinstance(measured, float | int) or not isinstance(simulated, float | int):
        return math.nan
    if not (math.isfinite(measured) and math.isfinite(simulated)) or measured == 0:
        return 0.0 if measured == simulated else math.nan
    return (simulated - measured) / abs(measured)


@dataclass
class Fidelity:
    """Measured against simulated for the run replayed under its recorded policy on its recorded cluster."""

    policy: str
    measured: dict[str, Any]
    simulated: dict[str, Any]
    error: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.error = {m: _error(self.measured.get(m), self.simulated.get(m)) for m in METRICS if m in self.measured}

    def worst(self) -> tuple[str, float]:
        """The largest relative error among throughput, p95 wait and hits (the one-line verdict)."""
        errors = [(m, self.error[m]) for m in HEADLINE if m in self.error and math.isfinite(self.error[m])]
        if not errors:
            return "", math.nan
        return max(errors, key=lambda e: abs(e[1]))

    def line(self) -> str:
        """One line for stderr: how far to trust a what-if answer from this trace."""
        parts = [f"throughput {_signed(self.error.get(M_THROUGHPUT))}", f"p95 wait {_signed(self.error.get(WAIT_P95))}"]
        if HIT_RATE in self.error:
            points = self.simulated[HIT_RATE] - self.measured[HIT_RATE]
            parts.append(f"cache hits {_signed(self.error[HIT_RATE])} ({points:+.1f} points)")
        metric, worst = self.worst()
        verdict = "n/a" if not math.isfinite(worst) else f"{abs(worst) * 100:.0f}% ({_short(metric)})"
        return (
            f"model fidelity: this run replayed under {self.policy} on its recorded cluster: "
            f"{', '.join(parts)}; largest error {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        """``{"measured", "simulated", "error"}`` keyed by metric names (NaN as None)."""
        return {
            "policy": self.policy,
            "measured": _plain(self.measured),
            "simulated": _plain(self.simulated),
            "error": _plain(self.error),
        }

    def table(self) -> str:
        """Measured and simulated side by side, with the relative error of each figure, then tasks per node."""
        rows = [["metric", "measured", "simulated", "error"]]
        for metric in METRICS:
            if metric not in self.measured:
                continue
            m, s, e = self.measured[metric], self.simulated.get(metric, math.nan), self.error[metric]
            rows.append([metric, _fmt(m), _fmt(s), _signed(e)])
        rows.append(["", "", "", ""])
        rows.append(["tasks per node", "measured", "simulated", ""])
        mine: dict[str, int] = self.measured.get("tasks per node", {})
        theirs: dict[str, int] = self.simulated.get("tasks per node", {})
        for node in sorted(set(mine) | set(theirs), key=lambda n: -mine.get(n, 0)):
            rows.append([f"  {short_node(node)}", str(mine.get(node, 0)), str(theirs.get(node, 0)), ""])
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]).rstrip()
            for r in rows
        )


def _short(metric: str) -> str:
    return {M_THROUGHPUT: "throughput", WAIT_P95: "p95 wait", HIT_RATE: "cache hits"}.get(metric, metric)


def _signed(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:+.0f}%"


def _fmt(value: Any) -> str:
    if not isinstance(value, float | int) or not math.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
