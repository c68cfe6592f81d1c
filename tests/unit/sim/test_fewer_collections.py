"""A simulation runs with the long-run collector thresholds and gives the caller's back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from test_replay import write_trace

from raysched.core.collector import LONG_RUN_THRESHOLDS
from raysched.sim import replay


def test_a_simulation_runs_with_fewer_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []
    run = replay.Simulation.run

    def spy(self: replay.Simulation) -> replay.SimulationStats:
        seen.append(gc.get_threshold())
        return run(self)

    monkeypatch.setattr(replay.Simulation, "run", spy)
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        trace = write_trace(tmp_path / "trace.csv", [{"key": f"k{i % 3}"} for i in range(20)])
        replay.simulate(replay.SimulateSettings(trace=trace, policies=("random", "hash"), nodes="2x2"))
        assert len(seen) >= 2 and set(seen) == {LONG_RUN_THRESHOLDS}  # every replay of both policies, one block
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
