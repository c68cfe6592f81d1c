"""Garbage collection for long runs: the brain's own process collects less; a block gives the caller's settings back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from raysched.brain.actor import PlacementBrain
from raysched.core.collector import FULL_COLLECTION_OVERDUE, LONG_RUN_THRESHOLDS, fewer_collections


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_a_block_collects_less_and_gives_the_callers_thresholds_back(default_thresholds: None) -> None:
    with fewer_collections():
        assert gc.get_threshold() == LONG_RUN_THRESHOLDS
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("a failed simulation")
    assert gc.get_threshold() == (700, 10, 10)


def test_only_a_brain_in_its_own_process_changes_the_process_thresholds(default_thresholds: None) -> None:
    PlacementBrain()
    assert gc.get_threshold() == (700, 10, 10)  # a brain inside a user's process leaves them alone
    PlacementBrain(own_process=True)
    assert gc.get_threshold() == LONG_RUN_THRESHOLDS


def full_collections_during(block) -> int:
    """Full (generation 2) collections Python runs while ``block()`` runs, as its gc callbacks see them."""
    seen: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(2)

    gc.callbacks.append(note)
    try:
        block()
    finally:
        gc.callbacks.remove(note)
    return len(seen)


def enter_a_block() -> None:
    with fewer_collections():
        pass


def test_a_block_collects_in_full_first_only_when_a_full_collection_is_overdue(default_thresholds: None) -> None:
    """A process that counted many middle collections since its last full one (loading a trace) kept collecting
    in full each time its heap grew by a quarter: entering the block collects once, so the counts start again
    from zero. Otherwise it does not: a full collection costs tens of ms, and short what-ifs replay many times."""
    gc.collect()
    assert full_collections_during(enter_a_block) == 0  # nothing overdue: no full collection

    gc.set_threshold(10, 1, 1_000_000)  # middle collections often, full ones never: the count runs past 10
    kept = [[i] for i in range(20_000)]
    gc.set_threshold(700, 10, 10)
    assert gc.get_count()[2] > FULL_COLLECTION_OVERDUE
    assert full_collections_during(enter_a_block) == 1
    with fewer_collections():
        assert gc.get_count()[1:] == (0, 0)
    assert len(kept) == 20_000
