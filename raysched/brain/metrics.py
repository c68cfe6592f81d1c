"""The brain's figures in Ray's own metrics (``ray.util.metrics``), beside Ray's on Prometheus/Grafana.

Exported by each node's metrics agent (Prometheus text on the node's
``MetricsExportPort``), with Ray's ``ray_`` prefix:

| metric | type | tags | what |
|---|---|---|---|
| ``ray_raysched_brain_decisions_total`` | counter | | policy decisions made |
| ``ray_raysched_brain_placements_total`` | counter | ``node`` | tasks placed on each node |
| ``ray_raysched_brain_tasks_in_flight`` | gauge | ``node`` | tasks placed on the node (running or queued there) |
| ``ray_raysched_brain_tasks_waiting`` | gauge | ``submission`` | tasks the brain holds for a submission |
| ``ray_raysched_brain_membership_changes_total`` | counter | ``change`` | nodes that joined, left, rejoined |
| ``ray_raysched_brain_call_seconds`` | histogram | | time to answer one driver call |

Everything is published at most once a second (recording a metric costs far
more than a decision), so counters lag by up to a second.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

__all__ = ["BrainMetrics", "NoMetrics", "RayMetrics"]

PUBLISH_EVERY_S = 1.0


class BrainMetrics(Protocol):
    """What the brain reports; the plain class (tests, simulator) reports to nobody."""

    def decided(self, decisions: int, seconds: float) -> None: ...

    def placed(self, node: str) -> None: ...

    def membership(self, change: str) -> None: ...

    def publish(self, brain: Any, force: bool = False) -> None: ...


class NoMetrics:
    """Reports nothing."""

    def decided(self, decisions: int, seconds: float) -> None:
        pass

    def placed(self, node: str) -> None:
        pass

    def membership(self, change: str) -> None:
        pass

    def publish(self, brain: Any, force: bool = False) -> None:
        pass


class RayMetrics:
    """Reports through ``ray.util.metrics`` (create it inside the brain actor's process)."""

    def __init__(self) -> None:
        from ray.util import metrics

        self._decisions = metrics.Counter("raysched_brain_decisions", description="Placement decisions made.")
        self._placements = metrics.Counter(
            "raysched_brain_placements", description="Tasks placed per node.", tag_keys=("node",)
        )
        self._in_flight = metrics.Gauge(
            "raysched_brain_tasks_in_flight",
            description="Tasks placed on the node, running or queued there.",
            tag_keys=("node",),
        )
        self._waiting = metrics.Gauge(
            "raysched_brain_tasks_waiting",
            description="Tasks the brain holds for a submission until they can run.",
            tag_keys=("submission",),
        )
        self._membership = metrics.Counter(
            "raysched_brain_membership_changes",
            description="Nodes that joined, left or rejoined.",
            tag_keys=("change",),
        )
        self._latency = metrics.Histogram(
            "raysched_brain_call_seconds",
            description="Seconds to answer one driver call.",
            boundaries=[0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
        )
        self._pending_placements: dict[str, int] = {}
        self._pending_decisions = 0
        self._pending_seconds: list[float] = []
        self._last_publish = 0.0
        self._known_subs: set[str] = set()
        self._known_nodes: set[str] = set()

    def decided(self, decisions: int, seconds: float) -> None:
        self._pending_decisions += decisions
        if len(self._pending_seconds) < 1000:  # a sample is enough for a histogram
            self._pending_seconds.append(seconds)

    def placed(self, node: str) -> None:
        self._pending_placements[node] = self._pending_placements.get(node, 0) + 1

    def membership(self, change: str) -> None:
        self._membership.inc(1, tags={"change": change})

    def publish(self, brain: Any, force: bool = False) -> None:
        """Counters accumulated since the last publish, and fresh gauges (at most once a second)."""
        now = time.monotonic()
        if not force and now - self._last_publish < PUBLISH_EVERY_S:
            return
        self._last_publish = now
        if self._pending_decisions:
            self._decisions.inc(self._pending_decisions)
            self._pending_decisions = 0
        for seconds in self._pending_seconds:
            self._latency.observe(seconds)
        self._pending_seconds.clear()
        for node, count in self._pending_placements.items():
            self._placements.inc(count, tags={"node": node})
        self._pending_placements.clear()
        view = brain.view
        nodes = set(view.nodes)
        for node in nodes:
            self._in_flight.set(view.tasks_in_flight(node), tags={"node": node})
        for gone in self._known_nodes - nodes:
            self._in_flight.set(0, tags={"node": gone})
        self._known_nodes = nodes
        subs = brain.waiting_per_submission()
        for sid, waiting in subs.items():
            self._waiting.set(waiting, tags={"submission": sid})
        for gone in self._known_subs - set(subs):
            self._waiting.set(0, tags={"submission": gone})
        self._known_subs = set(subs)
