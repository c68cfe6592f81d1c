"""A call's demands are validated once per distinct demand: a bad one in the middle of a run of good, equal-looking
ones (True equals 1 yet is no amount) fails the call with the one-line error of a lone bad request, and nothing of
the call is taken (no task placed twice when the driver sends its good ones again)."""

from __future__ import annotations

import pytest

from raysched.brain.actor import PlacementBrain
from raysched.policies import build_policy


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"CPU": True}, "CPU must be a number, got True"),
        ({"CPU": float("nan")}, "CPU must be a finite amount >= 0, got nan"),
        ({"CPU": [1]}, "CPU must be a number, got [1]"),
        ({1: 1.0}, "resource names must be non-empty strings, got 1"),
    ],
)
def test_a_bad_demand_among_equal_good_ones_fails_the_call_and_takes_nothing(bad: dict, message: str) -> None:
    brain = PlacementBrain()
    brain.sync_nodes({"n": {"CPU": 8.0}})
    brain.register("s", build_policy("random"), {})
    good = [(uid, {"CPU": 1}, f"k{uid}") for uid in range(3)]
    with pytest.raises(ValueError) as err:
        brain.place("s", [], [*good, (3, bad, "k3"), (4, {"CPU": 1}, "k4")])
    assert str(err.value) == f"bad resource demand for task 3: demand: {message}"
    answer = brain.place("s", [], good)  # the call changed nothing: the same tasks are new again
    assert sorted(uid for uid, *_ in answer.placed) == [0, 1, 2]
