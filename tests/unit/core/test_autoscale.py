"""The autoscaling rule (`Autoscaler`): load samples over time in, the replica count wanted out."""

from __future__ import annotations

import pytest

from raysched.core.autoscale import Autoscale, Autoscaler

RULES = Autoscale(target=2.0, up_delay_s=1.0, down_delay_s=5.0)


def test_it_grows_only_after_the_load_asked_for_more_for_the_up_delay() -> None:
    scaler = Autoscaler(1, 8, RULES)
    assert scaler.wanted(0.0, load=10, current=1) == 1  # asks for ceil(10 / 2) = 5, not yet
    assert scaler.wanted(0.5, load=10, current=1) == 1
    assert scaler.wanted(1.0, load=10, current=1) == 5  # held for the up delay
    assert scaler.wanted(1.1, load=10, current=5) == 5  # there: nothing more


def test_it_grows_to_the_least_count_the_whole_delay_asked_for() -> None:
    scaler = Autoscaler(1, 8, RULES)
    scaler.wanted(0.0, load=16, current=1)  # asks 8
    scaler.wanted(0.5, load=6, current=1)  # asks 3
    assert scaler.wanted(1.0, load=16, current=1) == 3


def test_a_dip_to_the_current_count_restarts_the_delay() -> None:
    scaler = Autoscaler(1, 8, RULES)
    scaler.wanted(0.0, load=10, current=2)
    scaler.wanted(0.6, load=4, current=2)  # asks exactly 2: the streak ends
    assert scaler.wanted(1.2, load=10, current=2) == 2
    assert scaler.wanted(2.2, load=10, current=2) == 5


def test_it_shrinks_after_the_down_delay_to_the_most_the_delay_asked_for() -> None:
    scaler = Autoscaler(1, 8, RULES)
    assert scaler.wanted(0.0, load=0, current=6) == 6
    assert scaler.wanted(2.0, load=5, current=6) == 6  # asks 3
    assert scaler.wanted(5.0, load=0, current=6) == 3  # the most asked for over the delay
    assert scaler.wanted(5.1, load=0, current=3) == 3  # a new streak starts


def test_the_count_stays_within_low_and_high() -> None:
    scaler = Autoscaler(2, 4, RULES)
    assert scaler.asked(0) == 2 and scaler.asked(1000) == 4
    assert scaler.wanted(0.0, load=0, current=1) == 2  # below low: at once
    assert scaler.wanted(0.0, load=0, current=9) == 4  # above high: at once


def test_the_default_target_is_two_calls_per_call_slot() -> None:
    assert Autoscaler(1, 8, Autoscale(), max_concurrency=1).target == 2.0
    assert Autoscaler(1, 8, Autoscale(), max_concurrency=4).target == 8.0
    assert Autoscaler(1, 8, Autoscale(target=3), max_concurrency=4).target == 3.0
    assert not Autoscaler(3, 3).scales and Autoscaler(1, 2).scales


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 0}, "target must be a number of calls > 0"),
        ({"target": "2"}, "target must be a number of calls > 0"),
        ({"up_delay_s": -1}, "up_delay_s must be a number of seconds >= 0"),
        ({"down_delay_s": float("nan")}, "down_delay_s must be a number of seconds >= 0"),
    ],
)
def test_bad_knobs_are_refused_on_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Autoscale(**kwargs)


def test_a_bad_range_is_refused() -> None:
    with pytest.raises(ValueError, match="1 <= low <= high"):
        Autoscaler(3, 2)
