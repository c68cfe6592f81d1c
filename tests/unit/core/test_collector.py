"""Garbage collection for long runs: the brain's own process collects less; a block gives the caller's settings back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from raysched.brain.actor import PlacementBrain
from raysched.core.collector import LONG_RUN_THRESHOLDS, fewer_collections


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


def test_a_block_starts_from_zeroed_generation_counts(default_thresholds: None) -> None:
    """A process that counted many middle collections (loading a trace) kept collecting in full each time its
    heap grew by a quarter: entering the block collects once, so those counts start again from zero."""
    kept = [[i] for i in range(50_000)]  # survivors: young collections move them on and count up
    assert gc.get_count()[1:] != (0, 0)
    with fewer_collections():
        assert gc.get_count()[1:] == (0, 0)
    assert len(kept) == 50_000
