"""The summary printed at the end of `raysched submit`, on a real RunOutcome built the way the run loop fills it."""

from __future__ import annotations

from pathlib import Path

from raysched.results.outcome import RunOutcome
from raysched.results.report import format_summary

A, B, C = "a" * 56, "b" * 56, "c" * 56


def _finished_run() -> RunOutcome:
    """7 ok tasks over 2.5 s after 0.5 s of start-up: 4 on A, 2 on B, 1 on C; keys k1 (A, A) and k2 (B, C); 70 items."""
    run = RunOutcome("run-1", out_path=Path("out/results.csv"), wall_s=3.5)
    run.first_submitted, run.first_started, run.last_finished = 9.5, 10.0, 12.5
    for node, tasks in ((A, 4), (B, 2), (C, 1)):
        run.ok += tasks
        run.per_node[node] += tasks
    for key, node in (("k1", A), ("k1", A), ("k2", B), ("k2", C)):
        run.ran(key, node)
    run.failed, run.retried = 1, 2
    run.metric_sums = {"items": 70.0}
    run.brain_wait_s = 0.7
    return run


def _line(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


def test_heading_counts_and_the_results_path() -> None:
    text = format_summary(_finished_run(), "jobs/x.py", "hash")
    assert text.splitlines()[0] == "raysched: jobs/x.py under hash  (run run-1)"
    assert _line(text, "tasks ok").split() == ["tasks", "ok", "7"]
    assert _line(text, "tasks failed").split() == ["tasks", "failed", "1"]
    assert _line(text, "retried").split() == ["retried", "2"]
    assert _line(text, "results").split() == ["results", str(Path("out/results.csv"))]


def test_counts_that_are_zero_are_left_out() -> None:
    text = format_summary(_finished_run(), "j", "p")
    for absent in ("cancelled", "infeasible", "skipped", "spilled", "hot keys", "decisions", "interrupted"):
        assert absent not in text, absent


def test_throughput_and_rates_use_the_makespan_not_the_wall_time() -> None:
    text = format_summary(_finished_run(), "j", "p")
    assert _line(text, "wall time").split()[2:4] == ["3.50", "s"]
    assert _line(text, "makespan").split()[1:3] == ["2.50", "s"]  # first start 10.0 to last finish 12.5
    assert _line(text, "start-up").split()[1:3] == ["0.50", "s"]  # first submission 9.5 to first start 10.0
    assert _line(text, "tasks/s").split() == ["tasks/s", "2.8"]  # 7 / 2.5
    assert _line(text, "items/s").split() == ["items/s", "28.0"]  # 70 / 2.5
    assert "bytes/s" not in text  # the job reported no bytes


def test_nodes_most_loaded_first_with_their_share_and_the_imbalance() -> None:
    text = format_summary(_finished_run(), "j", "p")
    # 4, 2, 1 tasks: mean 7/3, max/mean 4 / (7/3) = 1.71
    assert _line(text, "nodes used").split()[-1] == "1.71"
    node_lines = [line.split() for line in text.splitlines() if line.startswith("    ")]
    assert node_lines == [["aaaaaaaa", "4", "57.1%"], ["bbbbbbbb", "2", "28.6%"], ["cccccccc", "1", "14.3%"]]


def test_key_affinity_and_brain_wait() -> None:
    text = format_summary(_finished_run(), "j", "p")
    assert "50% of 2 keys ran on one node" in _line(text, "key affinity")  # k1 stayed on A, k2 split
    assert "100.0 ms per task" in _line(text, "brain wait")  # 0.7 s over 7 ok tasks


def test_a_run_without_ok_tasks_prints_no_rates() -> None:
    text = format_summary(RunOutcome("r", failed=3, wall_s=1.0), "j", "p")
    assert "tasks/s" not in text and "nodes used" not in text and "brain wait" not in text
    assert _line(text, "tasks failed").split()[-1] == "3"


def test_spills_and_an_interrupted_run_are_explained() -> None:
    run = _finished_run()
    run.spills.update({"bound": 2, "wait": 1})
    run.interrupted = True
    text = format_summary(run, "j", "p")
    assert _line(text, "spilled").split()[1] == "3"
    assert "(1 wait" not in text and "2 bound, 1 wait" in text  # reasons in name order
    assert "rerun with --resume" in _line(text, "interrupted")


def test_zero_makespan_prints_no_items_rate() -> None:
    run = RunOutcome("r", ok=1, first_submitted=5.0, last_finished=5.0, metric_sums={"items": 3.0})
    assert "items/s" not in format_summary(run, "j", "p")


def test_a_run_of_calls_reports_key_affinity_by_replica() -> None:
    run = RunOutcome("r", ok=3, calls=3, wall_s=1.0)
    run.first_submitted, run.last_finished = 0.0, 1.0
    for key, replica in (("m1", "Shard#0"), ("m1", "Shard#0"), ("m2", "Shard#1")):
        run.ran(key, replica)
    assert "100% of 2 keys ran on one replica" in _line(format_summary(run, "j", "hash"), "key affinity")
    run.ok += 1  # and one task beside the calls
    assert "ran on one node or replica" in _line(format_summary(run, "j", "hash"), "key affinity")
