"""Service replicas in the brain: placed by a node policy, held for the run, re-placed when their node leaves."""

from __future__ import annotations

from collections import Counter

import pytest

from raysched.brain.actor import PlacementBrain
from raysched.policies import InfeasibleError, PolicyOptions, build_policy

NODES = {n * 56: {"CPU": 4.0} for n in "abcd"}  # configs/even.yaml: four equal 4-CPU nodes
ONE = {"CPU": 1.0}


def brain_with(nodes: dict = NODES) -> PlacementBrain:
    brain = PlacementBrain()
    brain.sync_nodes(nodes)
    brain.register("s1", build_policy("greedy", PolicyOptions(seed=1)), {"run_id": "s1"}, overcommit=1.0)
    return brain


def four_replicas(brain: PlacementBrain, policy: str, **kwargs) -> list[str | None]:
    asked = [(f"Shard#{i}", ONE, None) for i in range(4)]
    return [
        node for _, node in brain.place_replicas("s1", build_policy(policy, PolicyOptions(seed=1)), asked, **kwargs)
    ]


def test_greedy_spreads_replicas_over_every_node_and_pack_puts_them_on_one() -> None:
    assert len(set(four_replicas(brain_with(), "greedy"))) == 4
    assert len(set(four_replicas(brain_with(), "pack"))) == 1


def test_a_spread_label_puts_two_and_two_over_two_failure_domains_even_when_packing() -> None:
    zones = {node: ("east" if i < 2 else "west") for i, node in enumerate(NODES)}
    placed = four_replicas(brain_with(), "pack", domains=zones)
    assert Counter(zones[n] for n in placed if n) == {"east": 2, "west": 2}
    assert len(set(placed)) == 2  # packed inside each domain


def test_a_replica_holds_its_demand_for_the_run_and_tasks_see_the_room_it_takes() -> None:
    small = {"a" * 56: {"CPU": 1.0}, "b" * 56: {"CPU": 1.0}}
    brain = brain_with(small)
    [(_, node)] = brain.place_replicas("s1", build_policy("greedy", PolicyOptions()), [("Shard#0", ONE, None)])
    other = "b" * 56 if node == "a" * 56 else "a" * 56
    brain.register("s2", build_policy("greedy", PolicyOptions()), {"run_id": "s2"}, overcommit=1.0)
    answer = brain.place("s2", [], [(1, ONE, "k1"), (2, ONE, "k2")])
    assert [n for _, n, *_ in answer.placed] == [other]  # the replica's node has no room left for a task
    assert brain.status()["submissions"][0]["replicas"] == {"Shard#0": node}
    brain.unregister("s1")  # its replica's room comes back: task 2 (waiting) runs there, the other node is busy
    assert [n for _, n, *_ in brain.place("s2", [], []).placed] == [node]


def test_a_live_replica_stays_put_and_one_whose_node_left_is_placed_again() -> None:
    brain = brain_with()
    policy = build_policy("greedy", PolicyOptions())
    [(_, first)] = brain.place_replicas("s1", policy, [("Shard#0", ONE, None)])
    assert brain.place_replicas("s1", policy, [("Shard#0", ONE, first)]) == [("Shard#0", first)]
    brain.sync_nodes({n: c for n, c in NODES.items() if n != first})
    [(_, second)] = brain.place_replicas("s1", policy, [("Shard#0", ONE, first)])
    assert second is not None and second != first
    [(_, third)] = brain.place_replicas("s1", policy, [("Shard#0", ONE, second)], exclude=[second])
    assert third not in (None, second, first)
    reserved = {n["node_id"]: n["reserved"].get("CPU", 0.0) for n in brain.status()["nodes"]}
    assert reserved == {n: (1.0 if n == third else 0.0) for n in reserved}  # moves release the old node


def test_no_room_now_is_none_and_a_demand_no_node_could_hold_is_infeasible() -> None:
    brain = brain_with({"a" * 56: {"CPU": 1.0}})
    policy = build_policy("greedy", PolicyOptions())
    answer = brain.place_replicas("s1", policy, [("S#0", ONE, None), ("S#1", ONE, None)])
    assert [node for _, node in answer] == ["a" * 56, None]
    with pytest.raises(InfeasibleError, match="CPU"):
        brain.place_replicas("s1", policy, [("Big#0", {"CPU": 8.0}, None)])
