"""The placement brain as a plain class: ledger, membership, validation, restart (no Ray)."""
from __future__ import annotations

import pytest

from raysched import brain as brain_module
from raysched.brain import PlacementBrain, PolicyError, UnknownSubmission, schedulable_capacity
from raysched.policies import PolicyOptions, build_policy

A, B, C = "a" * 56, "b" * 56, "c" * 56
ONE = {"CPU": 1.0}


def make_brain(nodes: dict | None = None, policy: str = "greedy") -> PlacementBrain:
    brain = PlacementBrain()
    brain.sync_nodes(nodes or {A: {"CPU": 2.0}, B: {"CPU": 1.0}})
    brain.register("s1", build_policy(policy, PolicyOptions(seed=1)), {"run_id": "s1", "policy": policy})
    return brain


def test_ray_resources_become_schedulable_capacity() -> None:
    raw = {"CPU": 4.0, "memory": 1e9, "object_store_memory": 1e8, "node:127.0.0.1": 1.0,
           "node:__internal_head__": 1.0, "accelerator_type:A100": 1.0, "ssd": 2.0}
    assert schedulable_capacity(raw) == {"CPU": 4.0, "memory": 1e9, "ssd": 2.0}


def test_status_reports_ring_size_of_hash_submissions() -> None:
    brain = make_brain(policy="hash")
    brain.place("s1", [], [(0, ONE, "k")])
    sub = brain.status()["submissions"][0]
    assert sub["ring_nodes"] == 2 and sub["ring_vnodes"] > 2


def test_places_until_full_then_waits_and_releases_on_finish() -> None:
    brain = make_brain()
    answer = brain.place("s1", [], [(i, ONE, str(i)) for i in range(4)])
    assert len(answer.placed) == 3 and answer.waiting == 1  # 2 + 1 CPUs
    assert {node for _, node in answer.placed} == {A, B}
    again = brain.place("s1", [answer.placed[0][0]], [(3, ONE, "3")])
    assert again.placed == [(3, answer.placed[0][1])]  # the freed slot is reused
    assert brain.status()["submissions"][0]["done"] == 1


def test_infeasible_demand_is_reported_not_waited_on() -> None:
    brain = make_brain()
    answer = brain.place("s1", [], [(0, {"CPU": 64.0}, "0"), (1, ONE, "1")])
    assert answer.infeasible[0][0] == 0 and "CPU" in answer.infeasible[0][1] and A[:8] in answer.infeasible[0][1]
    assert [uid for uid, _ in answer.placed] == [1]


def test_bad_requests_are_refused_and_the_view_is_untouched() -> None:
    brain = make_brain()
    before = brain.status()["nodes"]
    with pytest.raises(ValueError, match="bad resource demand"):
        brain.place("s1", [], [(0, {"CPU": -1.0}, "0")])
    with pytest.raises(UnknownSubmission):
        brain.place("nobody", [], [(0, ONE, "0")])
    brain.place("s1", [], [(0, ONE, "0")])
    with pytest.raises(ValueError, match="already placed"):
        brain.place("s1", [], [(0, ONE, "0")])
    brain.place("s1", [12345], [])  # finishing an unknown task is a no-op
    assert brain.report_node_failure("f" * 56) is False  # unknown node: nothing to drop
    after = {n["node_id"]: n["tasks_in_flight"] for n in brain.status()["nodes"]}
    assert sum(after.values()) == 1 and {n["node_id"] for n in before} == set(after)


def test_a_policy_choosing_no_live_node_is_an_error() -> None:
    class Rogue:
        name = "rogue"

        def choose(self, task, view):
            return "nowhere"

    class Overfill:
        name = "overfill"

        def choose(self, task, view):
            return B  # B has one CPU

    class Waiter:
        name = "waiter"

        def choose(self, task, view):
            return None  # never checks feasibility itself

    brain = make_brain()
    brain.register("s2", Rogue(), {"policy": "rogue"})
    with pytest.raises(PolicyError, match="no live node with room"):
        brain.place("s2", [], [(0, ONE, "0")])
    brain.register("s3", Overfill(), {"policy": "overfill"})
    brain.place("s3", [], [(0, ONE, "0")])
    with pytest.raises(PolicyError, match="no live node with room"):
        brain.place("s3", [], [(1, ONE, "1")])
    assert sum(n["tasks_in_flight"] for n in brain.status()["nodes"]) == 1
    brain.register("s4", Waiter(), {"policy": "waiter"})
    assert brain.place("s4", [], [(0, {"CPU": 99.0}, "0")]).infeasible  # reported, not waited on


