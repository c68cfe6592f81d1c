"""`raysched status` as text: `format_status` on a hand-made brain state (no cluster needed)."""

from __future__ import annotations

from typing import Any

from raysched.cli.main import format_status

N1, N2 = "1a2b3c4d" + "0" * 48, "5e6f7a8b" + "f" * 48  # 56-hex-char Ray node ids


def _submission(run_id: str, **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "job": "shards.py", "policy": "hash", "in_flight": 2, "waiting": 1, "done": 7, **extra}


def _state(*submissions: dict[str, Any]) -> dict[str, Any]:
    return {
        "brain_id": "b-1",
        "decisions": 9,
        "nodes": [
            {"node_id": N1, "capacity": {"CPU": 4.0, "memory": 1e9}, "tasks_in_flight": 2, "tasks_waiting": 0},
            {"node_id": N2, "capacity": {"CPU": 2.0}, "tasks_in_flight": 0},
        ],
        "submissions": list(submissions),
    }


def test_a_submission_with_services_lists_its_replicas_under_it() -> None:
    text = format_status(
        _state(
            _submission("run-svc", replicas={"Shard#0": N1, "Shard#1": N2}),
            _submission("run-tasks", replicas={}),
        )
    )
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  run-svc "))
    assert lines[at + 1] == "    replicas: Shard#0 on 1a2b3c4d, Shard#1 on 5e6f7a8b"
    assert lines[at + 2].startswith("  run-tasks ")  # no replicas: no line
    assert lines[-1].startswith("  run-tasks ") and text.count("replicas:") == 1


def test_submissions_without_services_print_as_before() -> None:
    """An empty replicas dict, or a brain that does not report replicas at all, gives the same text."""
    plain = format_status(_state(_submission("run-a", decisions=5)))
    assert format_status(_state(_submission("run-a", decisions=5, replicas={}))) == plain
    assert plain.splitlines() == [
        "placement brain b-1: 2 live nodes, 9 decisions",
        "  node      alive  capacity                           in flight  waiting",
        "  1a2b3c4d  yes    CPU=4                                      2        0",
        "  5e6f7a8b  yes    CPU=2                                      0        0",
        "submissions: 1 active",
        "  run-a  shards.py under hash: 2 in flight, 1 waiting, 7 done, 5 decisions",
    ]


def test_a_replica_without_a_node_says_so() -> None:
    text = format_status(_state(_submission("run-svc", replicas={"Shard#0": N1, "Shard#1": None})))
    assert "    replicas: Shard#0 on 1a2b3c4d, Shard#1 (not placed)" in text.splitlines()


def test_executors_are_listed_per_node_and_demand_with_what_they_run() -> None:
    state = _state(_submission("run-a"))
    state["executors"] = [
        {"name": "exec-1a2b3c4d-0", "node": N1, "demand": {"CPU": 1.0}, "calls": 2, "submission": "run-a"},
        {"name": "exec-1a2b3c4d-1", "node": N1, "demand": {"CPU": 1.0}, "calls": 0, "submission": None},
        {"name": "exec-5e6f7a8b-2", "node": N2, "demand": {"CPU": 1.0}, "calls": 1, "submission": "run-b"},
    ]
    state["executor_counts"] = {"created": 5, "retired": 2}
    lines = format_status(state).splitlines()
    assert lines[-3:] == [
        "executors: 3 (5 created, 2 retired since the brain started)",
        "  1a2b3c4d  2 x CPU=1: 1 busy (2 calls, 1 submission(s))",
        "  5e6f7a8b  1 x CPU=1: 1 busy (1 calls, 1 submission(s))",
    ]
    state["executors"], state["executor_counts"] = [], {}
    assert "executors" not in format_status(state)  # a brain without executors prints as before
