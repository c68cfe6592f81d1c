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
        run.task_keys.ran(key, node)
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
    # Each node ran one distinct key (k1 on A; k2 on B and C); no task reported cache_hit: no hit rate.
    assert node_lines == [
        ["aaaaaaaa", "4", "57.1%", "1", "key"],
        ["bbbbbbbb", "2", "28.6%", "1", "key"],
        ["cccccccc", "1", "14.3%", "1", "key"],
    ]


def test_a_node_that_thrashes_shows_its_keys_and_hit_rate() -> None:
    """Issue 29: per node, the distinct keys its tasks ran and its hit rate, so a node that thrashes shows."""
    run = RunOutcome("run-2", wall_s=2.0)
    run.first_submitted, run.first_started, run.last_finished = 0.0, 0.0, 1.0
    for i in range(12):  # A: 12 tasks of 12 keys, every one a miss; B: 4 tasks of one key, 3 hits
        run.ok += 1
        run.per_node[A] += 1
        run.task_keys.ran(f"a{i}", A)
        run.node_hits[A] = (0.0, i + 1)
    for i in range(4):
        run.ok += 1
        run.per_node[B] += 1
        run.task_keys.ran("b", B)
        run.node_hits[B] = (float(min(i, 3)), i + 1)
    text = format_summary(run, "j", "hash")
    node_lines = {line.split()[0]: line.split()[3:] for line in text.splitlines() if line.startswith("    ")}
    assert node_lines["aaaaaaaa"] == ["12", "keys", "hits", "0.0%"]
    assert node_lines["bbbbbbbb"] == ["1", "key", "hits", "75.0%"]


def test_a_run_without_keys_shows_no_key_count_per_node() -> None:
    run = RunOutcome("run-3", wall_s=1.0)
    run.first_submitted, run.first_started, run.last_finished = 0.0, 0.0, 1.0
    for task_id in range(3):
        run.ok += 1
        run.per_node[A] += 1
        run.task_keys.ran(str(task_id), A, task_id)  # keyed by its own task id: no key to keep
    text = format_summary(run, "j", "random")
    assert [line.split() for line in text.splitlines() if line.startswith("    ")] == [["aaaaaaaa", "3", "100.0%"]]


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
    run.task_keys.spills.update({"bound": 2, "wait": 1})
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
        run.per_replica[replica] += 1
        run.call_keys.ran(key, replica)
    assert "100% of 2 keys ran on one replica" in _line(format_summary(run, "j", "hash"), "key affinity")
    run.ok += 1  # and one task beside the calls: each kind says where its keys ran
    run.task_keys.ran("t1", A)
    text = format_summary(run, "j", "hash")
    assert "100% of 1 task keys ran on one node" in text and "100% of 2 call keys ran on one replica" in text


# -- issue 30: a summary that never contradicts itself -----------------------------------------------------------


def _hash_run(spills: list[tuple[str, int, str, str]]) -> RunOutcome:
    """Ok tasks (key, task id, node, spill) counted as the run loop counts them."""
    run = RunOutcome("r", out_path=None, wall_s=2.0, first_submitted=0.0, first_started=0.5, last_finished=1.5)
    for key, task_id, node, spill in spills:
        run.ok += 1
        run.per_node[node] += 1
        run.task_keys.ran(key, node, task_id)
        if spill:
            run.task_keys.spilled(key, task_id, spill)
    return run


def test_spills_say_whether_their_keys_moved_whole() -> None:
    # k1's owner was full: both its tasks went to B (moved whole); k2 spilled one task to C, one stayed on A (split)
    run = _hash_run([("k1", 0, B, "bound"), ("k1", 1, B, "bound"), ("k2", 2, A, ""), ("k2", 3, C, "wait")])
    text = format_summary(run, "j", "hash")
    assert "50% of 2 keys ran on one node" in _line(text, "key affinity")
    assert _line(text, "spilled").split()[1] == "3"
    assert "of their 2 keys, 1 moved whole" in text and "1 split over several" in text


def test_a_run_without_keys_prints_no_key_affinity_and_no_spills() -> None:
    # jobs/cpu_bound.py: no keys, so each task is recorded with its task id; hash still marks "spills"
    run = _hash_run([(str(i), i, A if i % 2 else B, "bound" if i % 3 else "") for i in range(9)])
    text = format_summary(run, "j", "hash")
    assert "key affinity" not in text and "spilled" not in text
    assert "the tasks have no keys" in _line(text, "keys")


def test_a_run_of_tasks_shows_its_latency_quantiles_in_task_terms() -> None:
    run = _finished_run()
    for seconds in (0.2, 0.4, 0.1, 1.5):  # sorted .1 .2 .4 1.5: p50 0.3 s, p95 at 2.85: .4 + .85 x 1.1 = 1.335 s
        run.latency.add(seconds)
    text = format_summary(run, "j", "hash")
    assert _line(text, "latency").split()[:7] == ["latency", "p50", "300.0", "ms", "p95", "1.33", "s"]
    assert "taken in to its result back in the driver" in _line(text, "latency")
    assert "call" not in text and "replica" not in text and "queue wait" not in text