def test_dead_node_leaves_at_once_and_stays_out_until_ray_agrees() -> None:
    brain = make_brain()
    brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1"), (2, ONE, "2")])
    assert brain.report_node_failure(A) is True
    assert [n["node_id"] for n in brain.status()["nodes"]] == [B]
    brain.sync_nodes({A: {"CPU": 2.0}, B: {"CPU": 1.0}})  # health checks have not caught up yet
    assert [n["node_id"] for n in brain.status()["nodes"]] == [B]
    brain.sync_nodes({B: {"CPU": 1.0}, C: {"CPU": 4.0}})  # now Ray agrees, and C joined
    assert brain.status()["condemned"] == []
    assert {n["node_id"] for n in brain.status()["nodes"]} == {B, C}
    kinds = [kind for _, kind, _ in brain.status()["membership_changes"]]
    assert kinds.count("leave") == 1 and kinds.count("join") == 3
    brain.place("s1", [0, 1, 2], [])  # releasing work of a node that left is harmless
    assert sum(n["tasks_in_flight"] for n in brain.status()["nodes"]) == 0


def test_reregistration_after_restart_restores_work_in_flight() -> None:
    brain = make_brain()
    placed = brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1")]).placed
    fresh = PlacementBrain()  # a restarted brain starts empty
    fresh.sync_nodes({A: {"CPU": 2.0}, B: {"CPU": 1.0}})
    with pytest.raises(UnknownSubmission):
        fresh.place("s1", [], [])
    held = [(uid, node, ONE) for uid, node in placed]
    fresh.register("s1", build_policy("greedy", PolicyOptions()), {}, held)
    assert sum(n["tasks_in_flight"] for n in fresh.status()["nodes"]) == 2
    assert fresh.place("s1", [], [(2, ONE, "2"), (3, ONE, "3")]).waiting == 1  # only one slot left


def test_idle_submissions_expire_and_release_their_work(monkeypatch: pytest.MonkeyPatch) -> None:
    brain = make_brain()
    brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1")])
    brain.register("s2", build_policy("random", PolicyOptions(seed=2)), {})
    monkeypatch.setattr(brain_module, "SUBMISSION_EXPIRY_S", -1.0)  # everyone is overdue
    with pytest.raises(UnknownSubmission):
        brain.place("s2", [], [])
    assert brain.status()["submissions"] == []
    assert sum(n["tasks_in_flight"] for n in brain.status()["nodes"]) == 0


def test_two_submissions_see_each_others_load() -> None:
    brain = make_brain()
    brain.register("s2", build_policy("p2c", PolicyOptions(seed=3)), {})
    first = brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1")])
    second = brain.place("s2", [], [(0, ONE, "0"), (1, ONE, "1")])  # same uids, another submission
    assert len(first.placed) == 2 and len(second.placed) == 1 and second.waiting == 1


def test_a_full_cluster_is_not_asked_again_for_equal_demands() -> None:
    calls = []

    class Counting:
        name = "counting"
        none_means_no_room = True

        def choose(self, task, view):
            calls.append(task.key)
            return None

    brain = make_brain()
    brain.register("s2", Counting(), {})
    answer = brain.place("s2", [], [(i, ONE, str(i)) for i in range(50)] + [(99, {"CPU": 2.0}, "big")])
    assert answer.waiting == 51 and calls == ["0", "big"]  # one question per distinct demand


def test_a_policy_that_raises_is_reported_and_the_view_is_untouched() -> None:
    class Broken:
        name = "broken"

        def choose(self, task, view):
            raise KeyError("bucket")

    brain = make_brain()
    brain.register("s2", Broken(), {"policy": "mypolicies:Broken"})
    with pytest.raises(PolicyError, match="policy mypolicies:Broken raised KeyError"):
        brain.place("s2", [], [(0, ONE, "0")])
    assert sum(n["tasks_in_flight"] for n in brain.status()["nodes"]) == 0
