"""One PNG comparing runs: per-node load, throughput over time, run-time CDF; or a sweep's frontier.

Drawn with matplotlib's Agg canvas on a bare `Figure` (no pyplot), so it works
headless and never switches the backend of a notebook that imports it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from raysched.analysis.errors import AnalysisInputError
from raysched.analysis.figures import node_weights, per_node
from raysched.analysis.labels import run_labels
from raysched.analysis.metric_names import M_AFFINITY, M_HIT_RATE, M_MAKESPAN
from raysched.results.figures import capacity_imbalance, imbalance
from raysched.results.schema import Status, short_node

__all__ = ["bin_width", "frontier_figure", "plot_figure", "write_frontier", "write_plot"]

_PANELS_PER_ROW = 3
_NICE = (1, 2, 5)


def bin_width(span_s: float, target_bins: int = 30) -> float:
    """A round bin width (1, 2 or 5 × 10^k s) giving about `target_bins` bins over `span_s`."""
    if not span_s > 0:
        return 1.0
    raw = span_s / target_bins
    exp = math.floor(math.log10(raw))
    for step in _NICE:
        if step * 10**exp >= raw:
            return float(step * 10**exp)
    return float(10 ** (exp + 1))


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def plot_figure(df: pd.DataFrame) -> Figure:
    """Build the comparison figure for every run in `df` (rows from `raysched.analysis.load`)."""
    labels = run_labels(df)
    nodes = per_node(df)
    colors = dict(zip(labels.values(), _colors(len(labels)), strict=True))
    n_runs = len(labels)
    cols = min(n_runs, _PANELS_PER_ROW)
    node_rows = math.ceil(n_runs / cols)
    fig = Figure(figsize=(max(12.0, 4.2 * cols), 3.6 * node_rows + 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = cast(Any, fig.subfigures(2, 1, height_ratios=[3.6 * node_rows, 4.4]))
    top.suptitle("Tasks per node (ok rows)", fontsize="large", fontweight="bold")
    node_axes = np.atleast_1d(top.subplots(node_rows, cols, sharey=True, squeeze=False)).ravel()
    for ax, (run_id, label) in zip(node_axes[:n_runs], labels.items(), strict=True):
        _node_panel(ax, nodes[nodes["run"] == label], label, colors[label], node_weights(df, run_id))
    for ax in node_axes[n_runs:]:
        ax.set_visible(False)
    tallest = int(nodes["tasks"].max()) if len(nodes) else 0
    if tallest:  # shared y axis: headroom over the tallest bar of any run, so legends never cover a bar
        node_axes[0].set_ylim(0, tallest * 1.18)
    tp_ax, cdf_ax = bottom.subplots(1, 2)
    ok = df[df["status"] == Status.OK.value]
    groups = dict(tuple(ok.groupby("run_id", sort=False)))
    _throughput_panel(tp_ax, groups, labels, colors)
    _cdf_panel(cdf_ax, groups, labels, colors)
    return fig


def _node_panel(ax, rows: pd.DataFrame, label: str, color, weights: dict[str, float]) -> None:
    """Ok tasks per node; each bar's proportional share (by capacity) marked when the capacities are known."""
    total = int(rows["tasks"].sum())
    used = rows[rows["tasks"] > 0]
    counts = {str(node): float(count) for node, count in zip(used["node"], used["tasks"], strict=True)}
    by_capacity = capacity_imbalance(counts, weights)
    if len(used) and not math.isnan(by_capacity):
        detail = f"{total:,} ok tasks on {len(used)} nodes, max/mean by capacity {by_capacity:.2f}"
    elif len(used):
        detail = f"{total:,} ok tasks on {len(used)} nodes, max/mean {imbalance(used['tasks']):.2f}"
    else:
        detail = "no ok tasks"
    ax.set_title(f"{label}\n{detail}", fontsize="medium")
    if not len(used):
        ax.text(0.5, 0.5, "no ok tasks", ha="center", va="center", transform=ax.transAxes, color="gray")
    if rows.empty:
        ax.set_xticks([])
        return
    x = np.arange(len(rows))
    ax.bar(x, rows["tasks"].to_numpy(), color=color, edgecolor="black", linewidth=0.4)
    if len(used) and not math.isnan(by_capacity):
        # what each used node would run were the ok tasks spread in proportion to its CPUs
        capacity = sum(weights[node] for node in counts)
        fair = [total * weights[str(node)] / capacity if str(node) in counts else math.nan for node in rows["node"]]
        ax.hlines(fair, x - 0.4, x + 0.4, color="black", linestyle="--", linewidth=0.9, label="share by capacity")
        ax.legend(loc="upper right", fontsize="small")
    elif len(used):
        ax.axhline(used["tasks"].mean(), color="black", linestyle="--", linewidth=0.8, label="mean over used nodes")
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xticks(x)
    many = len(rows) > 12
    ax.set_xticklabels(
        [short_node(n) for n in rows["node"]],
        rotation=90 if many else 35,
        ha="center" if many else "right",
        fontsize="x-small" if many else "small",
        family="monospace",
    )
    ax.set_xlabel("node (id cut to 8 chars)")
    ax.set_ylabel("ok tasks")
    ax.grid(axis="y", alpha=0.3)


