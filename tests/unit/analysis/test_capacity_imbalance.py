"""Imbalance weighted by capacity (issue 30): 1.0 means every node ran work in proportion to its CPUs.

The default embedded cluster has nodes of 1, 2, 2 and 4 CPUs: a perfectly proportional run of 90 tasks
(10, 20, 20, 40) reads max/mean 40 / 22.5 = 1.78 unweighted, and 1.00 by capacity.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_summary import row, write_csv

from raysched.analysis import load, summarize
from raysched.analysis.plots import plot_figure
from raysched.results import sidecar
from raysched.results.figures import capacity_imbalance, imbalance
from raysched.results.outcome import RunOutcome
from raysched.results.report import format_summary

N1, N2, N3, N4 = ("a1" * 28, "b2" * 28, "c3" * 28, "d4" * 28)
CPUS = {N1: 1.0, N2: 2.0, N3: 2.0, N4: 4.0}
PROPORTIONAL = {N1: 10, N2: 20, N3: 20, N4: 40}


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (PROPORTIONAL, 1.0),  # 10/1 = 20/2 = 40/4 = 10 tasks per CPU everywhere
        ({N1: 20, N2: 20, N3: 20, N4: 20}, 2.25),  # even counts: N1 runs 20 per CPU; the run 80 / 9 CPUs = 8.89
        ({N1: 0, N2: 20, N3: 20, N4: 40}, 1.0),  # over the nodes used: 80 tasks on 8 CPUs, 10 per CPU each
        ({N4: 7}, 1.0),  # one node used
    ],
)
def test_capacity_imbalance_arithmetic(tasks: dict[str, int], expected: float) -> None:
    assert capacity_imbalance(tasks, CPUS) == pytest.approx(expected)


def test_proportional_reads_one_by_capacity_but_not_unweighted() -> None:
    assert imbalance(PROPORTIONAL.values()) == pytest.approx(1.78, abs=0.005)  # what the docs called "uneven"
    assert capacity_imbalance(PROPORTIONAL, CPUS) == pytest.approx(1.0)


def test_unknown_capacity_or_no_tasks_is_nan() -> None:
    assert math.isnan(capacity_imbalance(PROPORTIONAL, {N1: 1.0}))  # N2..N4 ran tasks, their size is unknown
    assert math.isnan(capacity_imbalance({}, CPUS))
    assert math.isnan(capacity_imbalance({N1: 3}, {N1: 0.0}))


def _proportional_run(tmp_path: Path, with_sidecar: bool) -> Path:
    rows, task = [], 0
    for node, count in PROPORTIONAL.items():
        for _ in range(count):
            rows.append(row("run-1", "hash", task, f"k{task}", 1, "ok", node, 10.0, 11.0, 12.0))
            task += 1
    path = write_csv(tmp_path / "run.csv", rows)
    if with_sidecar:
        nodes = [{"node_id": n, "capacity": {"CPU": c, "memory": 1e9}} for n, c in CPUS.items()]
        sidecar.record_run(path, {"run_id": "run-1", "cluster": {"nodes": nodes}})
    return path


def test_analyze_prints_the_weighted_imbalance_from_the_sidecar_capacities(tmp_path: Path) -> None:
    summary = summarize(load([_proportional_run(tmp_path, with_sidecar=True)]))["hash"]
    assert summary["imbalance by capacity (max/mean)"] == pytest.approx(1.0)
    assert summary["imbalance (max/mean)"] == pytest.approx(40 / 22.5)  # kept, unweighted, after it
    rows = list(summarize(load([tmp_path / "run.csv"])).index)
    assert rows.index("imbalance by capacity (max/mean)") < rows.index("imbalance (max/mean)")


def test_without_a_sidecar_the_weighted_imbalance_is_unknown(tmp_path: Path) -> None:
    summary = summarize(load([_proportional_run(tmp_path, with_sidecar=False)]))["hash"]
    assert math.isnan(summary["imbalance by capacity (max/mean)"])
    assert summary["imbalance (max/mean)"] == pytest.approx(40 / 22.5)


def test_the_run_summary_prints_the_weighted_imbalance_first() -> None:
    run = RunOutcome("r", ok=90, first_submitted=0.0, first_started=1.0, last_finished=2.0, node_weights=CPUS)
    run.per_node.update(PROPORTIONAL)
    line = next(x for x in format_summary(run, "j", "hash").splitlines() if "nodes used" in x)
    assert line.split("max/mean by capacity ")[1].startswith("1.00") and line.endswith("per node 1.78")
    assert "4 CPUs" in format_summary(run, "j", "hash")
    assert "1 CPU" in format_summary(run, "j", "hash") and "1 CPUs" not in format_summary(run, "j", "hash")
    run.node_weights = {}
    assert "by capacity" not in format_summary(run, "j", "hash")


def test_the_plot_marks_each_nodes_share_by_capacity(tmp_path: Path) -> None:
    fig = plot_figure(load([_proportional_run(tmp_path, with_sidecar=True)]))
    panel = fig.subfigs[0].axes[0]
    assert "max/mean by capacity 1.00" in panel.get_title()
    assert [t.get_text() for t in panel.get_legend().get_texts()] == ["share by capacity"]
    (tmp_path / "bare").mkdir()
    unweighted = plot_figure(load([_proportional_run(tmp_path / "bare", with_sidecar=False)]))
    assert "mean over used nodes" in [t.get_text() for t in unweighted.subfigs[0].axes[0].get_legend().get_texts()]
