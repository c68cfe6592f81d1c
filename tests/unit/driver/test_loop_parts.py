"""Pieces of the driver loop that need no cluster: pinned remote functions, pacing."""

from __future__ import annotations

import pytest

from raysched.driver.dispatch import PinnedFunctions
from raysched.driver.pacing import MAX_DEPTH, Pacer


def work(i: int) -> int:
    return i


def other(i: int) -> int:
    return i


def test_pinned_functions_are_reused_and_bounded() -> None:
    """Regression: the per-(function, node) cache never forgot nodes that left an autoscaled cluster."""
    a, b, c, d = ("aa" * 28, "bb" * 28, "cc" * 28, "dd" * 28)  # Ray node ids: 56 hex characters
    pinned = PinnedFunctions(lambda fn: {"CPU": 1.0}, limit=3)
    first = pinned.get(work, a, False)
    assert pinned.get(work, a, False) is first  # reused
    for node in (b, c, d):
        pinned.get(work, node, False)
    assert len(pinned) == 3  # bounded: a, the least recently used, was forgotten
    assert pinned.get(work, a, False) is not first
    assert pinned.get(other, a, True) is not pinned.get(other, a, False)  # a batch runner is another function


def test_pacing_starts_exact_then_queues_by_littles_law() -> None:
    pacer = Pacer()
    assert pacer.overcommit() == 1.0 and pacer.batch() == 1  # nothing measured: only what runs now
    for _ in range(50):
        pacer.task_ran(0.010)
        pacer.gap(0.025)
    # gap 25 ms, unit 10 ms: depth = ceil(2 x 25 / 10) = 5 queued per slot -> (1 + 5) x batch 1
    assert pacer.depth() == 5 and pacer.overcommit() == 6.0
    long = Pacer()
    for _ in range(50):
        long.task_ran(1.0)
        long.gap(0.025)
    assert long.depth() == 0  # 1 s tasks are 40 x the gap: a queue would only delay decisions


def test_tiny_tasks_travel_in_batches_of_about_five_milliseconds() -> None:
    pacer = Pacer()
    for _ in range(50):
        pacer.task_ran(0.0005)
        pacer.gap(0.02)
    assert pacer.batch() == 10  # 5 ms a Ray task / 0.5 ms = 10 tasks a Ray task
    assert pacer.depth() == min(MAX_DEPTH, 8)  # ceil(2 x 20 ms / (10 x 0.5 ms)) = 8 units queued per slot
    # The runner sends them so (tests/unit/driver/test_runner.py: placed tiny tasks travel in batches).
    assert Pacer(fixed_batch=1).batch() == 1 and Pacer(fixed_overcommit=3.0).overcommit() == 3.0


@pytest.mark.parametrize(("task_s", "tasks", "calls"), [(0.010, 1, 2), (0.001, 5, 20), (0.05, 1, 1), (0.025, 1, 1)])
def test_on_executors_calls_carry_about_twenty_milliseconds_of_tasks(task_s: float, tasks: int, calls: int) -> None:
    pacer = Pacer()
    for _ in range(50):
        pacer.task_ran(task_s)
    assert pacer.batch() == tasks  # as Ray tasks: batches only under 2 ms (of about 5 ms)
    pacer.on_executors = True
    assert pacer.batch() == calls  # as calls: under 20 ms, about 20 ms a call
    assert Pacer(fixed_batch=1).batch() == 1  # --batch off holds on executors too


@pytest.mark.parametrize("seconds", [-1.0, float("nan")])
def test_pacing_ignores_nonsense_observations(seconds: float) -> None:
    pacer = Pacer()
    pacer.task_ran(seconds)
    pacer.gap(seconds)
    assert pacer.task_s is None and pacer.overcommit() == 1.0