def _throughput_panel(ax, groups: dict, labels: dict[str, str], colors: dict) -> None:
    starts = {rid: g["submitted_at"].min() for rid, g in groups.items()}
    spans = [g["finished_at"].max() - starts[rid] for rid, g in groups.items()]
    width = bin_width(max([s for s in spans if pd.notna(s)], default=0.0))
    for rid, label in labels.items():
        g = groups.get(rid)
        if g is None:
            continue
        t = (g["finished_at"] - starts[rid]).dropna().to_numpy()
        if not len(t):
            continue
        edges = np.arange(0.0, t.max() + width, width)
        if len(edges) < 2:
            edges = np.array([0.0, width])
        counts, edges = np.histogram(t, bins=edges)
        ax.stairs(counts / width, edges, label=label, color=colors[label], linewidth=1.6)
    ax.set_title(f"Throughput over time ({width:g} s bins)")
    ax.set_xlabel("seconds since the run's first submission (s)")
    ax.set_ylabel("completions per second (tasks/s)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title="run", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no ok tasks", ha="center", va="center", transform=ax.transAxes)


def _cdf_panel(ax, groups: dict, labels: dict[str, str], colors: dict) -> None:
    everything = []
    for rid, label in labels.items():
        g = groups.get(rid)
        if g is None:
            continue
        v = np.sort(g["run_s"].dropna().to_numpy())
        if not len(v):
            continue
        everything.append(v)
        y = np.arange(1, len(v) + 1) / len(v)
        ax.step(
            v, y, where="post", label=f"{label} (p50 {np.quantile(v, 0.5):.3g} s)", color=colors[label], linewidth=1.6
        )
    if everything:
        allv = np.concatenate(everything)
        lo, hi = allv.min(), allv.max()
        if lo > 0 and hi / lo > 100:  # spans orders of magnitude: a log axis keeps the body readable
            ax.set_xscale("log")
        ax.legend(title="run", fontsize="small", loc="lower right")
    else:
        ax.text(0.5, 0.5, "no ok tasks", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Task run time CDF (run_s, ok rows)")
    ax.set_xlabel("run_s = finished_at − started_at (s)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("fraction of ok tasks")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)


def write_plot(df: pd.DataFrame, path: str | Path, dpi: int = 110) -> Path:
    """Write the comparison figure; a path without a suffix gets .png."""
    return _save(plot_figure(df), path, dpi)


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    """Save a figure as PNG (a path without a suffix gets .png); AnalysisInputError (one line) when it cannot."""
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise AnalysisInputError(
            f"cannot write the plot to {out}: {exc.strerror or exc}{where}; pick a path in a writable folder"
        ) from None
    except ValueError as exc:  # e.g. an image format matplotlib does not know
        raise AnalysisInputError(f"cannot write the plot to {out}: {exc}; use a .png path") from None
    return out


# --------------------------------------------------------------------------- a sweep's frontier

_LABEL_OFFSETS = ((6, 6), (6, -13), (-22, 6), (-22, -13))  # points: up right, down right, up left, down left


def frontier_figure(table: pd.DataFrame, knob: str) -> Figure:
    """Makespan (x) against cache hit rate (y; key affinity without a cache), one labelled point per setting.

    ``table`` is a sweep table (raysched.sim.sweep.sweep_table): columns policy, setting and the figures. The
    points of one policy are joined in the order given, so the curve reads as the knob turns; a policy the
    sweep left alone (setting "-") is one hollow reference point. Up and left is better: shorter and more local.
    """
    y_name = M_HIT_RATE if M_HIT_RATE in table.columns and table[M_HIT_RATE].notna().any() else M_AFFINITY
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    policies = list(dict.fromkeys(table["policy"]))
    colors = dict(zip(policies, _colors(len(policies)), strict=True))
    for policy in policies:
        rows = table[table["policy"] == policy]
        x, y = rows[M_MAKESPAN].to_numpy(dtype=float), rows[y_name].to_numpy(dtype=float)
        reference = bool((rows["setting"] == "-").all())
        if reference:
            ax.scatter(x, y, s=60, facecolors="none", edgecolors=[colors[policy]], linewidths=1.6, label=policy)
        else:
            ax.plot(x, y, "-o", color=colors[policy], linewidth=1.4, markersize=7, label=f"{policy}: {knob}")
        for i, (xi, yi, setting) in enumerate(zip(x, y, rows["setting"], strict=True)):
            if math.isfinite(xi) and math.isfinite(yi):
                text = policy if reference else str(setting)
                # labels take turns around their point, so settings that land close together stay readable
                offset = _LABEL_OFFSETS[i % len(_LABEL_OFFSETS)]
                ax.annotate(text, (xi, yi), textcoords="offset points", xytext=offset, fontsize="small")
    ax.set_title(f"Trade-off as {knob} turns (up and left is better)")
    ax.set_xlabel("makespan (s): shorter is better")
    ax.set_ylabel(f"{y_name}: higher is better")
    ax.set_ylim(bottom=0, top=105.0)  # a percentage
    # from 0 on both axes: a flat curve looks flat, and what the knob is worth reads at a glance
    longest = float(np.nanmax(table[M_MAKESPAN].to_numpy(dtype=float), initial=0.0))
    ax.set_xlim(0, longest * 1.15 if longest > 0 else 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    return fig


def write_frontier(table: pd.DataFrame, path: str | Path, knob: str, dpi: int = 110) -> Path:
    """Write a sweep's frontier (`frontier_figure`); a path without a suffix gets .png."""
    if table.empty:
        raise AnalysisInputError("the sweep has no settings to plot")
    return _save(frontier_figure(table, knob), path, dpi)
