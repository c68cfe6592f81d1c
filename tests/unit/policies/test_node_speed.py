"""A node's speed (issue 29, item 1): hash shares keys by what a node really gets through, not by its CPUs alone.

Rules under test: `raysched.policies.node_speed` (the driver's reports, the recent mean per node, the factor
against the median node with a dead band) and its use in `HashPolicy` through a real `PlacementBrain` (no Ray):
a node whose tasks take twice as long as the others' is given about half as many keys, whole; within the dead
band, or without reports, nothing changes.
"""

from __future__ import annotations

import pytest

from raysched.brain.actor import PlacementBrain
from raysched.policies import PolicyOptions, build_policy
from raysched.policies.node_speed import (
    DEAD_BAND,
    MIN_FACTOR,
    MIN_TASKS,
    NodeSpeed,
    read_run_times,
    report_run_times,
)

NODES = {f"{i:056x}": {"CPU": 2.0} for i in range(4)}
SLOW = next(iter(NODES))


def test_run_times_travel_as_pacing_entries_and_bad_ones_are_ignored() -> None:
    stats = report_run_times({"a": (2.0, 4), "b": (1.0, 2)})
    assert read_run_times(stats) == {"a": (2.0, 4.0), "b": (1.0, 2.0)}
    bad = {"runs@x": 0.0, "run_s@x": 1.0, "runs@y": 3.0, "run_s@y": -1.0, "runs@z": "3", "runs@w": 2.0}
    assert read_run_times(bad) == {}  # no tasks, negative seconds, not a number, no seconds


def test_a_node_twice_as_slow_as_the_median_gets_half_the_share_once_measured() -> None:
    speed = NodeSpeed()
    reports = {n: (MIN_TASKS * 0.1, MIN_TASKS) for n in NODES} | {SLOW: (MIN_TASKS * 0.2, MIN_TASKS)}
    assert speed.observe({SLOW: reports[SLOW]}) == set()  # one node measured: nothing to compare
    assert speed.observe(reports) == {SLOW}
    assert speed.factor(SLOW) == pytest.approx(0.5) and all(speed.factor(n) == 1.0 for n in NODES if n != SLOW)


def test_a_node_within_the_dead_band_or_barely_measured_keeps_its_share() -> None:
    speed = NodeSpeed()
    near = 0.1 * (DEAD_BAND - 0.05)
    assert not speed.observe({n: (MIN_TASKS * 0.1, MIN_TASKS) for n in NODES} | {SLOW: (MIN_TASKS * near, MIN_TASKS)})
    few = NodeSpeed()
    assert not few.observe({n: (0.1 * (MIN_TASKS - 1), MIN_TASKS - 1) for n in NODES} | {SLOW: (10.0, MIN_TASKS - 1)})
    crawl = NodeSpeed()
    crawl.observe({n: (MIN_TASKS * 0.1, MIN_TASKS) for n in NODES} | {SLOW: (MIN_TASKS * 100.0, MIN_TASKS)})
    assert crawl.factor(SLOW) == MIN_FACTOR  # never below: a node that stalls is the brain's stall watch's
    edge = NodeSpeed()  # exactly at the band's edges (binary fractions: 0.75 / 0.5 = 1.5, 0.75 / 1.125 = 1 / 1.5)
    fast, slow = list(NODES)[1], list(NODES)[2]
    reports = {n: (MIN_TASKS * 0.75, MIN_TASKS) for n in NODES} | {fast: (MIN_TASKS * 0.5, MIN_TASKS)}
    assert not edge.observe(reports | {slow: (MIN_TASKS * 1.125, MIN_TASKS)})
    assert edge.factor(fast) == edge.factor(slow) == 1.0  # within the band, its edges included


@pytest.mark.parametrize("slow_s", [0.1, 0.2])
def test_a_node_with_half_the_throughput_gets_about_half_the_keys(slow_s: float) -> None:
    """Four 2-CPU nodes; the drivers report one of them running its tasks in ``slow_s`` against 0.1 s elsewhere.
    Then 140 new keys arrive at once (a window of keys, each with its one task): at equal speed each node is
    given about a quarter of them; at half the speed the slow node about half of each other node's (1/7 of all:
    its tasks take twice as long, so it gets through its keys when the others get through theirs)."""
    brain = PlacementBrain(clock=lambda: 0.0)
    brain.sync_nodes(NODES)
    policy = build_policy("hash", PolicyOptions(seed=1, locality_wait=0.02))
    brain.register("s", policy, {"policy": "hash"}, overcommit=1.0)
    first = brain.place("s", [], [(1000, {"CPU": 1.0}, "warm-up")], {})  # the ring is built before any report
    reports = {n: (MIN_TASKS * 0.1, MIN_TASKS) for n in NODES} | {SLOW: (MIN_TASKS * slow_s, MIN_TASKS)}
    pacing = {"overcommit": 1.0, "task_p50_s": 0.1, "task_p90_s": 0.2, **report_run_times(reports)}
    done = [uid for uid, *_ in first.placed]
    brain.place("s", done, [(i, {"CPU": 1.0}, f"key-{i}") for i in range(140)], pacing)
    given = {n: brain.view.keys_on(n) for n in NODES}
    assert sum(given.values()) == 140  # every key on one node, whole
    others = [given[n] for n in NODES if n != SLOW]
    share = given[SLOW] / (sum(others) / len(others))
    if slow_s == 0.1:
        assert 0.8 <= share <= 1.25, given
    else:
        assert 0.4 <= share <= 0.6, given
        assert policy._weights[SLOW] == 2.0  # the ring itself is unchanged: owners follow CPUs alone
