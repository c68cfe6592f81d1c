"""The brain's actor collects garbage as a long-lived process holding every waiting task should."""

from __future__ import annotations

from conftest import fresh_driver_json

from raysched.core.collector import LONG_RUN_THRESHOLDS


def test_the_brain_actor_runs_with_the_long_run_collector_thresholds(address: str) -> None:
    thresholds = fresh_driver_json(
        address,
        "ray.get(b.__ray_call__.remote(lambda self: __import__('gc').get_threshold()))",
        setup="from raysched.brain.actor import brain_handle; b = brain_handle();",
    )
    assert tuple(thresholds) == LONG_RUN_THRESHOLDS
