"""Routing a service's calls to its replicas: the placement brain itself, in the driver, over replicas.

A replica is to a call what a node is to a task, so the router is a `PlacementBrain`
of this process whose nodes are the service's live replicas, each with
``max_concurrency`` call slots: `--policy` decides every call exactly as it decides
tasks over nodes (hash: a ring over replica names with bounded loads over the calls
outstanding at each, whole keys, hot keys spread by their share; random, p2c,
greedy, pack: by calls outstanding), calls wait in it while every replica is busy
(late binding), and the driver's pacing sets how many calls queue at a replica
(pipelining). Replica names never change, so neither does the ring.

One difference from tasks: a replica's warm state is what a key is routed there
for, so a key's calls wait for their replica rather than take a free slot on
another (no work conservation, no stealing). Keys still spread by bounded loads
when they first arrive, and a hot key over as many replicas as its share needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from raysched.brain.actor import PlacementBrain
from raysched.brain.state import Placement, Request
from raysched.core.view import ResourceView
from raysched.driver.table import KeyHomes, no_key
from raysched.policies import Decision, Policy, TaskDemand
from raysched.services import ServiceSpec

CALLS = "calls"  # the router's one submission


class CallRouter:
    """One service's calls, routed over its live replicas by a policy."""

    def __init__(self, spec: ServiceSpec, policy: Policy) -> None:
        self.spec = spec
        self.brain = PlacementBrain(expiry_s=math.inf)
        routing = _KeysStay(policy) if getattr(policy, "work_conserving", False) else policy
        self.brain.register(CALLS, routing, {"service": spec.name}, overcommit=1.0)
        self._live: dict[str, dict[str, float]] = {}

    def replica_up(self, name: str) -> None:
        """A replica is ready: calls may be routed to it (again, after a re-creation: same name, same keys)."""
        self._live[name] = {"CPU": float(self.spec.max_concurrency)}
        self.brain.sync_nodes(self._live)

    def replica_gone(self, name: str) -> None:
        """A replica will not come back: its keys go to the others."""
        if self._live.pop(name, None) is not None:
            self.brain.sync_nodes(self._live)

    @property
    def live(self) -> tuple[str, ...]:
        return tuple(self._live)

    def route(self, finished: Sequence[int], new: Sequence[Request], pacing: Mapping[str, float]) -> Placement:
        """Release finished calls, take new ones; the calls routed now (replica name for node)."""
        return self.brain.place(CALLS, list(finished), list(new), dict(pacing))

    def close(self) -> None:
        self.brain.close()


class _KeysStay:
    """The policy as is, but never work-conserving: a call waits for its key's replica instead of a free slot."""

    work_conserving = False

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        if hasattr(policy, "spreads_lost_keys"):  # hash: a lost replica's keys go to their ring successors
            policy.spreads_lost_keys = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)


class HomesFirst:
    """A deployed hash service's routing in a run: a key goes to its home, as every handle sends it (the controller
    gives homes, `raysched.driver.table.KeyHomes`), else to its owner on the ring; it waits for that replica."""

    name = "hash"
    work_conserving = False

    def __init__(self, ring: Policy, homes: KeyHomes) -> None:
        self._ring = ring
        self.homes = homes

    def decide(self, task: TaskDemand, view: ResourceView) -> Decision:
        home = None if no_key(task.key) else self.homes.of(task.key, view)
        if home is None:
            decide = getattr(self._ring, "decide", None)
            return decide(task, view) if decide is not None else Decision(self._ring.choose(task, view))
        return Decision(home if view.fits_now(home, task.resources) else None, waits_for=home)

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        return self.decide(task, view).node
