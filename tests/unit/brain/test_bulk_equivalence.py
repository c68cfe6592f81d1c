"""The brain's bulk paths place every task exactly where deciding and filing it on its own would.

`Rounds.bulk` (on by default) shares work between tasks: a demand validated once
per brain, a key's new tasks parked as one group, a lone submission's round fed
without interleaving, a plain ``choose`` answer taken without a Decision or a
task copy. ``bulk = False`` is the one-by-one reference. Both brains run the same
trace under the same seed (skewed and uniform keys, mixed demands, an infeasible
one, locality waits, a node leaving and coming back) and must answer every call
alike: the same placements in the same order, the same infeasible tasks, the same
decisions.
"""

from __future__ import annotations

import heapq
import random
from itertools import accumulate
from typing import Any

import pytest

from raysched.brain.actor import PlacementBrain
from raysched.core.view import ResourceView
from raysched.policies import HashPolicy, PolicyOptions, TaskDemand, build_policy

NODES = {f"{i:056x}": {"CPU": 4.0 if i % 4 else 8.0, "GPU": 1.0 if i % 3 == 0 else 0.0} for i in range(12)}
DEMANDS = ({"CPU": 1.0}, {"CPU": 1}, {"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FewestInFlight:
    """A user policy with none of the optional hooks: the fitting node with the fewest tasks, ties by id."""

    name = "fewest"

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        fitting = view.fitting_nodes(task.resources)
        return min(fitting, key=lambda n: (view.tasks_in_flight(n), n)) if fitting else None


def keys_of(rng: random.Random, count: int, skewed: bool) -> list[str]:
    if not skewed:
        return [f"u{i}" for i in range(count)]
    cum = list(accumulate(1.0 / r**1.2 for r in range(1, 41)))
    return [f"k{r}" for r in rng.choices(range(1, 41), cum_weights=cum, k=count)]


def run(
    policy: str,
    skewed: bool,
    bulk: bool,
    tasks: int = 1500,
    options: PolicyOptions | None = None,
    shortcut: bool = True,
) -> tuple[list[Any], int, int]:
    """Every call's answer (placements in order, infeasible tasks), the decisions, and the groups parked whole.

    ``shortcut``: hash's `settled_shortcut`; ``options``: the policy's (a 0.03 s locality wait by default)."""
    rng = random.Random(11)
    clock = Clock()
    brain = PlacementBrain(clock=clock)
    brain.bulk = bulk
    groups = 0
    park_new = brain._park_new

    def counting(sub: Any, group: list[Any], decision: Any, now: float) -> None:
        nonlocal groups
        groups += len(group) > 1
        park_new(sub, group, decision, now)

    brain._park_new = counting  # type: ignore[method-assign]
    brain.sync_nodes(NODES)
    options = options if options is not None else PolicyOptions(seed=5, locality_wait=0.03)
    chosen = FewestInFlight() if policy == "user" else build_policy(policy, options)
    if isinstance(chosen, HashPolicy):
        chosen.settled_shortcut = shortcut
    brain.register("s", chosen, {"policy": policy}, overcommit=2.0)
    keys = keys_of(rng, tasks, skewed)
    answers: list[Any] = []
    running: list[tuple[float, int]] = []
    finished: list[int] = []
    sent = done = waiting = 0
    left_out = list(NODES)[1]
    left_at: float | None = None
    while done < tasks:
        count = max(0, min(240 - len(running) - waiting, tasks - sent))
        requests = [
            (uid, {"CPU": 64.0} if uid % 200 == 7 else dict(DEMANDS[uid % len(DEMANDS)]), keys[uid])
            for uid in range(sent, sent + count)
        ]
        sent += count
        assert len(answers) < 20 * tasks, f"stalled: {done} of {tasks} tasks done, {waiting} waiting"
        answer = brain.place("s", finished, requests)
        done += len(finished) + len(answer.infeasible)  # every 200th task is infeasible: answered, never run
        finished = []
        waiting = answer.waiting
        answers.append((answer.placed, answer.infeasible, waiting))
        for uid, _node, _spill, _wait in answer.placed:
            heapq.heappush(running, (clock.now + rng.uniform(0.01, 0.04), uid))
        brain.check_structures()
        assert brain.queue_entries() <= 2 * waiting + 65
        if done >= 500 and left_at is None:
            left_at = clock.now
            brain.sync_nodes({n: c for n, c in NODES.items() if n != left_out})  # a node leaves...
        elif left_at is not None and clock.now > left_at + 0.2:
            brain.sync_nodes(NODES)  # ...and comes back, once the tasks it ran are over
        clock.now = min(max(running[0][0], clock.now + 0.01), clock.now + 0.05) if running else clock.now + 0.05
        while running and running[0][0] <= clock.now:
            finished.append(heapq.heappop(running)[1])
    return answers, brain.decisions, groups


@pytest.mark.parametrize("skewed", [True, False], ids=["skewed", "uniform"])
@pytest.mark.parametrize("policy", ["hash", "random", "p2c", "greedy", "pack", "user"])
def test_bulk_places_every_task_where_one_by_one_deciding_does(policy: str, skewed: bool) -> None:
    one_by_one, decisions, _ = run(policy, skewed, bulk=False)
    bulk, bulk_decisions, groups = run(policy, skewed, bulk=True)
    assert len(bulk) == len(one_by_one)
    for call, (got, want) in enumerate(zip(bulk, one_by_one, strict=True)):
        assert got == want, f"call {call}: bulk answered differently"
    assert bulk_decisions == decisions
    if policy == "hash" and skewed:
        assert groups > 0  # the trace did park keys' new tasks as groups (the bulk path under test)


@pytest.mark.parametrize("skewed", [True, False], ids=["skewed", "uniform"])
@pytest.mark.parametrize(
    "options",
    [
        PolicyOptions(seed=5, locality_wait=0.03),
        PolicyOptions(seed=5, locality_wait=0.03, load_factor=None),
        PolicyOptions(seed=5, locality_wait=0.03, keys_per_node=3),
    ],
    ids=["bounded", "pure-ring", "key-capacity"],
)
def test_hash_decides_settled_keys_without_a_plan_exactly_as_its_full_plan_does(
    options: PolicyOptions, skewed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`HashPolicy._settled_home` (a task sticking to its node, a settled key at its owner under its bound) gives
    every answer the full plan gives, and is really taken (under a key capacity it steps aside)."""
    settled = HashPolicy._settled_home
    taken = 0

    def counting(self: HashPolicy, task: TaskDemand, view: ResourceView) -> str | None:
        nonlocal taken
        home = settled(self, task, view)
        taken += home is not None
        return home

    monkeypatch.setattr(HashPolicy, "_settled_home", counting)
    full, decisions, _ = run("hash", skewed, bulk=True, options=options, shortcut=False)
    assert taken == 0
    fast, fast_decisions, _ = run("hash", skewed, bulk=True, options=options, shortcut=True)
    for call, (got, want) in enumerate(zip(fast, full, strict=True)):
        assert got == want, f"call {call}: the shortcut answered differently"
    assert fast_decisions == decisions
    if options.keys_per_node is None:
        assert taken > decisions // 2
    else:
        assert taken == 0
